"""Chapter 15's views of `dskd reproduce` results: the runs behind a table, the gaps to the paper, the
figures of Tables 1 to 5, MT Defects per defect type, and the Fig. 7 gallery redrawn from a checkpoint.

Everything is drawn from real result records: tiny `reproduce(...)` runs on the fake data trees of
tests/test_reproduce.py (1 to 2 epochs, 32 px, random teacher)."""
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

from dskd import paper_results as P  # noqa: E402
from dskd.plotting import (  # noqa: E402
    plot_anomaly_grid, plot_learning_curve, plot_per_defect_type, plot_table_comparison, runs_setting,
)
from dskd.reproduce import (  # noqa: E402
    build_tables, collect_results, paper_gaps, redraw_examples, reproduce, run_rows, runs_markdown, table_markdown,
)
from test_reproduce import make_mt, make_mvtec, make_mvtec3d  # noqa: E402

TINY = dict(teacher="random", image_size=32, batch_size=4, device="cpu", progress=False, download=False)


def make_fake_results(root: Path) -> Path:
    """A results folder as `dskd reproduce` writes it: MT Defects (2 seeds, 2 epochs; seed 0 continued to 3
    epochs in ``mt-defects-100-epochs/``), MVTec AD 'bottle' and MVTec 3D-AD 'bagel' (1 epoch each), trained
    on fake data trees under ``root``."""
    out, runs = root / "results", root / "runs"
    reproduce("mt-defects", None, seeds=(0, 1), epochs=2, eval_every=1, out_dir=out, runs_dir=runs,
              data_root=str(make_mt(root / "magnetic-tile")), n_examples=2, **TINY)
    # seed 0 continued to a longer budget, kept apart as results/mt-defects-100-epochs/ is
    reproduce("mt-defects", None, seeds=(0,), epochs=3, eval_every=1, out_dir=out / "mt-defects-100-epochs",
              runs_dir=runs, data_root=str(root / "magnetic-tile"), n_examples=1, **TINY)
    reproduce("mvtec", "bottle", epochs=1, out_dir=out, runs_dir=runs,
              data_root=str(make_mvtec(root / "mvtec_ad", ("bottle",))), **TINY)
    reproduce("mvtec3d", "bagel", epochs=1, out_dir=out, runs_dir=runs,
              data_root=str(make_mvtec3d(root / "mvtec_3d", ("bagel",))), **TINY)
    return out


@pytest.fixture(scope="module")
def fake_results(tmp_path_factory):
    return make_fake_results(tmp_path_factory.mktemp("fake_reproduce"))


def _text(fig):
    """Every title of a figure, with line breaks (titles are wrapped) as single spaces."""
    text = " ".join([fig._suptitle.get_text() if fig._suptitle else ""] + [ax.get_title() for ax in fig.axes])
    return " ".join(text.split())


def test_runs_behind_a_table_name_teacher_epochs_and_device(fake_results):
    t5 = build_tables(fake_results, "mt-defects", command_out_dir="results")["table5"]
    runs = t5["runs"]
    assert [r["seed"] for r in runs] == [0, 1]
    for r in runs:
        rec = json.loads((fake_results / "mt-defects" / f"seed{r['seed']}.json").read_text())
        assert r["teacher"] == rec["provenance"]["teacher"] and r["teacher"].startswith("random")
        assert r["epochs"] == 2 and r["image_size"] == 32 and r["device"] == rec["provenance"]["device"]
        assert r["metrics"]["pro"] == pytest.approx(100 * rec["metrics"]["pro"], abs=0.01)
        assert r["command"] == rec["reproduce_command"] and not r["paper_setting"]
    cell = t5["ours"]["image_auroc"]
    assert cell["epochs"] == [2] and cell["image_size"] == [32] and len(cell["devices"]) == 1
    md = table_markdown(t5, generated=False)
    assert "| Seed | Teacher | Epochs | Image size | Device | Training time | Image AUROC | Pixel AUROC | PRO |" in md
    assert f"| 1 | {runs[1]['teacher']} | 2 | 32x32 | {runs[1]['device']} |" in md
    assert "Generated" not in md and "Generated" in table_markdown(t5)
    # the MVTec tables: a category column, the table's own metrics, the fill command for the repository root
    t1 = build_tables(fake_results, "mvtec", command_out_dir="results")["table1"]
    md1 = table_markdown(t1)
    assert "| Bottle | 0 | random" in md1 and "| Category | Seed |" in md1 and "Pixel AUROC" not in md1.split("Runs")[1]
    assert "dskd reproduce mvtec --category carpet,grid," in md1 and "--out-dir" not in md1.split("```")[1]
    assert "--out-dir" in table_markdown(build_tables(fake_results, "mvtec")["table1"]).split("```")[1]
    # a record lacking fields (an older file) still renders
    assert "| 3 | n/a | n/a | n/a | n/a | n/a | n/a |" in runs_markdown(run_rows([{"seed": 3, "metrics": {}}]),
                                                                       metrics=["pro"])


