"""The frozen teacher T: an ImageNet-pretrained ResNet18 cut after conv4_x (Sec. 3.1).

Which weights the teacher has is never implied. ``weights`` is one of

* ``ResNet18_Weights.IMAGENET1K_V1`` (or ``"imagenet"``): torchvision's download into the torch cache,
  the weights the paper used;
* a path to a local state dict (a torchvision ResNet18 state dict, or one holding only stem..layer3);
* ``None`` (or ``"random"``): random initialisation, i.e. random network distillation. This is the
  explicit offline mode; results produced with it are near chance on real data and say so.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Union

import torch
from torch import Tensor
from torchvision.models import ResNet18_Weights

from .pyramid import Pyramid, ResNet18Pyramid

TeacherWeights = Union[ResNet18_Weights, str, os.PathLike, None]

#: names accepted by ``TrainConfig.teacher`` / ``--teacher`` / ``DSKD_TEACHER`` (or a file path)
TEACHER_NAMES = ("imagenet", "random")


class TeacherWeightsError(RuntimeError):
    """The teacher's weights could not be obtained."""


def _choices_text() -> str:
    return (
        "Choose one of: (1) teacher='imagenet' with internet access (torchvision downloads "
        "ResNet18_Weights.IMAGENET1K_V1 into the torch cache, $TORCH_HOME/hub/checkpoints); "
        "(2) teacher='/path/to/resnet18_state_dict.pth', a local copy of those weights; "
        "(3) teacher='random' (or DSKD_TEACHER=random), a randomly initialised teacher, "
        "whose results are near chance on real data."
    )


def file_sha256(path: Union[str, os.PathLike], length: int = 12) -> str:
    """First ``length`` hex digits of a file's SHA-256 (named in run records)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


def _load_state_dict(weights: TeacherWeights) -> tuple[dict[str, Tensor] | None, str]:
    """Return (state dict or None for random init, a human-readable description)."""
    if weights is None or (isinstance(weights, str) and weights == "random"):
        return None, "random init (no pretraining)"
    if isinstance(weights, str) and weights == "imagenet":
        weights = ResNet18_Weights.IMAGENET1K_V1
    if isinstance(weights, ResNet18_Weights):
        try:
            state = weights.get_state_dict(progress=True, check_hash=True)
        except Exception as err:  # network, proxy, hash or disk errors all end here
            raise TeacherWeightsError(
                f"could not load the ImageNet teacher weights {weights} ({type(err).__name__}: {err}). "
                + _choices_text()
            ) from err
        return state, f"ImageNet ({weights})"
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise TeacherWeightsError(f"teacher weights file {str(path)!r} does not exist. " + _choices_text())
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise TeacherWeightsError(f"could not read teacher weights {str(path)!r}: {err}") from err
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        return state, f"file {path.name} (sha256 {file_sha256(path)})"
    raise TypeError(
        f"weights must be a ResNet18_Weights, 'imagenet', 'random', a path or None; got {weights!r}"
    )


class TeacherPyramid(ResNet18Pyramid):
    """T: ResNet18 stem + conv2_x..conv4_x with frozen weights (Sec. 3.1, Fig. 3).

    No parameter receives gradients, the forward pass runs under ``no_grad``, and the module stays
    in eval mode (BatchNorm uses its running statistics) even when a parent calls ``.train()``.
    ``self.weights_description`` says which weights it holds; every run record repeats it.
    """

    def __init__(self, weights: TeacherWeights = ResNet18_Weights.IMAGENET1K_V1) -> None:
        super().__init__()
        state, self.weights_description = _load_state_dict(weights)
        if state is not None:
            state = {k: v for k, v in state.items() if not k.startswith(("layer4.", "fc."))}
            missing, unexpected = self.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise TeacherWeightsError(
                    f"teacher weights do not match ResNet18 stem..layer3: missing {missing[:5]}, "
                    f"unexpected {unexpected[:5]}"
                )
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "TeacherPyramid":
        # Frozen for real: BatchNorm statistics must not drift while the students train.
        return super().train(False)

    def forward(self, x: Tensor) -> Pyramid:
        with torch.no_grad():
            return super().forward(x)


def teacher_weights_from_name(name: str) -> TeacherWeights:
    """Map a config name ('imagenet', 'random' or a path) to a ``weights=`` argument."""
    if name == "imagenet":
        return ResNet18_Weights.IMAGENET1K_V1
    if name == "random":
        return None
    if os.sep in name or name.endswith((".pt", ".pth")):
        return Path(name)
    raise ValueError(f"unknown teacher {name!r}: expected one of {TEACHER_NAMES} or a path to a state dict")


def default_teacher_name() -> str:
    """The teacher used when a config names none: ``$DSKD_TEACHER`` if set, else 'imagenet'."""
    return os.environ.get("DSKD_TEACHER", "imagenet")
