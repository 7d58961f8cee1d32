"""Explorers of anomaly inference (chapter 8): layers and sigma (Eq. 8, 9, Table 9), and the image
threshold (Eq. 1). Each renders with a function of :mod:`dskd.plotting.inference`, its static twin."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
from torch import Tensor

from ..inference import ALL_LAYERS
from ..plotting.inference import LAYER_CHOICES, _check_stack, plot_inference_settings, plot_threshold
from .base import Explorer, _ipywidgets


def inference_explorer(
    images: Tensor,
    layer_maps: Tensor,
    masks: Tensor,
    labels,
    *,
    teacher: str,
    data: str,
    index: Optional[int] = None,
    sigma: float = 4.0,
    layers: Sequence[int] = ALL_LAYERS,
) -> Explorer:
    """Pick a test image, the layers summed in Eq. (8) and the sigma of Eq. (9); renders with
    :func:`dskd.plotting.plot_inference_settings` (one image's map, every image's score, AUROCs).

    ``layer_maps`` (3, N, H, W): the upsampled, unfiltered M_1..M_3 of the N test images, computed
    once, so moving a control only re-sums and re-filters maps (no network runs).
    """
    _check_stack(images, layer_maps, masks, labels)
    n = layer_maps.shape[1]
    if index is None:  # the first anomalous image
        index = int(np.flatnonzero(np.asarray(labels))[0]) if np.any(np.asarray(labels)) else 0
    layers = tuple(layers)
    if layers not in dict(LAYER_CHOICES).values():
        raise ValueError(f"layers must be a non-empty subset of {ALL_LAYERS} in increasing order, got {layers}")
    w = _ipywidgets()
    controls = {
        "index": w.IntSlider(value=index, min=0, max=n - 1, description="image", continuous_update=False),
        "sigma": w.FloatSlider(value=sigma, min=0.0, max=12.0, step=0.5, description="σ (Eq. 9)",
                               continuous_update=False),
        "layers": w.Dropdown(options=list(LAYER_CHOICES), value=layers, description="layers"),
    }

    def render(index: int, sigma: float, layers: tuple[int, ...]):
        return plot_inference_settings(images, layer_maps, masks, labels, index=index, sigma=sigma,
                                       layers=layers, teacher=teacher, data=data)

    return Explorer(controls, render, title="Algorithm 2: which layers (Eq. 8) and which σ (Eq. 9)")


def threshold_explorer(
    scores,
    labels,
    *,
    teacher: str,
    data: str,
    normal_scores=None,
    marks: Optional[Mapping[str, float]] = None,
    threshold: Optional[float] = None,
) -> Explorer:
    """Move the image threshold of Eq. (1) over the score range; renders with
    :func:`dskd.plotting.plot_threshold` (scores by class, the confusion table)."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0 or s.size != np.asarray(labels).size:
        raise ValueError(f"scores ({s.size}) and labels ({np.asarray(labels).size}) must be non-empty and match")
    pool = s if normal_scores is None else np.concatenate([s, np.asarray(normal_scores, dtype=np.float64).ravel()])
    low, high = float(pool.min()), float(pool.max())
    pad = 0.05 * (high - low if high > low else 1.0)
    low, high = low - pad, high + pad
    threshold = float(np.median(s)) if threshold is None else float(threshold)
    if not low <= threshold <= high:
        raise ValueError(f"threshold {threshold} is outside the score range [{low:.4g}, {high:.4g}]")
    w = _ipywidgets()
    controls = {"threshold": w.FloatSlider(value=threshold, min=low, max=high, step=(high - low) / 400,
                                           readout_format=".3f", description="threshold",
                                           continuous_update=False)}

    def render(threshold: float):
        return plot_threshold(s, labels, threshold, normal_scores=normal_scores, marks=marks,
                              teacher=teacher, data=data)

    return Explorer(controls, render, title="Image threshold (Eq. 1): false alarms against missed defects")
