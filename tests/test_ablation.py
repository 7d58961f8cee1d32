import json

import pytest

from dskd.ablation import (
    PAPER_RESULTS, STUDIES, example_indices, load_examples, load_results, merge_records, run_study, study_variants, summarize, write_study,
)
from dskd.cli import main
from dskd.config import TrainConfig

TINY = TrainConfig.quick(teacher="random", epochs=1, n_train=16, n_test=12, batch_size=8)
RECORD_KEYS = {"study", "variant", "seed", "run_key", "image_auroc", "pixel_auroc", "pro", "per_defect_type",
               "train_seconds", "seconds_per_image", "inference", "config", "provenance"}
PROVENANCE_KEYS = {"command", "git_commit", "data", "split", "teacher", "epochs", "image_size", "seed", "device",
                   "torch_version"}


@pytest.mark.slow
@pytest.mark.parametrize("study", sorted(STUDIES))
def test_every_study_runs_on_tiny_settings(study, tmp_path):
    variants = ["random"] if study == "teacher" else None  # no ImageNet download offline
    data = run_study(study, TINY, variants=variants, out_dir=tmp_path, progress=False)
    expected = variants or [v.name for v in STUDIES[study]]
    assert [r["variant"] for r in data["records"]] == expected
    for r in data["records"]:
        assert RECORD_KEYS <= set(r) and PROVENANCE_KEYS <= set(r["provenance"])
        assert r["provenance"]["teacher"].startswith(("random", "none (E-D"))
        assert 0.0 <= r["image_auroc"] <= 1.0 and 0.0 <= r["pro"] <= 1.0
    saved = json.loads((tmp_path / "synthetic-disc" / f"{study}.json").read_text())
    assert saved["schema"] == 1 and len(saved["records"]) == len(expected)
    assert write_study(data, study).stat().st_size > 0


@pytest.mark.slow
def test_inference_only_studies_share_one_trained_model(tmp_path):
    data = run_study("sigma", TINY, out_dir=tmp_path, progress=False)
    assert len({r["run_key"] for r in data["records"]}) == 1
    maps_differ = {round(r["pixel_auroc"], 6) for r in data["records"]}
    assert len(maps_differ) > 1  # sigma changes the maps, hence the pixel scores


@pytest.mark.slow
def test_appending_keeps_earlier_records(tmp_path):
    run_study("lambda", TINY, variants=["lambda=0"], out_dir=tmp_path, progress=False)
    data = run_study("lambda", TINY, variants=["lambda=1"], seeds=[0, 1], out_dir=tmp_path, progress=False)
    assert sorted((r["variant"], r["seed"]) for r in data["records"]) == [
        ("lambda=0", 0), ("lambda=1", 0), ("lambda=1", 1)]
    again = run_study("lambda", TINY, variants=["lambda=1"], out_dir=tmp_path, progress=False)
    assert len(again["records"]) == 3  # a rerun replaces its own record, keeps the others
    rows = summarize(again["records"], "lambda")
    assert [r["variant"] for r in rows] == ["lambda=0", "lambda=1"] and rows[1]["n_seeds"] == 2


@pytest.mark.slow
def test_studies_keep_example_maps_per_variant_and_merge_them(tmp_path):
    first = run_study("sigma", TINY, variants=["sigma=0"], out_dir=tmp_path, progress=False)
    run_study("sigma", TINY, variants=["sigma=8"], seeds=[1], out_dir=tmp_path, progress=False)  # no seed 0
    run_study("sigma", TINY, variants=["sigma=8"], out_dir=tmp_path, progress=False)
    ex = load_examples(first["examples_path"])
    assert sorted(ex["maps"]) == ["sigma=0", "sigma=8"]
    n = len(ex["indices"])
    assert ex["images"].shape == (n, 64, 64, 3) and ex["images"].dtype.name == "uint8"
    assert ex["masks"].shape == (n, 64, 64) and ex["maps"]["sigma=0"].shape == (n, 64, 64)
    assert ex["defect_types"][0] == "good" and len(set(ex["defect_types"])) > 1
    assert not (ex["maps"]["sigma=0"] == ex["maps"]["sigma=8"]).all()  # blurring changed the maps


def test_example_indices_take_the_first_images_of_each_type():
    types = ["crack", "good", "crack", "good", "hole", "good", "crack"]
    assert example_indices(types, 2) == [1, 3, 0, 2, 4]


def test_merge_replaces_only_the_same_run():
    old = [{"variant": "a", "seed": 0, "run_key": "k1", "x": 1}, {"variant": "b", "seed": 0, "run_key": "k2"}]
    new = [{"variant": "a", "seed": 0, "run_key": "k1", "x": 2}]
    merged = merge_records(old, new)
    assert [(r["variant"], r.get("x")) for r in merged] == [("b", None), ("a", 2)]


def test_summary_mean_and_spread():
    recs = [{"variant": "v", "seed": s, "image_auroc": a, "pixel_auroc": 0.5, "pro": 0.4,
             "provenance": {"teacher": "random"}, "config": {"epochs": 3}} for s, a in ((0, 0.6), (1, 0.8))]
    (row,) = summarize(recs, "dfe")
    assert row["image_auroc"] == pytest.approx(0.7) and row["image_auroc_std"] == pytest.approx(0.1414, abs=1e-3)


def test_bad_study_and_variant_and_file(tmp_path):
    with pytest.raises(ValueError, match="unknown study 'tables'"):
        study_variants("tables")
    with pytest.raises(ValueError, match=r"has no variant \['M4'\]"):
        study_variants("layers", ["M4"])
    bad = tmp_path / "x.json"
    bad.write_text('{"rows": []}')
    with pytest.raises(ValueError, match="not a dskd ablation results file"):
        load_results(bad)


def test_paper_tables_match_the_paper():
    assert PAPER_RESULTS["architecture"]["DS"] == (98.5, 97.6, 93.5)
    assert PAPER_RESULTS["dfe"]["without DFE"] == (75.6, 89.6, 76.5)
    assert PAPER_RESULTS["layers"]["M2"] == (96.5, 96.4, 91.0)


@pytest.mark.slow
def test_cli_ablate(tmp_path, capsys):
    args = ["ablate", "--study", "layers", "--variants", "M1,M1-3", "--teacher", "random", "--epochs", "1",
            "--out-dir", str(tmp_path)]
    assert main(args) == 0
    assert (tmp_path / "synthetic-disc" / "layers.png").is_file()
    assert "M1-3" in capsys.readouterr().out
    assert main(["ablate", "--study", "layers", "--seeds", "a,b", "--teacher", "random"]) == 2
