"""Feature figures (chapters 2 and 3) and their explorers."""
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt

from dskd.models import DSKD, TeacherPyramid
from dskd.plotting import (
    plot_conv1_filters, plot_discrepancy_maps, plot_feature_channel, plot_feature_pyramid, plot_score_histograms,
)
from dskd.plotting.features import top_variance_channels


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _pyramid(seed, size=32):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, c, size // s, size // s, generator=g) for c, s in ((8, 4), (16, 8), (32, 16))]


def teardown_function():
    plt.close("all")


def test_top_variance_channels_picks_the_structured_ones():
    f = torch.zeros(4, 3, 3)
    f[2] = torch.arange(9.0).view(3, 3)
    f[0, 0, 0] = 1.0
    assert top_variance_channels(f, 2) == [2, 0]


def test_feature_pyramid_has_a_row_per_level():
    image = torch.randn(3, 64, 64)
    fig = plot_feature_pyramid(image, _pyramid(0, size=64), teacher="random init", data="toy", n_channels=3,
                               receptive_fields=[43, 99, 211])
    axes = _panels(fig)
    assert len(axes) == 3 * 4
    assert "teacher: random init" in fig._suptitle.get_text()
    assert [axes[4 * k].get_ylabel().split("\n")[0] for k in range(3)] == ["conv2_x", "conv3_x", "conv4_x"]
    assert axes[0].get_title() == "RF of one unit: 43 px" and "> image" in axes[8].get_title()
    assert axes[1].images[0].get_array().shape == (16, 16)  # conv2_x of a 64x64 image


def test_feature_channel_figure_and_its_errors():
    pyr = _pyramid(1)
    fig = plot_feature_channel(torch.randn(3, 32, 32), pyr, "conv3_x", 5, teacher="t", data="d")
    axes = _panels(fig)
    assert len(axes) == 3 and axes[1].get_xlabel() and axes[1].get_ylabel()
    np.testing.assert_allclose(axes[1].images[0].get_array(), pyr[1][0, 5].numpy())
    assert any(ax.get_label() == "<colorbar>" and "activation" in ax.get_ylabel() for ax in fig.axes)
    with pytest.raises(ValueError, match="channel 16 out of range"):
        plot_feature_channel(torch.randn(3, 32, 32), pyr, "conv3_x", 16, teacher="t", data="d")
    with pytest.raises(ValueError, match="unknown layer"):
        plot_feature_channel(torch.randn(3, 32, 32), pyr, "conv5_x", 0, teacher="t", data="d")


def test_conv1_filters_are_rgb_tiles_with_zero_at_grey():
    w = torch.zeros(5, 3, 7, 7)
    w[0, 0, 3, 3] = 2.0
    fig = plot_conv1_filters(w, teacher="random init", n_cols=4)
    tiles = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(tiles) == 5 and tiles[0].shape == (7, 7, 3)
    assert tiles[0][3, 3, 0] == pytest.approx(1.0) and tiles[0][0, 0, 0] == pytest.approx(0.5)
    assert "teacher: random init" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="C_out, 3"):
        plot_conv1_filters(torch.zeros(4, 1, 3, 3), teacher="t")


def test_discrepancy_maps_share_one_scale_per_column():
    images, masks = torch.randn(2, 3, 32, 32), torch.zeros(2, 1, 32, 32)
    masks[1, :, 4:9, 4:9] = 1
    levels = [torch.rand(2, 8, 8), 2 * torch.rand(2, 4, 4), torch.rand(2, 2, 2)]
    fig = plot_discrepancy_maps(images, levels, torch.rand(2, 32, 32), masks, row_labels=["normal", "defect"],
                                teacher="t", data="d")
    axes = _panels(fig)
    assert len(axes) == 2 * 5
    assert axes[0].get_ylabel() == "normal" and "conv3_x" in axes[2].get_title()
    clims = {axes[i * 5 + 2].images[0].get_clim() for i in range(2)}
    assert len(clims) == 1 and max(clims.pop()) == pytest.approx(float(levels[1].max()))
    assert sum(1 for ax in fig.axes if ax.get_label() == "<colorbar>") == 4
    with pytest.raises(ValueError, match="row labels"):
        plot_discrepancy_maps(images, levels, torch.rand(2, 32, 32), row_labels=["x"], teacher="t", data="d")


def test_score_histograms_one_panel_per_group():
    fig = plot_score_histograms({"before": {"normal": torch.rand(50), "defect": torch.rand(20)},
                                 "after": {"normal": torch.rand(50) / 2, "defect": torch.rand(20)}},
                                teacher="t", data="d")
    assert [ax.get_title() for ax in fig.axes] == ["before", "after"]
    assert all(ax.get_xlabel() and ax.get_ylabel() == "density" for ax in fig.axes)
    with pytest.raises(ValueError, match="non-empty"):
        plot_score_histograms({"a": {}}, teacher="t", data="d")


def test_feature_explorer_follows_image_layer_and_channel():
    pytest.importorskip("ipywidgets")
    from dskd.widgets import feature_explorer

    torch.manual_seed(0)
    teacher = TeacherPyramid(None)
    images = torch.randn(3, 3, 32, 32)
    e = feature_explorer(teacher, images, teacher=teacher.weights_description, data="toy")
    assert e.renders == 1
    grab = lambda: e.last_figure.axes[1].images[0].get_array().copy()
    first = grab()
    e.controls["channel"].value = 3
    assert e.renders == 2 and not np.array_equal(first, grab())
    e.controls["layer"].value = "conv2_x"
    assert grab().shape == (8, 8)
    e.controls["index"].value = 2
    with torch.no_grad():
        expected = teacher(images[2:3])[0][0, 3]
    np.testing.assert_allclose(grab(), expected.numpy(), rtol=1e-5, atol=1e-6)
    e.controls["channel"].value = 64 + 5  # wraps around the 64 channels of conv2_x
    np.testing.assert_allclose(grab(), teacher(images[2:3])[0][0, 5].numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown layer"):
        feature_explorer(teacher, images, teacher="t", data="d", layer="conv9_x")
    with pytest.raises(ValueError, match="expected images"):
        feature_explorer(teacher, torch.randn(3, 32, 32), teacher="t", data="d")


def test_discrepancy_explorer_follows_the_test_image():
    pytest.importorskip("ipywidgets")
    from dskd.data import SyntheticDefects
    from dskd.widgets import discrepancy_explorer

    torch.manual_seed(0)
    model = DSKD("T-E", teacher_weights=None)
    ds = SyntheticDefects("disc", "test", image_size=32, n_test=4)
    e = discrepancy_explorer(model, ds, teacher=model.teacher_description, data="toy", index=1)
    assert e.renders == 1 and "color" in e.last_figure.axes[0].get_ylabel()
    first = e.last_figure.axes[4].images[0].get_array().copy()  # the full map
    e.controls["index"].value = 2
    assert e.renders == 2 and not np.array_equal(first, e.last_figure.axes[4].images[0].get_array())
    with pytest.raises(ValueError, match="out of range"):
        discrepancy_explorer(model, ds, teacher="t", data="d", index=9)
