import json

import pytest
import torch

from dskd.checkpoint import load_checkpoint, read_checkpoint
from dskd.config import TrainConfig, resolve_device
from dskd.evaluation import evaluate, predict
from dskd.training import dataset_for, train, train_or_load

TINY = dict(teacher="random", image_size=64, epochs=2, batch_size=8, n_train=16, n_test=12)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match=r"TrainConfig.structure='XY'.*one of"):
        TrainConfig.quick(structure="XY")
    with pytest.raises(ValueError, match=r"image_size=100.*multiple of 32"):
        TrainConfig.quick(image_size=100)
    with pytest.raises(ValueError, match=r"teacher='imagenet-v2'"):
        TrainConfig.quick(teacher="imagenet-v2")
    with pytest.raises(ValueError, match="unknown dataset"):
        TrainConfig.paper("cifar")


def test_paper_preset_is_the_papers_setting():
    cfg = TrainConfig.paper("mvtec", "bottle")
    assert (cfg.epochs, cfg.lr, cfg.betas, cfg.lam, cfg.image_size) == (200, 1e-3, (0.5, 0.999), 0.1, 256)
    assert TrainConfig.paper("mt-defects").image_size == 128


def test_config_round_trips_through_a_dict():
    cfg = TrainConfig.quick(teacher="random", layers=(1, 3))
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({**cfg.to_dict(), "epoch": 3})


def test_teacher_default_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DSKD_TEACHER", "random")
    assert TrainConfig().teacher == "random"
    monkeypatch.delenv("DSKD_TEACHER")
    assert TrainConfig().teacher == "imagenet"


def test_device_auto_resolves():
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    assert resolve_device("cpu").type == "cpu"


def test_training_is_reproducible_and_checkpoints_round_trip(tmp_path):
    cfg = TrainConfig.quick(**TINY)
    a = train(cfg, out_dir=tmp_path / "a", progress=False)
    b = train(cfg, progress=False)
    assert a.history == b.history  # same seed, same losses on the CPU
    model, loaded_cfg, payload = load_checkpoint(a.checkpoint)
    assert loaded_cfg == cfg.resolved() == a.config  # the checkpoint records the precision used, not "auto"
    assert payload["provenance"]["precision"]["used"] == loaded_cfg.precision
    assert payload["provenance"]["teacher"].startswith("random")
    assert payload["provenance"]["seed"] == cfg.seed and "torch_version" in payload["provenance"]
    x = dataset_for(cfg, "test")[0]["image"].unsqueeze(0)
    torch.testing.assert_close(predict(model, x).maps, predict(a.model, x).maps)


def test_resume_equals_an_uninterrupted_run(tmp_path):
    cfg = TrainConfig.quick(**TINY)
    full = train(cfg.replace(epochs=3), progress=False)
    train(cfg.replace(epochs=1), out_dir=tmp_path, progress=False)
    resumed = train(cfg.replace(epochs=3), resume=tmp_path / "checkpoint.pt", progress=False)
    assert resumed.history == pytest.approx(full.history, rel=1e-5)
    with pytest.raises(ValueError, match="config differs"):
        train(cfg.replace(lam=1.0), resume=tmp_path / "checkpoint.pt", progress=False)


def test_scoring_only_checkpoints_drop_the_optimizer_and_cannot_be_continued(tmp_path, monkeypatch):
    cfg = TrainConfig.quick(**TINY)
    kept = train(cfg, out_dir=tmp_path / "kept", progress=False)
    lean = train(cfg, out_dir=tmp_path / "lean", progress=False, keep_optimizer_state=False, checkpoint_every=1)
    assert read_checkpoint(kept.checkpoint)["optimizer"] is not None
    assert read_checkpoint(lean.checkpoint)["optimizer"] is None
    assert lean.checkpoint.stat().st_size < 0.5 * kept.checkpoint.stat().st_size
    x = dataset_for(cfg, "test")[0]["image"].unsqueeze(0)
    torch.testing.assert_close(predict(load_checkpoint(lean.checkpoint)[0], x).maps, predict(kept.model, x).maps)
    with pytest.raises(ValueError, match="no optimizer state"):
        train(cfg.replace(epochs=3), resume=lean.checkpoint, progress=False)
    # a finished run "resumed" at its own budget trains nothing, so it needs no optimizer state
    assert train(cfg, resume=lean.checkpoint, progress=False).history == lean.history
    # train_or_load's cache is for scoring: weights only
    monkeypatch.setenv("DSKD_CACHE", str(tmp_path / "cache"))
    cached = train_or_load(cfg, progress=False)
    assert read_checkpoint(cached.checkpoint)["optimizer"] is None
    assert train_or_load(cfg, progress=False).extra["cached"] is True


def test_callbacks_see_every_epoch():
    seen = []
    train(TrainConfig.quick(**TINY), callbacks=[lambda e, loss, m: seen.append((e, loss))], progress=False)
    assert [e for e, _ in seen] == [1, 2] and all(loss > 0 for _, loss in seen)


def test_bad_checkpoint_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a dskd checkpoint"):
        read_checkpoint(tmp_path / "other.pt")


@pytest.mark.slow
def test_quick_training_detects_synthetic_defects():
    """The embedded default must work: image AUROC >= 0.9 on the synthetic test split."""
    cfg = TrainConfig.quick(teacher="random")
    result = train(cfg, progress=False)
    report = evaluate(result.model, dataset_for(cfg, "test"))
    assert report.image_auroc >= 0.9, report.summary()
    assert report.teacher.startswith("random")
    assert set(report.per_defect_type) and all(0 <= v["pro"] <= 1 for v in report.per_defect_type.values())
