"""dskd reproduce: fake MVTec AD / MVTec 3D-AD / MT Defects trees end to end, resume and skip, tables,
the one-category-per-device scheduler, DDP over two gloo ranks, and the paper's numbers."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dskd import paper_results as P
from dskd.cli import main
from dskd.reproduce import (
    ResultConflictError, build_tables, collect_results, job_state, make_jobs, parse_categories, parse_devices,
    reproduce, reproduce_command, result_path, run_folder, run_jobs, table_markdown, write_tables,
)

PAPER = Path("/work/shared/paper/dskd-paper.md")
TINY = dict(epochs=1, teacher="random", image_size=32, batch_size=4, device="cpu")
PROVENANCE_KEYS = {"command", "git_commit", "teacher", "epochs", "device", "seed", "data", "split", "data_root"}


# ------------------------------------------------------------------------------------- fake data trees
def _png(path: Path, rng, mode="RGB", value=None, box=None, size=32):
    path.parent.mkdir(parents=True, exist_ok=True)
    if box is not None:
        arr = np.zeros((size, size), np.uint8)
        x0, y0, x1, y1 = box
        arr[y0:y1, x0:x1] = 255
    elif value is not None:
        arr = np.full((size, size) if mode == "L" else (size, size, 3), value, np.uint8)
    else:
        arr = rng.integers(0, 256, (size, size) if mode == "L" else (size, size, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def make_mvtec(root: Path, categories=("bottle", "carpet")) -> Path:
    rng = np.random.default_rng(0)
    for c in categories:
        for i in range(4):
            _png(root / c / "train" / "good" / f"{i:03d}.png", rng)
        for i in range(2):
            _png(root / c / "test" / "good" / f"{i:03d}.png", rng)
            _png(root / c / "test" / "crack" / f"{i:03d}.png", rng)
            _png(root / c / "ground_truth" / "crack" / f"{i:03d}_mask.png", rng, box=(4, 4, 12, 12))
    return root


def make_mvtec3d(root: Path, categories=("bagel", "carrot")) -> Path:
    rng = np.random.default_rng(1)
    for c in categories:
        for i in range(4):
            _png(root / c / "train" / "good" / "rgb" / f"{i:03d}.png", rng)
        for i in range(2):
            _png(root / c / "test" / "good" / "rgb" / f"{i:03d}.png", rng)
            _png(root / c / "test" / "hole" / "rgb" / f"{i:03d}.png", rng)
            _png(root / c / "test" / "hole" / "gt" / f"{i:03d}.png", rng, box=(8, 8, 20, 20))
    return root


def make_mt(root: Path) -> Path:
    """The MT Defects layout: MT_<type>/Imgs/<name>.jpg + <name>.png."""
    rng = np.random.default_rng(2)
    for i in range(5):
        _png(root / "MT_Free" / "Imgs" / f"free_{i}.jpg", rng, mode="L")
        _png(root / "MT_Free" / "Imgs" / f"free_{i}.png", rng, mode="L", value=0)
    for j, folder in enumerate(["MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven"]):
        for k in range(2):
            _png(root / folder / "Imgs" / f"d{j}_{k}.jpg", rng, mode="L")
            _png(root / folder / "Imgs" / f"d{j}_{k}.png", rng, box=(2 + k, 2, 14, 10))
    return root


# ------------------------------------------------------------------------------------ end to end runs
@pytest.mark.slow
def test_mvtec_end_to_end_skip_and_tables(tmp_path, capsys):
    data, out, runs = make_mvtec(tmp_path / "mvtec_ad"), tmp_path / "results", tmp_path / "runs"
    argv = ["reproduce", "mvtec", "--category", "bottle,carpet", "--epochs", "1", "--teacher", "random",
            "--image-size", "32", "--batch-size", "4", "--device", "cpu", "--data-root", str(data),
            "--out-dir", str(out), "--runs-dir", str(runs), "--no-download"]
    assert main(argv) == 0
    for cat in ("bottle", "carpet"):
        rec = json.loads((out / "mvtec" / cat / "seed0.json").read_text())
        assert rec["status"] == "done" and rec["category"] == cat and rec["seed"] == 0
        assert PROVENANCE_KEYS <= set(rec["provenance"])
        assert rec["provenance"]["teacher"].startswith("random") and rec["provenance"]["epochs"] == 1
        assert "official MVTec AD split" in rec["provenance"]["split"]
        assert set(rec["metrics"]["per_defect_type"]) == {"crack"}
        assert all(0 <= rec["metrics"][m] <= 1 for m in ("image_auroc", "pixel_auroc", "pro"))
        assert not rec["paper_setting"] and any("epochs 1" in d for d in rec["deviations_from_paper"])
        assert rec["reproduce_command"].startswith(f"dskd reproduce mvtec --category {cat} --epochs 1 --image-size 32 "
                                                   "--batch-size 4 --teacher random --data-root")
        assert (out / "mvtec" / cat / rec["figures"][0]).stat().st_size > 0
        assert (Path(rec["training"]["checkpoint"])).is_file()
    md = (out / "mvtec" / "table1.md").read_text()
    assert "| Bottle | 98.6 | 88.0 |" in md and "| Carpet |" in md
    bottle_row = next(line for line in md.splitlines() if line.startswith("| Bottle"))
    rec = json.loads((out / "mvtec" / "bottle" / "seed0.json").read_text())
    assert bottle_row.endswith(f"| 100 | {100 * rec['metrics']['image_auroc']:.1f}* |")  # paper's Ours, then ours
    grid_row = next(line for line in md.splitlines() if line.startswith("| Grid"))
    assert grid_row.endswith("| 100 | — |")
    assert "dskd reproduce mvtec --category grid,leather," in md and "--teacher imagenet" in md and "**Mean**" in md
    t2 = json.loads((out / "mvtec" / "table2.json").read_text())
    assert t2["mean"]["pixel_auroc"]["value"] is None and t2["mean"]["pixel_auroc"]["n_categories"] == 2
    assert "99.2/97.7" in (out / "mvtec" / "table2.md").read_text()  # paper's Ours for carpet

    mtime = (out / "mvtec" / "bottle" / "seed0.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0  # everything done: nothing retrains
    assert "skipped (result exists)" in capsys.readouterr().out
    assert (out / "mvtec" / "bottle" / "seed0.json").stat().st_mtime_ns == mtime

    # a different configuration never silently replaces a result
    with pytest.raises(ResultConflictError, match="different configuration"):
        reproduce("mvtec", "bottle", out_dir=out, runs_dir=runs, data_root=str(data), download=False,
                  **{**TINY, "epochs": 2})


def test_mvtec3d_missing_data_says_where_to_get_it(tmp_path, capsys):
    assert main(["reproduce", "mvtec3d", "--category", "bagel", "--data-root", str(tmp_path / "none"),
                 "--out-dir", str(tmp_path / "r"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "mvtec-3d-ad" in err and "bagel" in err and str(tmp_path / "none") in err


def test_mvtec_missing_without_download(tmp_path):
    from dskd.data import DatasetError

    with pytest.raises(DatasetError, match="drop --no-download"):
        reproduce("mvtec", "bottle", out_dir=tmp_path / "r", data_root=str(tmp_path / "none"), download=False, **TINY)


def test_missing_mvtec_categories_are_downloaded(tmp_path, monkeypatch):
    import dskd.reproduce.jobs
    from dskd.reproduce import ensure_data

    fetched = []

    def fake_download(root, category, **kw):  # stands in for the MVTec server
        fetched.append(category)
        return make_mvtec(Path(root), (category,))

    monkeypatch.setattr(dskd.reproduce.jobs, "download_mvtec", fake_download)
    make_mvtec(tmp_path / "mvtec_ad", ("bottle",))
    assert ensure_data("mvtec", ["bottle", "screw"], tmp_path / "mvtec_ad") == tmp_path / "mvtec_ad"
    assert fetched == ["screw"] and (tmp_path / "mvtec_ad" / "screw" / "train" / "good").is_dir()


def _interrupt_in_second_epoch(epoch, loss, model):
    if epoch == 2:  # Ctrl-C at the end of epoch 2: train() saves that finished epoch, then stops
        raise KeyboardInterrupt


def _interrupt_in_first_epoch(epoch, loss, model):
    if epoch == 1:
        raise KeyboardInterrupt


@pytest.mark.slow
def test_mt_defects_fake_tree_resume_after_interrupt(tmp_path):
    data, out, runs = make_mt(tmp_path / "magnetic-tile"), tmp_path / "results", tmp_path / "runs"
    kw = dict(out_dir=out, runs_dir=runs, data_root=str(data), checkpoint_every=5, progress=False,
              **{**TINY, "epochs": 3})
    with pytest.raises(KeyboardInterrupt):
        reproduce("mt-defects", None, callbacks=[_interrupt_in_second_epoch], **kw)
    job = make_jobs("mt-defects", [None], [0], **{k: kw[k] for k in ("epochs", "teacher", "image_size", "batch_size",
                                                                      "device", "data_root")})[0]
    assert job_state(job, out) == "todo"
    ckpt = run_folder(runs, job) / "checkpoint.pt"
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"] == 2  # no checkpoint_every needed
    summary = reproduce("mt-defects", None, **kw)
    assert summary["jobs"][0]["status"] == "done (resumed from epoch 2)"
    rec = json.loads((out / "mt-defects" / "seed0.json").read_text())
    assert rec["training"]["resumed_from_epoch"] == 2 and len(rec["training"]["history"]) == 3
    assert set(rec["metrics"]["per_defect_type"]) == {"blowhole", "break", "crack", "fray", "uneven"}
    # the same maps under other repositories' PRO codes, for the results chapter's discussion
    assert set(rec["pro_codes"]) == {"exact", "rd4ad", "rd4ad_global", "stpm"}
    assert rec["pro_codes"]["exact"] == rec["metrics"]["pro"]
    assert rec["pro_codes"]["stpm"] != rec["pro_codes"]["exact"]
    assert "MagneticTile split (seed 0): train = 4 of 5 MT_Free" in rec["provenance"]["split"]
    figs = set(rec["figures"])
    types = ("blowhole", "break", "crack", "fray", "uneven")
    assert figs == {"fig7_seed0.png", *(f"fig7_seed0_{t}.png" for t in types)}
    md = (out / "mt-defects" / "table5.md").read_text()
    assert "| DSN | 89.1 | 98.0 | - |" in md and "| Ours (paper) | 96.2 | 83.3 | 70.3 |" in md
    assert "| Ours (rebuild) |" in md and "| fray |" in md
    assert reproduce("mt-defects", None, **kw)["jobs"][0]["status"] == "skipped (result exists)"
    # --rescore evaluates the finished checkpoint again (trains nothing) and rewrites the same numbers
    rescored = reproduce("mt-defects", None, rescore=True, **kw)["jobs"][0]
    assert rescored["status"] == "done"
    again = json.loads((out / "mt-defects" / "seed0.json").read_text())
    assert again["training"]["loaded_finished_checkpoint"] and again["training"]["history"] == rec["training"]["history"]
    timing = ("seconds_per_image",)
    assert ({k: v for k, v in again["metrics"].items() if k not in timing}
            == {k: v for k, v in rec["metrics"].items() if k not in timing})
    assert again["pro_codes"] == rec["pro_codes"]


@pytest.mark.slow
def test_a_longer_budget_continues_the_shorter_run_and_records_a_learning_curve(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DSKD_CACHE", str(tmp_path / "cache"))
    data, runs = make_mt(tmp_path / "magnetic-tile"), tmp_path / "runs"
    kw = dict(runs_dir=runs, data_root=str(data), progress=False, **{**TINY, "epochs": 1})
    reproduce("mt-defects", None, out_dir=tmp_path / "short", eval_every=1, **kw)
    longer = {**kw, "epochs": 3}
    cont = reproduce("mt-defects", None, out_dir=tmp_path / "continued", eval_every=1, **longer)
    assert cont["jobs"][0]["status"] == "done (resumed from epoch 1)"
    assert "continuing" in capsys.readouterr().out
    monkeypatch.setenv("DSKD_CACHE", str(tmp_path / "cache-scratch"))  # or it would load the run just shared
    scratch = reproduce("mt-defects", None, out_dir=tmp_path / "scratch", eval_every=1,
                        **{**longer, "runs_dir": tmp_path / "runs-scratch"})
    assert scratch["jobs"][0]["status"] == "done"
    a, b = (json.loads((tmp_path / d / "mt-defects" / "seed0.json").read_text()) for d in ("continued", "scratch"))
    # continuing the 1-epoch run is training 3 epochs from scratch: same losses, same scores
    assert a["training"]["history"] == pytest.approx(b["training"]["history"], rel=1e-5)
    assert a["metrics"]["image_auroc"] == pytest.approx(b["metrics"]["image_auroc"], abs=1e-6)
    # the short run's final point comes along: the continued run has the whole curve
    assert [p["epoch"] for p in a["training"]["curve"]] == [1, 2, 3]
    assert [p["epoch"] for p in b["training"]["curve"]] == [1, 2, 3]
    assert b["training"]["curve"][-1]["image_auroc"] == b["metrics"]["image_auroc"]
    for pa, pb in zip(a["training"]["curve"], b["training"]["curve"]):
        assert pa == pytest.approx(pb, rel=1e-5)
    assert "--eval-every 1" in b["reproduce_command"]
    # the finished run is now dskd ablate's too: train_or_load loads it instead of training again
    from dskd.reproduce import paper_config
    from dskd.training import train_or_load

    monkeypatch.setenv("DSKD_CACHE", str(tmp_path / "cache"))
    assert (tmp_path / "cache").is_dir() and (tmp_path / "cache-scratch").is_dir()
    cfg = paper_config("mt-defects", None, seed=0, **{k: longer[k] for k in ("epochs", "teacher", "image_size",
                                                                            "batch_size", "device", "data_root")})
    loaded = train_or_load(cfg, progress=False)
    assert loaded.extra["cached"] and loaded.history == pytest.approx(a["training"]["history"], rel=1e-6)
    with pytest.raises(ValueError, match="eval_every must be >= 0"):
        reproduce("mt-defects", None, out_dir=tmp_path / "bad", eval_every=-1, **{**longer, "seeds": (1,)})


@pytest.mark.slow
def test_a_longer_budget_continues_the_furthest_checkpoint_of_the_job(tmp_path, capsys, monkeypatch):
    """An interrupted 4-epoch run (its own checkpoint at epoch 1) continues from the finished 2-epoch run."""
    monkeypatch.setenv("DSKD_CACHE", str(tmp_path / "cache"))
    data, runs = make_mt(tmp_path / "magnetic-tile"), tmp_path / "runs"
    kw = dict(runs_dir=runs, data_root=str(data), progress=False, checkpoint_every=1, **{**TINY, "epochs": 4})
    with pytest.raises(KeyboardInterrupt):
        reproduce("mt-defects", None, out_dir=tmp_path / "long", callbacks=[_interrupt_in_first_epoch], **kw)
    reproduce("mt-defects", None, out_dir=tmp_path / "short", **{**kw, "epochs": 2})
    capsys.readouterr()
    done = reproduce("mt-defects", None, out_dir=tmp_path / "long", **kw)
    assert done["jobs"][0]["status"] == "done (resumed from epoch 2)"
    assert "from its epoch 2" in capsys.readouterr().out


def test_mt_defects_reuses_the_identical_run_of_the_ablation_cache(tmp_path, monkeypatch, capsys):
    from dskd.reproduce import paper_config
    from dskd.training import train_or_load

    monkeypatch.setenv("DSKD_CACHE", str(tmp_path / "cache"))
    data, out, runs = make_mt(tmp_path / "magnetic-tile"), tmp_path / "results", tmp_path / "runs"
    kw = dict(out_dir=out, runs_dir=runs, data_root=str(data), progress=False, **TINY)
    cfg = paper_config("mt-defects", None, seed=0, **{k: kw[k] for k in ("epochs", "teacher", "image_size",
                                                                         "batch_size", "device", "data_root")})
    trained = train_or_load(cfg, progress=False)
    reproduce("mt-defects", None, **kw)
    assert "using the identical finished run" in capsys.readouterr().out
    rec = json.loads((out / "mt-defects" / "seed0.json").read_text())
    assert rec["training"]["history"] == trained.history


def test_mt_defects_real_data_plan(data_mt_root, capsys):
    """The real MT Defects folder is found and split as documented (no image is read: no training here)."""
    from dskd.reproduce import ensure_data, split_description
    from dskd.training import dataset_for

    root = ensure_data("mt-defects", [None], data_mt_root)
    job = make_jobs("mt-defects", [None], [0], teacher="random", data_root=str(root))[0]
    train_set, test_set = dataset_for(job.cfg, "train"), dataset_for(job.cfg, "test")
    assert job.cfg.image_size == 128 and job.cfg.epochs == 200
    assert len(train_set) == 761 and len(test_set) == 583
    assert "train = 761 of 952 MT_Free" in split_description(job.cfg, train_set, test_set)
    assert main(["reproduce", "mt-defects", "--category", "crack"]) == 2  # MT has no categories
    assert "no categories" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ tables
def _fake_result(out: Path, benchmark: str, category, seed: int, values: dict, epochs=200, teacher="imagenet"):
    rec = {"kind": "dskd-reproduce-result", "status": "done", "benchmark": benchmark, "category": category,
           "seed": seed, "run_key": "x", "metrics": values,
           "deviations_from_paper": [] if epochs == 200 else [f"epochs {epochs} (paper 200)"],
           "reproduce_command": f"dskd reproduce {benchmark} --category {category}",
           "provenance": {"teacher": teacher}}
    path = result_path(out, benchmark, category, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))


def test_table_aggregation_format(tmp_path):
    out = tmp_path / "results"
    empty = table_markdown(build_tables(out, "mvtec")["table1"])
    assert empty.count("| — |") == 16  # 15 categories and the mean
    assert "| **Mean** | 92.1 | 63.0 | 55.0 | 85.5 | 95.5 | 96.1 | 97.5 | 96.1 | 87.8 | 95.4 | 87.9 | 98.5 | — |" in empty
    assert "dskd reproduce mvtec --category all --teacher imagenet --out-dir" in empty
    # every category at paper settings: the mean is filled; two seeds give mean ± std
    for i, c in enumerate(P.MVTEC_PAPER_ORDER):
        _fake_result(out, "mvtec", c, 0, {"image_auroc": 0.90, "pixel_auroc": 0.95, "pro": 0.80})
    _fake_result(out, "mvtec", "bottle", 1, {"image_auroc": 0.80, "pixel_auroc": 0.95, "pro": 0.90})
    tables = build_tables(out, "mvtec")
    t1, t2 = tables["table1"], tables["table2"]
    assert t1["mean"]["image_auroc"]["value"] == pytest.approx(100 * (14 * 0.9 + 0.85) / 15, abs=0.01)
    bottle = next(r for r in t1["rows"] if r["category"] == "bottle")["ours"]["image_auroc"]
    assert bottle["value"] == 85.0 and bottle["n_seeds"] == 2 and bottle["std"] == pytest.approx(7.07, abs=0.01)
    md1, md2 = table_markdown(t1), table_markdown(t2)
    assert ("| Bottle | 98.6 | 88.0 | 69.0 | 97.2 | 99.9 | 98.2 | 100 | 100 | 99.4 | 100 | 99.9 | 100 | 85.0 ± 7.1 |"
            in md1)
    assert "| Metal nut |" in md1 and "—" not in md1.split("Paper's numbers")[0]
    assert "| Carpet | 92.6/- | 87.0/64.7 |" in md2 and "| 99.2/97.7 | 95.0/80.0 |" in md2
    assert "| **Mean** |" in md2 and "97.6/93.5 | 95.0/80.3 |" in md2
    # a cell not at the paper's setting is starred and explained
    _fake_result(out, "mvtec", "grid", 0, {"image_auroc": 0.5, "pixel_auroc": 0.5, "pro": 0.5}, epochs=1)
    md1 = table_markdown(build_tables(out, "mvtec")["table1"])
    assert "| 50.0* |" in md1 and "epochs 1 (paper 200)" in md1
    # the MVTec 3D-AD tables
    _fake_result(out, "mvtec3d", "cookie", 0, {"image_auroc": 0.6543, "pixel_auroc": 0.97, "pro": 0.88})
    paths = write_tables(out, "mvtec3d")
    assert sorted(p.name for p in paths) == ["table3.json", "table3.md", "table4.json", "table4.md"]
    md3, md4 = (out / "mvtec3d" / "table3.md").read_text(), (out / "mvtec3d" / "table4.md").read_text()
    assert "| Cookie | 58.2 | 68.2 | 79.5 | 57.5 | 65.4 | 65.4 |" in md3 and "| Cable Gland |" in md3
    assert "| Cookie | 97.9 | 89.0 | 97.0 | 88.0 |" in md4 and "| **Mean** | 98.6 | 95.2 | — | — |" in md4
    assert "Mean of the 1 categories run so far" in md4 and "nan" not in md3 + md4
    assert set(collect_results(out, "mvtec3d")) == {"cookie"}


# ---------------------------------------------------------------------------------------- parsing
def test_parsing_categories_devices_commands(monkeypatch):
    assert parse_categories("mvtec", "all") == list(P.MVTEC_PAPER_ORDER) and len(P.MVTEC_PAPER_ORDER) == 15
    assert parse_categories("mvtec3d", None) == list(P.MVTEC3D_PAPER_ORDER)
    assert parse_categories("mvtec", "bottle, screw,bottle") == ["bottle", "screw"]
    assert parse_categories("mt-defects", None) == [None]
    with pytest.raises(ValueError, match="unknown mvtec categories"):
        parse_categories("mvtec", "bagel")
    assert parse_devices("cpu,cpu") == ["cpu", "cpu"] and parse_devices(None) is None
    with monkeypatch.context() as m:  # a machine with three GPUs
        m.setattr(torch.cuda, "is_available", lambda: True)
        m.setattr(torch.cuda, "device_count", lambda: 3)
        assert parse_devices("0,2") == ["cuda:0", "cuda:2"]
        with pytest.raises(ValueError, match=r"--gpus '0,3'.*'cuda:3' does not exist: torch sees 3 CUDA GPU"):
            parse_devices("0,3")
    with monkeypatch.context() as m:  # and one without
        m.setattr(torch.cuda, "is_available", lambda: False)
        with pytest.raises(ValueError, match=r"--gpus '0,1'.*no CUDA GPU"):
            parse_devices("0,1")
    with pytest.raises(ValueError):
        parse_devices("tpu:0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            parse_devices("all")
    job = make_jobs("mvtec", ["bottle"], [3], teacher="imagenet", precision="fp32")[0]
    assert job.cfg.image_size == 256 and job.cfg.epochs == 200 and job.cfg.seed == 3
    assert (reproduce_command("mvtec", ["bottle"], seeds=[3], cfg=job.cfg)
            == "dskd reproduce mvtec --category bottle --seeds 3 --teacher imagenet --precision fp32")
    auto = make_jobs("mvtec", ["bottle"], [3], teacher="imagenet")[0]  # "auto" is resolved for this machine
    assert auto.cfg.precision in ("fp32", "bf16") and f"--precision {auto.cfg.precision}" in reproduce_command(
        "mvtec", ["bottle"], seeds=[3], cfg=auto.cfg)
    mt = make_jobs("mt-defects", [None], [0], teacher="imagenet")[0]
    assert mt.cfg.image_size == 128 and mt.cfg.dataset == "mt-defects"


# --------------------------------------------------------------------------- one category per device
def scheduler_probe(job, *, device, out_dir, **opts):
    """Runs in a worker: waits until both workers hold a job, then trains the job for real."""
    from dskd.reproduce import run_job

    flags = Path(out_dir) / "started"
    flags.mkdir(parents=True, exist_ok=True)
    (flags / f"{device}-{os.getpid()}").touch()
    deadline = time.time() + 120
    while len(list(flags.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.05)
    out = run_job(job, device="cpu", out_dir=out_dir, **opts)
    return {**out, "worker_device": device}


@pytest.mark.slow
def test_scheduler_one_worker_per_device_runs_mvtec3d(tmp_path):
    data, out = make_mvtec3d(tmp_path / "mvtec_3d"), tmp_path / "results"
    jobs = make_jobs("mvtec3d", ["bagel", "carrot"], [0], data_root=str(data), **TINY)
    # fake devices: each worker is pinned to one name; "cpu" does the work
    results = run_jobs(jobs, devices=["fake:0", "fake:1"], runner=scheduler_probe, mp_context="spawn",
                       out_dir=out, runs_dir=tmp_path / "runs", progress=False, n_examples=0)
    assert [r["status"] for r in results] == ["done", "done"], results
    assert sorted(r["device"] for r in results) == ["fake:0", "fake:1"]
    assert all(r["worker_device"] == r["device"] for r in results)
    assert len({r["pid"] for r in results}) == 2 and os.getpid() not in {r["pid"] for r in results}
    for c in ("bagel", "carrot"):
        rec = json.loads((out / "mvtec3d" / c / "seed0.json").read_text())
        assert "MVTec 3D-AD split, RGB only" in rec["provenance"]["split"]
        assert rec["provenance"]["device"].startswith("cpu")
    write_tables(out, "mvtec3d")
    md3 = (out / "mvtec3d" / "table3.md").read_text()
    assert next(line for line in md3.splitlines() if line.startswith("| Bagel")).split("|")[-2].strip() != "—"


def failing_runner(job, *, device, **opts):
    if job.category == "carrot":
        raise RuntimeError("boom")
    return {"job": job.label, "status": "done"}


def test_scheduler_reports_a_failed_job_and_runs_the_rest():
    jobs = make_jobs("mvtec3d", ["bagel", "carrot", "dowel"], [0], **TINY)
    results = run_jobs(jobs, devices=["cpu", "cpu"], runner=failing_runner, mp_context="fork")
    assert [r["status"] for r in results] == ["done", "failed", "done"]
    assert "RuntimeError: boom" in results[1]["error"]


# ------------------------------------------------------------------------------------ DDP, 2 ranks
DDP_SCRIPT = """
import sys, torch
from dskd.config import TrainConfig
from dskd.distributed import cleanup, dist_info
from dskd.reproduce import reproduce
from dskd.training import build_model, train
out = sys.argv[1]
cfg = TrainConfig.quick(teacher="random", epochs=1, image_size=32, n_train=12, n_test=4, batch_size=4, device="cpu")
before = {k: v.clone() for k, v in build_model(cfg).state_dict().items()}
res = train(cfg, out_dir=out, ddp=True, progress=False)
info = dist_info()
torch.save({"state": res.model.state_dict(), "history": res.history, "world": info.world_size,
            "changed": any(not torch.equal(before[k], v) for k, v in res.model.state_dict().items())},
           f"{out}/rank{info.rank}.pt")
