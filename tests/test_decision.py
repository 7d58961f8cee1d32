"""From a trained model to a decision (issue 20): a threshold calibrated on held-out normal training images
travels in the checkpoint; `dskd predict` decides with it; `dskd evaluate` reports precision, recall and the
false-alarm rate at it beside the AUROCs; the heat map outlines the region above it, with a title that fits."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dskd import TrainConfig
from dskd.checkpoint import (CheckpointError, checkpoint_calibration, load_checkpoint, no_threshold_reason,
                             read_checkpoint)
from dskd.cli import build_parser, config_from_args, main, train_config_from_args
from dskd.config import MIN_HOLDOUT_IMAGES, TRAIN_HOLDOUT_FRACTION
from dskd.evaluation import predict
from dskd.inference import USES_TEST_DATA, Calibration, Thresholds, check_false_alarm_rate, paper_threshold
from dskd.metrics import decision_metrics
from dskd.plotting import plot_decisions
from dskd.reproduce.jobs import paper_config
from dskd.runs import run_key
from dskd.training import HoldoutWarning, dataset_for, split_holdout, train


# -------------------------------------------------------------------------------------------------
# The calibration record
# -------------------------------------------------------------------------------------------------
def test_calibration_is_the_quantile_of_the_held_out_scores_and_can_move_to_another_rate():
    scores = np.linspace(0.0, 1.0, 201)  # 201 normal scores: the 99 % quantile is 0.99
    cal = Calibration.from_scores(scores, 0.01, "201 held-out images")
    assert cal.threshold == pytest.approx(0.99) and cal.n_images == 201 and cal.false_alarm_rate == 0.01
    assert float(np.mean(scores >= cal.threshold)) == pytest.approx(0.01, abs=0.005)  # ~1 % of normal flagged
    assert "99% quantile of 201 normal scores" in cal.rule and "201 held-out images" in cal.rule
    assert cal.note == ""  # 201 images resolve 1 %
    assert cal.at_rate(0.1).threshold == pytest.approx(0.9) and cal.at_rate(0.1).scores == cal.scores
    assert Calibration.from_dict(cal.to_dict()) == cal
    assert json.loads(json.dumps(cal.to_dict())) == cal.to_dict()  # plain data


def test_too_few_held_out_images_for_the_rate_are_said_so():
    cal = Calibration.from_scores(np.arange(10.0), 0.01)
    assert "10 held-out images cannot resolve a 1.00% false-alarm rate" in cal.note
    assert "1/(n + 1) = 9.1%" in cal.note and "at least 100" in cal.note


@pytest.mark.parametrize("rate", [1.0, -0.1, float("nan"), "0.1", True])
def test_a_false_alarm_rate_outside_0_1_is_refused(rate):
    with pytest.raises(ValueError, match=r"false-alarm rate must be a number in \[0, 1\)"):
        check_false_alarm_rate(rate)


@pytest.mark.parametrize("record, message", [
    ({"threshold": 1.0}, "not a calibration record"),
    ({"threshold": 1.0, "rule": "r", "false_alarm_rate": 0.01, "scores": []}, "no held-out scores"),
    ({"threshold": 1.0, "rule": "r", "false_alarm_rate": 2.0, "scores": [1.0]}, "false-alarm rate must be"),
])
def test_a_damaged_calibration_record_is_refused(record, message):
    with pytest.raises(ValueError, match=message):
        Calibration.from_dict(record)


def test_calibration_needs_finite_scores():
    with pytest.raises(ValueError, match="at least one finite held-out normal score"):
        Calibration.from_scores([0.1, float("nan")])


def test_decision_metrics_count_each_kind_of_outcome():
    labels = [0, 0, 0, 0, 1, 1, 1]
    scores = [0.1, 0.2, 0.6, 0.3, 0.9, 0.4, 0.7]
    d = decision_metrics(labels, scores, 0.5)  # flagged: 0.6 (normal), 0.9, 0.7 (anomalous)
    assert (d["tp"], d["fp"], d["fn"], d["tn"]) == (2, 1, 1, 3)
    assert d["precision"] == pytest.approx(2 / 3) and d["recall"] == pytest.approx(2 / 3)
    assert d["false_alarm_rate"] == pytest.approx(1 / 4)
    none_flagged = decision_metrics(labels, scores, 5.0)
    assert math.isnan(none_flagged["precision"]) and none_flagged["recall"] == 0.0
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        decision_metrics(labels, scores, float("inf"))
    with pytest.raises(ValueError, match="labels and scores must have the same length; got 7 and 6"):
        decision_metrics(labels, scores[:6], 0.5)


def test_the_papers_threshold_says_it_uses_test_data():
    assert USES_TEST_DATA in paper_threshold(np.array([0.0, 1.0])).rule


# -------------------------------------------------------------------------------------------------
# The holdout: dskd train holds images out; the paper's runs, the chapters and the ablations do not
# -------------------------------------------------------------------------------------------------
def test_only_dskd_train_holds_images_out_by_default(tmp_path):
    parser = build_parser()
    train_args = parser.parse_args(["train", "--teacher", "random"])
    assert train_config_from_args(train_args).holdout_fraction == TRAIN_HOLDOUT_FRACTION == 0.1
    assert train_config_from_args(parser.parse_args(["train", "--holdout", "0"])).holdout_fraction == 0
    assert config_from_args(parser.parse_args(["ablate", "--study", "dfe"])).holdout_fraction == 0
    assert config_from_args(parser.parse_args(["ablate", "--study", "dfe", "--holdout", "0.2"])).holdout_fraction == 0.2
    assert TrainConfig.quick().holdout_fraction == 0 and TrainConfig.paper("mvtec", "bottle").holdout_fraction == 0
    assert paper_config("mt-defects").holdout_fraction == 0


def test_a_holdout_renames_the_run_and_no_holdout_keeps_the_old_name():
    cfg = TrainConfig.quick()
    old_style = {k: v for k, v in cfg.to_dict().items() if k != "holdout_fraction"}  # a record from before
    assert run_key(TrainConfig.from_dict(old_style)) == run_key(cfg)
    assert run_key(cfg.replace(holdout_fraction=0.1)) != run_key(cfg)


@pytest.mark.parametrize("value", [0.6, -0.1, float("nan")])
def test_holdout_fraction_is_validated(value):
    with pytest.raises(ValueError, match="holdout_fraction"):
        TrainConfig.quick(holdout_fraction=value)


def test_the_holdout_is_seeded_disjoint_and_keeps_the_rest_in_order():
    items = list(range(100))
    cfg = TrainConfig.quick(holdout_fraction=0.1)
    kept, held, line = split_holdout(items, cfg)
    assert len(held) == 10 and len(kept) == 90 and "10 of 100 normal training images held out (seed 0)" in line
    assert sorted(list(kept) + list(held)) == items and list(kept) == sorted(kept)
    assert list(split_holdout(items, cfg)[1]) == list(held)  # the same on every call (and rank, and resume)
    assert list(split_holdout(items, cfg.replace(seed=1))[1]) != list(held)
    same, none, _ = split_holdout(items, TrainConfig.quick())
    assert same is items and none is None


def test_a_split_too_small_to_hold_out_trains_on_every_image_and_says_why(tmp_path):
    cfg = TrainConfig.quick(teacher="random", epochs=1, n_train=32, n_test=16, image_size=32, holdout_fraction=0.1)
    with pytest.warns(HoldoutWarning, match=rf"has 32 images: 10% of it is 3 image\(s\), fewer than the "
                                            rf"{MIN_HOLDOUT_IMAGES}.*stores no threshold"):
        result = train(cfg, out_dir=tmp_path, progress=False)
    payload = read_checkpoint(tmp_path / "checkpoint.pt")
    assert result.calibration is None and payload["calibration"] is None
    assert payload["provenance"]["n_train"] == 32 and "holdout" not in payload["provenance"]
    assert "its training split was too small for holdout_fraction=0.1" in no_threshold_reason(payload)


# -------------------------------------------------------------------------------------------------
# A checkpoint from dskd train carries its threshold
# -------------------------------------------------------------------------------------------------
def test_a_checkpoint_from_dskd_train_carries_its_threshold(decision_checkpoint):
    payload = torch.load(decision_checkpoint, map_location="cpu", weights_only=True)  # plain data only
    stored = payload["calibration"]
    assert stored["false_alarm_rate"] == 0.01 and stored["n_images"] == 10 and len(stored["scores"]) == 10
    assert stored["threshold"] == pytest.approx(float(np.quantile(stored["scores"], 0.99)))
    assert "calibrated: 99% quantile of 10 normal scores, 10 of 96 normal training images held out (seed 0)" \
        == stored["rule"]
    held = payload["provenance"]["holdout"]
    assert held["n_images"] == 10 and payload["provenance"]["n_train"] == 86
    # the stored scores are the final model's scores of exactly those held-out training images
    model, cfg, _ = load_checkpoint(decision_checkpoint)
    _, held_out, _ = split_holdout(dataset_for(cfg, "train"), cfg)
    assert list(held_out.indices) == held["indices"]
    rescored = predict(model, held_out, cfg.inference()).scores
    np.testing.assert_allclose(rescored.numpy(), stored["scores"], rtol=1e-5)


# -------------------------------------------------------------------------------------------------
# dskd predict decides
# -------------------------------------------------------------------------------------------------
def test_predict_decides_with_the_stored_threshold_without_flags(decision_checkpoint, decision_images, tmp_path,
                                                                 capsys):
    out = tmp_path / "pred"
    assert main(["predict", str(decision_checkpoint), str(decision_images), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    result = json.loads((out / "scores.json").read_text())
    stored = read_checkpoint(decision_checkpoint)["calibration"]
    assert result["threshold"] == {"value": stored["threshold"], "rule": stored["rule"]}
    records = result["images"]
    assert len(records) == 8  # 2 good, 5 defect types, 1 grey frame
    for r in records:
        assert r["threshold"] == stored["threshold"] and r["rule"] == stored["rule"]
        assert r["anomalous"] is (r["score"] >= stored["threshold"])
        assert (r["region_fraction"] > 0) is r["anomalous"]  # the region above the threshold makes the decision
        assert Path(r["heatmap"]).is_file()
    flagged = sum(r["anomalous"] for r in records)
    assert f"{flagged} anomalous at threshold {stored['threshold']:.4g}" in stdout


def test_predict_threshold_flags_override_the_stored_one(decision_checkpoint, decision_images, tmp_path):
    out = tmp_path / "pred"
    assert main(["predict", str(decision_checkpoint), str(decision_images), "--out", str(out),
                 "--threshold", "0"]) == 0
    records = json.loads((out / "scores.json").read_text())["images"]
    assert all(r["anomalous"] and r["rule"] == "given on the command line" and r["threshold"] == 0 for r in records)
    assert main(["predict", str(decision_checkpoint), str(decision_images), "--out", str(out),
                 "--false-alarm-rate", "0.5"]) == 0
    records = json.loads((out / "scores.json").read_text())["images"]
    scores = read_checkpoint(decision_checkpoint)["calibration"]["scores"]
    assert records[0]["threshold"] == pytest.approx(float(np.median(scores)))
    assert records[0]["rule"].startswith("calibrated: 50% quantile of 10 normal scores")


def _without_threshold(checkpoint: Path, folder: Path, drop_key: bool) -> Path:
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if drop_key:
        del payload["calibration"]  # a checkpoint written before thresholds travelled with models
    else:
        payload["calibration"] = None
        payload["config"]["holdout_fraction"] = 0.0  # trained on every image (reproduce, ablate)
    path = folder / ("old.pt" if drop_key else "no-holdout.pt")
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("drop_key, reason", [
    (True, "it was written before checkpoints stored a threshold"),
    (False, "it was trained on every training image (holdout_fraction=0"),
])
def test_a_checkpoint_without_threshold_loads_scores_and_says_it_has_none(drop_key, reason, decision_checkpoint,
                                                                          decision_images, tmp_path, capsys):
    old = _without_threshold(decision_checkpoint, tmp_path, drop_key)
    model, cfg, payload = load_checkpoint(old)
    assert checkpoint_calibration(payload, old) is None
    out = tmp_path / "pred"
    assert main(["predict", str(old), str(decision_images), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"stores no threshold ({reason}" in captured.err and "pass --threshold" in captured.err
    assert "no threshold, no decision" in captured.out
    result = json.loads((out / "scores.json").read_text())
    assert result["threshold"] is None
    assert all(r["anomalous"] is None and r["threshold"] is None and r["score"] > 0 for r in result["images"])
    assert main(["predict", str(old), str(decision_images), "--out", str(out), "--threshold", "0.5"]) == 0
    assert all(r["anomalous"] is (r["score"] >= 0.5) for r in json.loads((out / "scores.json").read_text())["images"])


def test_a_damaged_threshold_record_is_one_line(decision_checkpoint, decision_images, tmp_path, capsys):
    payload = torch.load(decision_checkpoint, map_location="cpu", weights_only=True)
    payload["calibration"] = {"threshold": "high"}
    bad = tmp_path / "bad.pt"
    torch.save(payload, bad)
    with pytest.raises(CheckpointError, match="holds a damaged threshold record"):
        checkpoint_calibration(read_checkpoint(bad), bad)
    assert main(["predict", str(bad), str(decision_images), "--out", str(tmp_path / "p")]) == 2
    assert "damaged threshold record" in capsys.readouterr().err


# -------------------------------------------------------------------------------------------------
# dskd evaluate reports the decision beside the AUROCs
# -------------------------------------------------------------------------------------------------
def test_evaluate_reports_precision_recall_and_false_alarms_at_the_stored_threshold(decision_checkpoint, tmp_path,
                                                                                    capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(decision_checkpoint), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    metrics = json.loads(out.read_text())["metrics"]
    stored = read_checkpoint(decision_checkpoint)["calibration"]
    at = metrics["decisions"]["threshold"]
    assert at["threshold"] == stored["threshold"] and at["rule"] == stored["rule"] and not at["uses_test_data"]
    n_bad, n_good = metrics["n_anomalous"], metrics["n_images"] - metrics["n_anomalous"]
    assert (n_bad, n_good) == (32, 16)  # the quick test split
    assert at["tp"] + at["fn"] == n_bad and at["fp"] + at["tn"] == n_good
    assert at["recall"] == pytest.approx(at["tp"] / n_bad) and at["false_alarm_rate"] == pytest.approx(at["fp"] / n_good)
    if at["tp"] + at["fp"]:
        assert at["precision"] == pytest.approx(at["tp"] / (at["tp"] + at["fp"]))
    paper = metrics["decisions"]["paper"]
    assert paper["uses_test_data"] and USES_TEST_DATA in paper["rule"]
    assert f"at threshold {stored['threshold']:.4g} ({stored['rule']}): precision" in stdout
    assert f"false-alarm rate {at['false_alarm_rate']:.3f}" in stdout and "image AUROC" in stdout


def test_evaluate_without_a_threshold_keeps_its_earlier_report(decision_checkpoint, tmp_path, capsys):
    old = _without_threshold(decision_checkpoint, tmp_path, drop_key=True)
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(old), "--out", str(out)]) == 0
    assert "stores no threshold" in capsys.readouterr().err
    assert "decisions" not in json.loads(out.read_text())["metrics"]


# -------------------------------------------------------------------------------------------------
# The heat map: the region above the threshold outlined, a title that fits
# -------------------------------------------------------------------------------------------------
def _inside_figure(fig, artist) -> bool:
    box = artist.get_window_extent(fig.canvas.get_renderer())
    width, height = fig.canvas.get_width_height()
    return box.x0 >= 0 and box.x1 <= width and box.y0 >= 0 and box.y1 <= height


def _maps() -> torch.Tensor:
    maps = torch.zeros(2, 64, 64)
    maps[0, 20:30, 30:45] = 1.0  # a defect-like blob in the first map, nothing in the second
    maps[1] += 0.2
    return maps


@pytest.mark.parametrize("name", ["a.png", "line-7/camera-2/2026-12-04T10-31-07.123_part_000417_frame.png"])
def test_the_heat_map_outlines_the_region_above_the_threshold_and_its_titles_fit(name):
    from matplotlib import pyplot as plt

    images = torch.zeros(2, 3, 64, 64)
    threshold = Thresholds(0.5, "calibrated: 99% quantile of 10 normal scores, 10 of 96 normal training images "
                                "held out (seed 0)")
    fig = plot_decisions(images, _maps(), [1.0, 0.2], threshold, names=[name, "b.png"],
                         teacher="offline-pretrained ResNet18 (fractal pretraining, sha256 d8cd5801...)",
                         data="synthetic model")
    fig.canvas.draw()
    try:
        assert _inside_figure(fig, fig._suptitle), fig._suptitle.get_text()
        for ax in fig.axes:
            if ax.get_title():
                assert _inside_figure(fig, ax.title), ax.get_title()
        image_ax, map_ax = fig.axes[0], fig.axes[2]  # column 1: the anomalous one
        assert image_ax.get_title().splitlines()[1] == "ANOMALOUS"
        assert fig.axes[1].get_title().splitlines()[1] == "normal"
        assert image_ax.collections and map_ax.collections  # the outline, on the image and on the map
        assert not fig.axes[1].collections and not fig.axes[3].collections  # nothing above it: no outline
        assert "outlined: map \u2265 threshold 0.5" in fig._suptitle.get_text()
    finally:
        plt.close(fig)


def test_the_heat_map_without_threshold_shows_scores_only():
    from matplotlib import pyplot as plt

    fig = plot_decisions(torch.zeros(1, 3, 64, 64), _maps()[:1], [1.0], None, names=["a.png"], teacher="t", data="d")
    try:
        assert "no threshold" in fig.axes[0].get_title() and not fig.axes[0].collections
        assert "scores only" in fig._suptitle.get_text()
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="differ in length"):
        plot_decisions(torch.zeros(1, 3, 8, 8), _maps(), [1.0], None, names=["a"], teacher="t", data="d")


def test_the_heat_map_png_of_predict_is_not_cut(decision_checkpoint, decision_images, tmp_path):
    out = tmp_path / "pred"
    assert main(["predict", str(decision_checkpoint), str(decision_images), "--out", str(out)]) == 0
    png = out / "grey_line_camera_frame_2026-12-04T10-31-07_heatmap.png"
    with Image.open(png) as im:
        width, height = im.size
        rgb = np.asarray(im.convert("RGB"))
    assert width >= 600 and height >= 300  # image and map side by side, at 120 dpi
    # nothing drawn in the outermost pixel columns: the title is not cut at the edges
    assert (rgb[:, :2] == 255).all() and (rgb[:, -2:] == 255).all()


def test_save_image_writes_what_load_image_reads_back(tmp_path):
    from dskd.data import denormalize, load_image, normalize, save_image

    item = dataset_for(TrainConfig.quick(), "test")[5]["image"]
    path = save_image(item, tmp_path / "sub" / "part.png")
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.size == (64, 64)
    back = load_image(path, 64)
    assert float((back - denormalize(item)).abs().max()) <= 0.5 / 255 + 1e-6
    assert float((normalize(back) - item).abs().max()) < 0.01


def test_the_confusion_tables_decision_labels_do_not_overlap():
    from matplotlib import pyplot as plt

    from dskd.plotting import plot_threshold

    fig = plot_threshold([0.1, 0.5, 0.9, 0.3], [0, 0, 1, 1], 0.4, normal_scores=[0.1, 0.2], teacher="t", data="d")
    fig.canvas.draw()
    try:
        renderer = fig.canvas.get_renderer()
        left, right = (t.get_window_extent(renderer) for t in fig.axes[1].get_xticklabels())
        assert left.x1 < right.x0, (left, right)
    finally:
        plt.close(fig)