def test_paper_gaps_are_ours_minus_the_papers(fake_results):
    t5 = build_tables(fake_results, "mt-defects")["table5"]
    gaps = {g["metric"]: g for g in paper_gaps(t5)}
    assert set(gaps) == {"image_auroc", "pixel_auroc", "pro"}
    for i, m in enumerate(("image_auroc", "pixel_auroc", "pro")):
        g = gaps[m]
        assert g["paper"] == P.TABLE5[P.OURS][i] and g["ours"] == t5["ours"][m]["value"]
        assert g["diff"] == pytest.approx(g["ours"] - g["paper"], abs=0.011) and g["n_seeds"] == 2
        assert g["std"] is not None and any("epochs 2" in d for d in g["deviations"])
    tables = build_tables(fake_results, "mvtec")
    g2 = paper_gaps(tables["table2"])
    assert [(g["category"], g["metric"]) for g in g2] == [("bottle", "pixel_auroc"), ("bottle", "pro")]
    assert g2[1]["paper"] == P.TABLE2[P.OURS]["bottle"][1]
    assert paper_gaps(build_tables(fake_results.parent / "nothing", "mvtec3d")["table4"]) == []
    # the JSON the command writes works too
    t3 = json.loads((fake_results / "mvtec3d" / "table3.json").read_text())
    assert [g["category"] for g in paper_gaps(t3)] == ["bagel"] and paper_gaps(t3)[0]["paper"] == 96.1


@pytest.mark.parametrize("benchmark,key", [("mt-defects", "table5"), ("mvtec", "table1"), ("mvtec", "table2"),
                                           ("mvtec3d", "table3"), ("mvtec3d", "table4")])
def test_table_figures_with_and_without_runs(fake_results, benchmark, key):
    with_runs = build_tables(fake_results, benchmark)[key]
    fig = plot_table_comparison(with_runs)
    text = _text(fig)
    teacher, setting = runs_setting(with_runs)
    assert with_runs["table"] in text and f"teacher: {teacher}" in text and "epochs" in setting
    assert "hatched: not the paper's setting" in text
    n_panels = 1 if key == "table5" else (1 if key in ("table1", "table3") else 2)
    assert len(fig.axes) == n_panels
    ax = fig.axes[0]
    heights = sorted(round(b.get_height(), 2) for b in ax.patches)
    assert with_runs["table"] != "Table 5" or P.TABLE5[P.OURS][0] in heights
    no_run = [t for t in ax.texts if t.get_text() == "no run"]
    if key == "table5":
        assert not no_run
    else:  # one category of ours, and no mean (the mean needs every category)
        n = len(with_runs["rows"])
        assert len(no_run) == n - 1 + 1
    plt.close(fig)
    empty = build_tables(fake_results.parent / "nothing", benchmark)[key]
    fig = plot_table_comparison(empty)
    assert "no run of ours yet" in _text(fig) and "no result file" in _text(fig)
    assert len([t for t in fig.axes[0].texts if t.get_text() == "no run"]) == (
        3 if key == "table5" else len(empty["rows"]) + 1)
    plt.close(fig)


def test_per_defect_type_figure(fake_results):
    t5 = build_tables(fake_results, "mt-defects")["table5"]
    fig = plot_per_defect_type(t5)
    ax = fig.axes[0]
    text = _text(fig)
    assert "teacher: random" in text and "epochs 2" in text and "MT Defects" in text and "seeds 0/1" in text
    assert [t.get_text() for t in ax.get_xticklabels()] == ["blowhole", "break", "crack", "fray", "uneven"]
    bars = [b.get_height() for b in ax.patches]
    assert len(bars) == 15
    types = ("blowhole", "break", "crack", "fray", "uneven")
    expected = [t5["per_defect_type"][t]["pixel_auroc"]["value"] for t in types]
    assert [round(h, 2) for h in bars[5:10]] == [pytest.approx(v, abs=0.01) for v in expected]
    lines = {line.get_label(): line.get_ydata()[0] for line in ax.get_lines() if line.get_label().startswith("all")}
    assert lines[f"all types, paper ({P.TABLE5[P.OURS][2]:.1f})"] == P.TABLE5[P.OURS][2]
    assert any(math.isclose(v, t5["ours"]["pro"]["value"]) for k, v in lines.items() if "rebuild" in k)
    plt.close(fig)
    with pytest.raises(ValueError, match="dskd reproduce"):
        plot_per_defect_type(build_tables(fake_results.parent / "nothing", "mt-defects")["table5"])


