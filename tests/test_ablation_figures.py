"""The ablation chapters' package side (10 to 13): recorded studies read back with their provenance,
tables beside the paper's, example-map galleries and the explorer."""
import matplotlib

matplotlib.use("Agg")
import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

from dskd.ablation import (  # noqa: E402
    PAPER_RESULTS, RECORDING, ablate_command, kendall_tau, level_discrepancy, load_study, map_contrast, order_by,
    paper_order, results_table, run_study, summarize, summarize_per_type, teacher_caveat,
)
from dskd.config import TrainConfig  # noqa: E402
from dskd.models import teacher_available  # noqa: E402
from dskd.plotting import (  # noqa: E402
    plot_level_discrepancy, plot_study_comparison, plot_study_per_type, plot_variant_gallery, plot_variant_maps,
)

TINY = TrainConfig.quick(teacher="random", image_size=32, epochs=1, n_train=8, n_test=12, batch_size=8)
RANDOM = "random init (no pretraining)"


def _record(variant, seed, auroc, per_type=None, teacher=RANDOM, epochs=3):
    return {"variant": variant, "seed": seed, "image_auroc": auroc, "pixel_auroc": 0.6, "pro": 0.4,
            "per_defect_type": per_type or {}, "provenance": {"teacher": teacher, "command": "dskd ablate"},
            "config": {"epochs": epochs}}


@pytest.fixture
def examples():
    """Five example images: two normal, two 'hole', one 'crack'; maps of two variants, the second = 11 x
    the first (what lambda = 10 does to a unit-normalised map)."""
    g = np.random.default_rng(0)
    n, s = 5, 16
    masks = np.zeros((n, s, s), np.uint8)
    masks[2, 4:8, 4:8] = masks[3, 8:12, 8:12] = masks[4, 2:4, :] = 1
    base = 0.1 * g.random((n, s, s)) + masks
    return {"indices": np.arange(n), "images": g.integers(0, 256, (n, s, s, 3), dtype=np.uint8), "masks": masks,
            "defect_types": ["good", "good", "hole", "hole", "crack"],
            "maps": {"lambda=0": base.astype(np.float32), "lambda=10": (11 * base).astype(np.float32)}}


def _names_teacher(fig, teacher=RANDOM):
    assert fig._suptitle is not None and f"teacher: {teacher}" in fig._suptitle.get_text().replace("\n", " ")


def test_ablate_command_names_the_recording():
    cmd = ablate_command("architecture")
    assert cmd.startswith("DSKD_DATA=<folder> dskd ablate --study architecture --preset paper")
    assert f"--dataset {RECORDING['dataset']}" in cmd and f"--teacher {RECORDING['teacher']}" in cmd
    assert "--seeds 0,1,2" in cmd
    assert ("--epochs <E>" in cmd) == (RECORDING["epochs"] is None)
    assert "--epochs 7 " in ablate_command("sigma", epochs=7) and "--seeds 4" in ablate_command("sigma", seeds=[4])
    with pytest.raises(ValueError, match="unknown study"):
        ablate_command("tables")


def test_teacher_caveat_says_what_a_teacher_means():
    assert "near chance" in teacher_caveat([RANDOM], "mt-defects, 128x128")
    assert "synthetic defects it works" in teacher_caveat([RANDOM], "synthetic/disc, 64x64")
    assert "not the paper's ImageNet teacher" in teacher_caveat(["offline-pretrained (no ImageNet; sha256 x)"])
    assert teacher_caveat(["ImageNet (ResNet18_Weights.IMAGENET1K_V1)"]) == "The ImageNet teacher is the paper's."
    assert "E-D has no teacher" in teacher_caveat(["none (E-D has no teacher)"])


def test_rankings_and_kendall_tau():
    rows = [{"variant": "a", "image_auroc": 0.7}, {"variant": "b", "image_auroc": math.nan},
            {"variant": "c", "image_auroc": 0.9}]
    assert order_by(rows) == ["c", "a", "b"]
    assert paper_order("architecture") == ["DS", "T-D", "T-E", "E-D"]
    assert paper_order("layers", "pro") == ["M1-3", "M2", "M3", "M1"]
    assert kendall_tau(["a", "b", "c"], ["a", "b", "c"]) == 1.0
    assert kendall_tau(["a", "b", "c"], ["c", "b", "a"]) == -1.0
    assert kendall_tau(["a", "b", "c"], ["a", "c", "b"]) == pytest.approx(1 / 3)
    assert kendall_tau(["a", "x"], ["a", "b"]) != kendall_tau(["a", "x"], ["a", "b"])  # NaN: one common name


