"""Figures of anomaly inference (Algorithm 2, Eq. 8 to 10) and of the decision threshold (Eq. 1).

* :func:`plot_inference_steps`: one image through Algorithm 2, per-layer maps to the image score.
* :func:`plot_inference_settings`: which layers (Table 9) and which sigma (Eq. 9), on a whole test
  set: one image's map and every image's score (static twin of
  :func:`dskd.widgets.inference_explorer`).
* :func:`plot_threshold`: image scores, a threshold and its confusion table (static twin of
  :func:`dskd.widgets.threshold_explorer`).
* :func:`plot_decisions`: images decided at a threshold, the region of each map at or above it outlined
  (``dskd predict``'s heat maps).
"""
from __future__ import annotations

import textwrap
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from torch import Tensor

from ..inference import ALL_LAYERS, anomaly_score, gaussian_blur
from ..metrics import image_auroc, pixel_auroc
from .style import MAP_CMAP, clean_axes, dskd_style, provenance_title, to_numpy_image

NORMAL_COLOUR = "#3b6fb6"
ANOMALY_COLOUR = "#d35400"
HELD_OUT_COLOUR = "#7f8c8d"


def layers_label(layers: Sequence[int]) -> str:
    """(1, 2, 3) -> 'M1+M2+M3', the paper's names of the per-layer maps (Table 9)."""
    return "+".join(f"M{k}" for k in layers)


#: every non-empty subset of the three layers, as (label, layers) options for a dropdown
LAYER_CHOICES: tuple[tuple[str, tuple[int, ...]], ...] = tuple(
    (layers_label(s), s) for s in ((1,), (2,), (3,), (1, 2), (1, 3), (2, 3), (1, 2, 3)))


def _np(x) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().float().numpy()
    return np.asarray(x)


def _contour(ax, mask, colour: str = "cyan") -> None:
    if mask is None:
        return
    m = _np(mask).squeeze()
    if m.max() > 0:
        ax.contour(m, levels=[0.5], colors=colour, linewidths=1.0)


