"""Architecture diagrams (Fig. 3, 4, 8) and parameter budgets: each returns a titled Figure."""
import matplotlib

matplotlib.use("Agg")
import pytest
from matplotlib import pyplot as plt

from dskd.models import LOSS_PAIRS, STRUCTURES
from dskd.plotting import plot_dskd_architecture, plot_embedding_flow, plot_parameter_budget, plot_value_counts


def _texts(fig):
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_embedding_flow_names_every_shape_for_the_image_size():
    fig = plot_embedding_flow(256)
    assert len(fig.axes) == 2 and all(ax.get_title() for ax in fig.axes)
    text = _texts(fig)
    for shape in ("64 @ 64×64", "128 @ 32×32", "256 @ 16×16", "768 @ 16×16", "512 @ 8×8"):
        assert shape in text
    fig128 = plot_embedding_flow(128, show_no_dfe=False)
    assert len(fig128.axes) == 1 and "512 @ 4×4" in _texts(fig128)
    plt.close("all")


@pytest.mark.parametrize("size", [100, 16, 256.0])
def test_embedding_flow_rejects_sizes_that_are_not_multiples_of_32(size):
    with pytest.raises(ValueError, match="multiple of 32"):
        plot_embedding_flow(size)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_architecture_diagram_draws_the_structures_networks_and_pairs(structure):
    fig = plot_dskd_architecture(structure, image_size=128)
    ax = fig.axes[0]
    assert structure in ax.get_title() and "inference" in ax.get_title()
    text = _texts(fig)
    uses = {n for pair in LOSS_PAIRS[structure] for n in pair}
    assert ("T (frozen)" in text) == ("teacher" in uses)
    assert ("S_e (trained)" in text) == ("encoder" in uses)
    assert ("DFE" in text) == ("decoder" in uses)
    assert "64 @ 32×32" in text  # conv2_x at H/4 for a 128 input
    # one label per distilled pair
    assert sum("M^k" in t.get_text() for t in ax.texts) == len(LOSS_PAIRS[structure])
    plt.close(fig)


def test_architecture_diagram_without_dfe_and_on_given_axes():
    fig, axes = plt.subplots(1, 2)
    out = plot_dskd_architecture("DS", use_dfe=False, ax=axes[1])
    assert out is fig and "no DFE" in axes[1].get_title()
    assert "conv4_x only" in _texts(fig)
    with pytest.raises(ValueError, match="unknown structure"):
        plot_dskd_architecture("T-X")
    plt.close("all")


def test_value_counts_and_parameter_budget():
    fig = plot_value_counts({"F1": 262144, "F_emb": 32768}, title="kept", params={"fuse": 6_000_000})
    assert len(fig.axes) == 2 and fig.axes[0].get_ylabel() and fig.axes[1].get_xlabel()
    with pytest.raises(ValueError, match="empty"):
        plot_value_counts({}, title="x")
    fig = plot_parameter_budget({"ours": {"T": 2_782_784, "S_e": 2_782_784, "DFE": 6_959_360, "S_d": 3_703_168}})
    ax = fig.axes[0]
    assert ax.get_xlabel() == "parameters (millions)" and ax.get_title()
    assert "16.2 M" in _texts(fig)
    with pytest.raises(ValueError, match="empty"):
        plot_parameter_budget({})
    plt.close("all")
