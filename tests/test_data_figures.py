"""Data figures (chapter 1) and the sample explorer."""
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
from matplotlib import pyplot as plt

from dskd.data import SyntheticDefects
from dskd.plotting import plot_dataset_sample, plot_defect_counts, plot_defect_grid, plot_sample
from dskd.plotting.data import browser_defect_types, overlay_mask


@pytest.fixture(scope="module")
def items():
    ds = SyntheticDefects("disc", "test", image_size=32, n_test=6)
    return [ds[i] for i in range(6)]


def teardown_function():
    plt.close("all")


def test_overlay_tints_only_the_mask():
    img = np.zeros((4, 4, 3), np.float32)
    m = np.zeros((4, 4), bool)
    m[1, 2] = True
    out = overlay_mask(img, m, color=(1.0, 0.0, 0.0), alpha=0.5)
    assert out[1, 2].tolist() == [0.5, 0.0, 0.0]
    assert not out[~m].any() and not img.any()  # the input is not modified


def test_defect_grid_has_one_titled_cell_per_item(items):
    fig = plot_defect_grid([items[:3], items[3:5]], row_labels=["a", "b"], data="toy data")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 5  # the empty sixth cell is hidden
    assert "data: toy data" in fig._suptitle.get_text()
    assert fig.axes[0].get_ylabel() == "a" and fig.axes[3].get_ylabel() == "b"
    assert items[1]["defect_type"] in fig.axes[1].get_title() and "% px" in fig.axes[1].get_title()
    with pytest.raises(ValueError, match="row labels"):
        plot_defect_grid([items[:2]], row_labels=["a", "b"], data="d")
    with pytest.raises(ValueError, match="non-empty"):
        plot_defect_grid([], row_labels=[], data="d")


def test_defect_counts_stack_splits_with_good_first():
    fig = plot_defect_counts({"train": {"good": 5}, "test": {"good": 2, "crack": 3, "blowhole": 1}}, data="toy")
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() == "number of images"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["good", "blowhole", "crack"]
    assert [round(p.get_height()) for p in ax.patches] == [5, 0, 0, 2, 1, 3]  # train bars, then test bars
    assert "7" in [t.get_text() for t in ax.texts]  # total of "good"
    with pytest.raises(ValueError, match="empty"):
        plot_defect_counts({}, data="d")


def test_sample_shows_image_mask_and_overlay(items):
    fig = plot_sample(items[1], data="toy", index=1)
    assert len(fig.axes) == 3
    assert [ax.get_title().split(":")[0].split(" ")[0] for ax in fig.axes] == ["image", "mask", "overlay"]
    mask = fig.axes[1].images[0].get_array()
    assert mask.shape == (32, 32) and mask.any()
    assert "anomalous" in fig._suptitle.get_text()


def test_dataset_sample_picks_by_defect_type_and_wraps_the_index():
    types = browser_defect_types("stripes", 32)
    assert types[0] == "good" and "scratch" in types
    a = plot_dataset_sample("stripes", "scratch", 0, image_size=32)
    n = int(a._suptitle.get_text().split(" of ")[-1])
    b = plot_dataset_sample("stripes", "scratch", n, image_size=32)  # wraps to #0
    np.testing.assert_array_equal(a.axes[0].images[0].get_array(), b.axes[0].images[0].get_array())
    with pytest.raises(ValueError, match="defect type"):
        plot_dataset_sample("stripes", "crack", 0, image_size=32)
    with pytest.raises(ValueError, match="unknown data"):
        plot_dataset_sample("nope", "good", 0, image_size=32)


def test_sample_explorer_rerenders_on_every_control():
    pytest.importorskip("ipywidgets")
    from dskd.widgets import sample_explorer

    e = sample_explorer(data="disc", defect_type="scratch", image_size=32)
    assert e.renders == 1
    first = e.last_figure.axes[0].images[0].get_array().copy()
    e.controls["index"].value = 1
    assert e.renders == 2
    assert not np.array_equal(first, e.last_figure.axes[0].images[0].get_array())
    e.controls["defect_type"].value = "hole"
    assert e.renders == 3 and e.last_values["defect_type"] == "hole"
    e.controls["data"].value = "stripes"  # "hole" exists there too: kept
    assert e.last_values == {"data": "stripes", "defect_type": "hole", "index": 1}
    assert "stripes" in e.last_figure._suptitle.get_text()
    with pytest.raises(ValueError, match="unknown data"):
        sample_explorer(data="nope")
    with pytest.raises(ValueError, match="defect type"):
        sample_explorer(data="disc", defect_type="crack")
