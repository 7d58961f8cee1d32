"""Loss figures and the loss explorer (Eq. 3 to 7)."""
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt

from dskd.losses import pyramid_loss
from dskd.plotting import loss_contributions, plot_distillation_map, plot_loss_forms


def _panels(fig):
    """The figure's axes without its colorbars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _pyramid(seed, b=1, size=32):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(b, c, size // s, size // s, generator=g) for c, s in ((8, 4), (16, 8), (32, 16))]


@pytest.mark.parametrize("normalization", ["unit", "eq3"])
@pytest.mark.parametrize("loss_form", ["pixel", "flat"])
def test_contributions_average_to_the_packages_loss_term(normalization, loss_form):
    ref, stu = _pyramid(0, b=2), _pyramid(1, b=2)
    for t, s in zip(ref, stu):
        t, s = t.double(), s.double()
        c = loss_contributions(t, s, 0.3, normalization, loss_form)
        assert c.shape == (2, t.shape[2], t.shape[3])
        torch.testing.assert_close(c.mean(), pyramid_loss([t], [s], 0.3, normalization, loss_form))


def test_contributions_reject_unknown_options():
    a = torch.rand(1, 4, 3, 3)
    with pytest.raises(ValueError, match="loss_form"):
        loss_contributions(a, a, loss_form="mean")
    with pytest.raises(ValueError, match="normalization"):
        loss_contributions(a, a, normalization="l1", loss_form="flat")


def test_distillation_map_figure_is_titled_and_labelled():
    ref, stu = _pyramid(0), _pyramid(1)
    image, mask = torch.randn(3, 32, 32), torch.zeros(1, 32, 32)
    mask[:, 8:16, 8:16] = 1
    fig = plot_distillation_map(image, ref, stu, mask, lam=0.1, level=2, teacher="random init", data="toy")
    panels = _panels(fig)
    assert len(panels) == 3 and len(fig.axes) == 4  # image, map, scatter + the map's colorbar
    assert "teacher: random init" in fig._suptitle.get_text()
    assert "level k=2" in panels[1].get_title()
    assert panels[2].get_xlabel() and panels[2].get_ylabel()
    fig2 = plot_distillation_map(None, ref, stu, teacher="t", data="d")
    assert len(_panels(fig2)) == 2
    with pytest.raises(ValueError, match="level"):
        plot_distillation_map(None, ref, stu, level=4, teacher="t", data="d")
    with pytest.raises(ValueError, match="depth"):
        plot_distillation_map(None, ref, stu[:2], teacher="t", data="d")
    plt.close("all")


def test_unit_map_lies_on_the_identity_line_and_lambda_only_rescales():
    ref, stu = _pyramid(2), _pyramid(3)
    fig = plot_distillation_map(None, ref, stu, lam=10.0, teacher="t", data="d")
    assert "rank correlation 1.000" in _panels(fig)[-1].get_title()
    a = fig.axes[0].images[0].get_array()
    fig = plot_distillation_map(None, ref, stu, lam=0.1, teacher="t", data="d")
    b = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(np.asarray(a) / np.asarray(b), 11 / 1.1, rtol=1e-6)
    plt.close("all")


def test_loss_forms_figure_and_its_errors():
    t = torch.rand(1, 4, 6, 6)
    fig = plot_loss_forms(t, t * 2)  # rescaled: per-pixel loss 0, flat loss 0 too (uniform scale)
    panels = _panels(fig)
    assert len(panels) == 4 and all(ax.get_title() for ax in panels)
    assert all(ax.get_ylabel() for ax in fig.axes if ax not in panels)  # labelled colorbars
    assert "= 0.0000" in panels[2].get_title() and "= 0.0000" in panels[3].get_title()
    with pytest.raises(ValueError, match="shape"):
        plot_loss_forms(t, t[:, :2])
    plt.close("all")


def test_loss_explorer_rerenders_when_controls_move():
    pytest.importorskip("ipywidgets")
    from dskd.widgets import loss_explorer

    ref = _pyramid(0)
    students = {"a": _pyramid(1), "b": _pyramid(2)}
    ex = loss_explorer(torch.randn(3, 32, 32), ref, students, teacher="t", data="d")
    n = ex.renders
    before = np.asarray(ex.last_figure.axes[1].images[0].get_array()).copy()
    ex.controls["normalization"].value = "eq3"
    assert ex.renders == n + 1
    after = np.asarray(ex.last_figure.axes[1].images[0].get_array())
    assert not np.allclose(before, after)
    ex.controls["student"].value = "b"
    ex.controls["loss_form"].value = "flat"
    ex.controls["level"].value = 3
    assert ex.renders == n + 4 and ex.last_values["level"] == 3
    assert ex.last_figure.axes[1].images[0].get_array().shape == (2, 2)
    ex.controls["lam"].value = 10.0
    assert "λ = 10" in ex.last_figure._suptitle.get_text()
    with pytest.raises(ValueError, match="empty"):
        loss_explorer(None, ref, {}, teacher="t", data="d")
    with pytest.raises(ValueError, match="shapes"):
        loss_explorer(None, ref, {"x": _pyramid(1, size=64)}, teacher="t", data="d")
    plt.close("all")
