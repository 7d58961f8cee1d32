"""Batch prediction (Algorithm 2) and evaluation with the paper's three metrics (Sec. 4.1.3)."""
from __future__ import annotations

import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .inference import (USES_TEST_DATA, Calibration, InferenceSettings, Thresholds, anomaly_map, anomaly_score,
                        paper_threshold)
from .metrics import decision_metrics, image_auroc, pixel_auroc, pro_score
from .models import DSKD, Pyramid

if TYPE_CHECKING:  # pragma: no cover
    from .speed import SpeedOptions

SpeedLike = Union[None, str, "SpeedOptions"]
#: names that moved to :mod:`dskd.speed`, still importable from here (loading it only when asked for)
_MOVED_TO_SPEED = ("MAP_TOLERANCE", "SpeedOptions", "speed_options", "fold_batchnorm", "nnpack_conv3x3",
                   "WinogradConv2d", "winograd_available", "use_winograd", "optimize_for_inference")


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_SPEED:
        from . import speed

        return getattr(speed, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class Prediction:
    """Anomaly maps (N, H, W) and scores (N,) with the ground truth they were computed for."""

    maps: Tensor
    scores: Tensor
    labels: Optional[Tensor] = None
    masks: Optional[Tensor] = None
    defect_types: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _model_device(model: DSKD) -> torch.device:
    return next(model.parameters()).device


def run_networks(model: DSKD, images: Tensor, pair: Optional[tuple[str, str]] = None) -> tuple[Pyramid, Pyramid]:
    """The (reference, student) pyramids of Algorithm 2 for a batch, as fp32 (under the model's
    ``speed_options``, if :func:`dskd.speed.optimize_for_inference` made it)."""
    opts = getattr(model, "speed_options", None)
    channels_last, bf16 = (opts.channels_last, opts.bf16) if opts is not None else (False, False)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(images.device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    with autocast:
        ref, stu = model.inference_pair(model(images), pair)
    if bf16:
        ref, stu = Pyramid(*(f.float() for f in ref)), Pyramid(*(f.float() for f in stu))
    return ref, stu


@torch.inference_mode()
def predict(
    model: DSKD,
    data: Union[Dataset, DataLoader, Tensor],
    settings: Optional[InferenceSettings] = None,
    *,
    batch_size: int = 16,
    num_workers: int = 0,
    progress: bool = False,
    speed: SpeedLike = None,
    sigma: Optional[float] = None,
    layers: Optional[Sequence[int]] = None,
    lam: Optional[float] = None,
    normalization: Optional[str] = None,
) -> Prediction:
    """Algorithm 2 on a batch tensor (N, 3, H, W), a data set or a loader of dicts.

    ``settings`` (:class:`~dskd.inference.InferenceSettings`, default the paper's) says how pyramids
    become maps; ``sigma``, ``layers``, ``lam`` and ``normalization`` given one by one override it.
    Returns the maps and scores on the CPU; for data sets also labels, masks and defect types.
    ``speed`` (``None``/``"plain"``, ``"fast"`` or a :class:`~dskd.speed.SpeedOptions`) optimises a copy
    of the model first (:func:`dskd.speed.optimize_for_inference`); its maps agree with the plain ones
    within ``SpeedOptions.tolerance``. A model already optimised keeps its options. Data sets are read by
    a DataLoader with ``num_workers`` worker processes.
    """
    settings = (settings or InferenceSettings()).with_overrides(sigma=sigma, layers=layers, lam=lam,
                                                                normalization=normalization)
    if speed is not None:
        from .speed import SpeedOptions, optimize_for_inference, speed_options  # the speed module when asked for

        if speed_options(speed) != SpeedOptions.plain():
            model = optimize_for_inference(model, speed)
    model.eval()
    device = _model_device(model)
    if isinstance(data, Tensor):
        if data.dim() != 4 or data.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(data.shape)}")
        batches: Any = ({"image": data[i:i + batch_size]} for i in range(0, len(data), batch_size))
        total = (len(data) + batch_size - 1) // batch_size
    elif isinstance(data, DataLoader):
        batches, total = data, len(data)
    else:
        batches = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                             persistent_workers=False, prefetch_factor=2 if num_workers > 0 else None)
        total = len(batches)
    maps, labels, masks, types, paths = [], [], [], [], []
    started = time.perf_counter()
    for batch in tqdm(batches, total=total, desc="predict", disable=not progress, unit="batch"):
        images = batch["image"].to(device)
        ref, stu = run_networks(model, images, settings.pair)
        maps.append(anomaly_map(ref, stu, images.shape[-2:], settings.layers, settings.sigma, settings.lam,
                                settings.normalization).float().cpu())
        if "label" in batch:
            labels.append(torch.as_tensor(batch["label"]))
            masks.append(batch["mask"][:, 0].to(torch.uint8))
            types.extend(batch["defect_type"])
            paths.extend(batch["path"])
    seconds = time.perf_counter() - started
    all_maps = torch.cat(maps)
    return Prediction(
        maps=all_maps,
        scores=anomaly_score(all_maps),
        labels=torch.cat(labels) if labels else None,
        masks=torch.cat(masks) if masks else None,
        defect_types=types,
        paths=paths,
        seconds=seconds,
    )


