"""The one figure style of the book, and helpers every figure uses."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from matplotlib import pyplot as plt

from ..data.transforms import denormalize

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
#: colour map for signed or neutral feature maps
FEATURE_CMAP = "viridis"


@contextmanager
def dskd_style() -> Iterator[None]:
    """The book's one figure style: use ``with dskd_style():`` around figure creation."""
    # Resolve the backend before rc_context snapshots rcParams: restoring the snapshot must not undo
    # the notebook's (inline) backend choice made during the first figure.
    plt.get_backend()
    with plt.rc_context(STYLE):
        yield


def provenance_title(title: str, teacher: str, data: str) -> str:
    """'title' plus a second line naming teacher and data, used on every result figure."""
    return f"{title}\nteacher: {teacher} | data: {data}"


def to_numpy_image(img: torch.Tensor) -> np.ndarray:
    """A normalised (3, H, W) image tensor as an (H, W, 3) array in [0, 1] for imshow."""
    img = denormalize(img.detach().cpu().float())
    return img.permute(1, 2, 0).numpy()


def clean_axes(axes) -> None:
    """Remove ticks and grid from image axes."""
    for ax in np.atleast_1d(axes).flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