def test_results_table_sets_ours_beside_the_paper():
    rows = summarize([_record("DS", 0, 0.8), _record("DS", 1, 0.6), _record("T-E", 0, 0.5)], "architecture")
    table = results_table(rows, "architecture")
    lines = table.splitlines()
    assert "ours: image AUROC" in lines[0] and "paper: PRO" in lines[0]
    assert lines[2].startswith("| DS | 2 | 70.0 ± 14.1 |") and lines[2].endswith("| 98.5 | 97.6 | 93.5 |")
    assert lines[4] == "| T-D | 0 | — | — | — | 97.8 | 97.1 | 93.1 |"  # paper only
    assert "paper" not in results_table(summarize([_record("lambda=0", 0, 0.5)], "lambda"), "lambda")


def test_summarize_per_type_means_over_seeds():
    pt = lambda a: {"crack": {"image_auroc": a, "pixel_auroc": None, "pro": 0.1}}  # noqa: E731
    recs = [_record("M1", 0, 0.5, pt(0.6)), _record("M1", 1, 0.5, pt(0.8)), _record("M2", 0, 0.5, pt(None))]
    variants, types, table = summarize_per_type(recs, "layers")
    assert variants == ["M1", "M2"] and types == ["crack"]
    assert table[0, 0] == pytest.approx(0.7) and np.isnan(table[1, 0])
    assert np.isnan(summarize_per_type(recs, "layers", "pixel_auroc")[2]).all()
    with pytest.raises(ValueError, match="unknown metric"):
        summarize_per_type(recs, "layers", "f1")


def test_map_contrast_is_scale_free(examples):
    c = map_contrast(examples)
    assert c["lambda=0"] == pytest.approx(c["lambda=10"], rel=1e-5) and c["lambda=0"] > 5
    assert map_contrast({}) == {}
    with pytest.raises(ValueError, match="at least one normal image"):
        map_contrast({**examples, "defect_types": ["hole"] * 5})


def test_missing_study_reads_as_absent(tmp_path):
    r = load_study(tmp_path, "dfe")
    assert not r.present and r.records == [] and r.examples == {} and r.description == "no recorded results"
    assert r.path == tmp_path / "dfe.json"
    fig = plot_study_comparison(r.rows, study="dfe", teacher="offline-pretrained (to be recorded)", data="mt-defects",
                                paper=PAPER_RESULTS["dfe"], missing=ablate_command("dfe"))
    _names_teacher(fig, "offline-pretrained (to be recorded)")
    assert fig.axes[1].get_title() == "ours: none recorded yet"
    assert any("dskd ablate --study dfe" in t.get_text().replace("\n", " ") for t in fig.axes[1].texts)
    assert fig.axes[0].get_ylabel().startswith("score") and "MVTec AD" in fig.axes[0].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="unknown study"):
        load_study(tmp_path, "tables")


