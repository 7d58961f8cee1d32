"""Figures and explorers of chapter 8 (Algorithm 2, Eq. 8 to 10, thresholds)."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

from dskd.plotting import confusion_counts, plot_inference_settings, plot_inference_steps, plot_threshold  # noqa: E402

TD = dict(teacher="random init (no pretraining)", data="synthetic/disc, 32x32")


@pytest.fixture(scope="module")
def fake_set():
    """6 images of 32 x 32; images 1, 2, 4, 5 have a square defect that the layer maps light up."""
    g = torch.Generator().manual_seed(0)
    n, size = 6, 32
    images = torch.randn(n, 3, size, size, generator=g)
    masks = torch.zeros(n, size, size)
    labels = torch.tensor([0, 1, 1, 0, 1, 1])
    for i in np.flatnonzero(labels.numpy()):
        masks[i, 8 + i:16 + i, 10:18] = 1
    layer_maps = 0.2 * torch.rand(3, n, size, size, generator=g) + torch.tensor([1.0, 0.5, 0.2]).view(3, 1, 1, 1) * masks
    return images, layer_maps, masks, labels


def _labelled(fig):
    titled = [ax for ax in fig.axes if ax.get_title() or ax.get_xlabel() or ax.get_ylabel()]
    assert titled and fig._suptitle is not None and "teacher:" in fig._suptitle.get_text()


def test_inference_steps_figure(fake_set):
    images, layer_maps, masks, _ = fake_set
    native = [torch.rand(8, 8), torch.rand(4, 4), torch.rand(2, 2)]
    fig = plot_inference_steps(images[1], native, layer_maps[:, 1].sum(0), layer_maps[:, 1].sum(0), masks[1],
                               sigma=4, **TD)
    _labelled(fig)
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "Eq. 8" in titles and "Eq. 9" in titles and "Eq. 10" in titles and "8×8" in titles
    plt.close(fig)


def test_inference_settings_figure_and_errors(fake_set):
    images, layer_maps, masks, labels = fake_set
    fig = plot_inference_settings(images, layer_maps, masks, labels, index=1, sigma=2, layers=(1, 3), **TD)
    _labelled(fig)
    assert "M1+M3" in fig._suptitle.get_text() and "image AUROC 1.000" in fig.axes[2].get_title()
    assert fig.axes[2].get_xlabel().startswith("image score")
    plt.close(fig)
    with pytest.raises(ValueError, match="index must be in 0..5"):
        plot_inference_settings(images, layer_maps, masks, labels, index=6, **TD)
    with pytest.raises(ValueError, match="non-empty subset"):
        plot_inference_settings(images, layer_maps, masks, labels, layers=(4,), **TD)
    with pytest.raises(ValueError, match=r"layer_maps must be \(3, N, H, W\)"):
        plot_inference_settings(images, layer_maps[:2], masks, labels, **TD)
    with pytest.raises(ValueError, match="same number of images"):
        plot_inference_settings(images[:5], layer_maps, masks, labels, **TD)


def test_confusion_counts_and_threshold_figure():
    scores, labels = np.array([0.1, 0.2, 0.6, 0.7, 0.4]), np.array([0, 0, 1, 1, 1])
    assert confusion_counts(labels, scores, 0.5) == {"TP": 2, "FN": 1, "FP": 0, "TN": 2}
    assert confusion_counts(labels, scores, 0.2) == {"TP": 3, "FN": 0, "FP": 1, "TN": 1}  # >= (Eq. 1)
    fig = plot_threshold(scores, labels, 0.5, normal_scores=[0.15, 0.3], marks={"paper": 0.4}, **TD)
    _labelled(fig)
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert "TP\n2" in texts and "FN\n1" in texts and "TN\n2" in texts and "FP\n0" in texts
    assert "67% of anomalous" in fig.axes[1].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="differ in length"):
        plot_threshold(scores, labels[:3], 0.5, **TD)
    with pytest.raises(ValueError, match="finite"):
        plot_threshold(scores, labels, float("nan"), **TD)


def test_inference_explorer_redraws(fake_set):
    from dskd.widgets import inference_explorer

    images, layer_maps, masks, labels = fake_set
    ex = inference_explorer(images, layer_maps, masks, labels, **TD)
    assert ex.renders == 1 and ex.last_values["index"] == 1  # the first anomalous image
    before = np.array(ex.last_figure.axes[1].images[0].get_array())
    ex.controls["sigma"].value = 0.0
    assert ex.renders == 2
    after_sigma = np.array(ex.last_figure.axes[1].images[0].get_array())
    assert not np.allclose(before, after_sigma)
    ex.controls["layers"].value = (3,)
    assert ex.renders == 3 and "M3" in ex.last_figure._suptitle.get_text()
    assert not np.allclose(after_sigma, np.array(ex.last_figure.axes[1].images[0].get_array()))
    ex.controls["index"].value = 0
    assert ex.renders == 4 and "normal" in ex.last_figure.axes[0].get_title()
    with pytest.raises(ValueError, match="subset"):
        inference_explorer(images, layer_maps, masks, labels, layers=(3, 1), **TD)


def test_threshold_explorer_redraws():
    from dskd.widgets import threshold_explorer

    scores, labels = np.array([0.1, 0.2, 0.6, 0.7, 0.4]), np.array([0, 0, 1, 1, 1])
    ex = threshold_explorer(scores, labels, threshold=0.5, marks={"paper": 0.4}, **TD)
    assert "TP\n2" in [t.get_text() for t in ex.last_figure.axes[1].texts]
    ex.controls["threshold"].value = 0.15
    assert ex.renders == 2
    assert "FP\n1" in [t.get_text() for t in ex.last_figure.axes[1].texts]
    with pytest.raises(ValueError, match="outside the score range"):
        threshold_explorer(scores, labels, threshold=5.0, **TD)
    with pytest.raises(ValueError, match="must be non-empty and match"):
        threshold_explorer(scores, labels[:2], **TD)
