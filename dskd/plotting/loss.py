"""Figures of the distillation loss (Eq. 3 to 7): per-pixel maps, the effect of lambda and of the
normalisation, and the per-pixel (Eq. 7) against the flattened form of the loss."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from scipy.stats import spearmanr
from torch import Tensor

from ..losses import LOSS_FORMS, NORMALIZATIONS, distillation_map
from .style import MAP_CMAP, clean_axes, dskd_style, provenance_title, to_numpy_image

_EPS = 1e-8


def loss_contributions(f_t: Tensor, f_s: Tensor, lam: float = 0.1, normalization: str = "unit",
                       loss_form: str = "pixel") -> Tensor:
    """Each pixel's share of one level's loss term, times h*w: (B, C, h, w) maps -> (B, h, w).

    The mean over the pixels of sample b is that sample's term in :func:`dskd.losses.pyramid_loss`
    for either ``loss_form``. For ``"pixel"`` it is the map of Eq. (6) itself. For ``"flat"`` (one
    Eq. 6 on each whole flattened map) it uses 0.5 ||A - B||^2 = sum_ij 0.5 ||a_ij - b_ij||^2 and
    1 - cos(A, B) = sum_ij 0.5 ||a_ij / ||A|| - b_ij / ||B|| ||^2, which split the flat loss over pixels.
    """
    if loss_form not in LOSS_FORMS:
        raise ValueError(f"unknown loss_form {loss_form!r}: expected one of {LOSS_FORMS}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}: expected one of {NORMALIZATIONS}")
    if loss_form == "pixel":
        return distillation_map(f_t, f_s, lam, normalization)
    if f_t.shape != f_s.shape or f_t.dim() != 4:
        raise ValueError(f"expected two (B, C, h, w) maps of one shape, got {tuple(f_t.shape)} and {tuple(f_s.shape)}")
    b, _, h, w = f_t.shape

    def whole_norm(f: Tensor) -> Tensor:
        return f.flatten(1).norm(dim=1).clamp_min(_EPS).view(b, 1, 1, 1)

    power = 1 if normalization == "unit" else 2
    a = f_t / whole_norm(f_t).pow(power)  # Eq. (3) applied to the flattened map
    s = f_s / whole_norm(f_s).pow(power)
    l2 = 0.5 * (a - s).pow(2).sum(dim=1)  # sums to Eq. (4) of the flat vectors
    cos = 0.5 * (a / whole_norm(a) - s / whole_norm(s)).pow(2).sum(dim=1)  # sums to Eq. (5)
    return (lam * l2 + cos) * (h * w)


def _fmt(value: Tensor, spec: str = ".4f") -> str:
    """A loss value for a title; rounding noise around zero prints as 0."""
    v = float(value)
    return format(0.0 if abs(v) < 1e-12 else v, spec)


def _check_level(level: int, pyramid: Sequence[Tensor]) -> int:
    if not isinstance(level, (int, np.integer)) or not 1 <= level <= len(pyramid):
        raise ValueError(f"level must be an int in 1..{len(pyramid)} (the paper's k), got {level!r}")
    return int(level)


def _mask_contour(ax, mask: Optional[Tensor], extent_hw: tuple[int, int]) -> None:
    if mask is None:
        return
    m = mask.squeeze().detach().cpu().numpy()
    if m.max() > 0:
        h, w = extent_hw
        ys, xs = np.linspace(0, h, m.shape[0]), np.linspace(0, w, m.shape[1])
        ax.contour(xs, ys, m, levels=[0.5], colors="cyan", linewidths=1.0)


def plot_distillation_map(
    image: Optional[Tensor],
    reference: Sequence[Tensor],
    student: Sequence[Tensor],
    mask: Optional[Tensor] = None,
    *,
    lam: float = 0.1,
    normalization: str = "unit",
    loss_form: str = "pixel",
    level: int = 1,
    teacher: str,
    data: str,
    reference_name: str = "T",
    student_name: str = "S_d",
) -> Figure:
    """One level's distillation map between two pyramids (first sample), for a lambda, an Eq. (3)
    normalisation and a loss form; beside it each pixel's map value against its 1 - cos (Eq. 5).

    For ``loss_form="flat"`` the map is :func:`loss_contributions` (each pixel's share of the flat
    loss, times h*w), so in both forms the mean of the map is the level's term of Eq. (7).
    ``image`` (3, H, W), normalised, and ``mask`` (1, H, W) are drawn when given; the mask's outline
    (cyan) is drawn on the map as well.
    """
    if len(reference) != len(student):
        raise ValueError(f"pyramids differ in depth: {len(reference)} vs {len(student)}")
    level = _check_level(level, reference)
    # float64: near-zero map values keep their order, so rank correlations are not float32 noise
    f_t, f_s = reference[level - 1][:1].detach().cpu().double(), student[level - 1][:1].detach().cpu().double()
    shown = loss_contributions(f_t, f_s, lam, normalization, loss_form)[0]
    one_minus_cos = distillation_map(f_t, f_s, 0.0, "unit")[0]  # Eq. (5); cos ignores the scaling
    h, w = shown.shape
    H, W = (image.shape[-2:] if image is not None else (h, w))
    with dskd_style():
        ncols = 3 if image is not None else 2
        fig, axes = plt.subplots(1, ncols, figsize=(4.0 * ncols, 4.1), layout="constrained",
                                 width_ratios=[1] * (ncols - 1) + [1.05])
        if image is not None:
            ax = axes[0]
            ax.imshow(to_numpy_image(image), extent=(0, W, H, 0))
            _mask_contour(ax, mask, (H, W))
            ax.set_title("input" + (" (cyan: defect mask)" if mask is not None else ""))
            clean_axes(ax)
        ax = axes[-2]
        im = ax.imshow(shown.numpy(), cmap=MAP_CMAP, extent=(0, W, H, 0), interpolation="nearest")
        _mask_contour(ax, mask, (H, W))
        what = "map $M^k$ (Eq. 6)" if loss_form == "pixel" else "share of the flat loss × h·w"
        ax.set_title(f"{what}, level k={level} ({h}×{w})\nmean = loss term (Eq. 7) = {_fmt(shown.mean(), '.4g')}")
        clean_axes(ax)
        fig.colorbar(im, ax=ax, shrink=0.8, label="map value (dimensionless)")
        ax = axes[-1]
        x, y = one_minus_cos.flatten().numpy(), shown.flatten().numpy()
        ax.scatter(x, y, s=6, alpha=0.5, color="#3b6fb6", label="pixels")
        grid = np.linspace(0, max(float(x.max()), 1e-6), 50)
        ax.plot(grid, (1 + lam) * grid, color="#c0392b", lw=1.2, label="(1 + λ)(1 − cos)")
        rho = spearmanr(x, y).statistic if x.size > 2 and np.ptp(y) > 0 else float("nan")
        ax.set_xlabel("1 − cos per pixel (Eq. 5)")
        ax.set_ylabel("value shown in the map")
        ax.set_title(f"map vs 1 − cos: rank correlation {rho:.3f}")
        ax.legend(loc="upper left", fontsize=8)
        fig.suptitle(provenance_title(
            f"Distillation map {reference_name} vs {student_name}: λ = {lam:g}, "
            f"normalization = {normalization!r}, loss_form = {loss_form!r}", teacher, data))
    return fig


def plot_loss_forms(reference: Tensor, student: Tensor, *, lam: float = 0.1, normalization: str = "unit",
                    title: str = "Per-pixel (Eq. 7) vs flattened loss") -> Figure:
    """Two (1, C, h, w) feature maps: their per-pixel norms, the per-pixel map of Eq. (6) and each
    pixel's share of the flattened loss (times h*w). Titles give both losses."""
    if reference.shape != student.shape or reference.dim() != 4:
        raise ValueError(f"expected two (1, C, h, w) maps of one shape, got {tuple(reference.shape)} "
                         f"and {tuple(student.shape)}")
    f_t, f_s = reference[:1].detach().cpu().double(), student[:1].detach().cpu().double()
    pixel = loss_contributions(f_t, f_s, lam, normalization, "pixel")[0]
    flat = loss_contributions(f_t, f_s, lam, normalization, "flat")[0]
    panels = [
        (f_t.norm(dim=1)[0], "‖F_t‖ per pixel", "feature norm", "viridis"),
        (f_s.norm(dim=1)[0], "‖F_s‖ per pixel", "feature norm", "viridis"),
        (pixel, f"per-pixel map (Eq. 6)\nEq. 7 loss = mean = {_fmt(pixel.mean())}", "map value", MAP_CMAP),
        (flat, f"share of the flat loss × h·w\nflat loss = mean = {_fmt(flat.mean())}", "map value", MAP_CMAP),
    ]
    with dskd_style():
        fig, axes = plt.subplots(1, 4, figsize=(13, 3.6), layout="constrained")
        for ax, (arr, name, label, cmap) in zip(axes, panels):
            im = ax.imshow(arr.numpy(), cmap=cmap, interpolation="nearest")
            ax.set_title(name)
            clean_axes(ax)
            fig.colorbar(im, ax=ax, shrink=0.8, label=label)
        fig.suptitle(f"{title} (λ = {lam:g}, normalization = {normalization!r})")
    return fig