def confusion_counts(labels, scores, threshold: float) -> dict[str, int]:
    """Counts of the rule ``score >= threshold`` (Eq. 1) against labels (1 anomalous, 0 normal)."""
    y = _np(labels).astype(bool).ravel()
    s = _np(scores).astype(np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    flagged = s >= threshold
    return {"TP": int((flagged & y).sum()), "FN": int((~flagged & y).sum()),
            "FP": int((flagged & ~y).sum()), "TN": int((~flagged & ~y).sum())}


def plot_inference_steps(
    image: Tensor,
    layer_maps: Sequence[Tensor],
    summed: Tensor,
    smoothed: Tensor,
    mask: Optional[Tensor] = None,
    *,
    sigma: float,
    teacher: str,
    data: str,
) -> Figure:
    """Algorithm 2 on one image: the per-layer maps M_k at their own resolution (Eq. 6), their
    upsampled sum M (Eq. 8), the Gaussian-filtered map (Eq. 9) with its maximum, the score (Eq. 10),
    and the ground truth. ``image`` (3, H, W) normalised; maps 2-D."""
    maps = [_np(m).squeeze() for m in layer_maps]
    summed_np, smooth_np = _np(summed).squeeze(), _np(smoothed).squeeze()
    H, W = smooth_np.shape
    n = 2 + len(maps) + 1 + (mask is not None)
    with dskd_style():
        fig, axes = plt.subplots(1, n, figsize=(2.25 * n + 0.4, 3.0), layout="constrained")
        axes[0].imshow(to_numpy_image(image))
        _contour(axes[0], mask)
        axes[0].set_title("input $I$" + ("\n(cyan: defect)" if mask is not None else ""))
        for k, (ax, m) in enumerate(zip(axes[1:], maps), start=1):
            im = ax.imshow(m, cmap=MAP_CMAP, interpolation="nearest")
            ax.set_title(f"$M_{k}$ (Eq. 6)\n{m.shape[0]}×{m.shape[1]}, max {m.max():.2f}")
            fig.colorbar(im, ax=ax, shrink=0.7)
        ax = axes[1 + len(maps)]
        im = ax.imshow(summed_np, cmap=MAP_CMAP)
        ax.set_title(f"$M$ = Σ upsample (Eq. 8)\n{H}×{W}, max {summed_np.max():.2f}")
        fig.colorbar(im, ax=ax, shrink=0.7)
        ax = axes[2 + len(maps)]
        im = ax.imshow(smooth_np, cmap=MAP_CMAP)
        i, j = np.unravel_index(int(np.argmax(smooth_np)), smooth_np.shape)
        ax.plot(j, i, marker="+", color="cyan", ms=12, mew=2)
        ax.set_title(f"$G_σ(M)$, σ = {sigma:g} (Eq. 9)\nscore = max = {smooth_np.max():.3f} (Eq. 10)")
        fig.colorbar(im, ax=ax, shrink=0.7, label="anomaly score")
        if mask is not None:
            axes[-1].imshow(_np(mask).squeeze(), cmap="gray", vmin=0, vmax=1)
            axes[-1].set_title("ground truth")
        clean_axes(axes)
        fig.suptitle(provenance_title("Algorithm 2 on one test image (+ marks the maximum)", teacher, data))
    return fig


def _check_stack(images: Tensor, layer_maps: Tensor, masks: Tensor, labels) -> None:
    if layer_maps.dim() != 4 or layer_maps.shape[0] != len(ALL_LAYERS):
        raise ValueError(f"layer_maps must be (3, N, H, W) (upsampled M_1, M_2, M_3), got {tuple(layer_maps.shape)}")
    n = layer_maps.shape[1]
    if len(images) != n or len(masks) != n or len(labels) != n:
        raise ValueError(f"images ({len(images)}), masks ({len(masks)}), labels ({len(labels)}) and "
                         f"layer_maps ({n}) must hold the same number of images")


def plot_inference_settings(
    images: Tensor,
    layer_maps: Tensor,
    masks: Tensor,
    labels,
    *,
    index: int = 0,
    sigma: float = 4.0,
    layers: Sequence[int] = ALL_LAYERS,
    teacher: str,
    data: str,
) -> Figure:
    """Algorithm 2 with a choice of layers (Table 9) and sigma (Eq. 9), on a whole test set.

    ``layer_maps`` (3, N, H, W) holds the upsampled, unfiltered M_1..M_3 of N images; the map is
    ``G_sigma(sum of the chosen layers)`` (Eq. 8, 9) and the score its maximum (Eq. 10). Draws image
    ``index`` with its defect outline, its map, and the scores of all images by class, with the image
    and pixel AUROC of the setting in the title.
    """
    _check_stack(images, layer_maps, masks, labels)
    layers = tuple(layers)
    if not layers or not set(layers) <= set(ALL_LAYERS):
        raise ValueError(f"layers must be a non-empty subset of {ALL_LAYERS}, got {layers}")
    n = layer_maps.shape[1]
    if not 0 <= index < n:
        raise ValueError(f"index must be in 0..{n - 1}, got {index}")
    maps = gaussian_blur(sum(layer_maps[k - 1] for k in layers), float(sigma))
    scores = anomaly_score(maps).numpy()
    y = _np(labels).astype(int)
    m_np = _np(masks).reshape(maps.shape).astype(np.uint8)
    img_auc = image_auroc(y, scores) if 0 < y.sum() < len(y) else float("nan")
    pix_auc = pixel_auroc(m_np, maps) if 0 < m_np.sum() < m_np.size else float("nan")
    one = maps[index].numpy()
    with dskd_style():
        fig, axes = plt.subplots(1, 3, figsize=(11.5, 3.7), layout="constrained", width_ratios=[1, 1.2, 1.5])
        axes[0].imshow(to_numpy_image(images[index]))
        _contour(axes[0], m_np[index])
        axes[0].set_title(f"test image {index} ({'anomalous' if y[index] else 'normal'})\ncyan: ground truth")
        im = axes[1].imshow(one, cmap=MAP_CMAP, vmin=float(maps.min()), vmax=float(maps.max()))
        _contour(axes[1], m_np[index])
        i, j = np.unravel_index(int(np.argmax(one)), one.shape)
        axes[1].plot(j, i, marker="+", color="cyan", ms=12, mew=2)
        axes[1].set_title(f"map {layers_label(layers)}, σ = {sigma:g}\nscore = max = {scores[index]:.3f}")
        fig.colorbar(im, ax=axes[1], shrink=0.8, label="anomaly score (Eq. 9)")
        clean_axes(axes[:2])
        ax = axes[2]
        rng = np.random.default_rng(0)
        for cls, colour, name in ((0, NORMAL_COLOUR, "normal"), (1, ANOMALY_COLOUR, "anomalous")):
            sel = y == cls
            ax.scatter(scores[sel], cls + rng.uniform(-0.15, 0.15, sel.sum()), s=18, color=colour,
                       alpha=0.8, label=f"{name} ({sel.sum()})")
        ax.scatter([scores[index]], [y[index]], s=110, facecolors="none", edgecolors="black", lw=1.5,
                   label=f"image {index}")
        ax.set_yticks([0, 1], ["normal", "anomalous"])
        ax.set_ylim(-0.5, 1.5)
        ax.set_xlabel("image score = max of the map (Eq. 10)")
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title(f"image AUROC {img_auc:.3f} | pixel AUROC {pix_auc:.3f}")
        fig.suptitle(provenance_title(f"Inference with layers {layers_label(layers)} and σ = {sigma:g}",
                                      teacher, data))
    return fig


def plot_threshold(
    scores,
    labels,
    threshold: float,
    *,
    normal_scores=None,
    marks: Optional[Mapping[str, float]] = None,
    teacher: str,
    data: str,
) -> Figure:
    """Image scores of a test set by class (and of held-out normal images, when given) with the rule
    ``score >= threshold`` (Eq. 1) and its confusion table; ``marks`` names other thresholds to draw
    (e.g. the paper's and a calibrated one)."""
    s = _np(scores).astype(np.float64).ravel()
    y = _np(labels).astype(bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.size} vs {y.size}")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold}")
    c = confusion_counts(y, s, threshold)
    fpr = c["FP"] / max(c["FP"] + c["TN"], 1)
    tpr = c["TP"] / max(c["TP"] + c["FN"], 1)
    rows = [("test: anomalous", s[y], ANOMALY_COLOUR), ("test: normal", s[~y], NORMAL_COLOUR)]
    if normal_scores is not None:
        rows.append(("held-out normal", _np(normal_scores).astype(np.float64).ravel(), HELD_OUT_COLOUR))
    with dskd_style():
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained", width_ratios=[2.2, 1])
        ax = axes[0]
        rng = np.random.default_rng(0)
        for r, (name, vals, colour) in enumerate(rows):
            ax.scatter(vals, r + rng.uniform(-0.18, 0.18, vals.size), s=16, color=colour, alpha=0.8)
        ax.set_yticks(range(len(rows)), [f"{name} ({len(v)})" for name, v, _ in rows])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.axvline(threshold, color="black", lw=1.8, label=f"threshold {threshold:.3f}")
        for (name, value), style in zip((marks or {}).items(), ("--", ":", "-.")):
            ax.axvline(value, color="#555555", lw=1.2, ls=style, label=f"{name}: {value:.3f}")
        ax.set_xlabel("image score = max of the map (Eq. 10)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        ax.set_title("flag an image when score ≥ threshold (Eq. 1)")
        ax = axes[1]
        table = np.array([[c["TN"], c["FP"]], [c["FN"], c["TP"]]])
        ax.imshow(np.array([[1, -1], [-1, 1]]), cmap="RdYlGn", vmin=-2.5, vmax=2.5)
        for (i, j), v in np.ndenumerate(table):
            name = [["TN", "FP"], ["FN", "TP"]][i][j]
            ax.text(j, i, f"{name}\n{v}", ha="center", va="center", fontsize=12)
        ax.set_xticks([0, 1], ["not\nflagged", "flagged"])
        ax.set_yticks([0, 1], ["normal", "anomalous"])
        ax.grid(False)
        ax.set_xlabel("decision")
        ax.set_ylabel("truth")
        ax.set_title(f"false alarms: {fpr:.0%} of normal\ndefects caught: {tpr:.0%} of anomalous")
        fig.suptitle(provenance_title("Image-level decision (Eq. 1) at one threshold", teacher, data))
    return fig


#: outline of the region whose map is at or above the threshold
REGION_COLOUR = "#00e5ff"


def short_name(name: str, limit: int = 26) -> str:
    """A file name cut to ``limit`` characters from the left ("...part_0417.png"): its end tells parts apart."""
    return name if len(name) <= limit else "..." + name[-(limit - 3):]


def wrap_title(text: str, width_in: float, fontsize: float = 10.0) -> str:
    """``text`` with each line wrapped to fit ``width_in`` inches at ``fontsize`` points (about 0.55 em a
    character), so a title is never cut off at the figure's edges."""
    chars = max(20, int(width_in * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def plot_decisions(
    images: Tensor,
    maps: Tensor,
    scores: Sequence[float] | Tensor,
    threshold: Optional[Any],
    *,
    names: Sequence[str],
    teacher: str,
    data: str,
    vmax: Optional[float] = None,
) -> Figure:
    """One column per image: the image and its anomaly map (Eq. 9), each with the region at or above the
    threshold outlined; above them the decision of Eq. (1) (``score >= threshold``, the score being the
    map's maximum, Eq. 10): an image is anomalous exactly when that region is not empty.

    ``threshold``: a :class:`~dskd.inference.Thresholds` (or :class:`~dskd.inference.Calibration`), or
    ``None`` (scores shown, no decision). Maps share one colour scale up to ``vmax`` (default the largest
    map value or just above the threshold); the colour bar marks the threshold.
    """
    n = len(images)
    s = [float(v) for v in _np(scores).ravel()]
    if not (len(maps) == len(s) == len(names) == n):
        raise ValueError(f"images, maps, scores and names differ in length: {n}, {len(maps)}, {len(s)}, {len(names)}")
    value = float(threshold.threshold) if threshold is not None else None
    top = float(maps.max()) if vmax is None else float(vmax)
    if value is not None:
        top = max(top, 1.05 * value)
    with dskd_style():
        if n == 1:  # one image (dskd predict): image and map side by side
            width = 6.4
            fig, grid = plt.subplots(1, 2, figsize=(width, 3.9), layout="constrained")
            axes = np.array(grid).reshape(2, 1)
        else:
            width = max(2.1 * n + 1.3, 5.6)
            fig, axes = plt.subplots(2, n, figsize=(width, 5.4), squeeze=False, layout="constrained")
        for i in range(n):
            m = _np(maps[i])
            axes[0, i].imshow(to_numpy_image(images[i]))
            im = axes[1, i].imshow(m, cmap=MAP_CMAP, vmin=float(maps.min()), vmax=top)
            if value is None:
                verdict = f"score {s[i]:.3f}\n(no threshold)"
            elif s[i] >= value:
                verdict = f"ANOMALOUS\nscore {s[i]:.3f} \u2265 {value:.3f}"
            else:
                verdict = f"normal\nscore {s[i]:.3f} < {value:.3f}"
            if value is not None and (m >= value).any():
                for ax in axes[:, i]:
                    ax.contour(m >= value, levels=[0.5], colors=REGION_COLOUR, linewidths=1.2)
            axes[0, i].set_title(f"{short_name(names[i])}\n{verdict}", fontsize=9,
                                 color=ANOMALY_COLOUR if value is not None and s[i] >= value else "black")
        clean_axes(axes)
        axes[0, 0].set_ylabel("image")
        axes[1, 0].set_ylabel("anomaly map")
        if n == 1:
            axes[1, 0].set_title("anomaly map (Eq. 9)", fontsize=9)
        bar = fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.85, label="map value (Eq. 9)")
        if value is not None:
            bar.ax.axhline(value, color=REGION_COLOUR, lw=2)
            rule = f"outlined: map \u2265 threshold {value:.4g} ({threshold.rule})"
        else:
            rule = "no threshold stored or given: scores only"
        title = provenance_title(f"Decision of Eq. (1) on each image; {rule}", teacher, data)
        fig.suptitle(wrap_title(title, width), fontsize=10)
    return fig
