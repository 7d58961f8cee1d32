"""The static twin of an explorer: frames precomputed over its controls' values and shown by a small,
self-contained HTML/JS player, so the book (which has no kernel and loads nothing from a CDN) still has a
working explorer: a select or a slider per control, switching between embedded images in the browser.

:func:`frame_grid` chooses the values (every option of a menu, evenly spaced values of a slider, at most
``max_frames`` combinations: the control with the most values is thinned first, down to its current value
alone, which the player then states as fixed); :func:`player_html` renders the frames and writes the player.
"""
from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

#: the most frames one explorer embeds (each a PNG of about 50-150 kB)
MAX_FRAMES = 16
#: at most this many values of one slider
SLIDER_VALUES = 9
#: resolution of the embedded frames (the book's column is about 7 inches wide)
FRAME_DPI = 110


def _label(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, tuple):
        return "+".join(map(str, value))
    return str(value)


def control_values(control: Any, n: int = SLIDER_VALUES) -> list[tuple[str, Any]]:
    """(label, value) pairs a control can take: a menu's options, or ``n`` evenly spaced slider values
    (always including the current one)."""
    if hasattr(control, "_options_values"):  # Dropdown, ToggleButtons, SelectionSlider, ...
        labels, values = list(control._options_labels), list(control._options_values)
        return list(zip(labels, values))
    if hasattr(control, "min") and hasattr(control, "max"):
        lo, hi, current = control.min, control.max, control.value
        if hasattr(control, "base"):  # FloatLogSlider: min and max are exponents
            grid = list(control.base ** np.linspace(lo, hi, n))
        elif isinstance(current, (int, np.integer)) and isinstance(lo, (int, np.integer)):
            grid = sorted({int(round(v)) for v in np.linspace(lo, hi, min(n, int(hi - lo) + 1))})
        else:
            grid = list(np.linspace(lo, hi, n))
        grid = sorted({*[type(current)(v) for v in grid], current})
        return [(_label(v), v) for v in grid]
    return [(_label(control.value), control.value)]


