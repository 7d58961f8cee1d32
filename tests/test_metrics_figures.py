"""Figures and the explorer of chapter 9 (Sec. 4.1.3: AUROC, PRO and its variants)."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

from dskd.metrics import pro_score, pro_variants, roc_curve  # noqa: E402
from dskd.plotting import plot_pro_regions, plot_pro_threshold, plot_pro_variants, plot_roc_curves  # noqa: E402
from dskd.plotting.metrics import regions  # noqa: E402

TD = dict(teacher="random init (no pretraining)", data="synthetic/disc, 32x32")


@pytest.fixture(scope="module")
def fake_set():
    """5 images of 32 x 32: images 1 and 3 hold two regions each (one touches diagonally: still one
    8-connected region), image 4 one; maps are noise plus a bump on each region."""
    rng = np.random.default_rng(0)
    masks = np.zeros((5, 32, 32), np.uint8)
    masks[1, 4:10, 4:10] = 1
    masks[1, 20:24, 20:30] = 1
    masks[3, 2:6, 2:6] = 1
    masks[3, 6:9, 6:9] = 1  # touches (5, 5) diagonally
    masks[3, 20:30, 3:6] = 1
    masks[4, 10:20, 10:20] = 1
    maps = rng.random((5, 32, 32)).astype(np.float32) + 0.8 * masks * rng.random((5, 32, 32))
    images = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return images, masks, maps


def test_regions_are_8_connected(fake_set):
    _, masks, _ = fake_set
    found = regions(masks)
    assert [i for i, _ in found] == [1, 1, 3, 3, 4]
    assert sorted(int(r.sum()) for _, r in found) == [16 + 9, 30, 36, 40, 100]


def test_roc_figure(fake_set):
    _, masks, maps = fake_set
    scores, labels = maps.reshape(5, -1).max(1), masks.reshape(5, -1).max(1)
    fig = plot_roc_curves(roc_curve(labels, scores)[:2], roc_curve(masks, maps)[:2], image_auroc=0.5,
                          pixel_auroc=0.8, **TD)
    assert "teacher:" in fig._suptitle.get_text()
    for ax in fig.axes:
        assert "false positive rate" in ax.get_xlabel() and "true positive rate" in ax.get_ylabel()
    assert "AUROC = 0.800" in [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    plt.close(fig)


def test_pro_regions_figure(fake_set):
    _, masks, maps = fake_set
    fig = plot_pro_regions(masks, maps, n_thresholds=40, **TD)
    assert "5 regions in 5 images" in fig.axes[0].get_title()
    legend = " ".join(t.get_text() for t in fig.axes[1].get_legend().get_texts())
    assert f"PRO = {pro_score(masks, maps):.3f}" in legend
    assert fig.axes[0].get_xlabel().startswith("FPR") and fig.axes[0].get_ylabel().startswith("overlap")
    assert len(fig.axes[0].lines) == 5 + 1  # one line per region + the PRO curve
    plt.close(fig)
    with pytest.raises(ValueError, match="both anomalous and normal"):
        plot_pro_regions(np.zeros_like(masks), maps, **TD)
    with pytest.raises(ValueError, match="one shape"):
        plot_pro_regions(masks, maps[:, :16], **TD)


def test_pro_variants_figure(fake_set):
    _, masks, maps = fake_set
    v = pro_variants(masks, maps)
    fig = plot_pro_variants({"toy": v, "other": {k: x + 0.01 for k, x in v.items()}}, **TD)
    ax = fig.axes[0]
    assert len(ax.patches) == 8 and ax.get_ylabel().startswith("PRO")
    assert f"{v['exact']:.3f}" in [t.get_text() for t in ax.texts]
    plt.close(fig)
    with pytest.raises(ValueError, match="'exact'"):
        plot_pro_variants({"toy": {"stpm": 0.5}}, **TD)
    with pytest.raises(ValueError, match="empty"):
        plot_pro_variants({}, **TD)


def test_pro_threshold_figure_values(fake_set):
    images, masks, maps = fake_set
    t = 0.9
    fig = plot_pro_threshold(images, masks, maps, index=3, threshold=t, **TD)
    m = masks > 0
    fpr = (maps[~m] >= t).mean()
    pro = np.mean([(maps[i][r] >= t).mean() for i, r in regions(masks)])
    assert f"FPR {fpr:.3f}, PRO {pro:.3f} over 5 regions" in fig.axes[3].get_title()
    assert "2 defect region(s)" in fig.axes[0].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="index must be in 0..4"):
        plot_pro_threshold(images, masks, maps, index=5, threshold=t, **TD)
    with pytest.raises(ValueError, match="same number of images"):
        plot_pro_threshold(images[:3], masks, maps, index=0, threshold=t, **TD)


def test_pro_threshold_explorer_redraws(fake_set):
    from dskd.widgets import pro_threshold_explorer

    images, masks, maps = fake_set
    ex = pro_threshold_explorer(images, masks, maps, **TD)
    assert ex.renders == 1 and ex.last_values["index"] == 1
    binarised = np.array(ex.last_figure.axes[2].images[0].get_array())
    title = ex.last_figure.axes[3].get_title()
    ex.controls["threshold"].value = float(maps.max()) - 0.05
    assert ex.renders == 2
    assert not np.array_equal(binarised, np.array(ex.last_figure.axes[2].images[0].get_array()))
    assert ex.last_figure.axes[3].get_title() != title
    ex.controls["index"].value = 4
    assert ex.renders == 3 and "1 defect region(s)" in ex.last_figure.axes[0].get_title()
    with pytest.raises(ValueError, match="outside the map range"):
        pro_threshold_explorer(images, masks, maps, threshold=99.0, **TD)
