"""Bad and hostile inputs: each ends in one clear line and exit code 2, never a traceback, a silently wrong
result, or code run from a file (issue "Checkpoints that cannot run code, and runs that fail before they
train, not after")."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dskd.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from dskd.cli import main
from dskd.config import TrainConfig
from dskd.data import load_image, load_mask
from dskd.data.transforms import MaskValuesWarning
from dskd.outputs import OutputError, RunLock
from dskd.training import NonFiniteLossError, train

TINY = ["--teacher", "random", "--image-size", "64", "--batch-size", "16"]
REPO = Path(__file__).resolve().parents[1]


class _RunsCode:
    """Unpickling this calls os.system: what a crafted checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A real 1-epoch checkpoint of the quick DS model (random teacher)."""
    out = tmp_path_factory.mktemp("trained")
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    return out / "checkpoint.pt"


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    for sub in ("a", "b"):
        (folder / sub).mkdir(parents=True)
        Image.new("RGB", (70, 70), (30, 90, 160 if sub == "a" else 20)).save(folder / sub / "x.png")
    return folder


def _run(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err


def _assert_one_line_error(code: int, err: str, *keywords: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    # progress bars (tqdm, on stderr) are not messages
    lines = [line for line in err.replace("\r", "\n").strip().splitlines() if line.strip() and "%|" not in line]
    assert len(lines) == 1, lines
    assert lines[0].startswith("dskd ") and "error:" in lines[0]
    for word in keywords:
        assert word in lines[0], (word, lines[0])


# -------------------------------------------------------------------------------------------------
# Security: a checkpoint is data, never code
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["evaluate", "predict", "resume"])
def test_a_checkpoint_that_runs_code_is_refused_and_never_runs(command, tmp_path, images, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "checkpoint.pt"
    torch.save({"format": 1, "payload": _RunsCode(marker)}, evil)
    argv = {"evaluate": ["evaluate", str(evil)],
            "predict": ["predict", str(evil), str(images), "--out", str(tmp_path / "pred")],
            "resume": ["train", *TINY, "--epochs", "2", "--resume", str(evil), "--out", str(tmp_path / "r")]}[command]
    code, err = _run(argv, capsys)
    _assert_one_line_error(code, err, "refused", str(evil))
    assert not marker.exists()


def test_code_hidden_in_a_real_checkpoints_provenance_is_refused(trained, tmp_path, capsys):
    marker = tmp_path / "pwned"
    payload = torch.load(trained, map_location="cpu", weights_only=True)
    payload["provenance"]["note"] = _RunsCode(marker)
    evil = tmp_path / "checkpoint.pt"
    torch.save(payload, evil)
    code, err = _run(["evaluate", str(evil), "--out", str(tmp_path / "e.json")], capsys)
    _assert_one_line_error(code, err, "refused", "posix.system")
    assert not marker.exists() and not (tmp_path / "e.json").exists()
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(evil)
    assert not marker.exists()


def test_checkpoints_written_now_load_with_weights_only(trained):
    payload = torch.load(trained, map_location="cpu", weights_only=True)  # no allow-list needed
    assert type(payload["provenance"]["torch_version"]) is str


# -------------------------------------------------------------------------------------------------
# Clear errors: one line naming the file or value and what was expected
# -------------------------------------------------------------------------------------------------
def _bad_checkpoint(kind: str, folder: Path, trained: Path) -> Path:
    path = folder / f"{kind}.pt"
    if kind == "text":
        path.write_text("this is not a checkpoint\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(trained.read_bytes()[: trained.stat().st_size // 3])
    elif kind == "no-model-key":
        payload = torch.load(trained, map_location="cpu", weights_only=True)
        del payload["model"]
        torch.save(payload, path)
    elif kind == "other-structure":
        payload = torch.load(trained, map_location="cpu", weights_only=True)
        payload["config"]["structure"] = "T-E"  # DS weights under a T-E config
        torch.save(payload, path)
    elif kind == "state-dict":
        torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    elif kind == "folder":
        path = folder / "run"
        path.mkdir()
    return path


@pytest.mark.parametrize("kind, keywords", [
    ("text", ["not a torch checkpoint"]),
    ("empty", ["empty (0 bytes)"]),
    ("truncated", ["truncated"]),
    ("no-model-key", ["incomplete", "model"]),
    ("other-structure", ["do not fit the T-E model"]),
    ("state-dict", ["not a dskd checkpoint", "state dict"]),
    ("folder", ["is a folder, expected a checkpoint file"]),
])
def test_a_file_that_is_not_a_checkpoint_gives_one_line(kind, keywords, trained, tmp_path, capsys):
    path = _bad_checkpoint(kind, tmp_path, trained)
    code, err = _run(["evaluate", str(path), "--out", str(tmp_path / "e.json")], capsys)
    _assert_one_line_error(code, err, str(path), *keywords)


@pytest.mark.parametrize("argv, keywords", [
    (["train", "--lam", "nan"], ["lam=nan", "finite"]),
    (["train", "--lr", "inf"], ["lr=inf", "finite"]),
    (["train", "--checkpoint-every", "-1"], ["checkpoint_every=-1", ">= 0"]),
    (["train", "--dataset", "mt-defects", "--category", "bottle"], ["mt-defects has no categories"]),
    (["train", "--dataset", "mvtec", "--category", "bottel"], ["category='bottel'", "bottle"]),
    (["train", "--num-workers", "-2"], ["num_workers=-2"]),
    (["train", "--device", "cuda"], ["'cuda'", "no CUDA GPU"]),
    (["train", "--device", "tpu"], ["device"]),
    (["reproduce", "mt-defects", "--gpus", "0,1"], ["--gpus", "no CUDA GPU"]),
    (["demo", "--epochs", "0"], ["epochs=0"]),
    (["train", "--holdout", "0.9"], ["holdout_fraction=0.9", "[0, 0.5]"]),
    (["train", "--holdout", "nan"], ["holdout_fraction=nan", "finite"]),
    (["train", "--false-alarm-rate", "1"], ["--false-alarm-rate", "[0, 1)"]),
    (["train", "--false-alarm-rate", "nan"], ["--false-alarm-rate", "[0, 1)"]),
    (["ablate", "--study", "dfe", "--holdout", "-0.1"], ["holdout_fraction=-0.1"]),
])
def test_bad_settings_are_refused_before_any_work(argv, keywords, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = argv + (["--out", str(tmp_path / "out")] if argv[0] in ("train", "demo") else [])
    started = time.perf_counter()
    code, err = _run(argv, capsys)
    _assert_one_line_error(code, err, *keywords)
    assert time.perf_counter() - started < 20  # refused at once, not after training
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def test_a_text_file_as_teacher_gives_one_line(tmp_path, capsys):
    teacher = tmp_path / "teacher.pth"
    teacher.write_text("not weights")
    code, err = _run(["train", "--teacher", str(teacher), "--epochs", "1", "--out", str(tmp_path / "o")], capsys)
    _assert_one_line_error(code, err, str(teacher), "expected a ResNet18 state dict")


def test_predict_rejects_a_nan_threshold(trained, images, tmp_path, capsys):
    code, err = _run(["predict", str(trained), str(images), "--threshold", "nan", "--out", str(tmp_path / "p")],
                     capsys)
    _assert_one_line_error(code, err, "--threshold", "finite")


def _decision_argv(command: str, checkpoint: Path, images: Path, tmp_path: Path) -> list[str]:
    return {"predict": ["predict", str(checkpoint), str(images), "--out", str(tmp_path / "p")],
            "evaluate": ["evaluate", str(checkpoint), "--out", str(tmp_path / "e.json")],
            "export": ["export", str(checkpoint), "--out", str(tmp_path / "m.onnx")]}[command]


def _no_inference(monkeypatch) -> None:
    import dskd.evaluation
    import dskd.export

    def refuse(*args, **kwargs):
        raise AssertionError("inference or export ran before the flags were checked")

    for module, name in ((dskd.evaluation, "predict"), (dskd.evaluation, "evaluate"), (dskd.export, "export_onnx")):
        monkeypatch.setattr(module, name, refuse)


@pytest.mark.parametrize("command", ["predict", "evaluate", "export"])
@pytest.mark.parametrize("flags, keywords", [
    (["--false-alarm-rate", "1.5"], ["--false-alarm-rate", "[0, 1)", "1.5"]),
    (["--false-alarm-rate", "-0.01"], ["--false-alarm-rate", "[0, 1)"]),
    (["--false-alarm-rate", "nan"], ["--false-alarm-rate", "nan"]),
    (["--threshold", "inf"], ["--threshold", "finite"]),
])
def test_bad_threshold_flags_are_refused_before_any_work(command, flags, keywords, trained, images, tmp_path,
                                                         capsys, monkeypatch):
    _no_inference(monkeypatch)
    code, err = _run(_decision_argv(command, trained, images, tmp_path) + flags, capsys)
    _assert_one_line_error(code, err, *keywords)


@pytest.mark.parametrize("command", ["predict", "evaluate", "export"])
def test_threshold_and_false_alarm_rate_exclude_each_other(command, trained, images, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(_decision_argv(command, trained, images, tmp_path) + ["--threshold", "0.1", "--false-alarm-rate", "0.1"])
    err = capsys.readouterr().err
    _assert_one_line_error(stop.value.code, err, "--false-alarm-rate", "not allowed with argument --threshold")


@pytest.mark.parametrize("command", ["predict", "evaluate", "export"])
def test_a_false_alarm_rate_for_a_checkpoint_without_held_out_scores_is_one_line(command, trained, images, tmp_path,
                                                                                 capsys, monkeypatch):
    _no_inference(monkeypatch)
    payload = torch.load(trained, map_location="cpu", weights_only=True)
    del payload["calibration"]  # as written before checkpoints stored a threshold
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    code, err = _run(_decision_argv(command, old, images, tmp_path) + ["--false-alarm-rate", "0.05"], capsys)
    _assert_one_line_error(code, err, "needs the held-out normal scores", str(old), "pass --threshold")


def test_export_refuses_an_unknown_format_and_a_folder_as_output(trained, tmp_path, capsys, monkeypatch):
    _no_inference(monkeypatch)
    with pytest.raises(SystemExit) as stop:
        main(["export", str(trained), "--format", "tflite"])
    _assert_one_line_error(stop.value.code, capsys.readouterr().err, "invalid choice: 'tflite'", "onnx")
    code, err = _run(["export", str(trained), "--out", str(tmp_path)], capsys)
    _assert_one_line_error(code, err, "is a folder, expected a file name")


# -------------------------------------------------------------------------------------------------
# Fail before the work, not after
# -------------------------------------------------------------------------------------------------
def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder that cannot be created or written, for root too (chmod does not stop root)."""
    if os.geteuid() != 0:
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o555)
        return ro / "out"
    return Path("/proc") / "dskd-cannot-write-here" / "out"