def _thin(pairs: list[tuple[str, Any]], keep: int, current: Any) -> list[tuple[str, Any]]:
    """``keep`` of ``pairs``, evenly spread, always with the current value."""
    if keep >= len(pairs):
        return pairs
    idx = set(np.linspace(0, len(pairs) - 1, keep).round().astype(int).tolist())
    at = next((i for i, (_, v) in enumerate(pairs) if _same(v, current)), None)
    if at is not None and at not in idx:
        idx.discard(min(idx, key=lambda i: abs(i - at)))
        idx.add(at)
    return [pairs[i] for i in sorted(idx)]


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) if not isinstance(a, float) else math.isclose(a, float(b), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return False


def frame_grid(controls: Mapping[str, Any], max_frames: int = MAX_FRAMES) -> dict[str, list[tuple[str, Any]]]:
    """The values each control takes in the static player: every value where the budget allows, the
    control with the most values thinned first until the product is at most ``max_frames``."""
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    grid = {name: control_values(c) for name, c in controls.items()}
    while math.prod(len(v) for v in grid.values()) > max_frames:
        name = max(grid, key=lambda k: len(grid[k]))
        grid[name] = _thin(grid[name], len(grid[name]) - 1, controls[name].value)
    return grid


def figure_data_uri(fig: Figure, dpi: int = FRAME_DPI) -> str:
    """A figure as a PNG data URI (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_frames(render: Callable[..., Figure], grid: Mapping[str, Sequence[tuple[str, Any]]],
                  start: Mapping[str, Any], dpi: int = FRAME_DPI) -> list[dict[str, Any]]:
    """Render every combination of ``grid`` (start values first); combinations the render function rejects
    (ValueError, IndexError: e.g. an image index beyond a defect type's examples) are left out."""
    names = list(grid)
    frames = []
    for combo in itertools.product(*(grid[n] for n in names)):
        values = {n: v for n, (_, v) in zip(names, combo)}
        try:
            fig = render(**values)
        except (ValueError, IndexError, KeyError):
            continue
        frames.append({"labels": [label for label, _ in combo], "src": figure_data_uri(fig, dpi),
                       "start": all(_same(values[n], start[n]) for n in names)})
    if not frames:
        raise ValueError("no combination of the explorer's values could be rendered")
    frames.sort(key=lambda f: not f["start"])  # the explorer's starting view first
    return frames


_PLAYER_JS = """(function () {
  var root = document.getElementById(%(id)s);
  var frames = JSON.parse(root.querySelector("script.dskd-player-frames").textContent);
  var controls = Array.prototype.slice.call(root.querySelectorAll("[data-control]"));
  var img = root.querySelector("img.dskd-player-frame");
  var shown = frames[0].labels.slice();  // every value of the view on screen, fixed ones included
  function valueOf(c) {
    return c.tagName === "SELECT" ? c.value : c.getAttribute("data-values").split("\\u001f")[+c.value]; }
  function setControls(labels) { controls.forEach(function (c) {
      var k = +c.getAttribute("data-index");
      if (c.tagName === "SELECT") { c.value = labels[k]; }
      else { c.value = c.getAttribute("data-values").split("\\u001f").indexOf(labels[k]); }
      var out = root.querySelector("output[data-for='" + c.getAttribute("data-control") + "']");
      if (out) out.textContent = labels[k]; }); }
  function show(changed) {  // the frame that keeps the changed value and most of the others
    var want = shown.slice(), best = null, bestScore = -1;
    controls.forEach(function (c) { want[+c.getAttribute("data-index")] = valueOf(c); });
    frames.forEach(function (f) {
      if (changed >= 0 && f.labels[changed] !== want[changed]) return;
      var score = f.labels.filter(function (l, i) { return l === want[i]; }).length;
      if (score > bestScore) { best = f; bestScore = score; } });
    if (!best) best = frames[0];
    shown = best.labels.slice();
    setControls(shown);
    img.src = best.src;
    root.setAttribute("data-shown", shown.join("\\u001f"));
  }
  controls.forEach(function (c) {
    var k = +c.getAttribute("data-index");
    c.addEventListener("input", function () { show(k); });
    c.addEventListener("change", function () { show(k); }); });
  show(-1);
})();"""


def player_html(frames: Sequence[dict[str, Any]], grid: Mapping[str, Sequence[tuple[str, Any]]],
                descriptions: Mapping[str, str], *, title: str = "", player_id: str = "dskd-player") -> str:
    """The self-contained player: one control per varying value, the fixed ones stated, the frames embedded."""
    names = list(grid)
    present = [sorted({f["labels"][i] for f in frames}, key=[lab for lab, _ in grid[n]].index)
               for i, n in enumerate(names)]
    first = frames[0]["labels"]
    parts, fixed = [], []
    for i, n in enumerate(names):
        raw = descriptions.get(n) or n
        label = html.escape(raw)
        if len(present[i]) == 1:
            fixed.append(f"{raw} {present[i][0]}")  # escaped with the note below
            continue
        if len(present[i]) > 4 and all(_is_number(v) for v in present[i]):
            sep = "\u001f".join(present[i])
            parts.append(f'<label>{label} <input type="range" min="0" max="{len(present[i]) - 1}" step="1" '
                         f'value="{present[i].index(first[i])}" data-control="{html.escape(n)}" data-index="{i}" '
                         f'data-values="{html.escape(sep)}" aria-label="{label}"> '
                         f'<output data-for="{html.escape(n)}">{html.escape(first[i])}</output></label>')
        else:
            options = "".join(f'<option value="{html.escape(v)}"{" selected" if v == first[i] else ""}>'
                              f"{html.escape(v)}</option>" for v in present[i])
            parts.append(f'<label>{label} <select data-control="{html.escape(n)}" data-index="{i}" aria-label="{label}">'
                         f"{options}</select></label>")
    note = (f"Precomputed when the book was built: {len(frames)} views"
            + (f"; fixed here: {', '.join(fixed)}" if fixed else "")
            + ". Run the notebook (JupyterLab or Colab) for the live explorer with every value.")
    payload = json.dumps([{"labels": f["labels"], "src": f["src"]} for f in frames]).replace("</", "<\\/")
    head = f'<div class="dskd-player-title"><b>{html.escape(title)}</b></div>' if title else ""
    return (f'<div class="dskd-player" id="{player_id}">{head}'
            f'<div class="dskd-player-controls">{"".join(parts)}</div>'
            f'<img class="dskd-player-frame" src="{frames[0]["src"]}" alt="{html.escape(title or "explorer")}">'
            f'<p class="dskd-player-note">{html.escape(note)}</p>'
            f'<script type="application/json" class="dskd-player-frames">{payload}</script>'
            f"<script>{_PLAYER_JS % {'id': json.dumps(player_id)}}</script></div>")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def static_player(render: Callable[..., Figure], controls: Mapping[str, Any], *, title: str = "",
                  max_frames: int = MAX_FRAMES, player_id: Optional[str] = None, dpi: int = FRAME_DPI) -> str:
    """The HTML of an explorer's static twin (see the module docstring)."""
    grid = frame_grid(controls, max_frames)
    start = {n: c.value for n, c in controls.items()}
    frames = render_frames(render, grid, start, dpi)
    descriptions = {n: getattr(c, "description", n) for n, c in controls.items()}
    pid = player_id or f"dskd-player-{abs(hash((title, tuple(controls), id(render)))) % 10**10}"
    return player_html(frames, grid, descriptions, title=title, player_id=pid)
