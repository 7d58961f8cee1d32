"""The book's one figure rule (dskd/plotting/style.py): drawn for the column, readable on screen, titles that fit.

tests/conftest.py applies :func:`readability_problems` to every figure any test draws through the package;
these tests check the rule itself."""
from __future__ import annotations

import pytest
from matplotlib import pyplot as plt

from dskd.plotting.style import (COLUMN_IN, COLUMN_PX, MIN_FONT_PX, dskd_style, fit_to_column, on_figure,
                                 readability_problems, screen_scale)


def test_screen_scale_is_the_column_over_the_figure():
    fig = plt.figure(figsize=(14, 4), dpi=150)
    assert screen_scale(fig) == pytest.approx(COLUMN_PX / (14 * 72))
    small = plt.figure(figsize=(3, 2), dpi=100)  # narrower than the column: shown at its natural size
    assert screen_scale(small) == pytest.approx(100 / 72)
    plt.close("all")


def test_small_text_on_a_wide_figure_is_a_problem():
    fig, ax = plt.subplots(figsize=(14, 3), dpi=150)
    ax.set_xlabel("tiny", fontsize=7)
    found = readability_problems(fig)
    assert "figure 14.0 in wide (the column holds 7.0 in)" in found
    assert any(p.startswith("text 'tiny' is") and f"at least {MIN_FONT_PX:g} px" in p for p in found)
    fig.set_size_inches(COLUMN_IN, 3)
    assert readability_problems(fig) == []  # 7 pt on a 7 inch figure: about 9.6 px on screen
    ax.set_xlabel("tinier", fontsize=5)
    assert any("'tinier'" in p for p in readability_problems(fig))
    plt.close("all")


def test_a_title_wider_than_the_figure_is_cut_off_unless_it_wraps():
    fig, ax = plt.subplots(figsize=(4, 3))
    title = fig.suptitle("a title far too long for a four inch figure, naming the teacher and the data set")
    assert any("is cut off at the figure's edge" in p for p in readability_problems(fig))
    title.set_wrap(True)
    assert readability_problems(fig) == []
    plt.close("all")


def test_a_wide_row_of_panels_is_stacked_to_the_column():
    with dskd_style():
        fig, axes = plt.subplots(1, 4, figsize=(14, 3.6), layout="constrained")
        for ax in axes:
            ax.plot([0, 1], [0, 1])
            ax.set_title("a panel")
    assert fig.get_figwidth() == pytest.approx(COLUMN_IN)
    rows = sorted({ax.get_subplotspec().rowspan.start for ax in axes})
    cols = sorted({ax.get_subplotspec().colspan.start for ax in axes})
    assert rows == [0, 1] and cols == [0, 1]  # two plots per row
    assert readability_problems(fig) == []
    plt.close("all")


def test_a_wide_figure_that_cannot_be_restacked_shrinks_to_the_column():
    with dskd_style():
        fig, axes = plt.subplots(2, 3, figsize=(10, 5), layout="constrained")
    assert fig.get_size_inches() == pytest.approx((COLUMN_IN, 5 * (COLUMN_IN / 10) ** 0.5))
    fit_to_column(fig)  # fitting twice changes nothing
    assert fig.get_figwidth() == pytest.approx(COLUMN_IN)
    plt.close("all")


def test_dskd_style_reports_every_figure_it_makes():
    seen = []
    with on_figure(seen.append):
        with dskd_style():
            a = plt.figure()
            b = plt.figure()
    plt.figure()  # outside the style: not reported
    assert seen == [a, b]
    plt.close("all")