def test_gallery_and_variant_maps(examples):
    td = dict(teacher=RANDOM, data="synthetic/disc, 16x16, 3 epochs, seed 0", study="lambda")
    fig = plot_variant_gallery(examples, **td)
    _names_teacher(fig)
    assert "3 epochs" in fig._suptitle.get_text() and "shared colour scale" in fig._suptitle.get_text()
    rows = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel() in ("good", "hole", "crack")]
    assert rows == ["good", "crack", "hole"]  # one row per type, 'good' first, then sorted
    assert "lambda=0\nmax" in " ".join(ax.get_title() for ax in fig.axes)
    ims = [im for ax in fig.axes for im in ax.get_images() if im.get_array().ndim == 2 and im.cmap.name == "inferno"]
    assert len({im.get_clim() for im in ims}) == 1  # one shared scale
    plt.close(fig)
    fig = plot_variant_gallery(examples, per_type=2, scale="per variant", **td)
    ims = [im for ax in fig.axes for im in ax.get_images() if im.get_array().ndim == 2 and im.cmap.name == "inferno"]
    assert len(ims) == 2 * 5 and len({im.get_clim() for im in ims}) == 2
    plt.close(fig)
    fig = plot_variant_maps(examples, defect_type="hole", index=1, **td)
    _names_teacher(fig)
    assert fig.axes[0].get_title() == "hole (test image 3)" and fig.axes[1].get_title().startswith("ground truth")
    plt.close(fig)
    with pytest.raises(ValueError, match="no example of defect type 'scratch'"):
        plot_variant_maps(examples, defect_type="scratch", **td)
    with pytest.raises(ValueError, match=r"index must be in 0..0 for 'crack'"):
        plot_variant_maps(examples, defect_type="crack", index=1, **td)
    with pytest.raises(ValueError, match=r"no example maps for variants \['lambda=1'\]"):
        plot_variant_gallery(examples, variants=["lambda=1"], **td)
    with pytest.raises(ValueError, match="scale must be"):
        plot_variant_gallery(examples, scale="log", **td)
    with pytest.raises(ValueError, match="no example maps"):
        plot_variant_gallery({}, **td)


def test_per_type_figure_and_levels_figure():
    fig = plot_study_per_type(["DS", "T-E"], ["crack", "hole"], np.array([[0.9, np.nan], [0.6, 0.7]]),
                              study="architecture", metric="pro", teacher=RANDOM, data="mt-defects")
    ax = fig.axes[0]
    assert RANDOM in ax.get_title() and ax.get_xlabel().startswith("defect type") and ax.get_ylabel() == "variant"
    assert [t.get_text() for t in ax.texts] == ["90.0", "—", "60.0", "70.0"]
    plt.close(fig)
    with pytest.raises(ValueError, match="expected \\(2, 2\\)"):
        plot_study_per_type(["DS", "T-E"], ["crack", "hole"], np.zeros((2, 3)), study="a", metric="pro",
                            teacher=RANDOM, data="d")
    lv = {"normal": [0.1, 0.2, 0.3], "defect": [0.3, 0.3, 0.3], "contrast": [3.0, 1.5, 1.0]}
    fig = plot_level_discrepancy({"with DFE": lv, "without DFE": lv}, teacher=RANDOM, data="d")
    _names_teacher(fig)
    assert fig.axes[0].get_ylabel().startswith("mean M_k") and fig.axes[1].get_xlabel().startswith("pyramid level")
    plt.close(fig)
    with pytest.raises(ValueError, match="levels is empty"):
        plot_level_discrepancy({}, teacher=RANDOM, data="d")