@pytest.mark.parametrize("where", ["unwritable", "is-a-file"])
def test_train_out_is_checked_before_training(where, tmp_path, capsys):
    if where == "is-a-file":
        out = tmp_path / "a-file"
        out.write_text("x")
    else:
        out = _unwritable_folder(tmp_path)
    started = time.perf_counter()
    code, err = _run(["train", *TINY, "--epochs", "30", "--out", str(out)], capsys)
    keyword = "is an existing file" if where == "is-a-file" else "cannot create"
    _assert_one_line_error(code, err, str(out), keyword)
    assert time.perf_counter() - started < 20  # 30 epochs would take minutes


def test_evaluate_and_predict_out_are_checked_before_inference(trained, images, tmp_path, capsys, monkeypatch):
    import dskd.evaluation

    def no_inference(*args, **kwargs):
        raise AssertionError("inference ran before the output location was checked")

    monkeypatch.setattr(dskd.evaluation, "predict", no_inference)
    monkeypatch.setattr(dskd.evaluation, "evaluate", no_inference)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    code, err = _run(["evaluate", str(trained), "--out", str(a_file / "report.json")], capsys)
    _assert_one_line_error(code, err, "is an existing file")
    code, err = _run(["evaluate", str(trained), "--out", str(tmp_path)], capsys)
    _assert_one_line_error(code, err, "is a folder, expected a file name")
    code, err = _run(["predict", str(trained), str(images), "--out", str(a_file)], capsys)
    _assert_one_line_error(code, err, "is an existing file")
    code, err = _run(["predict", str(trained), str(images), "--out", str(_unwritable_folder(tmp_path))], capsys)
    _assert_one_line_error(code, err, "cannot create")


