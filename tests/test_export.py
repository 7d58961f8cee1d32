"""`dskd export --format onnx` (issue 20): one file mapping an image batch to the anomaly map and image score
(Eq. 8-10 inside), with the normalisation and the threshold in its metadata; onnxruntime on the CPU reproduces
PyTorch's maps and scores within ``ONNX_TOLERANCE`` (1e-4 of the largest value; measured: about 1e-6); the
example scores a folder with onnxruntime, numpy and Pillow alone."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'dskd[export]')")

from dskd import TrainConfig, dataset_for  # noqa: E402
from dskd.checkpoint import load_checkpoint, read_checkpoint  # noqa: E402
from dskd.cli import main  # noqa: E402
from dskd.data import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from dskd.evaluation import predict  # noqa: E402
from dskd.export import ONNX_TOLERANCE, ExportError, export_onnx, read_metadata, run_onnx  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "score_folder_onnx.py"


@pytest.fixture(scope="module")
def exported(decision_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    assert main(["export", str(decision_checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    return out


def test_the_onnx_file_gives_pytorchs_maps_and_scores(exported, decision_checkpoint):
    model, cfg, _ = load_checkpoint(decision_checkpoint)
    test = dataset_for(cfg, "test")
    for batch in (1, 5):  # the batch size is free
        images = torch.stack([test[i]["image"] for i in range(batch)])
        expected = predict(model, images, cfg.inference())
        maps, scores = run_onnx(exported, images.numpy())
        assert maps.shape == (batch, 64, 64) and scores.shape == (batch,)
        top = float(expected.maps.abs().max())
        assert float(np.abs(maps - expected.maps.numpy()).max()) <= ONNX_TOLERANCE * top
        assert float(np.abs(scores - expected.scores.numpy()).max()) <= ONNX_TOLERANCE * top
        np.testing.assert_allclose(scores, maps.reshape(batch, -1).max(axis=1))  # Eq. (10) is in the graph


def test_the_metadata_carries_normalisation_size_and_the_stored_threshold(exported, decision_checkpoint):
    meta = read_metadata(exported)
    stored = read_checkpoint(decision_checkpoint)["calibration"]
    assert float(meta["dskd.threshold"]) == stored["threshold"] and meta["dskd.threshold_rule"] == stored["rule"]
    assert float(meta["dskd.false_alarm_rate"]) == 0.01 and meta["dskd.calibration_images"] == "10"
    assert meta["dskd.image_size"] == "64"
    assert json.loads(meta["dskd.mean"]) == list(IMAGENET_MEAN) and json.loads(meta["dskd.std"]) == list(IMAGENET_STD)
    assert TrainConfig.from_dict(json.loads(meta["dskd.config"])).holdout_fraction == 0.1
    assert meta["dskd.teacher"].startswith("random")


def test_the_example_scores_a_folder_without_dskd_as_dskd_predict_does(exported, decision_checkpoint,
                                                                       decision_images, tmp_path):
    out = tmp_path / "onnx_scores.json"
    # dskd and torch cannot be imported in this process: the example needs onnxruntime, numpy and Pillow only
    code = ("import runpy, sys; sys.modules['dskd'] = None; sys.modules['torch'] = None; "
            f"sys.argv = ['score_folder_onnx.py', {str(exported)!r}, {str(decision_images)!r}, '--out', {str(out)!r}]; "
            f"runpy.run_path({str(EXAMPLE)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    onnx = json.loads(out.read_text())
    assert main(["predict", str(decision_checkpoint), str(decision_images), "--out", str(tmp_path / "pred")]) == 0
    torch_side = json.loads((tmp_path / "pred" / "scores.json").read_text())
    by_image = {r["image"]: r for r in torch_side["images"]}
    assert len(onnx["images"]) == len(by_image) == 8
    assert onnx["threshold"] == torch_side["threshold"]["value"]
    for r in onnx["images"]:
        other = by_image[str(Path(r["image"]).resolve())]
        assert r["score"] == pytest.approx(other["score"], rel=ONNX_TOLERANCE)
        assert r["anomalous"] is other["anomalous"]
    flagged = sum(r["anomalous"] for r in onnx["images"])
    assert f"{flagged} of 8 anomalous at threshold" in proc.stdout


def test_an_export_that_disagrees_with_pytorch_is_refused_and_leaves_no_file(decision_checkpoint, tmp_path,
                                                                              monkeypatch):
    import dskd.export

    model, cfg, _ = load_checkpoint(decision_checkpoint)
    real = dskd.export.compare_with_pytorch

    def off_by_one(path, images, maps, scores):
        return real(path, images, maps + 1.0, scores + 1.0)

    monkeypatch.setattr(dskd.export, "compare_with_pytorch", off_by_one)
    with pytest.raises(ExportError, match="disagrees with PyTorch"):
        export_onnx(model, cfg, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_export_without_onnx_says_what_to_install(decision_checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    code = main(["export", str(decision_checkpoint), "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "needs onnx, onnxscript and onnxruntime" in err and "pip install 'dskd[export]'" in err


def test_the_recorded_benchmark_times_onnxruntime_beside_pytorch():
    """results/benchmarks/onnx_vs_pytorch.json, from `python benchmarks/speed.py --onnx-only` (results/README.md)."""
    recorded = json.loads((REPO / "results" / "benchmarks" / "onnx_vs_pytorch.json").read_text())
    onnx = recorded["onnx"]
    assert (onnx["image_size"], onnx["batch"]) == (256, 1)
    assert set(onnx["latency"]) == {"pytorch plain (maps + score)", "pytorch fast (maps + score)",
                                    "onnxruntime CPU (maps + score)"}
    assert all(0 < t["min_s"] <= t["median_s"] for t in onnx["latency"].values())
    assert onnx["map_rel_diff_vs_pytorch"] <= ONNX_TOLERANCE and onnx["export_check"]["agrees"]
    assert recorded["machine"]["load_average_1_5_15min"]  # the load it was measured under
