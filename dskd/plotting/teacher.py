"""Figures of chapter 16 (where the teacher's knowledge comes from): the pretraining images, several
teachers side by side, what each sees on normal and defective images, and the recorded candidates.

A teacher whose weights are not at hand is passed as a string (why, and how to get them) instead of
its tensors; its panel then shows that text, so a figure never hides a missing teacher and never shows
another one in its place. Nothing here runs a network or computes a metric.
"""
from __future__ import annotations

import textwrap
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from .data import MASK_COLOR
from .features import LEVEL_NAMES, _level, top_variance_channels
from .style import FEATURE_CMAP, MAP_CMAP, clean_axes, dskd_style, provenance_title, to_numpy_image

Missing = str  # the message shown in place of a teacher that is not at hand


def _unavailable(ax, message: str, width: int = 28, fontsize: float = 7.5) -> None:
    ax.set_facecolor("#f3f3f3")
    ax.text(0.5, 0.5, "not available\n\n" + textwrap.fill(message, width), ha="center", va="center",
            fontsize=fontsize, transform=ax.transAxes, color="#444444")
    clean_axes(ax)


def _rgb01(images: torch.Tensor) -> np.ndarray:
    x = torch.as_tensor(images).detach().cpu().float()
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images (N, 3, H, W) in [0, 1], got shape {tuple(x.shape)}")
    if float(x.min()) < -1e-4 or float(x.max()) > 1 + 1e-4:
        raise ValueError("expected images in [0, 1] (not ImageNet-normalised)")
    return x.expand(-1, 3, -1, -1).clamp(0, 1).permute(0, 2, 3, 1).numpy()


def plot_image_grid(
    images: torch.Tensor,
    *,
    n_cols: int,
    title: str,
    source: str,
    row_labels: Optional[Sequence[str]] = None,
    tile_inches: float = 0.95,
) -> Figure:
    """Images (N, 3, H, W) in [0, 1] in rows of ``n_cols`` (e.g. one fractal category per row, its
    instances along the row), each row optionally labelled; ``source`` names where they come from."""
    arr = _rgb01(images)
    n = len(arr)
    n_rows = int(np.ceil(n / n_cols))
    if row_labels is not None and len(row_labels) != n_rows:
        raise ValueError(f"got {len(row_labels)} row labels for {n_rows} rows")
    with dskd_style():
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(tile_inches * n_cols + 0.9, tile_inches * n_rows + 0.8),
                                 squeeze=False, layout="constrained")
        for i, ax in enumerate(axes.flat):
            if i < n:
                ax.imshow(arr[i], interpolation="nearest")
                clean_axes(ax)
            else:
                ax.set_axis_off()
        if row_labels is not None:
            for r, label in enumerate(row_labels):
                axes[r, 0].set_ylabel(label, fontsize=8)
        h, w = arr.shape[1:3]
        fig.suptitle(f"{title} ({n} images, {h}x{w} px)\nsource: {source}", fontsize=10)
    return fig