# -------------------------------------------------------------------------------------------------
# Silently wrong results
# -------------------------------------------------------------------------------------------------
def test_resuming_with_fewer_epochs_than_trained_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--out", str(run)]) == 0
    capsys.readouterr()
    before = (run / "checkpoint.pt").read_bytes()
    code, err = _run(["train", *TINY, "--epochs", "1", "--resume", str(run / "checkpoint.pt"), "--out", str(run)],
                     capsys)
    _assert_one_line_error(code, err, "already trained 2 epochs", "epochs=1")
    assert (run / "checkpoint.pt").read_bytes() == before  # untouched: not relabelled as epoch 1


def test_a_loss_that_turns_nan_stops_training_and_keeps_the_last_good_epoch(tmp_path):
    cfg = TrainConfig.quick(teacher="random", epochs=4, n_train=32, n_test=16)

    def poison(epoch: int, loss: float, model) -> None:
        if epoch == 2:  # after epoch 2 is finished and snapshotted, corrupt a student weight
            with torch.no_grad():
                model.student_parameters()[0].fill_(float("nan"))

    with pytest.raises(NonFiniteLossError, match=r"loss became nan in epoch 3 \(batch 1\).*epoch 2 is kept"):
        train(cfg, out_dir=tmp_path, callbacks=[poison], progress=False)
    payload = read_checkpoint(tmp_path / "checkpoint.pt")
    assert payload["epoch"] == 2 and len(payload["history"]) == 2
    assert all(torch.isfinite(v).all() for v in payload["model"].values() if v.is_floating_point())
    assert payload["optimizer"] is not None  # it can be resumed


