"""The frozen teacher T: an ImageNet-pretrained ResNet18 cut after conv4_x (Sec. 3.1).

Which weights the teacher has is never implied. ``weights`` is one of

* ``ResNet18_Weights.IMAGENET1K_V1`` (or ``"imagenet"``): torchvision's download into the torch cache,
  the weights the paper used;
* a path to a local state dict (a torchvision ResNet18 state dict, or one holding only stem..layer3);
* ``"offline-pretrained"``: stem..layer3 pretrained here, offline, without natural-image data sets
  (``dskd pretrain-teacher``; weights and their provenance ship in ``dskd/weights/``). The teacher
  for machines that cannot download ImageNet weights; it is not the paper's teacher, and every
  result made with it says so;
* ``None`` (or ``"random"``): random initialisation, i.e. random network distillation. Results
  produced with it are near chance on real data and say so.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import torch
from torch import Tensor
from torchvision.models import ResNet18_Weights

from ..checksums import file_checksum
from .pyramid import Pyramid, ResNet18Pyramid

TeacherWeights = Union[ResNet18_Weights, str, os.PathLike, None]

#: names accepted by ``TrainConfig.teacher`` / ``--teacher`` / ``DSKD_TEACHER`` (or a file path)
TEACHER_NAMES = ("imagenet", "offline-pretrained", "random")

#: the offline teacher's weights (stem..layer3), shipped with the package; provenance in the .json beside it
OFFLINE_TEACHER_PATH = Path(__file__).resolve().parents[1] / "weights" / "offline_pretrained_resnet18_layer3.pt"
#: its full SHA-256, checked on every load
OFFLINE_TEACHER_SHA256: Optional[str] = "d8cd5801a0194739c0ca809f71215d50656377a2fdc1432860616ce20a1e4de2"


class TeacherWeightsError(RuntimeError):
    """The teacher's weights could not be obtained."""


def _choices_text() -> str:
    return (
        "Choose one of: (1) teacher='imagenet' with internet access (torchvision downloads "
        "ResNet18_Weights.IMAGENET1K_V1 into the torch cache, $TORCH_HOME/hub/checkpoints); "
        "(2) teacher='/path/to/resnet18_state_dict.pth', a local copy of those weights; "
        "(3) teacher='offline-pretrained' (or DSKD_TEACHER=offline-pretrained), the teacher this package "
        "ships, pretrained offline without natural-image data (not the paper's teacher); "
        "(4) teacher='random', a randomly initialised teacher, whose results are near chance on real data."
    )


def file_sha256(path: Union[str, os.PathLike], length: int = 12) -> str:
    """First ``length`` hex digits of a file's SHA-256 (named in run records)."""
    return file_checksum(path, "sha256", length)


def imagenet_cache_file() -> Path:
    """Where torchvision keeps ResNet18's ImageNet weights once downloaded ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(ResNet18_Weights.IMAGENET1K_V1.url).name


def _load_state_dict(weights: TeacherWeights) -> tuple[dict[str, Tensor] | None, str]:
    """Return (state dict or None for random init, a human-readable description)."""
    if weights is None or (isinstance(weights, str) and weights == "random"):
        return None, "random init (no pretraining)"
    if isinstance(weights, str) and weights == "imagenet":
        weights = ResNet18_Weights.IMAGENET1K_V1
    if isinstance(weights, str) and weights == "offline-pretrained":
        return _offline_state_dict(), f"offline-pretrained (no ImageNet; sha256 {file_sha256(OFFLINE_TEACHER_PATH)})"
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
        except Exception as err:  # weights_only refuses pickled code; anything else is not a torch file
            unsafe = "Weights only load failed" in str(err)
            reason = ("it holds Python objects other than tensors, which could run code, and was not unpickled"
                      if unsafe else f"not a file written by torch.save ({type(err).__name__})")
            raise TeacherWeightsError(f"cannot use {str(path)!r} as teacher weights: {reason}; expected a ResNet18 "
                                      f"state dict saved with torch.save") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
            raise TeacherWeightsError(f"cannot use {str(path)!r} as teacher weights: it holds a "
                                      f"{type(state).__name__}, expected a ResNet18 state dict (names -> tensors)")
        return state, f"file {path.name} (sha256 {file_sha256(path)})"
    raise TypeError(
        f"weights must be a ResNet18_Weights, 'imagenet', 'random', a path or None; got {weights!r}"
    )


def _offline_state_dict() -> dict[str, Tensor]:
    path = OFFLINE_TEACHER_PATH
    if not path.is_file():
        raise TeacherWeightsError(f"the offline-pretrained teacher's weights {str(path)!r} are missing from this "
                                  "installation; recreate them with the command in "
                                  f"{path.with_suffix('.json').name} ('dskd pretrain-teacher ...'). " + _choices_text())
    if OFFLINE_TEACHER_SHA256 is not None and file_sha256(path, 64) != OFFLINE_TEACHER_SHA256:
        raise TeacherWeightsError(f"{str(path)!r} does not have the recorded SHA-256 {OFFLINE_TEACHER_SHA256[:12]}...: "
                                  "the file is damaged or was replaced")
    return torch.load(path, map_location="cpu", weights_only=True)


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
            shapes = self.state_dict()
            wrong = [k for k, v in state.items() if k in shapes and tuple(v.shape) != tuple(shapes[k].shape)]
            if wrong:
                raise TeacherWeightsError(f"teacher weights do not match ResNet18 stem..layer3: {len(wrong)} tensors "
                                          f"have other shapes (e.g. {wrong[0]})")
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
    if name == "offline-pretrained":
        return name
    if os.sep in name or name.endswith((".pt", ".pth")):
        return Path(name)
    raise ValueError(f"unknown teacher {name!r}: expected one of {TEACHER_NAMES} or a path to a state dict")


def default_teacher_name() -> str:
    """The teacher used when a config names none: ``$DSKD_TEACHER`` if set, else 'imagenet' (the
    paper's). Offline set-ups (this repository's Makefile, CI) set ``DSKD_TEACHER=offline-pretrained``."""
    return os.environ.get("DSKD_TEACHER", "imagenet")


def teacher_available(name: str) -> bool:
    """Whether the teacher ``name`` can be built here without a download: 'random' always,
    'offline-pretrained' when its shipped file is present, 'imagenet' when torchvision's file is already
    in the torch cache ($TORCH_HOME/hub/checkpoints), a path when the file exists."""
    if name == "random":
        return True
    if name == "offline-pretrained":
        return OFFLINE_TEACHER_PATH.is_file()
    if name == "imagenet":
        return imagenet_cache_file().is_file()
    teacher_weights_from_name(name)  # raises for unknown names
    return Path(name).expanduser().is_file()
