"""Figures of chapter 16 (dskd/plotting/teacher.py): pretraining grids, teachers side by side, recorded candidates."""
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt

from dskd.plotting import (
    plot_image_grid, plot_teacher_candidates, plot_teacher_defect_types, plot_teacher_distance_maps,
    plot_teacher_features, plot_teacher_filters, plot_teacher_scores,
)
from dskd.plotting.teacher import filter_mosaic
from dskd.pretrain import PretrainConfig, fractal_dataset


def teardown_function():
    plt.close("all")


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _pyramid(seed, size=32):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, c, size // s, size // s, generator=g) for c, s in ((8, 4), (16, 8), (32, 16))]


def test_image_grid_shows_fractal_categories_row_by_row():
    images, labels = fractal_dataset(PretrainConfig(n_categories=3, per_category=4, image_size=16))
    fig = plot_image_grid(images, n_cols=4, title="fractals", source="test",
                          row_labels=[f"category {c}" for c in range(3)])
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 12 and labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    np.testing.assert_allclose(shown[5].images[0].get_array(), images[5].permute(1, 2, 0).numpy())
    assert shown[4].get_ylabel() == "category 1" and "12 images, 16x16 px" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="row labels"):
        plot_image_grid(images, n_cols=4, title="t", source="s", row_labels=["a"])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        plot_image_grid(images * 3 - 1, n_cols=4, title="t", source="s")


def test_filter_mosaic_places_each_filter_on_its_own_scale():
    w = torch.zeros(3, 3, 2, 2)
    w[1, 0, 0, 0] = 5.0
    w[2, 2, 1, 1] = -0.1
    m = filter_mosaic(w, n_cols=2, gap=1)
    assert m.shape == (5, 5, 3)
    assert m[0, 3, 0] == pytest.approx(1.0) and m[0, 0, 0] == pytest.approx(0.5)  # filter 1 at (0, 1); 0 is grey
    assert m[4, 1, 2] == pytest.approx(0.0)  # filter 2 (row 1, col 0), its most negative weight is black
    assert m[2, 2, 0] == 1.0  # the gap is white
    with pytest.raises(ValueError, match="C_out, 3"):
        filter_mosaic(torch.zeros(2, 1, 3, 3))


def test_missing_teachers_get_a_message_panel_and_never_other_weights():
    w = torch.randn(64, 3, 7, 7)
    fig = plot_teacher_filters({"random: random init": w, "imagenet": "not in the torch cache"})
    assert [ax.get_title() for ax in fig.axes] == ["random: random init", "imagenet"]
    assert len(fig.axes[0].images) == 1 and not fig.axes[1].images
    assert any("not in the torch cache" in t for t in _texts(fig))
    fig = plot_teacher_features(torch.randn(3, 32, 32), {"random": _pyramid(0), "offline": "file missing"},
                                data="toy", n_channels=2)
    maps = [ax for ax in fig.axes if ax.images]
    assert len(maps) == 1 + 6 + 1  # random: input + 2 channels x 3 levels; offline: only its input
    assert any("file missing" in t for t in _texts(fig)) and "teacher: random | data: toy" in fig._suptitle.get_text()
    assert maps[1].images[0].get_array().shape == (8, 8) and maps[6].images[0].get_array().shape == (2, 2)


def test_score_histograms_and_distance_maps_name_each_teacher():
    scores = {"random": {"normal": torch.rand(6), "defective": torch.rand(4) + 1}, "imagenet": "absent"}
    fig = plot_teacher_scores(scores, aurocs={"random": 0.75}, data="toy")
    assert "image AUROC 0.75" in fig.axes[0].get_title() and fig.axes[0].get_xlabel()
    assert any("absent" in t for t in _texts(fig))
    images, masks = torch.randn(2, 3, 32, 32), torch.zeros(2, 1, 32, 32)
    masks[1, :, 2:6, 2:6] = 1
    maps = {"random": torch.rand(2, 4, 4), "offline": 2 * torch.rand(2, 4, 4), "imagenet": "absent"}
    fig = plot_teacher_distance_maps(images, masks, maps, row_labels=["good", "crack"], data="toy")
    grid = [ax for ax in fig.axes if ax.images]
    assert len(grid) == 2 * 3
    assert grid[0].get_ylabel() == "good" and grid[3].get_ylabel() == "crack"
    assert grid[2].images[0].get_clim() == grid[5].images[0].get_clim() == (0.0, float(maps["offline"].max()))
    assert any("absent" in t for t in _texts(fig))
    with pytest.raises(ValueError, match="row labels"):
        plot_teacher_distance_maps(images, masks, maps, row_labels=["x"], data="toy")


def test_candidates_and_defect_type_figures():
    rows = [{"candidate": "random", "recipe": "none", "knn_image_auroc": 0.52, "ds_image_auroc": 0.55, "ds_epochs": 3},
            {"candidate": "run.pt", "recipe": "fractal", "knn_image_auroc": 0.71, "ds_image_auroc": None,
             "ds_epochs": None}]
    fig = plot_teacher_candidates(rows, goal=0.8, data="mt-defects")
    texts = _texts(fig)
    assert "0.520" in texts and "0.550 (3 ep.)" in texts and "not measured" in texts
    assert any("goal 0.80" in t.get_text() for t in fig.axes[1].get_legend().get_texts())
    summary = {"offline-pretrained": {"crack": (0.7, 0.05, 3), "fray": (0.9, 0.01, 3)},
               "random": {"crack": (0.5, 0.02, 3)}}
    fig = plot_teacher_defect_types(summary, goal=0.8, teacher="t", data="d")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["crack", "fray"]
    heights = [p.get_height() for p in ax.patches]
    assert heights[:2] == pytest.approx([0.7, 0.9]) and heights[2] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no defect type"):
        plot_teacher_defect_types({"a": {}}, goal=None, teacher="t", data="d")
    with pytest.raises(ValueError, match="at least one candidate"):
        plot_teacher_candidates([], goal=0.8, data="d")
