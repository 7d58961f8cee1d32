"""The shared machinery of every explorer: controls, one Output, and a render function that is
also the static figure of the rendered book."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from matplotlib import pyplot as plt
from matplotlib.figure import Figure


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
    Display it in a notebook by making it the last expression of a cell.
    """

    def __init__(self, controls: Mapping[str, Any], render: Callable[..., Figure], title: str = "") -> None:
        w = _ipywidgets()
        self.controls = dict(controls)
        self.render = render
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

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
