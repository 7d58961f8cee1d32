"""One frozen configuration per experiment (Sec. 4.1.2), stored in every checkpoint and record."""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from .data import DATASETS, DEFAULT_IMAGE_SIZE, MVTEC3D_CATEGORIES, MVTEC_CATEGORIES, SYNTHETIC_CATEGORIES
from .hardware import PRECISIONS, resolve_precision
from .inference import InferenceSettings
from .losses import LOSS_FORMS, NORMALIZATIONS
from .models.dskd import DFE_INPUTS, STRUCTURES
from .models.teacher import TEACHER_NAMES, default_teacher_name

#: fewest held-out images a stored threshold is calibrated on; a smaller holdout is skipped (with a warning)
MIN_HOLDOUT_IMAGES = 10
#: the share of the training split ``dskd train`` holds out to calibrate the threshold it stores
TRAIN_HOLDOUT_FRACTION = 0.1


#: fields added after the first recorded runs, with the value that means "as before the field existed":
#: a stored config without the field reads as this value, and a run key leaves the field out while it has
#: this value, so runs recorded earlier keep their names (:func:`dskd.runs.run_key`)
LEGACY_VALUES: dict[str, Any] = {"precision": "fp32", "dfe_blocks": 1, "dfe_input": "raw",
                                 "detach_decoder_input": False, "holdout_fraction": 0.0}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a DSKD run. Defaults are the paper's (Sec. 4.1.2).

    ``TrainConfig.quick()`` runs in minutes on a laptop CPU on the embedded synthetic data;
    ``TrainConfig.paper("mvtec", "bottle")`` is the full setting.
    """

    dataset: str = "synthetic"
    category: Optional[str] = "stripes"
    data_root: Optional[str] = None  # None: $DSKD_DATA/<dataset folder>
    image_size: int = 256
    epochs: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    lam: float = 0.1
    normalization: str = "unit"
    loss_form: str = "pixel"
    structure: str = "DS"
    use_dfe: bool = True
    teacher: str = field(default_factory=default_teacher_name)
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    sigma: float = 4.0
    layers: tuple[int, ...] = (1, 2, 3)
    n_train: Optional[int] = None  # synthetic data only: images in the train split
    n_test: Optional[int] = None  # synthetic data only: images in the test split
    #: readings of the paper where it is implicit (chapter 5; :class:`dskd.models.Students`), chosen by
    #: three-seed studies and the paper's text (:func:`dskd.build_choices.build_verdict`): one DFE block (Sec.
    #: 3.2), the normalised S_e features into the DFE (Algorithm 2, line 7), l_d kept from S_e (Sec. 1)
    dfe_blocks: int = 1
    dfe_input: str = "normalized"
    detach_decoder_input: bool = True
    #: arithmetic of the networks during training: "bf16" autocast (losses and metrics stay fp32), "fp32",
    #: or "auto" = bf16 where the hardware computes it natively (:func:`dskd.hardware.native_bf16`), else fp32
    precision: str = "auto"
    #: fraction of the normal training images held out (seeded by ``seed``) to calibrate the decision
    #: threshold stored in the checkpoint (:class:`dskd.inference.Calibration`); 0: train on all of them,
    #: as the paper does (the default here, in ``quick()``, ``paper()``, ``dskd reproduce`` and ``dskd ablate``;
    #: ``dskd train`` holds out 10 %). Fewer than :data:`MIN_HOLDOUT_IMAGES` images: none.
    holdout_fraction: float = 0.0

    def __post_init__(self) -> None:
        def bad(name: str, value: Any, expected: str) -> ValueError:
            return ValueError(f"TrainConfig.{name}={value!r} is invalid: expected {expected}")

        if self.dataset not in DATASETS:
            raise bad("dataset", self.dataset, f"one of {DATASETS}")
        if self.structure not in STRUCTURES:
            raise bad("structure", self.structure, f"one of {STRUCTURES}")
        if self.normalization not in NORMALIZATIONS:
            raise bad("normalization", self.normalization, f"one of {NORMALIZATIONS}")
        if self.loss_form not in LOSS_FORMS:
            raise bad("loss_form", self.loss_form, f"one of {LOSS_FORMS}")
        for name in ("image_size", "epochs", "batch_size", "seed", "num_workers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad(name, value, "an integer")
        if self.image_size < 32 or self.image_size % 32:
            raise bad("image_size", self.image_size, "a multiple of 32, at least 32 (the embedding is at H/32)")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise bad(name, getattr(self, name), "an integer >= 1")
        if self.num_workers < 0:
            raise bad("num_workers", self.num_workers, "an integer >= 0 (0: load data in the main process)")
        for name in ("lr", "lam", "sigma", "holdout_fraction"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise bad(name, value, "a finite number")
        if not self.lr > 0:
            raise bad("lr", self.lr, "a positive number")
        if self.lam < 0:
            raise bad("lam", self.lam, "a number >= 0")
        if self.sigma < 0:
            raise bad("sigma", self.sigma, "a number >= 0")
        if not 0 <= self.holdout_fraction <= 0.5:
            raise bad("holdout_fraction", self.holdout_fraction, "a fraction in [0, 0.5] of the normal training "
                      "images (0: train on all; 0.1: hold out 10 % to calibrate the threshold)")
        if len(tuple(self.betas)) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas):
            raise bad("betas", self.betas, "two numbers in [0, 1) (Adam's moment decay rates)")
        categories = {"synthetic": SYNTHETIC_CATEGORIES, "mvtec": MVTEC_CATEGORIES, "mvtec3d": MVTEC3D_CATEGORIES}
        if self.dataset == "mt-defects" and self.category is not None:
            raise bad("category", self.category, "None: mt-defects has no categories (its defect types are "
                      "scored separately); drop --category")
        if self.dataset in categories and self.category not in categories[self.dataset]:
            raise bad("category", self.category, f"one of the {self.dataset} categories: "
                      f"{', '.join(categories[self.dataset])}")
        if not set(self.layers) <= {1, 2, 3} or not self.layers:
            raise bad("layers", self.layers, "a non-empty subset of (1, 2, 3)")
        if self.teacher not in TEACHER_NAMES and not (os.sep in self.teacher or self.teacher.endswith((".pt", ".pth"))):
            raise bad("teacher", self.teacher, f"one of {TEACHER_NAMES} or a path to a state dict")
        if self.device != "auto" and self.device.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise bad("device", self.device, "'auto', 'cpu', 'cuda[:N]' or 'mps'")
        if self.dfe_blocks not in (1, 2) or isinstance(self.dfe_blocks, bool):
            raise bad("dfe_blocks", self.dfe_blocks, "1 (Fig. 4 as drawn) or 2 (RD4AD's bottleneck)")
        if self.dfe_input not in DFE_INPUTS:
            raise bad("dfe_input", self.dfe_input, f"one of {DFE_INPUTS}")
        if not isinstance(self.detach_decoder_input, bool):
            raise bad("detach_decoder_input", self.detach_decoder_input, "True or False")
        if self.precision not in PRECISIONS:
            raise bad("precision", self.precision, f"one of {PRECISIONS}")
        if self.dataset != "synthetic" and (self.n_train is not None or self.n_test is not None):
            raise bad("n_train/n_test", (self.n_train, self.n_test), "None: only the synthetic data set has sizes to set")
        # JSON round trips turn tuples into lists; keep the frozen types hashable.
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "layers", tuple(self.layers))

    @classmethod
    def quick(cls, **overrides: Any) -> "TrainConfig":
        """Minutes on a laptop CPU: synthetic data at 64 x 64, a few epochs."""
        base = dict(dataset="synthetic", category="disc", image_size=64, epochs=8, batch_size=16,
                    n_train=96, n_test=48)
        base.update(overrides)
        return cls(**base)

    @classmethod
    def paper(cls, dataset: str, category: Optional[str] = None, **overrides: Any) -> "TrainConfig":
        """The paper's setting for a data set (Sec. 4.1.2): 200 epochs, Adam 1e-3, (0.5, 0.999), lam 0.1."""
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}: expected one of {DATASETS}")
        base = dict(dataset=dataset, category=category, image_size=max(DEFAULT_IMAGE_SIZE[dataset], 128), epochs=200)
        base.update(overrides)
        return cls(**base)

    def resolved(self) -> "TrainConfig":
        """This config with ``precision="auto"`` replaced by what this machine uses (bf16 or fp32)."""
        if self.precision != "auto":
            return self
        return self.replace(precision=resolve_precision("auto", resolve_device(self.device))[0])

    def model_options(self) -> dict[str, Any]:
        """The keyword arguments of :class:`dskd.models.DSKD` this config names (all but the teacher)."""
        return {"structure": self.structure, "use_dfe": self.use_dfe, "dfe_blocks": self.dfe_blocks,
                "dfe_input": self.dfe_input, "detach_decoder_input": self.detach_decoder_input}

    def build_label(self) -> str:
        """The readings of the paper's implicit build this config trains (chapters 11 and 13), short:
        'normalized, separate' (the default), 'raw, joint' (the build before, l_d through S_e), with ', 2 DFE
        blocks' where the DFE has two."""
        label = f"{self.dfe_input}, {'separate' if self.detach_decoder_input else 'joint'}"
        return label + (f", {self.dfe_blocks} DFE blocks" if self.dfe_blocks != 1 else "")

    def inference(self) -> InferenceSettings:
        """How this run's maps are made (Eq. 8-10): its sigma, layers, lambda and normalisation."""
        return InferenceSettings.of(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"], d["layers"] = list(self.betas), list(self.layers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}")
        return cls(**{**LEGACY_VALUES, **d})


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; a named device must exist on this machine.

    Raises ``ValueError`` (one line) for a device torch cannot see, before any work starts.
    """
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {device!r} is not a device name: expected 'auto', 'cpu', 'cuda', 'cuda:N' "
                         f"or 'mps'") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {device!r} was asked for, but torch sees no CUDA GPU on this machine "
                             f"(torch {torch.__version__}); use --device cpu or auto")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {device!r} does not exist: torch sees {count} CUDA GPU(s), "
                             f"cuda:0..cuda:{count - 1}")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise ValueError(f"device {device!r} was asked for, but Apple's MPS is not available here; "
                             f"use --device cpu or auto")
    elif dev.type != "cpu":
        raise ValueError(f"device {device!r} is not supported: expected 'auto', 'cpu', 'cuda[:N]' or 'mps'")
    return dev