def test_teacher_available_needs_no_download(tmp_path, monkeypatch):
    assert teacher_available("random")
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path))
    assert not teacher_available("imagenet")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"")
    assert teacher_available("imagenet")
    assert not teacher_available(str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="unknown teacher"):
        teacher_available("vgg")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A real, tiny architecture study (two seeds) written by the runner, read back."""
    out = tmp_path_factory.mktemp("ablations")
    run_study("architecture", TINY, seeds=(0, 1), out_dir=out, progress=False)
    return load_study(out / "synthetic-disc", "architecture")


@pytest.mark.slow
def test_recorded_study_reads_back_with_provenance(recorded):
    r = recorded
    assert r.present and [row["variant"] for row in r.rows] == ["DS", "T-E", "T-D", "E-D"]
    assert r.teachers == [RANDOM, "none (E-D has no teacher)"] and r.teacher == f"{RANDOM}; E-D: none"
    assert r.description == "synthetic/disc, 32x32, 1 epochs, seeds 0,1" and r.epochs == [1] and r.seeds == [0, 1]
    assert r.random_teacher and "synthetic defects it works" in r.caveat()
    assert list(r.examples["maps"]) == ["DS", "T-E", "T-D", "E-D"]  # the study's order, not the file's
    fig = plot_study_comparison(r.rows, study="architecture", teacher=r.teacher, data=r.description,
                                paper=PAPER_RESULTS["architecture"])
    _names_teacher(fig, r.teacher)
    assert r.description in fig.axes[1].get_title() and fig.axes[1].get_ylabel().startswith("score")
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == ["DS (n=2)", "T-E (n=2)", "T-D (n=2)", "E-D (n=2)"]
    plt.close(fig)
    variants, types, table = summarize_per_type(r.records, "architecture")
    assert table.shape == (4, len(types)) and "good" not in types
    fig = plot_variant_gallery(r.examples, teacher=r.teacher, data=r.description, study="architecture")
    _names_teacher(fig, r.teacher)
    plt.close(fig)


@pytest.mark.slow
def test_level_discrepancy_on_a_trained_model():
    from dskd import dataset_for, train_or_load

    model = train_or_load(TINY, progress=False).model
    lv = level_discrepancy(model, dataset_for(TINY, "test"), batch_size=5)
    assert set(lv) == {"normal", "defect", "contrast"} and all(len(v) == 3 for v in lv.values())
    assert lv["contrast"] == pytest.approx([d / n for d, n in zip(lv["defect"], lv["normal"])])
    assert all(0 <= x <= 2.2 for x in lv["normal"])  # (1 + lambda)(1 - cos) with features >= 0
    again = level_discrepancy(model, dataset_for(TINY, "test"), batch_size=12)  # batching does not matter
    assert again["normal"] == pytest.approx(lv["normal"], rel=1e-5)


def test_ablation_explorer_redraws_and_follows_the_study(examples):
    from dskd.widgets import ablation_explorer

    ex = ablation_explorer(examples, teacher=RANDOM, data="d", study="lambda")
    assert ex.last_values == {"defect_type": "crack", "index": 0, "scale": "shared"}  # first defect type
    assert "teacher: " + RANDOM in ex.last_figure._suptitle.get_text()
    ex.controls["defect_type"].value = "hole"
    assert ex.controls["index"].max == 1
    ex.controls["index"].value = 1
    assert ex.last_figure.axes[0].get_title() == "hole (test image 3)"
    ex.controls["defect_type"].value = "crack"  # only one crack: the index follows
    assert ex.controls["index"].value == 0 and ex.last_figure.axes[0].get_title().startswith("crack")
    ex.controls["scale"].value = "per variant"
    assert "per variant colour scale" in ex.last_figure._suptitle.get_text()

    other = {**examples, "defect_types": ["good", "good", "stain", "stain", "stain"]}
    multi = ablation_explorer({"lambda": examples, "sigma": other}, teacher={"lambda": RANDOM, "sigma": "T2"},
                              data="d")
    multi.controls["study"].value = "sigma"
    assert list(multi.controls["defect_type"].options) == ["good", "stain"]
    assert multi.last_values["study"] == "sigma" and "teacher: T2" in multi.last_figure._suptitle.get_text()
    assert multi.controls["index"].max == 2
    with pytest.raises(ValueError, match="unknown defect type"):
        ablation_explorer(examples, teacher=RANDOM, data="d", defect_type="scratch")


def test_markdown_of_an_absent_and_a_present_study(tmp_path):
    from dskd.ablation import StudyResults, agreement_markdown

    absent = load_study(tmp_path, "layers")
    text = absent.markdown()
    assert text.startswith("**Not recorded yet.**") and ablate_command("layers") in text and str(absent.path) in text
    assert absent.figure_kwargs()["missing"].endswith(ablate_command("layers")) and agreement_markdown(absent) == ""
    recs = [_record("M1", 0, 0.9), _record("M1", 1, 0.7), _record("M2", 0, 0.6), _record("M2", 1, 0.62)]
    present = StudyResults("layers", tmp_path / "layers.json", {"dataset": "mt-defects, 128x128", "records": recs},
                           summarize(recs, "layers"), {})
    text = present.markdown()
    assert "**Recorded**" in text and "3 epochs" in text and f"teacher {RANDOM}" in text and "near chance" in text
    assert "| M1 | 2 | 80.0 ± 14.1 |" in text and "`dskd ablate`" in text
    agree = agreement_markdown(present)
    assert "ours M1 > M2; paper M1-3 > M2 > M1 > M3: the reversed order (Kendall's tau -1.00)" in agree
    assert "M1 leads M2 by 19.0 points" in agree and "within the seed-to-seed spread" in agree
    assert present.figure_kwargs()["data"] == "mt-defects, 128x128, 3 epochs, seeds 0,1"


def test_paper_table_is_the_papers():
    from dskd.ablation import paper_table

    lines = paper_table("dfe").splitlines()
    assert lines[0].startswith("| Table 8: variant |")
    assert lines[2] == "| with DFE | **98.5** | **97.6** | **93.5** |" and lines[3] == "| without DFE | 75.6 | 89.6 | 76.5 |"
    assert "| M1-3 | **98.5** | **97.5** | **93.5** |" in paper_table("layers")
    with pytest.raises(ValueError, match="no table for study 'sigma'"):
        paper_table("sigma")


def test_chance_is_drawn_per_metric():
    """A random map scores 0.5 AUROC but only max_fpr / 2 = 0.15 PRO: each group gets its own chance line."""
    from dskd.plotting.ablation import CHANCE

    rows = [{"variant": "DS", "n_seeds": 2, "image_auroc": 0.9, "image_auroc_std": 0.01, "pixel_auroc": 0.8,
             "pixel_auroc_std": 0.01, "pro": 0.5, "pro_std": 0.02}]
    fig = plot_study_comparison(rows, study="architecture", teacher=RANDOM, data="d")
    ax = fig.axes[-1]
    dashed = [c for c in ax.collections if type(c).__name__ == "LineCollection" and c.get_linestyle()[0][1]]
    levels = sorted((round(float(seg[0][0]), 2), round(float(seg[0][1]), 3))
                    for c in dashed for seg in c.get_segments())
    assert levels == [(-0.45, 0.5), (0.55, 0.5), (1.55, 0.15)]  # (x start, y) of the three groups
    assert CHANCE == {"image_auroc": 0.5, "pixel_auroc": 0.5, "pro": 0.15}
    plt.close(fig)
    fig = plot_study_per_type(["DS"], ["crack"], np.array([[0.4]]), study="a", metric="pro", teacher=RANDOM,
                              data="d")
    assert fig.axes[0].images[0].get_clim() == (0.15, 1.0)
    plt.close(fig)


def test_seed_spreads_are_drawn_by_seaborn_with_every_seed():
    """Bars are the mean over seeds with the standard deviation as error bar (seaborn's barplot), and every
    seed is a dot on its bar (stripplot); the paper's panel has no spread."""
    from matplotlib.collections import PathCollection

    from dskd.ablation import summarize

    recs = [_record("DS", s, v) for s, v in ((0, 0.8), (1, 0.6), (2, 0.7))] + [_record("T-E", 0, 0.5)]
    rows = summarize(recs, "architecture")
    assert rows[0]["image_auroc_seeds"] == [0.8, 0.6, 0.7]
    fig = plot_study_comparison(rows, study="architecture", teacher=RANDOM, data="d")
    ours = fig.axes[-1]
    dots = sum(len(c.get_offsets()) for c in ours.collections if isinstance(c, PathCollection))
    assert dots == 3 * (3 + 1)  # three metrics, four records
    spans = [(np.nanmin(line.get_ydata()), np.nanmax(line.get_ydata())) for line in ours.lines
             if np.isfinite(line.get_ydata()).any()]
    assert any(lo == pytest.approx(0.6) and hi == pytest.approx(0.8) for lo, hi in spans), spans  # 0.7 ± 0.1
    import seaborn  # noqa: F401  (the course lists it; a missing one fails here, not in a chapter)
    plt.close(fig)


def test_a_long_provenance_title_breaks_between_teacher_and_data():
    from dskd.plotting.ablation import _wrap
    from dskd.plotting.style import provenance_title

    title = provenance_title("Ablation 'dfe': the paper beside ours",
                             "offline-pretrained (no ImageNet; sha256 d8cd5801a019)",
                             "mt-defects, 128x128, 40 epochs, seeds 0,1,2")
    assert _wrap(title, 90).split("\n") == [
        "Ablation 'dfe': the paper beside ours", "teacher: offline-pretrained (no ImageNet; sha256 d8cd5801a019)",
        "data: mt-defects, 128x128, 40 epochs, seeds 0,1,2"]
    assert _wrap("teacher: random | data: synthetic", 110) == "teacher: random | data: synthetic"  # fits: one line