# the reproduce pipeline under DDP: every rank trains, rank 0 evaluates and writes
summary = reproduce("mt-defects", None, out_dir=f"{out}/results", runs_dir=f"{out}/runs", data_root=sys.argv[2],
                    ddp=True, progress=False, n_examples=0, epochs=1, teacher="random", image_size=32, batch_size=4,
                    device="cpu")
print(f"rank {info.rank}:", summary["jobs"][0]["status"], flush=True)
cleanup()
"""


@pytest.mark.slow
def test_ddp_two_gloo_ranks_end_with_identical_weights(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    mt = make_mt(tmp_path / "magnetic-tile")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tmp_path), str(mt)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=False)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=False)
    assert r0["world"] == r1["world"] == 2 and r0["changed"] and r0["history"] == r1["history"]
    assert r0["state"].keys() == r1["state"].keys()
    for k in r0["state"]:
        torch.testing.assert_close(r0["state"][k], r1["state"][k], rtol=0, atol=0, msg=k)
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # written by rank 0 only
    assert payload["epoch"] == 1 and payload["provenance"]["distributed"]["world_size"] == 2
    assert payload["provenance"]["distributed"]["global_batch"] == 4
    for k in r0["state"]:
        torch.testing.assert_close(payload["model"][k], r0["state"][k], rtol=0, atol=0, msg=k)
    assert "rank 0: done" in proc.stdout and "rank 1: trained (rank 1)" in proc.stdout
    rec = json.loads((tmp_path / "results" / "mt-defects" / "seed0.json").read_text())
    assert rec["training"]["distributed"]["world_size"] == 2 and rec["status"] == "done"
    assert (tmp_path / "results" / "mt-defects" / "table5.md").is_file()


def test_ddp_without_torchrun_says_how_to_start(tmp_path, capsys):
    from dskd.distributed import launched_by_torchrun

    if launched_by_torchrun():
        pytest.skip("this test checks the message outside torchrun")
    assert main(["reproduce", "mt-defects", "--ddp", "--out-dir", str(tmp_path)]) == 2
    assert "torchrun --standalone --nproc_per_node" in capsys.readouterr().err
    assert main(["reproduce", "mvtec", "--ddp", "--gpus", "cpu,cpu", "--out-dir", str(tmp_path)]) == 2


# ------------------------------------------------------------------------------ the paper's numbers
def _paper_rows(text: str, title: str, n: int) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows = []
    for line in lines[start + 1:]:
        if "\t" in line:
            rows.append([re.sub(r"</?b>", "", c).strip() for c in line.split("\t")])
            if len(rows) == n:
                break
    return rows


def test_paper_results_match_the_paper_text():
    if not PAPER.is_file():
        pytest.skip(f"paper text not found at {PAPER}")
    text = PAPER.read_text()
    num = lambda s: None if s == "-" else float(s)  # noqa: E731
    strip_ref = lambda s: re.sub(r"\[\d+\]", "", s).strip()  # noqa: E731
    mv = {P.display_name(c).lower(): c for c in (*P.MVTEC_PAPER_ORDER, "mean")}
    mv3 = {P.display_name(c).lower(): c for c in (*P.MVTEC3D_PAPER_ORDER, "mean")}
    checked = 0
    t1 = _paper_rows(text, "Table 1.", 17)
    assert tuple(strip_ref(h) for h in t1[0][1:]) == P.TABLE1_METHODS
    for row in t1[1:]:
        for method, v in zip(P.TABLE1_METHODS, row[1:]):
            assert P.TABLE1[method][mv[row[0].lower()]] == float(v), (method, row[0])
            checked += 1
    t2 = _paper_rows(text, "Table 2.", 17)
    for row in t2[1:]:
        for method, v in zip(P.TABLE2_METHODS, row[1:]):
            a, p = (x.strip() for x in v.split("/"))
            assert P.TABLE2[method][mv[row[0].lower()]] == (float(a), num(p)), (method, row[0])
            checked += 1
    t3 = _paper_rows(text, "Table 3.", 12)
    assert tuple(strip_ref(h) for h in t3[0][1:]) == P.TABLE3_METHODS
    for row in t3[1:]:
        for method, v in zip(P.TABLE3_METHODS, row[1:]):
            assert P.TABLE3[method][mv3[row[0].lower()]] == float(v)
            checked += 1
    for row in _paper_rows(text, "Table 4.", 12)[1:]:
        assert P.TABLE4[mv3[row[0].lower()]] == (float(row[1]), float(row[2]))
        checked += 1
    for row in _paper_rows(text, "Table 5.", 6)[1:]:
        assert P.TABLE5[strip_ref(row[0])] == tuple(num(x) for x in row[1:])
        checked += 1
    assert checked == 16 * 12 * 2 + 11 * 5 + 11 + 5
    # spot checks named in the text
    assert P.TABLE1[P.OURS]["mean"] == 98.5 and P.TABLE2[P.OURS]["mean"] == (97.6, 93.5)
    assert P.TABLE3[P.OURS]["mean"] == 86.4 and P.TABLE4["mean"] == (98.6, 95.2)
    assert P.TABLE5[P.OURS] == (96.2, 83.3, 70.3) and P.TABLE5["DSN"][1] == 98.0