def test_sixteen_bit_images_are_scaled_by_bit_depth_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    img = load_image(path, 64)
    expected = torch.from_numpy(ramp.astype(np.float32) / 65535)
    torch.testing.assert_close(img[0], expected, atol=1e-6, rtol=0)
    assert float((img >= 1.0).float().mean()) < 0.05  # Pillow's convert("RGB") saturated 99.5 % of it


@pytest.mark.parametrize("high", [1, 255])
def test_masks_stored_as_0_1_or_0_255_give_the_same_mask(high, tmp_path):
    arr = np.zeros((32, 32), np.uint8)
    arr[8:20, 4:12] = high
    path = tmp_path / f"mask{high}.png"
    Image.fromarray(arr).save(path)
    mask = load_mask(path, 32)
    assert mask.sum() == 12 * 8 and set(mask.unique().tolist()) == {0.0, 1.0}


def test_a_mask_with_neither_range_says_what_it_found(tmp_path):
    arr = np.zeros((32, 32), np.uint8)
    arr[8:20, 4:12] = 3
    path = tmp_path / "labels.png"
    Image.fromarray(arr).save(path)
    with pytest.warns(MaskValuesWarning, match=r"labels.png holds the values \{0, 3\}.*read as empty.*0/1 or 0/255"):
        mask = load_mask(path, 32)
    assert mask.sum() == 0  # as the 8-bit threshold always read it (MT Defects has four such masks)


