"""Batch prediction (Algorithm 2) and evaluation with the paper's three metrics (Sec. 4.1.3)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .inference import ALL_LAYERS, anomaly_map, anomaly_score
from .metrics import image_auroc, pixel_auroc, pro_score
from .models import DSKD


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


@torch.inference_mode()
def predict(
    model: DSKD,
    data: Union[Dataset, DataLoader, Tensor],
    *,
    sigma: float = 4.0,
    layers: Sequence[int] = ALL_LAYERS,
    lam: float = 0.1,
    normalization: str = "unit",
    batch_size: int = 16,
    num_workers: int = 0,
    progress: bool = False,
) -> Prediction:
    """Algorithm 2 on a batch tensor (N, 3, H, W), a data set or a loader of dicts.

    Returns the maps and scores on the CPU; for data sets also labels, masks and defect types.
    """
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
        batches = DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers)
        total = len(batches)
    maps, labels, masks, types, paths = [], [], [], [], []
    started = time.perf_counter()
    for batch in tqdm(batches, total=total, desc="predict", disable=not progress, unit="batch"):
        images = batch["image"].to(device)
        ref, stu = model.inference_pair(model(images))
        maps.append(anomaly_map(ref, stu, images.shape[-2:], layers, sigma, lam, normalization).float().cpu())
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

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "prediction"}
        return d

    def summary(self) -> str:
        return (f"{self.structure} [teacher: {self.teacher}] image AUROC {self.image_auroc:.3f}, "
                f"pixel AUROC {self.pixel_auroc:.3f}, PRO {self.pro:.3f} on {self.n_images} images")


def evaluate(
    model: DSKD,
    dataset: Union[Dataset, DataLoader],
    *,
    sigma: float = 4.0,
    layers: Sequence[int] = ALL_LAYERS,
    lam: float = 0.1,
    normalization: str = "unit",
    batch_size: int = 16,
    progress: bool = False,
    prediction: Optional[Prediction] = None,
) -> EvaluationReport:
    """Score a test split. Each defect type is scored against all normal images of the split.

    Pass ``prediction`` to re-score maps already computed (e.g. to compare layer subsets without
    rerunning the networks).
    """
    pred = prediction if prediction is not None else predict(
        model, dataset, sigma=sigma, layers=layers, lam=lam, normalization=normalization,
        batch_size=batch_size, progress=progress)
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
    return EvaluationReport(
        image_auroc=overall["image_auroc"], pixel_auroc=overall["pixel_auroc"], pro=overall["pro"],
        per_defect_type=per_type, seconds_per_image=pred.seconds / max(n, 1), n_images=n,
        n_anomalous=int(labels.sum()), teacher=model.teacher_description, structure=model.structure,
        prediction=pred,
    )
