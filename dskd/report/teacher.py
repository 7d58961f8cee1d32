"""One source of truth for the teacher: every description of the shipped offline teacher is generated from
its provenance file (``dskd/weights/offline_pretrained_resnet18_layer3.json``), so the introduction,
chapter 2's warning, chapter 15's discussion and chapter 16 cannot disagree with the weights themselves.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from ..models import teacher as teacher_module

#: torchvision's name for the paper's teacher weights
IMAGENET_WEIGHTS = "ResNet18_Weights.IMAGENET1K_V1"


def provenance_path() -> Path:
    """The provenance file beside the shipped offline teacher's weights."""
    return teacher_module.OFFLINE_TEACHER_PATH.with_suffix(".json")


def shipped_teacher_provenance(path: Optional[os.PathLike] = None) -> dict[str, Any]:
    """The shipped offline teacher's provenance (recipe, settings, command, SHA-256).

    Raises ``FileNotFoundError`` naming the file when this installation lacks it."""
    path = Path(path) if path is not None else provenance_path()
    if not path.is_file():
        raise FileNotFoundError(f"the offline teacher's provenance file {path} is missing from this installation "
                                "(reinstall dskd; `dskd pretrain-teacher` writes it beside new weights)")
    return json.loads(path.read_text())


def recipe_kind(provenance: dict[str, Any]) -> str:
    """'fractal', 'ssl' or 'mix': the pretraining recipe a provenance file records."""
    kind = provenance.get("config", {}).get("recipe") or (str(provenance.get("recipe", "")).split() or [""])[0]
    if kind not in ("fractal", "ssl", "mix"):
        raise ValueError(f"unknown pretraining recipe {provenance.get('recipe')!r} in the teacher's provenance: "
                         "expected fractal, ssl or mix")
    return kind


def how_it_learned(provenance: Optional[dict[str, Any]] = None) -> str:
    """What the shipped teacher learned from, in one clause: '... by learning to tell 300 kinds of ...'."""
    p = shipped_teacher_provenance() if provenance is None else provenance
    c, kind = p.get("config", {}), recipe_kind(p)
    fractals = (f"learning to tell {c['n_categories']} kinds of computer-drawn fractals apart (FractalDB-style "
                f"iterated function systems, {c['per_category']} images of each at {c['image_size']} x "
                f"{c['image_size']} px, {c['epochs']} epochs)") if kind in ("fractal", "mix") else ""
    rotation = (f"predicting the rotation of crops of the sample photographs that "
                f"{c.get('ssl_sources', 'sklearn').replace('sklearn', 'scikit-learn')} ships (RotNet)"
                if kind in ("ssl", "mix") else "")
    return " and ".join(t for t in (fractals, rotation) if t)


def seen_photographs(provenance: Optional[dict[str, Any]] = None) -> bool:
    """Whether the shipped teacher saw any photograph while it learned (only the ssl and mix recipes)."""
    p = shipped_teacher_provenance() if provenance is None else provenance
    return recipe_kind(p) in ("ssl", "mix")


def shipped_teacher_sentence(provenance: Optional[dict[str, Any]] = None) -> str:
    """One sentence on the shipped teacher: architecture, how it was pretrained, and that it is not the paper's."""
    p = shipped_teacher_provenance() if provenance is None else provenance
    seen = ("It saw no photograph at all" if not seen_photographs(p)
            else "The only photographs it saw are those crops")
    return (f"The teacher the package ships (`teacher=\"offline-pretrained\"`, SHA-256 {p['sha256'][:12]}) is the "
            f"paper's ResNet18 up to conv4_x, pretrained on a CPU without any download by {how_it_learned(p)}. "
            f"{seen}, so it is **not the paper's teacher**, which learned from the 1.28 million labelled "
            f"photographs of ImageNet-1K.")


def teacher_in_use(name: Optional[str] = None) -> str:
    """The teacher name a build or chapter uses: ``name``, else ``$DSKD_TEACHER``, else the paper's 'imagenet'."""
    return name or teacher_module.default_teacher_name()


def build_teacher_markdown(name: Optional[str] = None) -> str:
    """A paragraph naming the teacher this build of the book used (``$DSKD_TEACHER``), from its provenance."""
    name = teacher_in_use(name)
    if name == "offline-pretrained":
        return (f"**The teacher of this build: `offline-pretrained`.** {shipped_teacher_sentence()} "
                "Every figure title names the teacher that produced it.")
    if name == "imagenet":
        return (f"**The teacher of this build: `imagenet`**, torchvision's `{IMAGENET_WEIGHTS}`, the kind of "
                "teacher the paper used (it does not say which ImageNet checkpoint).")
    if name == "random":
        return ("**The teacher of this build: `random`**, a randomly initialised ResNet18: DSKD becomes random "
                "network distillation, which finds the strong synthetic defects but is near chance on real data.")
    return (f"**The teacher of this build: the weights in `{name}`**, a local file; not the paper's ImageNet "
            "teacher unless that file holds them.")


def teacher_warning_markdown(name: Optional[str] = None) -> str:
    """Chapter 2's admonition: which teacher this run uses and how it differs from the paper's (MyST)."""
    name = teacher_in_use(name)
    if name == "imagenet":
        return ("```{note}\nThis run uses the paper's teacher, ResNet18 pretrained on ImageNet-1K "
                f"(`{IMAGENET_WEIGHTS}`). `DSKD_TEACHER=offline-pretrained` gives the teacher the package ships "
                "for machines without internet access; `DSKD_TEACHER=random` a randomly initialised one.\n```")
    body = build_teacher_markdown(name)
    return ("```{warning}\n" + body + " Numbers made with it are not the paper's. The code is the same for "
            "every teacher: with internet access (or a local copy of `resnet18-f37072fd.pth`), "
            "`DSKD_TEACHER=imagenet` gives the paper's teacher and every figure below shows its features "
            "instead.\n```")
