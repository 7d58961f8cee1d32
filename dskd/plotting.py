"""Figures for the book and the CLI. Every function returns a matplotlib Figure in one shared style,
with labelled axes and a title that names the teacher and the data that produced it."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from .data.transforms import denormalize

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": "inferno",
    "legend.frameon": False,
}
#: colour map for anomaly maps (bright = anomalous)
MAP_CMAP = "inferno"


@contextmanager
def dskd_style() -> Iterator[None]:
    """The book's one figure style."""
    with plt.rc_context(STYLE):
        yield


def provenance_title(title: str, teacher: str, data: str) -> str:
    """'title' plus a second line naming teacher and data, used on every result figure."""
    return f"{title}\nteacher: {teacher} | data: {data}"


def _to_numpy_image(img: torch.Tensor) -> np.ndarray:
    img = denormalize(img.detach().cpu().float())
    return img.permute(1, 2, 0).numpy()


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
            axes[0, i].imshow(_to_numpy_image(images[i]))
            im = axes[1, i].imshow(maps[i].cpu().numpy(), cmap=MAP_CMAP, vmin=vmin, vmax=vmax)
            if masks is not None:
                axes[2, i].imshow(masks[i].squeeze().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                axes[0, i].set_title(titles[i], fontsize=8)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        labels = ["image", "anomaly map", "ground truth"][:rows]
        for r, label in enumerate(labels):
            axes[r, 0].set_ylabel(label)
        fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.8, label="anomaly score (Eq. 9)")
        fig.suptitle(provenance_title(title, teacher, data))
    return fig
