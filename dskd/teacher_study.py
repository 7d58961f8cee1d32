"""Where the teacher's knowledge comes from (chapter 16): the teachers at hand, what their features
see on normal and defective images, and the recorded comparisons of candidate teachers.

* :func:`teacher_at_hand` loads a named teacher ("random", "offline-pretrained", "imagenet") only
  from what is already on this machine: never a download, never a substitute. When the weights are
  missing it says so and how to get them.
* :func:`patch_embeddings` and :func:`nearest_normal_distance`: the teacher alone as a detector. Every
  test patch's feature vector is compared with its nearest neighbour among all patches of a few normal
  images; the distance map shows where the teacher's features "see" something new.
* :func:`candidate_rows`, :func:`per_defect_type_summary` and :func:`goal_status` read the files of
  ``benchmarks/teacher_candidates.py`` and of ``dskd ablate --study teacher``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .models.pyramid import ResNet18Pyramid
from torchvision.models import ResNet18_Weights

from .models.teacher import (OFFLINE_TEACHER_PATH, TeacherPyramid, TeacherWeightsError, imagenet_cache_file,
                             teacher_weights_from_name)

#: the teachers of the chapter, from the least knowledge to the most
TEACHER_ORDER = ("random", "offline-pretrained", "imagenet")
#: issue 9's goal: DS image AUROC on MT Defects with the offline-pretrained teacher
GOAL_IMAGE_AUROC = 0.80


@dataclass
class TeacherStatus:
    """A named teacher if its weights are at hand (``teacher`` is None otherwise) and a message: the
    weights' description, or why they are missing and how to get them."""

    name: str
    teacher: Optional[TeacherPyramid]
    message: str
    short: str = ""  # a few words for a figure's panel ("" when available)

    @property
    def available(self) -> bool:
        return self.teacher is not None


def how_to_get(name: str) -> str:
    """One or two sentences: how to put a teacher's weights on this machine."""
    if name == "imagenet":
        return (f"With internet access, run once: python -c \"from torchvision.models import resnet18; "
                f"resnet18(weights='IMAGENET1K_V1')\" (it stores {ResNet18_Weights.IMAGENET1K_V1.url.rsplit('/', 1)[-1]} "
                f"in {imagenet_cache_file().parent}); or copy that file there from a machine that has it.")
    if name == "offline-pretrained":
        return (f"Pretrain it here, offline: dskd pretrain-teacher --out {OFFLINE_TEACHER_PATH} "
                "(see its --help for the recipes; the provenance .json beside the shipped file names the "
                "exact command).")
    return "A random teacher needs no weights."


def teacher_at_hand(name: str) -> TeacherStatus:
    """Load the teacher ``name`` from this machine only; a missing file gives a status, not an error.

    ImageNet weights are loaded only if torchvision's cache already holds them (no download is
    attempted); the offline-pretrained weights only if the package ships them. Nothing else is ever
    put in their place.
    """
    if name not in TEACHER_ORDER:
        raise ValueError(f"unknown teacher {name!r}: expected one of {TEACHER_ORDER}")
    if name == "imagenet" and not imagenet_cache_file().is_file():
        return TeacherStatus(name, None, f"ImageNet weights not in the torch cache ({imagenet_cache_file()}); "
                                         "not downloaded, nothing used in their place. " + how_to_get(name),
                             f"ImageNet weights are not in the torch cache; they need one download "
                             f"({Path(imagenet_cache_file()).name}). Nothing is shown in their place.")
    try:
        teacher = TeacherPyramid(teacher_weights_from_name(name))
    except TeacherWeightsError as err:
        first = str(err).split(". Choose one of")[0].split("; recreate them")[0]
        short = ("the weights file is not in this installation: make it with `dskd pretrain-teacher`"
                 if name == "offline-pretrained" else f"its weights could not be loaded: {first[:80]}")
        return TeacherStatus(name, None, f"{name} weights unavailable: {first}. " + how_to_get(name),
                             short + ". Nothing is shown in its place.")
    return TeacherStatus(name, teacher, teacher.weights_description)