def filter_mosaic(weight: torch.Tensor, n_cols: int = 8, gap: int = 1) -> np.ndarray:
    """conv1's filters (C, 3, k, k) tiled into one RGB image, each scaled to its own largest |weight|
    (grey = 0); ``gap`` white pixels between tiles."""
    w = weight.detach().cpu().float()
    if w.dim() != 4 or w.shape[1] != 3:
        raise ValueError(f"expected a (C_out, 3, k, k) weight, got shape {tuple(w.shape)}")
    c, _, k, _ = w.shape
    n_rows = int(np.ceil(c / n_cols))
    scale = w.flatten(1).abs().amax(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    tiles = (0.5 + 0.5 * w / scale).permute(0, 2, 3, 1).numpy()
    step = k + gap
    out = np.ones((n_rows * step - gap, n_cols * step - gap, 3), np.float32)
    for i in range(c):
        r, q = divmod(i, n_cols)
        out[r * step:r * step + k, q * step:q * step + k] = tiles[i]
    return out


def plot_teacher_filters(filters: Mapping[str, Union[torch.Tensor, Missing]], *, n_cols: int = 8) -> Figure:
    """One panel per teacher (label -> conv1 weight (64, 3, 7, 7), or the message saying why it is
    missing): all filters as RGB tiles, each on its own scale, grey = 0."""
    if not filters:
        raise ValueError("filters must name at least one teacher")
    with dskd_style():
        fig, axes = plt.subplots(1, len(filters), figsize=(3.3 * len(filters) + 0.3, 3.9), squeeze=False,
                                 layout="constrained")
        for ax, (label, w) in zip(axes[0], filters.items()):
            if isinstance(w, str):
                _unavailable(ax, w)
            else:
                ax.imshow(filter_mosaic(w, n_cols), interpolation="nearest")
                clean_axes(ax)
                ax.set_xlabel(f"std of the weights {float(w.std()):.3f}", fontsize=8)
            ax.set_title(textwrap.fill(label, 38), fontsize=9)
        fig.suptitle("conv1 filters side by side: 64 x (3 x 7 x 7), shown as RGB (grey = 0)", fontsize=10)
    return fig


def plot_teacher_features(
    image: torch.Tensor,
    pyramids: Mapping[str, Union[Sequence[torch.Tensor], Missing]],
    *,
    data: str,
    n_channels: int = 2,
    title: str = "The same image through each teacher",
) -> Figure:
    """Rows: teachers (label -> pyramid of one image, or a message). Columns: the image, then the
    ``n_channels`` most structured channels (largest spatial variance) of conv2_x, conv3_x, conv4_x.
    Each map has its own colour scale: compare the patterns, not the levels."""
    if not pyramids:
        raise ValueError("pyramids must name at least one teacher")
    img = to_numpy_image(image)
    n_cols = 1 + n_channels * len(LEVEL_NAMES)
    with dskd_style():
        fig, axes = plt.subplots(len(pyramids), n_cols, figsize=(1.45 * n_cols + 0.6, 1.55 * len(pyramids) + 1.0),
                                 squeeze=False, layout="constrained")
        for r, (label, pyr) in enumerate(pyramids.items()):
            axes[r, 0].imshow(img)
            axes[r, 0].set_ylabel(textwrap.fill(label, 18), fontsize=8)
            clean_axes(axes[r, 0])
            if isinstance(pyr, str):
                gs = axes[r, 1].get_gridspec()
                for ax in axes[r, 1:]:
                    ax.remove()
                big = fig.add_subplot(gs[r, 1:])
                _unavailable(big, pyr, width=90)
                continue
            for k, level in enumerate(LEVEL_NAMES):
                _, f = _level(pyr, level)
                for j, ch in enumerate(top_variance_channels(f, n_channels)):
                    ax = axes[r, 1 + k * n_channels + j]
                    ax.imshow(f[ch].numpy(), cmap=FEATURE_CMAP)
                    ax.set_title(f"{level} ch {ch}", fontsize=7)
                    clean_axes(ax)
        axes[0, 0].set_title("input", fontsize=8)
        teachers = " | ".join(k for k, v in pyramids.items() if not isinstance(v, str)) or "none at hand"
        fig.suptitle(provenance_title(f"{title} (bright = strong response)", teachers, data), fontsize=10)
    return fig


def plot_teacher_scores(
    scores: Mapping[str, Union[Mapping[str, Any], Missing]],
    *,
    aurocs: Mapping[str, float],
    data: str,
    xlabel: str = "distance to the nearest normal patch (image max)",
    bins: int = 20,
) -> Figure:
    """One panel per teacher (label -> {"normal": scores, "defective": scores}, or a message): the
    image scores of both groups as histograms on the panel's own axis; the title gives ``aurocs[label]``."""
    if not scores:
        raise ValueError("scores must name at least one teacher")
    with dskd_style():
        fig, axes = plt.subplots(1, len(scores), figsize=(3.6 * len(scores) + 0.3, 3.3), squeeze=False,
                                 layout="constrained")
        for ax, (label, groups) in zip(axes[0], scores.items()):
            if isinstance(groups, str):
                _unavailable(ax, groups, width=34)
                ax.set_title(textwrap.fill(label, 40), fontsize=9)
                continue
            arrays = {k: np.asarray(torch.as_tensor(v).float().flatten()) for k, v in groups.items()}
            allv = np.concatenate(list(arrays.values()))
            edges = np.linspace(float(allv.min()), float(allv.max()) + 1e-9, bins + 1)
            for k, v in arrays.items():
                ax.hist(v, bins=edges, alpha=0.55, label=f"{k} ({len(v)})")
            auc = aurocs.get(label)
            ax.set_title(textwrap.fill(label, 40) + (f"\nimage AUROC {auc:.2f}" if auc is not None else ""), fontsize=9)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_ylabel("images")
            ax.legend(fontsize=7)
        fig.suptitle(provenance_title("The teacher alone as a detector: normal and defective test images",
                                      " | ".join(k for k, v in scores.items() if not isinstance(v, str)), data),
                     fontsize=10)
    return fig


def plot_teacher_distance_maps(
    images: torch.Tensor,
    masks: Optional[torch.Tensor],
    maps: Mapping[str, Union[torch.Tensor, Missing]],
    *,
    row_labels: Sequence[str],
    data: str,
) -> Figure:
    """Rows: test images (mask outlined). Columns: the image, then per teacher (label -> maps (N, h, w),
    or a message) the distance of each patch to its nearest normal patch. One colour scale per column."""
    n = len(images)
    if len(row_labels) != n:
        raise ValueError(f"got {len(row_labels)} row labels for {n} images")
    with dskd_style():
        fig, axes = plt.subplots(n, len(maps) + 1, figsize=(1.9 * (len(maps) + 1) + 0.5, 1.75 * n + 1.5),
                                 squeeze=False, layout="constrained")
        for i in range(n):
            axes[i, 0].imshow(to_numpy_image(images[i]))
            if masks is not None and masks[i].any():
                axes[i, 0].contour(masks[i].squeeze().cpu().numpy(), levels=[0.5], colors=[MASK_COLOR], linewidths=1)
            axes[i, 0].set_ylabel(row_labels[i], fontsize=8)
        axes[0, 0].set_title("image (red: mask)", fontsize=8)
        for j, (label, m) in enumerate(maps.items(), start=1):
            if isinstance(m, str):  # one tall panel with the message instead of the column
                gs = axes[0, j].get_gridspec()
                for ax in axes[:, j]:
                    ax.remove()
                tall = fig.add_subplot(gs[:, j])
                _unavailable(tall, m, width=22)
                tall.set_title(textwrap.fill(label, 22), fontsize=8)
                continue
            axes[0, j].set_title(textwrap.fill(label, 22), fontsize=8)
            arr = torch.as_tensor(m).detach().cpu().float().numpy()
            for i in range(n):
                im = axes[i, j].imshow(arr[i], cmap=MAP_CMAP, vmin=0.0, vmax=float(arr.max()))
                clean_axes(axes[i, j])
            fig.colorbar(im, ax=axes[:, j].tolist(), location="bottom", shrink=0.9, pad=0.02,
                         label=f"distance ({arr.shape[-2]}x{arr.shape[-1]} cells)")
        for i in range(n):
            clean_axes(axes[i, 0])
        fig.suptitle(provenance_title("Where each teacher's features differ from every normal patch",
                                      " | ".join(k for k, v in maps.items() if not isinstance(v, str)), data),
                     fontsize=10)
    return fig


def plot_teacher_candidates(rows: Sequence[Mapping[str, Any]], *, goal: float, data: str) -> Figure:
    """Rows of :func:`dskd.teacher_study.candidate_rows`: the kNN proxy and DS image AUROC (at the short
    budget, epochs in the label) per candidate, with chance (0.5) and the goal on the DS panel."""
    if not rows:
        raise ValueError("rows must hold at least one candidate")
    labels = [f"{r['candidate']}\n({r['recipe']})" for r in rows]
    y = np.arange(len(rows))
    with dskd_style():
        fig, axes = plt.subplots(1, 2, figsize=(9.5, 0.55 * len(rows) + 1.9), sharey=True, layout="constrained")
        for ax, key, name in ((axes[0], "knn_image_auroc", "teacher alone: 1-NN image AUROC"),
                              (axes[1], "ds_image_auroc", "DS trained with it: image AUROC")):
            vals = [r[key] if r[key] is not None else np.nan for r in rows]
            ax.barh(y, np.nan_to_num(vals, nan=0.0), color="tab:blue", alpha=0.8)
            for yi, v, r in zip(y, vals, rows):
                text = "not measured" if np.isnan(v) else f"{v:.3f}"
                if key == "ds_image_auroc" and not np.isnan(v):
                    text += f" ({r['ds_epochs']} ep.)"
                ax.text(0.01 if np.isnan(v) else v + 0.01, yi, text, va="center", fontsize=8)
            ax.axvline(0.5, color="grey", ls="--", lw=0.8)
            ax.set_xlim(0, 1.15)
            ax.set_xlabel(name)
        axes[1].axvline(goal, color="tab:red", ls=":", lw=1.2, label=f"goal {goal:.2f}")
        axes[1].legend(fontsize=8, loc="lower right")
        axes[0].set_yticks(y, labels, fontsize=8)
        axes[0].invert_yaxis()
        fig.suptitle(provenance_title("Candidate teachers (results/teacher/candidates.json)",
                                      ", ".join(dict.fromkeys(r["candidate"] for r in rows)), data), fontsize=10)
    return fig


def plot_teacher_defect_types(
    summary: Mapping[str, Mapping[str, tuple[float, float, int]]],
    *,
    goal: Optional[float],
    teacher: str,
    data: str,
    metric_label: str = "image AUROC",
) -> Figure:
    """Grouped bars, one group per defect type, one bar per variant (mean over seeds, error bar = std)
    from :func:`dskd.teacher_study.per_defect_type_summary`; chance and, if given, the goal as lines."""
    types = sorted({t for per in summary.values() for t in per})
    if not types:
        raise ValueError("summary holds no defect type")
    width = 0.8 / max(len(summary), 1)
    x = np.arange(len(types))
    with dskd_style():
        fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(types) + 2.5), 3.8), layout="constrained")
        for i, (variant, per) in enumerate(summary.items()):
            means = [per.get(t, (np.nan, 0.0, 0))[0] for t in types]
            stds = [per.get(t, (np.nan, 0.0, 0))[1] for t in types]
            seeds = max((v[2] for v in per.values()), default=0)
            ax.bar(x - 0.4 + width * (i + 0.5), means, width * 0.9, yerr=stds if seeds > 1 else None, capsize=3,
                   label=f"{variant} (n={seeds})")
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        if goal is not None:
            ax.axhline(goal, color="tab:red", lw=1.0, ls=":", label=f"goal {goal:.2f} (overall)")
        ax.set_xticks(x, types)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(f"{metric_label} (each type vs. all normal images)")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title(textwrap.fill(provenance_title("Teacher study per defect type", teacher, data), 90,
                                   replace_whitespace=False))
    return fig
