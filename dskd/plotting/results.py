"""Result figures: loss curves and the paper's image / map / ground-truth grids (Fig. 5, 7)."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from .style import MAP_CMAP, clean_axes, dskd_style, provenance_title, to_numpy_image


def plot_loss_curve(history: Sequence[float], *, teacher: str, data: str, ax: Optional[plt.Axes] = None) -> Figure:
    """Training loss (Eq. 7) per epoch."""
    with dskd_style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
        else:
            fig = ax.figure
        ax.plot(range(1, len(history) + 1), history, marker="o", ms=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (Eq. 7, dimensionless)")
        ax.set_title(provenance_title("Training loss", teacher, data))
    return fig


def plot_anomaly_grid(
    images: torch.Tensor,
    maps: torch.Tensor,
    masks: Optional[torch.Tensor] = None,
    *,
    titles: Optional[Sequence[str]] = None,
    teacher: str,
    data: str,
    title: str = "Images, anomaly maps and ground truth",
    vmax: Optional[float] = None,
) -> Figure:
    """The paper's Fig. 5/7 layout: one column per image; rows image, anomaly map, ground truth.

    All maps share one colour scale (``vmax`` defaults to the largest value shown), so brightness is
    comparable across columns.
    """
    n = len(images)
    rows = 3 if masks is not None else 2
    vmax = float(maps.max()) if vmax is None else vmax
    vmin = float(maps.min())
    with dskd_style():
        fig, axes = plt.subplots(rows, n, figsize=(1.9 * n + 0.8, 1.9 * rows + 0.6), squeeze=False,
                                 layout="constrained")
        for i in range(n):
            axes[0, i].imshow(to_numpy_image(images[i]))
            im = axes[1, i].imshow(maps[i].cpu().numpy(), cmap=MAP_CMAP, vmin=vmin, vmax=vmax)
            if masks is not None:
                axes[2, i].imshow(masks[i].squeeze().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                axes[0, i].set_title(titles[i], fontsize=8)
        clean_axes(axes)
        labels = ["image", "anomaly map", "ground truth"][:rows]
        for r, label in enumerate(labels):
            axes[r, 0].set_ylabel(label)
        fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.8, label="anomaly score (Eq. 9)")
        fig.suptitle(provenance_title(title, teacher, data))
    return fig
