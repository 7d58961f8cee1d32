"""dskd.baselines: the same-teacher PatchCore baseline, its records and its comparison with DS, T-E, T-D."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from dskd.baselines import (
    ABLATION_COMMAND, CORESET_FRACTION, PROJECTION_DIM, PatchCore, baseline_command, comparison_prose,
    comparison_setting, comparison_sources, comparison_table, greedy_coreset, load_baseline_records, nearest_distances, record_baseline,
    same_teacher_comparison,
)
from dskd.cli import main
from dskd.data import build_dataset
from dskd.evaluation import evaluate
from dskd.inference import gaussian_blur
from dskd.models import TeacherPyramid
from dskd.results import results_path

SYN = dict(category="disc", image_size=64, n_train=24, n_test=12)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def synthetic():
    return build_dataset("synthetic", "train", **SYN), build_dataset("synthetic", "test", **SYN)


@pytest.fixture(scope="module")
def teacher():
    return TeacherPyramid("offline-pretrained")


# ------------------------------------------------------------------------------------ nearest neighbours
def test_nearest_distances_equal_brute_force_for_any_chunk():
    g = torch.Generator().manual_seed(0)
    q, bank = torch.randn(50, 16, generator=g), torch.randn(30, 16, generator=g)
    brute = torch.cdist(q.double(), bank.double()).amin(1).float()
    for chunk in (1, 7, 50, 1000):
        torch.testing.assert_close(nearest_distances(q, bank, chunk), brute, rtol=1e-4, atol=1e-4)
    # a query that is in the bank is at distance 0
    assert nearest_distances(bank[3:4], bank)[0] == pytest.approx(0.0, abs=1e-3)


def test_nearest_distances_refuse_bad_input():
    with pytest.raises(ValueError, match="same D"):
        nearest_distances(torch.zeros(2, 3), torch.zeros(4, 5))
    with pytest.raises(ValueError, match="memory bank is empty"):
        nearest_distances(torch.zeros(2, 3), torch.zeros(0, 3))
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        nearest_distances(torch.zeros(2, 3), torch.zeros(4, 3), chunk=0)


# ------------------------------------------------------------------------------------ the coreset
def test_greedy_coreset_adds_the_farthest_point_each_step():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 8, generator=g)
    idx = greedy_coreset(x, 12, projection_dim=0, generator=torch.Generator().manual_seed(0))
    assert len(set(idx.tolist())) == 12
    for k in range(1, 12):
        d = torch.cdist(x, x[idx[:k]]).amin(1)  # distance of every point to the chosen ones
        assert int(idx[k]) == int(d.argmax()), f"step {k} did not add the farthest point"


def test_greedy_coreset_covers_every_cluster_through_the_projection():
    """Five far-apart clusters in 384-d: the projected greedy coreset of 5 takes one from each."""
    g = torch.Generator().manual_seed(2)
    centres = 20 * torch.randn(5, 384, generator=g)
    x = torch.cat([c + torch.randn(40, 384, generator=g) for c in centres])
    idx = greedy_coreset(x, 5, projection_dim=PROJECTION_DIM, generator=torch.Generator().manual_seed(0))
    assert sorted((idx // 40).tolist()) == [0, 1, 2, 3, 4]


def test_greedy_coreset_is_deterministic_for_a_seed_and_checks_its_size():
    x = torch.randn(300, 256, generator=torch.Generator().manual_seed(3))
    a = greedy_coreset(x, 20, generator=torch.Generator().manual_seed(5))
    b = greedy_coreset(x, 20, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    for n in (0, 301):
        with pytest.raises(ValueError, match="impossible"):
            greedy_coreset(x, n)


# ------------------------------------------------------------------------------------ PatchCore
def test_patch_features_are_the_teachers_conv3_and_conv4_averaged_and_aligned(teacher):
    pc = PatchCore(teacher)
    x = torch.randn(2, 3, 64, 64)
    f = pc.embed(x)
    assert f.shape == (2, 128 + 256, 8, 8)
    with torch.inference_mode():
        _, c3, c4 = teacher(x)
    torch.testing.assert_close(f[:, :128], F.avg_pool2d(c3, 3, 1, 1))
    up = F.interpolate(F.avg_pool2d(c4, 3, 1, 1), size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(f[:, 128:], up)


def test_fit_keeps_the_coreset_fraction_and_is_deterministic(teacher, synthetic):
    train, test = synthetic
    a = PatchCore(teacher, seed=0).fit(train)
    b = PatchCore(teacher, seed=0).fit(train)
    assert a.n_train_patches == 24 * 8 * 8
    assert a.bank.shape == (round(CORESET_FRACTION * 24 * 64), 384)
    assert torch.equal(a.bank, b.bank)
    pa, pb = a.predict(test), b.predict(test)
    assert torch.equal(pa.maps, pb.maps) and torch.equal(pa.scores, pb.scores)
    # a small query chunk (memory bounded) changes nothing beyond float rounding
    small = PatchCore(teacher, seed=0, chunk=5)
    small.bank = a.bank
    torch.testing.assert_close(small.predict(test).maps, pa.maps, rtol=1e-4, atol=1e-4)


def test_maps_are_blurred_upsampled_distances_and_scores_their_maximum(teacher, synthetic):
    train, test = synthetic
    pc = PatchCore(teacher, coreset_fraction=1.0).fit(train)
    pred = pc.predict(test)
    assert pred.maps.shape == (12, 64, 64) and pred.scores.shape == (12,)
    torch.testing.assert_close(pred.scores, pred.maps.flatten(1).amax(1))
    assert pred.labels is not None and len(pred.defect_types) == 12 and pred.masks.shape == (12, 64, 64)
    # with the whole training set in the bank, a training image's patches are all at distance ~0
    x = torch.stack([train[i]["image"] for i in range(2)])
    own = pc.predict(x)
    assert float(own.maps.abs().max()) < 1e-2 * float(pred.maps.max())
    # the map is the patch distances upsampled and blurred (Eq. 9)
    f = pc.embed(test[0]["image"][None])
    d = nearest_distances(f.permute(0, 2, 3, 1).flatten(0, 2), pc.bank).view(1, 1, 8, 8)
    expected = gaussian_blur(F.interpolate(d, size=(64, 64), mode="bilinear", align_corners=False)[:, 0], 4.0)
    torch.testing.assert_close(pred.maps[:1], expected, rtol=1e-4, atol=1e-4)


def test_evaluate_scores_it_with_dskds_metrics(teacher, synthetic):
    train, test = synthetic
    pc = PatchCore(teacher).fit(train)
    report = pc.evaluate(test)
    assert report.structure == "PatchCore" and report.teacher.startswith("offline-pretrained")
    assert report.image_auroc > 0.9  # the painted defects of the synthetic set are easy for a memory bank
    again = evaluate(pc, test, prediction=pc.predict(test))
    assert again.image_auroc == report.image_auroc and again.pro == report.pro


def test_patchcore_refuses_misuse(teacher, synthetic):
    with pytest.raises(RuntimeError, match="before fit"):
        PatchCore(teacher).predict(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="coreset_fraction must be in"):
        PatchCore(teacher, coreset_fraction=0)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        PatchCore(teacher, sigma=-1)
    with pytest.raises(ValueError, match="at least one training image"):
        PatchCore(teacher).fit(torch.zeros(0, 3, 64, 64))
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 3, H, W\)"):
        PatchCore(teacher).fit(torch.zeros(2, 1, 64, 64))


# ------------------------------------------------------------------------------------ records and CLI
def test_record_has_metrics_settings_and_provenance(tmp_path):
    rec = record_baseline(0, dataset="synthetic", image_size=64, out_dir=tmp_path, n_train=24, n_test=12)
    path = tmp_path / "synthetic" / "seed0.json"
    saved = json.loads(path.read_text())
    assert saved["method"] == "PatchCore" and saved["seed"] == 0
    assert set(saved["metrics"]) >= {"image_auroc", "pixel_auroc", "pro", "per_defect_type", "n_images"}
    assert saved["settings"]["bank_size"] == round(0.1 * 24 * 64) and saved["settings"]["coreset_fraction"] == 0.1
    prov = saved["provenance"]
    assert {"command", "git_commit", "teacher", "data", "seed", "split", "n_train", "n_test"} <= set(prov)
    assert prov["teacher"].startswith("offline-pretrained") and prov["n_train"] == 24
    assert rec["path"] == str(path)
    assert load_baseline_records(tmp_path / "synthetic")[0]["metrics"] == saved["metrics"]


def test_cli_records_the_baseline(tmp_path, capsys):
    assert main(["baseline", "--dataset", "synthetic", "--seeds", "1", "--image-size", "64",
                 "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PatchCore seed 1 [teacher: offline-pretrained" in out and "patches in the bank" in out
    assert (tmp_path / "synthetic" / "seed1.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["--seeds", "a,b"], "--seeds must be comma-separated integers"),
    (["--coreset-fraction", "0"], "--coreset-fraction must be in"),
])
def test_cli_refuses_bad_arguments(tmp_path, capsys, args, message):
    assert main(["baseline", "--dataset", "synthetic", "--out-dir", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------------------------ the comparison
def _write(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def _fake_root(tmp_path, *, patchcore=(0.80, 0.82, 0.78), ds=(0.90, 0.93, 0.88), architecture=True):
    root = tmp_path / "results"
    teacher = "offline-pretrained (no ImageNet; sha256 d8cd5801a019)"
    for seed, (p, d) in enumerate(zip(patchcore, ds)):
        if p is not None:
            _write(root / "baselines" / "mt-defects" / f"seed{seed}.json",
                   {"seed": seed, "metrics": {"image_auroc": p, "pixel_auroc": 0.9, "pro": 0.6},
                    "provenance": {"teacher": teacher, "command": "dskd baseline", "git_commit": "0123456789abcdef"}})
        _write(root / "mt-defects" / f"seed{seed}.json",
               {"seed": seed, "metrics": {"image_auroc": d, "pixel_auroc": 0.7, "pro": 0.4},
                "config": {"epochs": 40}, "provenance": {"teacher": teacher}})
    if architecture:
        recs = [{"study": "architecture", "variant": v, "seed": s, "image_auroc": a, "pixel_auroc": 0.8, "pro": 0.5,
                 "config": {"epochs": 40, "precision": "bf16"},
                 "provenance": {"teacher": teacher, "command": "dskd ablate"}}
                for v, a in (("T-E", 0.70), ("T-D", 0.85)) for s in range(3)]
        _write(root / "ablations-40-epochs" / "mt-defects" / "architecture.json",
               {"schema": 1, "study": "architecture", "dataset": "mt-defects", "records": recs})
    return root


def test_comparison_reads_every_record(tmp_path):
    rows = same_teacher_comparison(_fake_root(tmp_path))
    assert [r["method"] for r in rows] == ["PatchCore", "DS", "T-E", "T-D"]
    pc, ds, te, td = rows
    assert pc["image_auroc"] == pytest.approx(0.8) and pc["seeds"] == [0, 1, 2]
    assert pc["image_auroc_std"] == pytest.approx(0.02)
    assert ds["image_auroc"] == pytest.approx(0.9033333) and ds["training"] == "40 epochs, fp32"  # records without a precision
    assert te["image_auroc"] == pytest.approx(0.70) and td["pixel_auroc"] == pytest.approx(0.8)
    table = comparison_table(rows)
    assert "| PatchCore | memory bank of T's features, no training | none (fit once) | 0,1,2 | 80.0 ± 2.0 |" in table
    sources = comparison_sources(rows)
    assert ("- **PatchCore**: `results/baselines/mt-defects/seed*.json` (seeds 0,1,2; teacher offline-pretrained "
            "(no ImageNet; sha256 d8cd5801a019)), written by `dskd baseline` at commit 0123456789ab") in sources
    assert "- **T-D**: `results/ablations-40-epochs/mt-defects/architecture.json` (seeds 0,1,2;" in sources
    assert comparison_setting(rows) == {"teacher": "offline-pretrained (no ImageNet; sha256 d8cd5801a019)",
                                        "data": "mt-defects, 128x128, seeds 0,1,2"}
    prose = comparison_prose(rows)
    assert "DS is ahead on image AUROC and behind on pixel AUROC and PRO" in prose
    assert "image AUROC +10.3, pixel AUROC -20.0, PRO -20.0" in prose
    assert "DS's image AUROC is higher in 3 of 3" in prose
    assert "T-E (T vs S_e (STPM-like), 40 epochs, bf16) is 10.0 points below PatchCore" in prose
    assert "T-D (T -> DFE -> S_d, T vs S_d (RD4AD-like), 40 epochs, bf16) is 5.0 points above PatchCore" in prose


def test_comparison_says_what_is_not_recorded_and_how_to_record_it(tmp_path):
    rows = same_teacher_comparison(_fake_root(tmp_path, architecture=False))
    te = next(r for r in rows if r["method"] == "T-E")
    assert not te["recorded"] and te["command"] == ABLATION_COMMAND and math.isnan(te["image_auroc"])
    assert "| T-E | T vs S_e (STPM-like) | - | - | not recorded yet |" in comparison_table(rows)
    assert f"Not recorded yet: T-E and T-D (`{ABLATION_COMMAND}`)." in comparison_prose(rows)
    assert f"- **T-E**: not recorded yet (no `results/ablations-40-epochs/mt-defects/architecture.json`); record it " \
           f"with `{ABLATION_COMMAND}`" in comparison_sources(rows)
    none = same_teacher_comparison(_fake_root(tmp_path / "b", patchcore=(None, None, None)))
    assert f"The PatchCore baseline is **not recorded yet**; record it with `{baseline_command()}`" \
        in comparison_prose(none)


def test_figure_shows_every_method_and_every_seed(tmp_path):
    from matplotlib import pyplot as plt
    from matplotlib.patches import Rectangle

    from dskd.plotting.baselines import plot_same_teacher

    rows = same_teacher_comparison(_fake_root(tmp_path, architecture=False))
    fig = plot_same_teacher(rows, **comparison_setting(rows))
    ax = fig.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    filled = [b for b in bars if b.get_fill()]
    assert len(filled) == 2 * 3  # PatchCore and DS, three metrics each
    assert len(bars) - len(filled) == 2 * 3  # T-E and T-D: empty hatched places
    assert sum(t.get_text() == "not recorded" for t in ax.texts) == 6
    from matplotlib.collections import PathCollection

    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in dots) == 2 * 3 * 3  # one dot per seed, method and metric
    assert ax.get_ylabel() == "score (1 = perfect; dashed: chance)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["image AUROC", "pixel AUROC", "PRO (FPR ≤ 0.3)"]
    title = " ".join(ax.get_title().split())  # the title is wrapped to the column
    assert "teacher: offline-pretrained" in title and "data: mt-defects, 128x128, seeds 0,1,2" in title
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("PatchCore") and "(n=3)" in t for t in legend)
    assert any("T-E" in t and "not recorded yet" in t for t in legend)
    plt.close(fig)


def test_recorded_mt_defects_runs_are_complete_and_clean():
    """The committed records: three seeds on MT Defects at 128 x 128, the shipped teacher, a clean commit."""
    from dskd.provenance import shown_command

    folder = results_path("baselines", "mt-defects")
    records = load_baseline_records(folder)
    if not records:
        pytest.skip(f"no PatchCore records in {folder} yet (record them with: {baseline_command()})")
    assert [r["seed"] for r in records] == [0, 1, 2]
    for r in records:
        prov = r["provenance"]
        assert "+dirty" not in prov["git_commit"] and prov["git_commit"] != "unknown"
        assert prov["teacher"].startswith("offline-pretrained") and prov["image_size"] == 128
        assert prov["n_train"] == 761 and prov["n_test"] == 583 and f"seed {r['seed']}" in prov["split"]
        assert shown_command(prov["command"]).startswith("dskd baseline "), prov["command"]
        assert 0.5 < r["metrics"]["image_auroc"] <= 1 and r["settings"]["coreset_fraction"] == CORESET_FRACTION


# ------------------------------------------------------------------------------------ the book's page
@pytest.mark.slow
def test_the_appendix_page_shows_the_recorded_comparison(executed_notebook):
    """The page runs top to bottom within a chapter's budget, shows its figures, and what a reader sees is
    the comparison of the records in results/ (table, sources and generated prose)."""
    import nbformat
    from notebook_runner import NOTEBOOK_BUDGET_S, NOTEBOOKS, figure_count

    path = NOTEBOOKS / "appendix_same_teacher.ipynb"
    committed = nbformat.read(path, as_version=4)
    assert not [c for c in committed.cells if c.cell_type == "code" and (c.outputs or c.execution_count)], \
        "clear the page's outputs before committing"
    run = executed_notebook(path)
    assert run.error is None, run.error[-3000:]
    assert run.seconds <= NOTEBOOK_BUDGET_S, run.timing_report()
    assert figure_count(run.notebook) >= 2  # the live maps and the comparison
    shown = "\n".join(o.get("text", "") + o.get("data", {}).get("text/markdown", "")
                      for c in run.notebook.cells if c.cell_type == "code" for o in c.outputs)
    rows = same_teacher_comparison()
    for text in (comparison_table(rows), comparison_sources(rows), comparison_prose(rows)):
        assert text in shown
    assert "PatchCore [teacher: " in shown and "training patches (10% coreset, selected in a 128-d projection)" in shown