def test_evaluate_on_0_1_masks_reports_numbers_and_empty_masks_warn(trained, data_make_mvtec_tree, tmp_path, capsys):
    root = data_make_mvtec_tree(tmp_path / "mvtec")
    for mask in (root / "bottle" / "ground_truth").rglob("*.png"):
        Image.fromarray((np.asarray(Image.open(mask)) > 0).astype(np.uint8)).save(mask)  # 0/1 masks
    payload = torch.load(trained, map_location="cpu", weights_only=True)
    payload["config"].update(dataset="mvtec", category="bottle", n_train=None, n_test=None)
    ckpt = tmp_path / "mvtec.pt"
    torch.save(payload, ckpt)
    out = tmp_path / "e.json"
    assert main(["evaluate", str(ckpt), "--data-root", str(root), "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["pixel_auroc"] is not None and metrics["pro"] is not None and not metrics["warnings"]
    for mask in (root / "bottle" / "ground_truth").rglob("*.png"):
        Image.fromarray(np.zeros((12, 16), np.uint8)).save(mask)  # every defect mask empty
    capsys.readouterr()
    assert main(["evaluate", str(ckpt), "--data-root", str(root), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: pixel AUROC and PRO are undefined: all 3 anomalous images have an empty mask" in err
    assert json.loads(out.read_text())["metrics"]["warnings"]


def test_predict_keeps_relative_paths_so_same_names_do_not_collide(trained, images, tmp_path):
    out = tmp_path / "pred"
    assert main(["predict", str(trained), str(images), "--out", str(out)]) == 0
    scores = json.loads((out / "scores.json").read_text())
    heatmaps = sorted(Path(r["heatmap"]).relative_to(out).as_posix() for r in scores["images"])
    assert heatmaps == ["a/x_heatmap.png", "b/x_heatmap.png"]
    assert all(Path(h).is_file() for h in (out / "a" / "x_heatmap.png", out / "b" / "x_heatmap.png"))


def test_two_runs_never_write_one_folder(tmp_path, capsys):
    run = tmp_path / "run"
    with RunLock(run):  # a live run holds the folder
        code, err = _run(["train", *TINY, "--epochs", "1", "--out", str(run)], capsys)
        _assert_one_line_error(code, err, f"pid {os.getpid()}", "is writing to")
    assert main(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 0  # free again once released


def test_a_failed_save_leaves_no_temporary_file_and_stale_ones_are_cleaned(trained, tmp_path, monkeypatch):
    from dskd.checkpoint import load_checkpoint

    model, cfg, payload = load_checkpoint(trained)
    stale = tmp_path / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint from a killed run")
    with RunLock(tmp_path):
        pass
    assert not stale.exists()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(tmp_path / "checkpoint.pt", model, cfg, epoch=1, history=[1.0], provenance={})
    assert sorted(p.name for p in tmp_path.iterdir()) == [".dskd-run.lock"]
    with pytest.raises(OutputError, match="is writing to"):
        with RunLock(tmp_path), RunLock(tmp_path):
            pass


def test_a_bad_image_under_a_worker_process_is_one_line(data_make_mvtec_tree, tmp_path, capsys):
    root = data_make_mvtec_tree(tmp_path / "mvtec")
    bad = root / "bottle" / "train" / "good" / "001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, err = _run(["train", "--dataset", "mvtec", "--category", "bottle", "--data-root", str(root), *TINY,
                      "--epochs", "1", "--holdout", "0", "--num-workers", "1", "--out", str(tmp_path / "o")],
                     capsys)
    _assert_one_line_error(code, err, "cannot read image", "001.png")
    assert "Original Traceback" not in err and "worker" not in err


@pytest.mark.slow
def test_ctrl_c_in_train_keeps_the_last_finished_epoch_and_prints_how_to_resume(tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "dskd", "train", *TINY, "--epochs", "200", "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = b""
    deadline = time.time() + 240
    while b"2/200" not in seen and time.time() < deadline:  # tqdm shows epoch 2 started: epoch 1 is done
        chunk = os.read(proc.stderr.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
    assert b"2/200" in seen, seen[-500:]
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    err = (seen + rest).decode(errors="replace")
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "training interrupted in epoch" in err
    resume_line = next(line for line in err.splitlines() if "resume with:" in line)
    assert f"--resume {out / 'checkpoint.pt'}" in resume_line and "--epochs 200" in resume_line
    payload = read_checkpoint(out / "checkpoint.pt")
    assert payload["epoch"] >= 1 and len(payload["history"]) == payload["epoch"] and payload["optimizer"] is not None