def test_fig7_gallery_redrawn_from_the_checkpoint(fake_results):
    rec = collect_results(fake_results, "mt-defects")[None][0]
    for name in rec["figures"]:  # the figures the run wrote
        assert (fake_results / "mt-defects" / name).stat().st_size > 0
    ex = redraw_examples(rec, per_type=2)
    assert ex is not None and ex["images"].shape == (10, 3, 32, 32) and ex["maps"].shape == (10, 32, 32)
    assert [t.split("\n")[0] for t in ex["titles"]] == [t for t in ("blowhole", "break", "crack", "fray", "uneven")
                                                        for _ in range(2)]
    # the same maps as evaluating the whole test split (what the run's own figures show)
    from dskd.checkpoint import load_checkpoint
    from dskd.evaluation import predict
    from dskd.training import dataset_for

    model, cfg, _ = load_checkpoint(rec["training"]["checkpoint"])
    full = predict(model, dataset_for(cfg, "test"))
    torch.testing.assert_close(ex["maps"], full.maps[ex["indices"]], rtol=1e-4, atol=1e-5)
    later = redraw_examples(rec, per_type=1, start=1, defect_types=["fray"])
    assert later["indices"] == [ex["indices"][7]]
    fig = plot_anomaly_grid(**{k: v for k, v in ex.items() if k != "indices"})
    assert "teacher: random" in _text(fig) and "Redrawn from checkpoint.pt (2 epochs)" in _text(fig)
    plt.close(fig)
    # checkpoint or data not on this machine: nothing to redraw (the chapter shows the PNGs)
    assert redraw_examples({**rec, "training": {**rec["training"], "checkpoint": "runs/none.pt"}}) is None
    moved = {**rec, "provenance": {**rec["provenance"], "data_root": str(fake_results / "no-data")},
             "config": {**rec["config"], "data_root": str(fake_results / "no-data")}}
    assert redraw_examples(moved) is None


def test_learning_curve_of_the_recorded_runs(fake_results):
    recs = collect_results(fake_results, "mt-defects")[None]
    assert [[p["epoch"] for p in r["training"]["curve"]] for r in recs] == [[1, 2], [1, 2]]
    for r in recs:  # the last point is the result itself
        assert r["training"]["curve"][-1]["image_auroc"] == r["metrics"]["image_auroc"]
    fig = plot_learning_curve(recs, paper=P.TABLE5[P.OURS], goal=0.8)
    text = _text(fig)
    assert "teacher: random" in text and "(2 epochs, scored every 1 epoch)" in text
    assert "data: mt-defects, 32x32, test split" in text
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:3] == ["seed 0", "seed 1", "mean of 2 seeds"] and "goal 0.80" in labels
    assert any(lab.startswith("paper, 200 epochs (0.962)") for lab in labels)
    mean = next(ln for ln in ax.lines if ln.get_label() == "mean of 2 seeds")
    expected = [sum(r["training"]["curve"][i]["image_auroc"] for r in recs) / 2 for i in range(2)]
    assert list(mean.get_ydata()) == pytest.approx(expected)
    assert ax.get_xlabel() == "epoch" and "image AUROC" in ax.get_ylabel()
    plt.close(fig)
    bare = [{**r, "training": {**r["training"], "curve": []}} for r in recs]
    with pytest.raises(ValueError, match="--eval-every"):
        plot_learning_curve(bare)


def test_seed_comparison_says_whether_each_difference_is_within_the_seed_spread():
    from dskd.reproduce import seed_comparison, seed_comparison_markdown

    def rec(seed, image, pixel, pro):
        return {"seed": seed, "metrics": {"image_auroc": image, "pixel_auroc": pixel, "pro": pro}}

    fp32 = [rec(0, 0.90, 0.70, 0.40), rec(1, 0.92, 0.72, 0.42), rec(2, 0.94, 0.71, 0.41)]
    bf16 = [rec(0, 0.91, 0.71, 0.50), rec(1, 0.93, 0.72, 0.52), rec(2, 0.95, 0.70, 0.51)]
    c = seed_comparison(fp32, bf16)
    rows = {r["metric"]: r for r in c["rows"]}
    assert rows["image_auroc"]["difference"] == pytest.approx(1.0) and rows["image_auroc"]["spread"] == 2.0
    assert rows["image_auroc"]["within_spread"] and not rows["pro"]["within_spread"]  # PRO moved 10 points
    assert not c["all_within_spread"] and c["seeds"] == {"fp32": [0, 1, 2], "bf16": [0, 1, 2]}
    text = seed_comparison_markdown(c)
    assert "| PRO | 41.0 ± 1.0 | 51.0 ± 1.0 | +10.0 | 1.0 | no |" in text
    assert "Not every difference lies within the seed spread" in text
