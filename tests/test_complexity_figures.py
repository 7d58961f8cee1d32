"""Figures of chapter 14 (Table 6, where the time goes, speed-ups, fractions), drawn from the recorded files."""
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

from dskd.plotting import plot_fractions, plot_speedups, plot_table6, plot_time_breakdown  # noqa: E402
from dskd.profiling import load_profiles  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "results"


PROFILES = sorted((RESULTS / "complexity").glob("*.json"))
SPEEDS = sorted((RESULTS / "benchmarks").glob("speed*.json"))


def test_the_recorded_files_are_there():
    assert PROFILES and SPEEDS, "results/complexity/*.json and results/benchmarks/speed*.json are committed"


@pytest.fixture(scope="module", params=PROFILES, ids=lambda p: p.stem)
def profile(request):
    return load_profiles(RESULTS / "complexity")[request.param.stem]


@pytest.fixture(scope="module", params=SPEEDS, ids=lambda p: p.stem)
def speed(request):
    return json.loads(request.param.read_text())


def _titles(fig):
    return " ".join([fig._suptitle.get_text() if fig._suptitle else ""] + [ax.get_title() for ax in fig.axes])


def test_table6_figure(profile):
    fig = plot_table6(profile, size=256)
    text = _titles(fig)
    assert "teacher: random" in text and "data: random input 256x256" in text and "Table 6" in text
    assert len(fig.axes) == 4
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert {"PaDiM", "MKD", "DSKD (paper)", "ours plain", "ours fast"} <= set(labels)
    plt.close(fig)
    with pytest.raises(KeyError, match="no record for DS at 512 px"):
        plot_table6(profile, size=512)


def test_time_breakdown_figure(profile):
    fig = plot_time_breakdown(profile, size=256, structures=("DS", "E-D"))
    assert "teacher:" in _titles(fig)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert [lab.split(" (")[0] for lab in labels] == ["DS time", "DS FLOPs", "E-D time", "E-D FLOPs"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "teacher T" in legend and "anomaly map (Eq. 8-9)" in legend
    plt.close(fig)


def test_speedups_and_fractions_figures(speed, profile):
    fig = plot_speedups(speed)
    assert "teacher:" in fig._suptitle.get_text() and "What each speed-up bought" in fig._suptitle.get_text()
    assert f"{speed['machine']['cpu']}, {speed['machine']['cpu_capability']}" in fig._suptitle.get_text()
    bars = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert bars == list(speed["inference_b1"])
    assert fig.axes[0].get_xlim()[1] == pytest.approx(1.6 * speed["inference_b1"]["plain"]["median_s"] * 1e3)
    # the dashed line is the lower bound that speed.json's goals state; the dotted one the 0.10 s goal
    dashed = [ln.get_xdata()[0] for ln in fig.axes[0].lines if ln.get_linestyle() == "--"]
    dotted = [ln.get_xdata()[0] for ln in fig.axes[0].lines if ln.get_linestyle() == ":"]
    assert dashed == [pytest.approx(speed["goals"]["latency_b1_s"]["lower_bound_at_attainable_s"] * 1e3)]
    assert dotted == [pytest.approx(100.0)]
    plt.close(fig)
    fig = plot_fractions(profile)
    assert "teacher:" in fig.axes[0].get_title() and profile["machine"]["cpu_capability"] in fig.axes[0].get_title()
    assert len(fig.axes[0].get_xticklabels()) == len(profile["records"])
    plt.close(fig)
