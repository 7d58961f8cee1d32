import numpy as np
import pytest
import torch

from dskd.models import TeacherPyramid
from dskd.pretrain import (
    PretrainConfig, fractal_dataset, knn_image_auroc, pretrain_teacher, render_ifs, sample_ifs, save_teacher,
)


def test_fractal_generator_is_deterministic_by_seed():
    cfg = PretrainConfig(n_categories=3, per_category=2, image_size=32, seed=5)
    a, la = fractal_dataset(cfg)
    b, lb = fractal_dataset(cfg)
    c, _ = fractal_dataset(PretrainConfig(n_categories=3, per_category=2, image_size=32, seed=6))
    torch.testing.assert_close(a, b)
    assert torch.equal(la, lb) and la.tolist() == [0, 0, 1, 1, 2, 2]
    assert not torch.allclose(a, c)
    assert a.shape == (6, 3, 32, 32) and 0.0 <= float(a.min()) and float(a.max()) <= 1.0


def test_ifs_maps_are_contractions_and_attractors_fill_part_of_the_image():
    rng = np.random.default_rng(0)
    for _ in range(20):
        maps = sample_ifs(rng)
        singular = np.linalg.svd(maps[:, :4].reshape(-1, 2, 2), compute_uv=False)
        assert (singular < 1.0 + 1e-9).all()
        img = render_ifs(maps, 64, rng)
        filled = float((img > 0).mean())
        assert 0.005 < filled < 0.9, filled  # neither empty nor a solid block


def test_instances_of_a_category_resemble_each_other_more_than_other_categories():
    x, y = fractal_dataset(PretrainConfig(n_categories=6, per_category=4, image_size=32, seed=1))
    shape = x.mean(1).flatten(1)
    shape = (shape - shape.mean(1, keepdim=True)) / shape.std(1, keepdim=True)
    corr = shape @ shape.T / shape.shape[1]
    same = corr[y[:, None] == y[None, :]].mean()
    other = corr[y[:, None] != y[None, :]].mean()
    assert same > other + 0.1


def test_pretraining_runs_and_saves_a_loadable_teacher(tmp_path):
    cfg = PretrainConfig(n_categories=4, per_category=4, image_size=32, epochs=2, batch_size=8)
    state, record = pretrain_teacher(cfg, progress=False)
    assert len(record["history"]) == 2 and record["config"]["seed"] == 0
    path = save_teacher(state, record, tmp_path / "teacher.pth")
    meta = (tmp_path / "teacher.json").read_text()
    assert "sha256" in meta and "fractal" in meta
    teacher = TeacherPyramid(path)
    torch.testing.assert_close(teacher.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_knn_proxy_separates_an_obvious_anomaly():
    from dskd.data import SyntheticDefects

    train = SyntheticDefects("disc", "train", image_size=32, n_train=12)
    test = SyntheticDefects("disc", "test", image_size=32, n_test=12)
    auc = knn_image_auroc(TeacherPyramid(None), train, test)
    assert 0.0 <= auc <= 1.0


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="n_categories must be >= 2"):
        PretrainConfig(n_categories=1)


def test_pretrain_teacher_command_writes_weights_and_provenance(tmp_path, capsys):
    import json

    from dskd.cli import main

    out = tmp_path / "t.pt"
    assert main(["pretrain-teacher", "--out", str(out), "--n-categories", "3", "--per-category", "2",
                 "--image-size", "32", "--epochs", "1", "--batch-size", "4"]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["config"]["n_categories"] == 3 and len(meta["sha256"]) == 64
    assert meta["wall_seconds"] > 0 and meta["provenance"]["git_commit"]
    assert f"--teacher {out}" in capsys.readouterr().out
    TeacherPyramid(out)  # loads


def test_pretrain_teacher_command_rejects_bad_sizes(capsys):
    from dskd.cli import main

    assert main(["pretrain-teacher", "--n-categories", "1"]) == 2
    assert "n_categories must be >= 2" in capsys.readouterr().err


def test_teacher_candidates_script_records_knn_and_ds_and_keeps_other_candidates(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "teacher_candidates", Path(__file__).resolve().parents[1] / "benchmarks" / "teacher_candidates.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    weights = tmp_path / "t.pt"
    cfg = PretrainConfig(n_categories=3, per_category=2, image_size=32, epochs=1, batch_size=4)
    save_teacher(*pretrain_teacher(cfg, progress=False), weights)
    out = tmp_path / "candidates.json"
    assert mod.main(["random", "--dataset", "synthetic", "--image-size", "32", "--ds-epochs", "1", "--out", str(out)]) == 0
    assert mod.main([str(weights), "--dataset", "synthetic", "--image-size", "32", "--out", str(out)]) == 0
    records = {r["candidate"]: r for r in json.loads(out.read_text())["records"]}
    assert set(records) == {"random", str(weights)}
    assert 0.0 <= records["random"]["ds"]["image_auroc"] <= 1.0 and records["random"]["ds"]["epochs"] == 1
    assert records[str(weights)]["pretraining"]["config"]["n_categories"] == 3 and "ds" not in records[str(weights)]
    assert records[str(weights)]["teacher"].startswith("file t.pt")
