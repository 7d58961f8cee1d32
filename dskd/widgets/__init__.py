"""ipywidgets explorers for the notebooks. Each renders with a function of :mod:`dskd.plotting`,
its static twin, so the book (which has no kernel) shows the same content as a figure.

Needs ``ipywidgets`` (``pip install 'dskd[widgets]'``); importing :mod:`dskd` does not.
"""
from .base import Explorer

__all__ = ["Explorer"]