def _scores(labels: np.ndarray, scores: np.ndarray, masks: np.ndarray, maps: np.ndarray) -> dict[str, float]:
    out = {"image_auroc": float("nan"), "pixel_auroc": float("nan"), "pro": float("nan")}
    if 0 < labels.sum() < len(labels):
        out["image_auroc"] = image_auroc(labels, scores)
    if masks.any() and not masks.all():
        out["pixel_auroc"] = pixel_auroc(masks, maps)
        out["pro"] = pro_score(masks, maps, max_fpr=0.3)
    return out


@dataclass
class EvaluationReport:
    """Image AUROC, pixel AUROC and PRO (FPR <= 0.3), overall and per defect type."""

    image_auroc: float
    pixel_auroc: float
    pro: float
    per_defect_type: dict[str, dict[str, float]]
    seconds_per_image: float
    n_images: int
    n_anomalous: int
    teacher: str
    structure: str
    prediction: Optional[Prediction] = field(default=None, repr=False)
    #: why a metric is undefined (``nan``) or rests on incomplete ground truth; empty when all is well
    warnings: list[str] = field(default_factory=list)
    #: Eq. (1) decisions on the test split (:func:`dskd.metrics.decision_metrics` plus ``rule`` and
    #: ``uses_test_data``): "threshold" at the threshold given to :func:`evaluate` (a checkpoint's stored
    #: one), and beside it "paper" at the paper's min-max rule, which is chosen on the test scores themselves
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "prediction"}
        if not d["decisions"]:
            d.pop("decisions")  # reports of runs without a threshold keep their earlier fields
        return d

    def summary(self) -> str:
        text = (f"{self.structure} [teacher: {self.teacher}] image AUROC {self.image_auroc:.3f}, "
                f"pixel AUROC {self.pixel_auroc:.3f}, PRO {self.pro:.3f} on {self.n_images} images")
        for d in self.decisions.values():
            text += "\n" + decision_line(d)
        return text


def decision_line(d: dict[str, Any]) -> str:
    """One decision of :attr:`EvaluationReport.decisions` in words."""
    return (f"at threshold {d['threshold']:.4g} ({d['rule']}): precision {d['precision']:.3f}, recall "
            f"{d['recall']:.3f}, false-alarm rate {d['false_alarm_rate']:.3f} (flagged {d['tp']} of "
            f"{d['tp'] + d['fn']} anomalous and {d['fp']} of {d['fp'] + d['tn']} normal images)")


