"""Data explorer (chapter 1): browse test images, their masks and defect types."""
from __future__ import annotations

from functools import partial

from ..data import SYNTHETIC_CATEGORIES, find_magnetic_tile_root
from ..plotting.data import browser_defect_types, plot_dataset_sample
from .base import Explorer, _ipywidgets


def sample_explorer(data: str = "disc", defect_type: str = "scratch", image_size: int = 128) -> Explorer:
    """Pick a data set (a synthetic category, or MT Defects when it is present), a defect type and an
    index; draws :func:`dskd.plotting.plot_dataset_sample` (image, mask, overlay)."""
    w = _ipywidgets()
    options = list(SYNTHETIC_CATEGORIES) + (["mt-defects"] if find_magnetic_tile_root() is not None else [])
    if data not in options:
        raise ValueError(f"unknown data {data!r}: expected one of {options}")
    types = browser_defect_types(data, image_size)
    if defect_type not in types:
        raise ValueError(f"unknown defect type {defect_type!r} for {data!r}: expected one of {types}")
    data_w = w.Dropdown(options=options, value=data, description="data")
    defect_w = w.Dropdown(options=types, value=defect_type, description="defect type")
    index_w = w.IntSlider(value=0, min=0, max=19, description="index")

    def on_data(change) -> None:  # registered before the explorer's own observer, so it runs first
        new = browser_defect_types(change["new"], image_size)
        keep = defect_w.value if defect_w.value in new else new[min(1, len(new) - 1)]
        defect_w.options = new  # ipywidgets keeps the value if it is still an option, else picks the first
        defect_w.value = keep

    data_w.observe(on_data, names="value")
    return Explorer({"data": data_w, "defect_type": defect_w, "index": index_w},
                    partial(plot_dataset_sample, image_size=image_size),
                    title="Test images, masks and defect types")
