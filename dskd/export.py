"""A trained model as one ONNX file for inference without dskd (``dskd export``).

The graph maps a batch of ImageNet-normalised images ``images`` (B, 3, S, S), float32, to
``anomaly_map`` (B, S, S) and ``score`` (B,): the networks, Eq. (6) per layer, Eq. (8) (bilinear
upsampling and the sum over the layers), Eq. (9) (the Gaussian filter) and Eq. (10) (the maximum) are
all inside it. The batch size is free; the image size is the checkpoint's. What the graph does not do
is written in its metadata (``onnx.ModelProto.metadata_props``, read by ``InferenceSession.get_modelmeta()``):

* ``dskd.image_size``, ``dskd.mean``, ``dskd.std``: resize to S x S (Pillow bilinear), scale to [0, 1],
  subtract ``mean`` and divide by ``std`` per RGB channel, NCHW;
* ``dskd.threshold``, ``dskd.threshold_rule``: Eq. (1), an image is anomalous when ``score >= threshold``
  (empty when the checkpoint stores none), ``dskd.false_alarm_rate`` and ``dskd.calibration_images``;
* ``dskd.config``, ``dskd.teacher``, ``dskd.version``, ``dskd.checkpoint``: where the model came from.

``examples/score_folder_onnx.py`` scores a folder with onnxruntime, numpy and Pillow alone.
Needs ``onnx``, ``onnxscript`` and ``onnxruntime`` (``pip install 'dskd[export]'``).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from . import __version__
from .config import TrainConfig
from .data import IMAGENET_MEAN, IMAGENET_STD
from .inference import Calibration, InferenceSettings, Thresholds, anomaly_map, anomaly_score
from .models import DSKD

PathLike = Union[str, "os.PathLike[str]"]

#: agreement of the ONNX graph with PyTorch, checked after every export (onnxruntime, CPU): the largest
#: |map difference| relative to the largest |map| value, and the same for the scores
ONNX_TOLERANCE = 1e-4
#: the graph's input and output names
INPUT_NAME, MAP_NAME, SCORE_NAME = "images", "anomaly_map", "score"
#: the ONNX operator set the graph is written for
OPSET = 18


class ExportError(RuntimeError):
    """The export could not be made or does not reproduce the PyTorch model."""


class ScoringModel(nn.Module):
    """Algorithm 2 as one module: images (B, 3, S, S), normalised -> (maps (B, S, S), scores (B,))."""

    def __init__(self, model: DSKD, settings: InferenceSettings, image_size: int) -> None:
        super().__init__()
        self.model = model.eval()
        self.eval()
        self.settings = settings
        self.image_size = int(image_size)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        ref, stu = self.model.inference_pair(self.model(images))
        s = self.settings
        maps = anomaly_map(ref, stu, (self.image_size, self.image_size), s.layers, s.sigma, s.lam, s.normalization)
        return maps, anomaly_score(maps)


def require_onnx() -> None:
    """Raise :class:`ExportError` (saying what to install) unless onnx, onnxscript and onnxruntime import."""
    _modules()


def _modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError as err:
        raise ExportError(f"dskd export needs onnx, onnxscript and onnxruntime ({err}); install them with "
                          f"pip install 'dskd[export]'") from None
    return onnx, onnxruntime


def metadata(cfg: TrainConfig, model: DSKD, threshold: Optional[Union[Thresholds, Calibration]],
             checkpoint: Optional[PathLike] = None) -> dict[str, str]:
    """The key/value strings written into the ONNX file (see the module docstring)."""
    calibration = threshold if isinstance(threshold, Calibration) else None
    return {
        "dskd.image_size": str(cfg.image_size),
        "dskd.mean": json.dumps(list(IMAGENET_MEAN)),
        "dskd.std": json.dumps(list(IMAGENET_STD)),
        "dskd.input": (f"{INPUT_NAME}: float32 (batch, 3, {cfg.image_size}, {cfg.image_size}), RGB resized with "
                       f"Pillow's bilinear filter, scaled to [0, 1], minus dskd.mean, divided by dskd.std"),
        "dskd.outputs": (f"{MAP_NAME}: (batch, {cfg.image_size}, {cfg.image_size}), Eq. 8-9; {SCORE_NAME}: (batch,), "
                         f"its maximum (Eq. 10); anomalous when score >= dskd.threshold (Eq. 1)"),
        "dskd.threshold": repr(float(threshold.threshold)) if threshold is not None else "",
        "dskd.threshold_rule": threshold.rule if threshold is not None else "no threshold stored",
        "dskd.false_alarm_rate": repr(calibration.false_alarm_rate) if calibration is not None else "",
        "dskd.calibration_images": str(calibration.n_images) if calibration is not None else "",
        "dskd.config": json.dumps(cfg.to_dict(), sort_keys=True),
        "dskd.teacher": model.teacher_description,
        "dskd.version": __version__,
        "dskd.checkpoint": str(checkpoint) if checkpoint is not None else "",
    }


def export_onnx(model: DSKD, cfg: TrainConfig, out: PathLike, *,
                threshold: Optional[Union[Thresholds, Calibration]] = None,
                checkpoint: Optional[PathLike] = None, check_batch: int = 2) -> dict[str, Any]:
    """Write ``model`` (with ``cfg``'s inference settings and image size) as one ONNX file at ``out``.

    The file is written to a temporary name, checked with onnxruntime on the CPU against the PyTorch
    model on ``check_batch`` seeded random images (maps and scores within :data:`ONNX_TOLERANCE` of the
    largest value), and only then moved to ``out``. Returns the metadata and the check's numbers.
    """
    onnx, ort = _modules()
    out = Path(out)
    scoring = ScoringModel(model.cpu().eval(), cfg.inference(), cfg.image_size)
    g = torch.Generator().manual_seed(0)
    example = torch.randn(check_batch, 3, cfg.image_size, cfg.image_size, generator=g)
    batch = torch.export.Dim("batch", min=1, max=1024)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with torch.inference_mode(False), torch.no_grad():
            program = torch.onnx.export(scoring, (example,), dynamo=True, input_names=[INPUT_NAME],
                                        output_names=[MAP_NAME, SCORE_NAME], opset_version=OPSET,
                                        dynamic_shapes={"images": {0: batch}}, verbose=False)
            expected_maps, expected_scores = scoring(example)
        proto = program.model_proto
        meta = metadata(cfg, model, threshold, checkpoint)
        del proto.metadata_props[:]
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        onnx.save_model(proto, tmp, save_as_external_data=False)
        check = compare_with_pytorch(tmp, example, expected_maps, expected_scores)
        if not check["agrees"]:
            raise ExportError(f"the ONNX graph disagrees with PyTorch: max |map difference| "
                              f"{check['max_abs_map_diff']:.3g} (relative {check['map_rel_diff']:.3g}, "
                              f"tolerance {ONNX_TOLERANCE:g})")
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return {"path": str(out), "metadata": meta, "check": check, "bytes": out.stat().st_size}


def compare_with_pytorch(path: PathLike, images: Tensor, maps: Tensor, scores: Tensor) -> dict[str, Any]:
    """Run the ONNX file with onnxruntime (CPU) on ``images`` and compare with PyTorch's ``maps``/``scores``."""
    got_maps, got_scores = run_onnx(path, images.numpy())
    map_diff = float((torch.from_numpy(got_maps) - maps).abs().max())
    score_diff = float((torch.from_numpy(got_scores) - scores).abs().max())
    map_rel = map_diff / max(float(maps.abs().max()), 1e-12)
    score_rel = score_diff / max(float(scores.abs().max()), 1e-12)
    return {"max_abs_map_diff": map_diff, "max_abs_score_diff": score_diff, "map_rel_diff": map_rel,
            "score_rel_diff": score_rel, "tolerance": ONNX_TOLERANCE,
            "agrees": map_rel <= ONNX_TOLERANCE and score_rel <= ONNX_TOLERANCE, "batch": int(images.shape[0])}


def run_onnx(path: PathLike, images: Any, threads: Optional[int] = None) -> tuple[Any, Any]:
    """``(maps, scores)`` of an exported file for a float32 numpy batch, with onnxruntime on the CPU."""
    _, ort = _modules()
    session = onnx_session(path, threads)
    maps, scores = session.run([MAP_NAME, SCORE_NAME], {INPUT_NAME: images})
    return maps, scores


def onnx_session(path: PathLike, threads: Optional[int] = None) -> Any:
    """An onnxruntime CPU session of an exported file (``threads``: intra-op threads, default onnxruntime's)."""
    _, ort = _modules()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def read_metadata(path: PathLike) -> dict[str, str]:
    """The ``dskd.*`` metadata of an exported file."""
    session = onnx_session(path)
    return dict(session.get_modelmeta().custom_metadata_map)