def decisions_at(labels: np.ndarray, scores: np.ndarray, threshold: Union[Thresholds, Calibration],
                 ) -> dict[str, dict[str, Any]]:
    """Eq. (1) at ``threshold`` and, for comparison, at the paper's rule (test min-max, 0.5), which uses the
    test split's own scores and so is marked ``uses_test_data``."""
    paper = paper_threshold(scores)
    return {"threshold": {**decision_metrics(labels, scores, threshold.threshold), "rule": threshold.rule,
                          "uses_test_data": USES_TEST_DATA in threshold.rule},
            "paper": {**decision_metrics(labels, scores, paper.threshold), "rule": paper.rule,
                      "uses_test_data": True}}


def evaluate(
    model: DSKD,
    dataset: Union[Dataset, DataLoader],
    settings: Optional[InferenceSettings] = None,
    *,
    batch_size: int = 16,
    progress: bool = False,
    prediction: Optional[Prediction] = None,
    sigma: Optional[float] = None,
    layers: Optional[Sequence[int]] = None,
    lam: Optional[float] = None,
    normalization: Optional[str] = None,
    threshold: Union[Thresholds, Calibration, None] = None,
) -> EvaluationReport:
    """Score a test split. Each defect type is scored against all normal images of the split.

    ``settings`` and the four fields given one by one as in :func:`predict`. Pass ``prediction`` to
    re-score maps already computed (e.g. to compare layer subsets without rerunning the networks).
    ``threshold`` (e.g. a checkpoint's stored :class:`~dskd.inference.Calibration`'s ``thresholds()``):
    also report precision, recall and false-alarm rate of Eq. (1) at it (:attr:`EvaluationReport.decisions`).
    """
    pred = prediction if prediction is not None else predict(
        model, dataset, settings, batch_size=batch_size, progress=progress, sigma=sigma, layers=layers, lam=lam,
        normalization=normalization)
    if pred.labels is None or pred.masks is None:
        raise ValueError("evaluate needs a labelled data set (items with 'label' and 'mask')")
    labels, scores = pred.labels.numpy(), pred.scores.numpy()
    masks, maps = pred.masks.numpy(), pred.maps.numpy()
    overall = _scores(labels, scores, masks, maps)
    types = np.array(pred.defect_types)
    per_type = {}
    for t in sorted(set(pred.defect_types) - {"good"}):
        keep = (types == t) | (types == "good")
        per_type[t] = _scores(labels[keep], scores[keep], masks[keep], maps[keep])
    n = len(labels)
    notes = ground_truth_warnings(labels, masks)
    for note in notes:
        warnings.warn(note, UndefinedMetricWarning, stacklevel=2)
    return EvaluationReport(
        image_auroc=overall["image_auroc"], pixel_auroc=overall["pixel_auroc"], pro=overall["pro"],
        per_defect_type=per_type, seconds_per_image=pred.seconds / max(n, 1), n_images=n,
        n_anomalous=int(labels.sum()), teacher=model.teacher_description, structure=model.structure,
        prediction=pred, warnings=notes,
        decisions=decisions_at(labels, scores, threshold) if threshold is not None else {},
    )


class UndefinedMetricWarning(UserWarning):
    """A metric cannot be computed from the test split's ground truth (it is reported as ``nan``)."""


def ground_truth_warnings(labels: np.ndarray, masks: np.ndarray) -> list[str]:
    """Why image AUROC, pixel AUROC or PRO would be undefined or unreliable on this ground truth."""
    notes = []
    n, n_bad = len(labels), int(labels.sum())
    if n_bad == 0 or n_bad == n:
        notes.append(f"image AUROC is undefined: the test split has {n_bad} anomalous and {n - n_bad} normal images "
                     f"(both kinds are needed)")
    empty = int(sum(1 for lab, m in zip(labels, masks) if lab and not m.any()))
    if n_bad and empty == n_bad:
        notes.append(f"pixel AUROC and PRO are undefined: all {n_bad} anomalous images have an empty mask "
                     f"(masks must mark defects with 1 or 255; check the mask files)")
    elif empty:
        notes.append(f"{empty} of {n_bad} anomalous images have an empty mask: pixel AUROC and PRO ignore "
                     f"their defects")
    return notes
