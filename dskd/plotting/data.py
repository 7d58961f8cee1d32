"""Data figures (chapter 1): test images with their ground-truth masks, defect counts, one-sample view.

The drawing functions take data set items (``{"image", "mask", "defect_type", ...}`` dicts, images
ImageNet-normalised as every data set in :mod:`dskd.data` returns them) and draw them;
:func:`plot_dataset_sample` also picks the item, so it can be the render function of
:func:`dskd.widgets.sample_explorer`.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Optional, Sequence

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from .style import clean_axes, dskd_style, to_numpy_image

#: colour of ground-truth mask overlays (RGB)
MASK_COLOR = (1.0, 0.1, 0.1)


def _mask_array(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    return np.squeeze(m).astype(bool)


def overlay_mask(image01: np.ndarray, mask: np.ndarray, color=MASK_COLOR, alpha: float = 0.45) -> np.ndarray:
    """An (H, W, 3) image in [0, 1] with the pixels of ``mask`` (H, W) tinted by ``color``."""
    out = np.array(image01, dtype=np.float32, copy=True)
    m = np.asarray(mask, bool)
    out[m] = (1 - alpha) * out[m] + alpha * np.asarray(color, np.float32)
    return out


def _draw_item(ax: plt.Axes, item: Mapping, contour: bool = True) -> None:
    m = _mask_array(item["mask"])
    ax.imshow(overlay_mask(to_numpy_image(item["image"]), m, alpha=0.25))
    if contour and m.any():
        ax.contour(m.astype(float), levels=[0.5], colors=[MASK_COLOR], linewidths=1.0)


def plot_defect_grid(
    rows: Sequence[Sequence[Mapping]],
    *,
    row_labels: Sequence[str],
    data: str,
    title: str = "Test images and their ground-truth masks",
) -> Figure:
    """A grid of data set items: one row per entry of ``rows`` (e.g. a category), one column per item.

    Each cell shows the image with its ground-truth mask outlined and lightly tinted in red; the column title is
    the item's ``defect_type`` and the fraction of defective pixels.
    """
    if not rows or any(len(r) == 0 for r in rows):
        raise ValueError("rows must be a non-empty list of non-empty lists of items")
    if len(row_labels) != len(rows):
        raise ValueError(f"got {len(row_labels)} row labels for {len(rows)} rows")
    n_cols = max(len(r) for r in rows)
    with dskd_style():
        fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.55 * n_cols + 0.6, 1.55 * len(rows) + 0.7),
                                 squeeze=False, layout="constrained")
        for r, items in enumerate(rows):
            for c in range(n_cols):
                ax = axes[r, c]
                if c >= len(items):
                    ax.set_visible(False)
                    continue
                item = items[c]
                _draw_item(ax, item)
                frac = 100 * float(_mask_array(item["mask"]).mean())
                ax.set_title(f"{item['defect_type']} ({frac:.1f}% px)", fontsize=8)
            axes[r, 0].set_ylabel(row_labels[r])
        clean_axes(axes)
        fig.suptitle(f"{title}\ndata: {data} | red = ground-truth mask")
    return fig


def plot_defect_counts(
    counts: Mapping[str, Mapping[str, int]],
    *,
    data: str,
    title: str = "Images per defect type",
) -> Figure:
    """Stacked bars of image counts per defect type, one colour per split.

    ``counts`` maps a split name ("train", "test", ...) to {defect_type: count}; "good" is drawn first.
    """
    if not counts:
        raise ValueError("counts is empty: expected {split: {defect_type: count}}")
    types = sorted({t for c in counts.values() for t in c}, key=lambda t: (t != "good", t))
    with dskd_style():
        fig, ax = plt.subplots(figsize=(1.0 * len(types) + 2.2, 3.4), layout="constrained")
        bottom = np.zeros(len(types))
        for split, c in counts.items():
            values = np.array([c.get(t, 0) for t in types], float)
            ax.bar(types, values, bottom=bottom, label=split)
            bottom += values
        for x, total in enumerate(bottom):
            ax.annotate(f"{int(total)}", (x, total), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 2), textcoords="offset points")
        ax.set_ylim(0, bottom.max() * 1.12)
        ax.set_xlabel("defect type ('good' = normal)")
        ax.set_ylabel("number of images")
        ax.grid(axis="x", visible=False)
        ax.legend(title="split")
        ax.set_title(f"{title}\ndata: {data}")
    return fig


def plot_sample(item: Mapping, *, data: str, index: Optional[int] = None) -> Figure:
    """One item: the image, its ground-truth mask and both overlaid (the sample browser's view)."""
    img = to_numpy_image(item["image"])
    m = _mask_array(item["mask"])
    with dskd_style():
        fig, axes = plt.subplots(1, 3, figsize=(8.4, 3.3), layout="constrained")
        axes[0].imshow(img)
        axes[0].set_title("image")
        axes[1].imshow(m, cmap="gray", vmin=0, vmax=1)
        axes[1].set_title(f"mask: {100 * m.mean():.1f}% of pixels defective")
        axes[2].imshow(overlay_mask(img, m, alpha=0.35))
        if m.any():
            axes[2].contour(m.astype(float), levels=[0.5], colors=[MASK_COLOR], linewidths=1.2)
        axes[2].set_title("overlay (red = defect)")
        clean_axes(axes)
        h, w = m.shape
        where = f"test item {index}" if index is not None else str(item.get("path", ""))
        label = "normal (label 0)" if item["defect_type"] == "good" else "anomalous (label 1)"
        fig.suptitle(f"{item['defect_type']}: {label}, {where}, {h}x{w} px\ndata: {data}")
    return fig


# ----------------------------------------------------------------------------- sample browser
@lru_cache(maxsize=16)
def _browser_dataset(data: str, image_size: int):
    from ..data import SYNTHETIC_CATEGORIES, MagneticTile, SyntheticDefects, find_magnetic_tile_root

    if data in SYNTHETIC_CATEGORIES:
        return SyntheticDefects(data, "test", image_size=image_size)
    if data == "mt-defects":
        root = find_magnetic_tile_root()
        if root is None:
            raise ValueError("MT Defects is not available here (set DSKD_DATA to a folder holding magnetic-tile/)")
        return MagneticTile(root, "test", image_size=image_size)
    raise ValueError(f"unknown data {data!r}: expected a synthetic category {SYNTHETIC_CATEGORIES} or 'mt-defects'")


def browser_defect_types(data: str, image_size: int = 128) -> list[str]:
    """'good' followed by the defect types of a browser data set (a synthetic category or 'mt-defects')."""
    return ["good", *_browser_dataset(data, int(image_size)).defect_types]


def plot_dataset_sample(data: str = "disc", defect_type: str = "scratch", index: int = 0,
                        image_size: int = 128) -> Figure:
    """The ``index``-th test image of ``defect_type`` in ``data`` (a synthetic category or 'mt-defects'),
    drawn by :func:`plot_sample`. ``index`` wraps around the number of such images."""
    ds = _browser_dataset(data, int(image_size))
    types = ds.defect_types_list()
    matches = [i for i, t in enumerate(types) if t == defect_type]
    if not matches:
        raise ValueError(f"no test image of defect type {defect_type!r} in {ds.name}; "
                         f"expected one of {browser_defect_types(data, image_size)}")
    i = matches[int(index) % len(matches)]
    name = f"{ds.name} test split, {defect_type} #{int(index) % len(matches)} of {len(matches)}"
    return plot_sample(ds[i], data=name, index=i)
