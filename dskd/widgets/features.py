"""Feature explorers (chapters 2 and 3): one teacher channel per image and level; the teacher-student
discrepancy maps of one test image."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..inference import anomaly_map
from ..losses import distillation_map
from ..plotting.features import LEVEL_NAMES, plot_discrepancy_maps, plot_feature_channel
from .base import Explorer, _ipywidgets


def _as_images(images) -> torch.Tensor:
    if isinstance(images, torch.Tensor):
        x = images
    else:  # a data set of {"image": ...} items
        x = torch.stack([images[i]["image"] for i in range(len(images))])
    if x.dim() != 4 or x.shape[1] != 3 or len(x) == 0:
        raise ValueError(f"expected images of shape (N, 3, H, W) with N >= 1, got {tuple(x.shape)}")
    return x


def feature_explorer(network: nn.Module, images, *, teacher: str, data: str,
                     layer: str = "conv3_x", channel: int = 0) -> Explorer:
    """Pick an image (index into ``images``, a (N, 3, H, W) tensor or a data set), a pyramid level and a
    channel of ``network`` (a :class:`~dskd.models.TeacherPyramid` or any module returning a pyramid);
    draws :func:`dskd.plotting.plot_feature_channel`. Channel numbers wrap around the level's width."""
    w = _ipywidgets()
    x = _as_images(images)
    if layer not in LEVEL_NAMES:
        raise ValueError(f"unknown layer {layer!r}: expected one of {LEVEL_NAMES}")
    network.eval()
    cache: dict[int, tuple] = {}

    def render(index: int, layer: str, channel: int):
        if index not in cache:
            with torch.no_grad():
                cache[index] = tuple(network(x[index:index + 1]))
        pyramid = cache[index]
        width = pyramid[LEVEL_NAMES.index(layer)].shape[1]
        return plot_feature_channel(x[index], pyramid, layer, int(channel) % width, teacher=teacher, data=data)

    controls = {
        "index": w.IntSlider(value=0, min=0, max=len(x) - 1, description="image"),
        "layer": w.Dropdown(options=list(LEVEL_NAMES), value=layer, description="layer"),
        "channel": w.IntSlider(value=channel, min=0, max=255, description="channel"),
    }
    return Explorer(controls, render, title="Teacher feature maps: image, level, channel")


def discrepancy_explorer(model: nn.Module, images, masks=None, *, teacher: str, data: str,
                         labels: Sequence[str] | None = None, index: int = 0, lam: float = 0.1,
                         sigma: float = 4.0) -> Explorer:
    """Pick a test image; draws :func:`dskd.plotting.plot_discrepancy_maps` for the model's inference pair
    (T vs S_e for a T-E model): the per-level maps of Eq. (6) and the full map of Eq. (8)-(9).

    ``images`` is a (N, 3, H, W) tensor or a data set (whose masks and defect types are then used).
    """
    w = _ipywidgets()
    if not isinstance(images, torch.Tensor):
        ds = images
        masks = torch.stack([ds[i]["mask"] for i in range(len(ds))])
        labels = [ds[i]["defect_type"] for i in range(len(ds))]
    x = _as_images(images)
    labels = list(labels) if labels is not None else [f"image {i}" for i in range(len(x))]
    model.eval()

    def render(index: int):
        xi = x[index:index + 1]
        with torch.no_grad():
            ref, stu = model.inference_pair(model(xi))
            levels = [distillation_map(r, s, lam) for r, s in zip(ref, stu)]
            full = anomaly_map(ref, stu, tuple(xi.shape[-2:]), sigma=sigma, lam=lam)
        m = masks[index:index + 1] if masks is not None else None
        return plot_discrepancy_maps(xi, levels, full, m, row_labels=[f"#{index}: {labels[index]}"],
                                     teacher=teacher, data=data, title="Teacher-student discrepancy, one test image")

    if not 0 <= index < len(x):
        raise ValueError(f"index {index} out of range for {len(x)} images")
    controls = {"index": w.IntSlider(value=index, min=0, max=len(x) - 1, description="test image")}
    return Explorer(controls, render, title="Discrepancy maps of the trained student")
