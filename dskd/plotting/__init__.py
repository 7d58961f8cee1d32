"""Figures for the book and the CLI. Every function returns a matplotlib Figure in one shared style
(:func:`dskd_style`), with labelled axes and a title that names the teacher and the data that
produced it. Plotting never computes metrics; it draws what it is given.

Each ipywidgets explorer in :mod:`dskd.widgets` renders with one of these functions, so the static
figure in the book and the live widget show the same thing.
"""
from .results import plot_anomaly_grid, plot_loss_curve
from .style import FEATURE_CMAP, MAP_CMAP, STYLE, clean_axes, dskd_style, provenance_title, to_numpy_image

__all__ = [
    "plot_anomaly_grid", "plot_loss_curve",
    "FEATURE_CMAP", "MAP_CMAP", "STYLE", "clean_axes", "dskd_style", "provenance_title", "to_numpy_image",
]