# ----------------------------------------------------------------------------- the teacher alone as a detector
@torch.inference_mode()
def patch_embeddings(teacher: ResNet18Pyramid, images: Tensor, batch_size: int = 16) -> Tensor:
    """One feature vector per conv3_x cell: (N, 64 + 128 + 256, H/8, W/8).

    Each level is normalised to unit length per position (as Eq. 3 compares them), conv2_x is
    average-pooled and conv4_x bilinearly upsampled to conv3_x's grid, and the three are concatenated,
    so each level adds at most 2 to the distance between two vectors.
    """
    if images.dim() != 4:
        raise ValueError(f"expected images (N, 3, H, W), got shape {tuple(images.shape)}")
    teacher.eval()
    out = []
    for batch in images.split(batch_size):
        f1, f2, f3 = (F.normalize(f, dim=1) for f in teacher(batch))
        size = f2.shape[-2:]
        out.append(torch.cat([F.adaptive_avg_pool2d(f1, size), f2,
                              F.interpolate(f3, size=size, mode="bilinear", align_corners=False)], 1))
    return torch.cat(out)


@torch.inference_mode()
def nearest_normal_distance(teacher: ResNet18Pyramid, normal_images: Tensor, test_images: Tensor,
                            chunk: int = 2048) -> tuple[Tensor, Tensor]:
    """Distance of every test patch to its nearest normal patch: maps (N, h, w) and image scores (N,),
    the maximum of each map. The memory bank holds every patch of ``normal_images``."""
    bank = patch_embeddings(teacher, normal_images)
    bank = bank.permute(0, 2, 3, 1).reshape(-1, bank.shape[1])  # (M h w, D)
    test = patch_embeddings(teacher, test_images)
    n, d, h, w = test.shape
    queries = test.permute(0, 2, 3, 1).reshape(-1, d)
    bank_sq = (bank * bank).sum(1)
    nearest = []
    for q in queries.split(chunk):  # |q - b|^2 = |q|^2 - 2 q.b + |b|^2, without a (Q, M, D) tensor
        d2 = (q * q).sum(1, keepdim=True) - 2 * q @ bank.T + bank_sq
        nearest.append(d2.min(1).values.clamp_min(0).sqrt())
    maps = torch.cat(nearest).view(n, h, w)
    return maps, maps.flatten(1).amax(1)


# ----------------------------------------------------------------------------- recorded results
def _finite(x: Any) -> Optional[float]:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def candidate_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per record of ``results/teacher/candidates.json``: candidate, teacher, recipe,
    pretraining wall time, the kNN proxy and, where DS was trained, its epochs and three metrics."""
    rows = []
    for r in records:
        pre = r.get("pretraining") or {}
        ds = r.get("ds") or {}
        rows.append({
            "candidate": r["candidate"], "teacher": r.get("teacher", "?"),
            "recipe": pre.get("recipe") or ("none" if r["candidate"] == "random" else
                                            "ImageNet-1K classification" if r["candidate"] == "imagenet" else "?"),
            "pretrain_seconds": _finite(pre.get("wall_seconds")),
            "knn_image_auroc": _finite(r.get("knn_image_auroc")),
            "ds_epochs": ds.get("epochs"),
            "ds_image_auroc": _finite(ds.get("image_auroc")), "ds_pixel_auroc": _finite(ds.get("pixel_auroc")),
            "ds_pro": _finite(ds.get("pro")),
            "data": (r.get("provenance") or {}).get("data", "?"),
        })
    return rows


def per_defect_type_summary(records: Sequence[dict[str, Any]], metric: str = "image_auroc"
                            ) -> dict[str, dict[str, tuple[float, float, int]]]:
    """variant -> defect type -> (mean, std over seeds (0 for one seed), number of seeds) of ``metric``,
    from the records of a study (each with ``per_defect_type``)."""
    out: dict[str, dict[str, tuple[float, float, int]]] = {}
    for variant in dict.fromkeys(r["variant"] for r in records):
        rs = [r for r in records if r["variant"] == variant]
        types = sorted({t for r in rs for t in (r.get("per_defect_type") or {})})
        out[variant] = {}
        for t in types:
            vals = np.array([v for r in rs if (v := _finite((r.get("per_defect_type") or {}).get(t, {}).get(metric)))
                             is not None])
            if len(vals):
                out[variant][t] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, len(vals))
    return out


def goal_status(rows: Sequence[dict[str, Any]], variant: str = "offline-pretrained",
                goal: float = GOAL_IMAGE_AUROC) -> Optional[dict[str, Any]]:
    """Whether the mean image AUROC of ``variant`` (rows of :func:`dskd.ablation.summarize`) reaches
    ``goal``; None when the study has no such variant."""
    row = next((r for r in rows if r["variant"] == variant), None)
    if row is None or _finite(row.get("image_auroc")) is None:
        return None
    return {"variant": variant, "goal": goal, "value": row["image_auroc"], "std": row.get("image_auroc_std", 0.0),
            "n_seeds": row.get("n_seeds", 1), "epochs": row.get("epochs"), "met": row["image_auroc"] >= goal}
