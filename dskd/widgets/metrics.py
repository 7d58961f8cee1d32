"""Explorer of the PRO metric (chapter 9): one threshold moves the FPR and every region's overlap
together. Renders with :func:`dskd.plotting.plot_pro_threshold`, its static twin."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..metrics import pro_curve
from ..plotting.metrics import _stack, plot_pro_threshold
from .base import Explorer, _ipywidgets


def pro_threshold_explorer(
    images,
    masks,
    maps,
    *,
    teacher: str,
    data: str,
    index: Optional[int] = None,
    threshold: Optional[float] = None,
    max_fpr: float = 0.3,
) -> Explorer:
    """Move the pixel threshold t and pick a test image: the binarised map with each defect region
    coloured by its overlap, and the point (FPR(t), PRO(t)) on the PRO curve of the whole set.

    The PRO curve is computed once (:func:`dskd.metrics.pro_curve`). The default threshold is the one
    whose FPR is ``max_fpr / 10``, where region overlaps still differ (at ``max_fpr``, the end of
    PRO's integral, a good map covers nearly every region).
    """
    m, s = _stack(masks, maps)
    if len(images) != m.shape[0]:
        raise ValueError(f"images ({len(images)}) and masks/maps ({m.shape[0]}) must hold the same number of images")
    curve = pro_curve(m, s)
    if index is None:  # the first image with a defect
        index = int(np.flatnonzero(m.reshape(m.shape[0], -1).any(axis=1))[0])
    low, high = float(s.min()), float(s.max())
    if threshold is None:
        threshold = float(np.quantile(s[~m], 1.0 - max_fpr / 10))
    if not low <= threshold <= high:
        raise ValueError(f"threshold {threshold} is outside the map range [{low:.4g}, {high:.4g}]")
    w = _ipywidgets()
    controls = {
        "threshold": w.FloatSlider(value=threshold, min=low, max=high, step=(high - low) / 400,
                                   readout_format=".3f", description="threshold t", continuous_update=False),
        "index": w.IntSlider(value=index, min=0, max=m.shape[0] - 1, description="image",
                             continuous_update=False),
    }

    def render(threshold: float, index: int):
        return plot_pro_threshold(images, m, s, index=index, threshold=threshold, curve=curve,
                                  max_fpr=max_fpr, teacher=teacher, data=data)

    return Explorer(controls, render, title="PRO: one threshold sets the FPR and every region's overlap")
