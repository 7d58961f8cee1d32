"""The shared machinery of every explorer: controls, one Output, and a render function that is
also the static figure of the rendered book.

An explorer displays as two things at once: the live ipywidgets view, which JupyterLab and Colab show
when a kernel runs, and its static twin (:mod:`dskd.widgets.static`: frames precomputed over the
controls' values, with a client-side player), which the book shows in place of the widget view
(``nb_mime_priority_overrides`` in _config.yml drops the widget view there). So the book has a working
explorer without a kernel, and no dead controls or duplicate figure.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from .static import MAX_FRAMES, static_player

_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("dskd.widgets needs ipywidgets: pip install 'dskd[widgets]' (or ipywidgets)") from err
    return ipywidgets


class Explorer:
    """Controls whose values are passed, as keyword arguments, to ``render`` (a plotting function).

    ``explorer.controls["sigma"].value = 8`` re-renders, exactly as moving the slider does, so tests
    drive explorers the way readers do. ``last_figure`` and ``last_values`` keep what was drawn.
    Display it in a notebook by making it the last expression of a cell: the output holds the live
    widget and the static player (``max_frames`` views at most, see :mod:`dskd.widgets.static`).
    """

    def __init__(self, controls: Mapping[str, Any], render: Callable[..., Figure], title: str = "",
                 max_frames: int = MAX_FRAMES) -> None:
        w = _ipywidgets()
        self.controls = dict(controls)
        self.render = render
        self.title = title
        self.max_frames = max_frames
        self.output = w.Output()
        self.last_figure: Optional[Figure] = None
        self.last_values: dict[str, Any] = {}
        self.renders = 0
        header = [w.HTML(f"<b>{title}</b>")] if title else []
        self.widget = w.VBox([*header, w.HBox(list(self.controls.values())), self.output])
        for control in self.controls.values():
            control.observe(lambda _change: self.update(), names="value")
        self.update()

    def values(self) -> dict[str, Any]:
        return {name: control.value for name, control in self.controls.items()}

    def update(self) -> None:
        from IPython.display import clear_output, display

        self.last_values = self.values()
        fig = self.render(**self.last_values)
        self.last_figure, self.renders = fig, self.renders + 1
        with self.output:
            clear_output(wait=True)
            display(fig)
        plt.close(fig)

    def static_html(self) -> str:
        """The static twin: frames over the controls' values and a client-side player (HTML, no CDN)."""
        return static_player(self.render, self.controls, title=self.title, max_frames=self.max_frames)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/html"] = self.static_html()
        bundle.setdefault("text/plain", f"<dskd explorer: {self.title}>")
        return bundle
