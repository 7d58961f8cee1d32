"""Figures of the evaluation metrics (Sec. 4.1.3): ROC curves, the PRO curve region by region,
how far the published PRO variants move the number, and one threshold on the PRO curve.

* :func:`plot_roc_curves`: image- and pixel-level ROC curves with their AUROC.
* :func:`plot_pro_regions`: every ground-truth region's overlap against the global FPR, their mean
  (the PRO curve), the 0.3 limit and the normalised area.
* :func:`plot_pro_variants`: the exact PRO and the legacy variants, side by side.
* :func:`plot_pro_threshold`: one threshold: a map binarised with each region coloured by its overlap,
  and the point it gives on the PRO curve (static twin of :func:`dskd.widgets.pro_threshold_explorer`).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
from matplotlib import colors as mcolors
from matplotlib import pyplot as plt
from matplotlib import ticker as mticker
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from scipy import ndimage

from ..metrics import pro_curve, pro_score
from .style import MAP_CMAP, clean_axes, dskd_style, provenance_title, to_numpy_image

_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connected regions, as in MVTec AD's evaluation
OVERLAP_CMAP = "RdYlGn"
LIMIT_COLOUR = "#f1c40f"


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().float().numpy()
    return np.asarray(x)


def _stack(masks, maps) -> tuple[np.ndarray, np.ndarray]:
    m, s = _np(masks), _np(maps).astype(np.float32)
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if m.ndim != 3 or m.shape != s.shape:
        raise ValueError(f"masks and maps must both be (N, H, W) of one shape, got {m.shape} and {s.shape}")
    m = m > 0.5
    if not m.any() or m.all():
        raise ValueError("masks need both anomalous and normal pixels to draw PRO")
    return m, s


def regions(masks) -> list[tuple[int, np.ndarray]]:
    """Every 8-connected ground-truth region as (image index, boolean mask of the image)."""
    arr = _np(masks)
    out = []
    for i, m in enumerate(arr.reshape(-1, *arr.shape[-2:]) > 0.5):
        lab, n = ndimage.label(m, structure=_EIGHT)
        out.extend((i, lab == r) for r in range(1, n + 1))
    return out


def plot_roc_curves(
    image_roc: tuple[np.ndarray, np.ndarray],
    pixel_roc: tuple[np.ndarray, np.ndarray],
    *,
    image_auroc: float,
    pixel_auroc: float,
    max_fpr: float = 0.3,
    teacher: str,
    data: str,
) -> Figure:
    """Image-level and pixel-level ROC curves (each an (fpr, tpr) pair, e.g. from
    :func:`dskd.metrics.roc_curve`) with their AUROC; the pixel panel shades FPR <= ``max_fpr``,
    the range PRO integrates over."""
    with dskd_style():
        fig, axes = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
        for ax, (fpr, tpr), auc, what in ((axes[0], image_roc, image_auroc, "image"),
                                          (axes[1], pixel_roc, pixel_auroc, "pixel")):
            ax.plot(fpr, tpr, lw=2, drawstyle="steps-post" if what == "image" else "default",
                    label=f"AUROC = {auc:.3f}")
            ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="chance (0.5)")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.01)
            ax.set_aspect("equal")
            unit = "images" if what == "image" else "pixels"
            ax.set_xlabel(f"false positive rate (normal {unit} flagged)")
            ax.set_ylabel(f"true positive rate (anomalous {unit} flagged)")
            ax.legend(loc="lower right")
        axes[1].axvspan(0, max_fpr, color=LIMIT_COLOUR, alpha=0.15, label=f"FPR ≤ {max_fpr:g} (PRO's range)")
        axes[1].legend(loc="lower right")
        axes[0].set_title(f"image level: {len(image_roc[0]) - 1} thresholds")
        axes[1].set_title(f"pixel level: {len(pixel_roc[0]) - 1:,} thresholds")
        fig.suptitle(provenance_title("ROC curves (Sec. 4.1.3)", teacher, data))
    return fig


def plot_pro_regions(
    masks,
    maps,
    *,
    max_fpr: float = 0.3,
    n_thresholds: int = 200,
    teacher: str,
    data: str,
) -> Figure:
    """The PRO curve drawn region by region.

    Thin lines: the overlap of each 8-connected ground-truth region (the fraction of its pixels at or
    above the threshold) against the global FPR (over the normal pixels of all images), at
    ``n_thresholds`` thresholds evenly spaced in FPR; colour: the region's area. Thick line: the
    exact PRO curve (:func:`dskd.metrics.pro_curve`), the mean of the thin lines. Right: the part up
    to ``max_fpr`` and its area, divided by ``max_fpr`` (:func:`dskd.metrics.pro_score`).
    """
    m, s = _stack(masks, maps)
    neg = np.sort(s[~m])
    k = int(n_thresholds)  # three quarters of the thresholds below max_fpr, where the integral is
    fgrid = np.concatenate([np.linspace(0.0, max_fpr, 3 * k // 4 + 1)[1:], np.linspace(max_fpr, 1.0, k // 4 + 1)[1:]])
    idx = np.clip(np.round(neg.size * (1 - fgrid)).astype(int), 0, neg.size - 1)
    thresholds = neg[idx]
    fpr = (neg.size - np.searchsorted(neg, thresholds, side="left")) / neg.size  # exact FPR at >= t
    regs = regions(m)
    areas = np.array([r.sum() for _, r in regs])
    overlaps = []
    for i, r in regs:
        vals = np.sort(s[i][r])
        overlaps.append(1.0 - np.searchsorted(vals, thresholds, side="left") / vals.size)
    fprs, pros = pro_curve(m, s)
    value = pro_score(m, s, max_fpr=max_fpr)
    norm = mcolors.LogNorm(vmin=max(areas.min(), 1), vmax=max(areas.max(), 2))
    cmap = plt.get_cmap("viridis")
    with dskd_style():
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
        for ax, xmax in ((axes[0], 1.0), (axes[1], max_fpr)):
            for a, o in zip(areas, overlaps):
                ax.plot(np.concatenate([[0], fpr]), np.concatenate([[0], o]), color=cmap(norm(a)), lw=0.8,
                        alpha=0.6)
            ax.plot(fprs, pros, color="black", lw=2.4, label="PRO = mean over regions")
            ax.set_xlim(0, xmax)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("FPR (normal pixels of all test images flagged)")
            ax.set_ylabel("overlap (fraction of a region flagged)")
        axes[0].axvspan(0, max_fpr, color=LIMIT_COLOUR, alpha=0.2, label=f"integrated: FPR ≤ {max_fpr:g}")
        axes[0].legend(loc="lower right")
        axes[0].set_title(f"{len(regs)} regions in {m.shape[0]} images, whole FPR range")
        keep = fprs <= max_fpr
        x = np.concatenate([fprs[keep], [max_fpr]])
        y = np.concatenate([pros[keep], [np.interp(max_fpr, fprs, pros)]])
        axes[1].fill_between(x, y, color=LIMIT_COLOUR, alpha=0.2, label=f"area / {max_fpr:g} = PRO = {value:.3f}")
        axes[1].legend(loc="lower right")
        axes[1].set_title(f"up to the limit FPR = {max_fpr:g}")
        cbar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.85, label="region area (pixels)")
        cbar.set_ticks(sorted({float(f"{v:.2g}") for v in np.geomspace(norm.vmin, norm.vmax, 4)}))
        cbar.ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        cbar.ax.yaxis.set_minor_formatter(mticker.NullFormatter())
        fig.suptitle(provenance_title("Per-region overlap (PRO) curve, region by region", teacher, data))
    return fig


def plot_pro_variants(
    groups: Mapping[str, Mapping[str, float]],
    *,
    teacher: str,
    data: str,
    title: str = "One set of maps, four PRO numbers",
) -> Figure:
    """Bars of :func:`dskd.metrics.pro_variants` outputs, one group of bars per set of maps; each
    legacy bar is labelled with its shift from the exact value."""
    if not groups:
        raise ValueError("groups is empty: pass {name: pro_variants(...)}")
    names = list(next(iter(groups.values())))
    if "exact" not in names:
        raise ValueError(f"each group needs an 'exact' value, got keys {names}")
    labels = {"exact": "exact (MVTec AD)", "rd4ad": "RD4AD, per image", "rd4ad_global": "RD4AD, whole set",
              "stpm": "STPM, rescaled"}
    palette = {"exact": "#2c3e50", "rd4ad": "#2980b9", "rd4ad_global": "#8e44ad", "stpm": "#c0392b"}
    width = 0.8 / len(names)
    with dskd_style():
        fig, ax = plt.subplots(figsize=(2.6 * len(groups) + 2.5, 4), layout="constrained")
        for g, (group, values) in enumerate(groups.items()):
            exact = values["exact"]
            for v, name in enumerate(names):
                x = g + (v - (len(names) - 1) / 2) * width
                val = values[name]
                ax.bar(x, val, width * 0.92, color=palette.get(name), label=labels.get(name, name) if g == 0 else None)
                shift = round(val - exact, 3)
                text = f"{val:.3f}" if name == "exact" else ("±0.000" if shift == 0 else f"{shift:+.3f}")
                ax.text(x, val + 0.01, text, ha="center", va="bottom", fontsize=8, rotation=90)
            ax.hlines(exact, g - 0.42, g + 0.42, color="black", lw=0.8, ls=":")
        ax.set_xticks(range(len(groups)), list(groups))
        ax.set_ylim(0, 1.15)
        ax.set_ylabel("PRO up to FPR 0.3 (dimensionless)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.set_title(provenance_title(title + " (labels: shift from exact)", teacher, data))
    return fig


def plot_pro_threshold(
    images,
    masks,
    maps,
    *,
    index: int,
    threshold: float,
    curve: Optional[tuple[np.ndarray, np.ndarray]] = None,
    max_fpr: float = 0.3,
    teacher: str,
    data: str,
) -> Figure:
    """One threshold t on a whole test set: image ``index`` with its ground truth, its map binarised
    at t (grey: normal pixels flagged, i.e. false positives; each defect region coloured by its overlap,
    flagged part bright, missed part faint), and the point (FPR(t), PRO(t)) on the PRO curve.

    ``curve`` is :func:`dskd.metrics.pro_curve` of (masks, maps), computed when not given.
    """
    m, s = _stack(masks, maps)
    n = m.shape[0]
    if len(images) != n:
        raise ValueError(f"images ({len(images)}) and masks/maps ({n}) must hold the same number of images")
    if not 0 <= index < n:
        raise ValueError(f"index must be in 0..{n - 1}, got {index}")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold}")
    fprs, pros = curve if curve is not None else pro_curve(m, s)
    flagged = s >= threshold
    fpr_t = float(flagged[~m].mean())
    regs = regions(m)
    overlaps = [float(flagged[i][r].mean()) for i, r in regs]
    pro_t = float(np.mean(overlaps))
    cmap, norm = plt.get_cmap(OVERLAP_CMAP), mcolors.Normalize(0, 1)
    canvas = np.zeros((*m.shape[1:], 3))
    canvas[flagged[index] & ~m[index]] = 0.75  # false positives: grey
    here = [(r, o) for (i, r), o in zip(regs, overlaps) if i == index]
    for r, o in here:
        colour = np.array(cmap(norm(o))[:3])
        canvas[r & flagged[index]] = colour
        canvas[r & ~flagged[index]] = 0.35 * colour
    with dskd_style():
        fig, axes = plt.subplots(1, 4, figsize=(14, 3.8), layout="constrained", width_ratios=[1, 1, 1, 1.35])
        axes[0].imshow(to_numpy_image(_as_tensor(images[index])))
        axes[0].set_title(f"test image {index}\n{len(here)} defect region(s), cyan outline")
        im = axes[1].imshow(s[index], cmap=MAP_CMAP, vmin=float(s.min()), vmax=float(s.max()))
        axes[1].contour(s[index], levels=[threshold], colors="white", linewidths=1.0)
        axes[1].set_title("anomaly map, white: level t")
        fig.colorbar(im, ax=axes[1], shrink=0.75, label="anomaly score")
        axes[2].imshow(canvas, interpolation="nearest")
        overlaps_here = ", ".join(f"{o:.2f}" for _, o in here) or "none"
        axes[2].set_title(f"map ≥ t: grey = false positive\nregion overlap: {overlaps_here}")
        for ax in axes[:3]:
            if m[index].any():
                ax.contour(m[index], levels=[0.5], colors="cyan", linewidths=0.8)
        clean_axes(axes[:3])
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes[2], shrink=0.75, label="region overlap")
        ax = axes[3]
        ax.axvspan(0, max_fpr, color=LIMIT_COLOUR, alpha=0.2, label=f"FPR ≤ {max_fpr:g}")
        ax.plot(fprs, pros, color="black", lw=2, label="PRO curve (all images)")
        ax.plot([fpr_t], [pro_t], "o", ms=10, color=cmap(norm(pro_t)), mec="black",
                label=f"t = {threshold:.3f}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("FPR (normal pixels of all test images flagged)")
        ax.set_ylabel("PRO (mean region overlap)")
        ax.legend(loc="lower right")
        ax.set_title(f"at t: FPR {fpr_t:.3f}, PRO {pro_t:.3f} over {len(regs)} regions")
        fig.suptitle(provenance_title(f"One threshold t = {threshold:.3f}: false positives and region overlaps",
                                      teacher, data))
    return fig


def _as_tensor(image):
    import torch

    return image if isinstance(image, torch.Tensor) else torch.as_tensor(np.asarray(image))
