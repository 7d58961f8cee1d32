import json
import subprocess
import sys

import pytest
from PIL import Image

from dskd.cli import main

TINY = ["--teacher", "random", "--epochs", "1", "--image-size", "64", "--batch-size", "8"]


def test_help_on_every_command(capsys):
    for cmd in (["--help"], ["train", "--help"], ["evaluate", "--help"], ["predict", "--help"], ["demo", "--help"],
                ["ablate", "--help"], ["reproduce", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(cmd)
        assert exit_info.value.code == 0
    assert "Algorithm 1" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "--structure", "XY"], "invalid choice: 'XY'"),
    (["train", "--epochs", "many"], "invalid int value"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_give_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_errors_after_parsing_are_one_line_too(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "none.pt")]) == 2
    assert main(["train", "--image-size", "100", "--teacher", "random"]) == 2
    assert main(["train", "--preset", "paper", "--teacher", "random"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("dskd ") and "error:" in line for line in err)
    assert "does not exist" in err[0] and "multiple of 32" in err[1] and "needs --dataset" in err[2]


def test_train_evaluate_predict(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0
    ckpt = run / "checkpoint.pt"
    assert ckpt.is_file()
    assert main(["evaluate", str(ckpt), "--out", str(tmp_path / "eval.json")]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert {"image_auroc", "pixel_auroc", "pro", "per_defect_type"} <= set(report["metrics"])
    assert report["provenance"]["teacher"].startswith("random")
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        Image.new("RGB", (80, 80), (40 * i, 90, 120)).save(images / f"img{i}.png")
    assert main(["predict", str(ckpt), str(images), "--out", str(tmp_path / "pred"), "--threshold", "0.5"]) == 0
    scores = json.loads((tmp_path / "pred" / "scores.json").read_text())
    assert len(scores["images"]) == 2 and all("anomalous" in r for r in scores["images"])
    assert (tmp_path / "pred" / "img0_heatmap.png").stat().st_size > 0
    assert main(["predict", str(ckpt), str(tmp_path / "nothing-here")]) == 2


def test_python_dash_m_is_the_same_cli():
    out = subprocess.run([sys.executable, "-m", "dskd", "--help"], capture_output=True, text=True, check=True).stdout
    assert "demo" in out and "evaluate" in out


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    assert main(["demo", "--teacher", "random", "--out", str(tmp_path)]) == 0
    for name in ("demo_report.md", "demo_report.json", "demo_maps.png", "demo_loss.png", "checkpoint.pt"):
        assert (tmp_path / name).stat().st_size > 0
    assert "teacher: random" in (tmp_path / "demo_report.md").read_text()


MAKEFILE = __import__("pathlib").Path(__file__).resolve().parents[1] / "Makefile"


@pytest.mark.skipif(__import__("shutil").which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("env_teacher, expected", [(None, "offline-pretrained"), ("imagenet", "imagenet")])
def test_make_exports_the_offline_teacher_by_default(env_teacher, expected):
    """`make book` / `make test` run with DSKD_TEACHER=offline-pretrained unless the caller sets it."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "DSKD_TEACHER"}  # conftest sets it for this session
    if env_teacher is not None:
        env["DSKD_TEACHER"] = env_teacher
    probe = "print-teacher:\n\t@echo \"teacher=$$DSKD_TEACHER\"\n"  # what a recipe's shell sees (export)
    proc = subprocess.run(["make", "--no-print-directory", "-s", "-f", str(MAKEFILE), "-f", "-", "print-teacher"],
                          input=probe, capture_output=True, text=True, env=env, cwd=MAKEFILE.parent, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"teacher={expected}"
