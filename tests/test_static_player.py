"""The static twin of every explorer (dskd.widgets.static): frames over the controls' values, embedded in a
self-contained player that the book shows without a kernel. The player's JavaScript is exercised in the
browser test (tests/test_browser.py)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytest.importorskip("ipywidgets")
import ipywidgets as w  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

from dskd.widgets.static import (control_values, frame_grid, player_html, render_frames,  # noqa: E402
                                 static_player)


def _render(**values):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_title(" ".join(f"{k}={v}" for k, v in values.items()))
    return fig


def test_control_values_cover_menus_and_sliders():
    assert control_values(w.Dropdown(options=["a", "b", "c"], value="b")) == [("a", "a"), ("b", "b"), ("c", "c")]
    ints = control_values(w.IntSlider(value=3, min=0, max=19), n=5)
    assert [v for _, v in ints][0] == 0 and [v for _, v in ints][-1] == 19 and 3 in [v for _, v in ints]
    small = control_values(w.IntSlider(value=1, min=0, max=2), n=9)
    assert [v for _, v in small] == [0, 1, 2]  # never more values than the slider has
    logs = [v for _, v in control_values(w.FloatLogSlider(value=0.1, base=10, min=-2, max=2), n=5)]
    assert logs[0] == pytest.approx(0.01) and logs[-1] == pytest.approx(100) and 0.1 in logs


def test_frame_grid_keeps_within_the_budget_and_keeps_the_current_values():
    controls = {"image": w.IntSlider(value=7, min=0, max=40), "layer": w.Dropdown(options=["1", "2", "3"], value="2"),
                "scale": w.Dropdown(options=["shared", "own"], value="own")}
    grid = frame_grid(controls, max_frames=12)
    assert np.prod([len(v) for v in grid.values()]) <= 12
    for name, control in controls.items():
        assert control.value in [v for _, v in grid[name]], name
    assert len(frame_grid(controls, max_frames=1)["image"]) == 1
    with pytest.raises(ValueError, match="max_frames must be >= 1, got 0"):
        frame_grid(controls, max_frames=0)


def test_render_frames_skips_combinations_the_explorer_rejects_and_starts_with_its_view():
    grid = {"a": [("1", 1), ("2", 2)], "b": [("x", "x"), ("y", "y")]}

    def picky(a, b):
        if a == 2 and b == "y":
            raise IndexError("no such example")
        return _render(a=a, b=b)

    frames = render_frames(picky, grid, start={"a": 2, "b": "x"}, dpi=40)
    assert [f["labels"] for f in frames][0] == ["2", "x"] and len(frames) == 3
    assert all(f["src"].startswith("data:image/png;base64,") for f in frames)
    with pytest.raises(ValueError, match="no combination of the explorer's values could be rendered"):
        render_frames(lambda **kw: (_ for _ in ()).throw(ValueError("never")), grid, start={"a": 1, "b": "x"})


def test_the_player_has_a_control_per_varying_value_and_states_the_fixed_ones():
    controls = {"image": w.IntSlider(value=0, min=0, max=5, description="test image"),
                "layer": w.Dropdown(options=["conv2_x", "conv3_x"], value="conv3_x", description="layer"),
                "level": w.Dropdown(options=[1], value=1, description="level k")}
    page = static_player(_render, controls, title="Demo explorer", max_frames=12, player_id="p1", dpi=40)
    assert page.startswith('<div class="dskd-player" id="p1">') and "<b>Demo explorer</b>" in page
    assert re.search(r'<input type="range" min="0" max="5" step="1" value="0" data-control="image" data-index="0"', page)
    assert '<select data-control="layer" data-index="1" aria-label="layer"><option value="conv2_x">conv2_x</option>' \
           '<option value="conv3_x" selected>conv3_x</option></select>' in page
    assert "fixed here: level k 1" in page and "12 views" in page
    frames = json.loads(re.search(r'class="dskd-player-frames">(.*?)</script>', page).group(1))
    assert len(frames) == 12 and frames[0]["labels"] == ["0", "conv3_x", "1"]
    assert "http" not in page  # nothing loaded from elsewhere: no CDN, no remote image


def test_an_explorer_displays_as_live_widget_and_static_player():
    from dskd.widgets import threshold_explorer

    scores, labels = np.linspace(0, 1, 12), np.r_[np.zeros(6), np.ones(6)].astype(int)
    ex = threshold_explorer(scores, labels, threshold=0.5, teacher="t", data="d")
    ex.max_frames = 4
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # JupyterLab and Colab show the live widget
    assert bundle["text/html"].count('class="dskd-player"') == 1  # the book shows the player
    assert "4 views" in bundle["text/html"]
    plt.close("all")


def test_player_html_escapes_what_it_shows():
    frames = [{"labels": ["<b>"], "src": "data:image/png;base64,AA", "start": True}]
    page = player_html(frames, {"x": [("<b>", "<b>")]}, {"x": "a & b"}, title="t</script>", player_id="p")
    assert "fixed here: a &amp; b &lt;b&gt;." in page and "<b>t&lt;/script&gt;</b>" in page
    closing = player_html([{"labels": ["</script>"], "src": "data:,", "start": True}], {"x": [("</script>", 1)]},
                          {}, player_id="q")
    assert closing.count("</script>") == 2  # the frames' JSON cannot close its script element early
