"""The one figure style of the book, and helpers every figure uses.

**The rule for every figure.** The book shows a figure at the width of its text column, about
:data:`COLUMN_PX` CSS pixels at desktop width, so a figure is drawn for that column: at most
:data:`COLUMN_IN` inches wide, with panels stacked in rows rather than squeezed side by side, at a high
resolution (``figure.dpi`` 150: a crisp PNG that also opens full size), and with no text smaller than
:data:`MIN_FONT_PX` pixels on screen once the figure is scaled to the column.
:func:`readability_problems` checks a figure against the rule (the plotting tests check every figure
the package draws), and :func:`dskd_style` applies it: a figure made inside it that is wider than the
column is re-flowed to the column's width (:func:`fit_to_column`).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from ..data.transforms import denormalize

#: the width of the book's text column at desktop width (1280 px window), in CSS pixels; measured in
#: Chromium (tests/test_browser.py checks it)
COLUMN_PX = 688
#: figures are drawn at most this wide, in inches (the column at the display scale)
COLUMN_IN = 7.0
#: the smallest text a figure may show, in CSS pixels on screen at desktop width
MIN_FONT_PX = 9.0
#: figures made inside :func:`dskd_style`, for tests that check each of them (see :func:`on_figure`)
_FIGURE_HOOKS: list[Callable] = []

STYLE = {
    "figure.dpi": 150,
    "savefig.dpi": 150,
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
    """The book's one figure style: use ``with dskd_style():`` around figure creation. Figures made
    inside it are fitted to the book's column on the way out (:func:`fit_to_column`)."""
    # Resolve the backend before rc_context snapshots rcParams: restoring the snapshot must not undo
    # the notebook's (inline) backend choice made during the first figure.
    plt.get_backend()
    before = set(plt.get_fignums())
    with plt.rc_context(STYLE):
        yield
        for num in sorted(set(plt.get_fignums()) - before):
            fig = plt.figure(num)
            fit_to_column(fig)
            for hook in list(_FIGURE_HOOKS):
                hook(fig)


@contextmanager
def on_figure(hook: Callable) -> Iterator[None]:
    """Call ``hook(fig)`` for every figure :func:`dskd_style` makes while this is active (for tests)."""
    _FIGURE_HOOKS.append(hook)
    try:
        yield
    finally:
        _FIGURE_HOOKS.remove(hook)


def screen_scale(fig: Figure, column_px: float = COLUMN_PX) -> float:
    """CSS pixels on screen per point of text, for ``fig`` shown at most ``column_px`` wide."""
    natural_px = fig.get_figwidth() * fig.dpi
    return fig.dpi / 72 * min(1.0, column_px / natural_px)


def _texts(fig: Figure) -> list:
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and t.figure is fig]


#: the narrowest a panel may become when a figure is fitted to the column (inches): plots need room for
#: their tick labels, images (no ticks) less
MIN_PANEL_IN = {"plot": 3.4, "image": 1.9}
#: a panel may shrink to this share of the width its function gave it before panels are stacked
MIN_PANEL_SHRINK = 0.65


def _is_image_axes(ax) -> bool:
    return bool(ax.images) and not ax.get_xticks().size and not ax.get_yticks().size


def _single_row_panels(fig: Figure) -> list:
    """The figure's panels, in order, when they form one row of a grid (one cell each); else []."""
    panels = [ax for ax in fig.axes if ax.get_subplotspec() is not None and ax.get_visible()]
    if len(panels) < 2:
        return []
    grids = {id(ax.get_subplotspec().get_gridspec()) for ax in panels}
    if len(grids) != 1:
        return []
    gs = panels[0].get_subplotspec().get_gridspec()
    spans = [ax.get_subplotspec() for ax in panels]
    if gs.nrows != 1 or any(sp.colspan.stop - sp.colspan.start != 1 for sp in spans):
        return []
    return sorted(panels, key=lambda ax: ax.get_subplotspec().colspan.start)


def fit_to_column(fig: Figure, width_in: float = COLUMN_IN) -> None:
    """Fit a figure wider than the column to the column's width. Panels side by side that would become
    narrower than :data:`MIN_PANEL_IN` are stacked into rows (two plots, or several images, per row);
    otherwise the figure shrinks to the column's width and its height by less, so panels keep room for
    their labels. Titles wrap at the figure's edges."""
    w, h = fig.get_size_inches()
    if w > width_in + 1e-6:
        fig._dskd_drawn_at = (w, h)  # the size its function asked for
        panels = _single_row_panels(fig)
        kind = "image" if panels and all(_is_image_axes(ax) for ax in panels) else "plot"
        old_panel_w = w / max(len(panels), 1)
        per_row = max(1, min(int(width_in // MIN_PANEL_IN[kind]), int(width_in // (MIN_PANEL_SHRINK * old_panel_w))))
        if panels and len(panels) > per_row:
            rows = math.ceil(len(panels) / per_row)
            new_panel_w = width_in / per_row
            panel_h = h * min(1.0, max(0.6, new_panel_w / old_panel_w))
            gs = fig.add_gridspec(rows, per_row)
            ylabel = panels[0].get_ylabel()
            for k, ax in enumerate(panels):
                ax.set_subplotspec(gs[k // per_row, k % per_row])
                if k % per_row == 0:  # a panel that starts a row shows its y axis, even if shared
                    ax.tick_params(labelleft=True)
                    if not ax.get_ylabel() and ylabel and ax.get_shared_y_axes().joined(ax, panels[0]):
                        ax.set_ylabel(ylabel)
            fig.set_size_inches(width_in, panel_h * rows + 0.35 * (rows - 1), forward=False)
        else:
            fig.set_size_inches(width_in, h * math.sqrt(width_in / w), forward=False)
    wrap_titles(fig)


def wrap_titles(fig: Figure) -> None:
    """Let the suptitle and the axes titles wrap at the figure's edges when drawn (their text is unchanged)."""
    if fig._suptitle is not None:
        fig._suptitle.set_wrap(True)
    for ax in fig.axes:
        ax.title.set_wrap(True)


def readability_problems(fig: Figure, column_px: float = COLUMN_PX, min_px: float = MIN_FONT_PX) -> list[str]:
    """What breaks the figure rule (module docstring): the figure wider than :data:`COLUMN_IN`, text
    smaller than ``min_px`` on screen, a title cut off at the figure's edges. Empty when none."""
    problems = []
    if fig.get_figwidth() > COLUMN_IN + 1e-6:
        problems.append(f"figure {fig.get_figwidth():.1f} in wide (the column holds {COLUMN_IN} in)")
    scale = screen_scale(fig, column_px)
    for t in _texts(fig):
        px = t.get_fontsize() * scale
        if px < min_px - 1e-6:
            problems.append(f"text {t.get_text()[:40]!r} is {px:.1f} px on screen ({t.get_fontsize():g} pt; "
                            f"at least {min_px:g} px)")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width = fig.bbox.width
    titles = [fig._suptitle] if fig._suptitle is not None else []
    titles += [ax.title for ax in fig.axes]
    for t in titles:
        if t is None or not t.get_visible() or not t.get_text().strip():
            continue
        box = t.get_window_extent(renderer)
        if box.x0 < -1 or box.x1 > width + 1:
            problems.append(f"title {t.get_text()[:40]!r} is cut off at the figure's edge")
    return problems


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
