"""Batch prediction (Algorithm 2) and evaluation with the paper's three metrics (Sec. 4.1.3)."""
from __future__ import annotations

import copy
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .inference import ALL_LAYERS, anomaly_map, anomaly_score
from .metrics import image_auroc, pixel_auroc, pro_score
from .models import DSKD, Pyramid


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


# --------------------------------------------------------------------------------------------------
# Speed options for inference (issue "Complexity and speed"). Every option is checked against the
# plain fp32 eager path: the maps must agree within MAP_TOLERANCE (max |difference| / max |plain map|).
# --------------------------------------------------------------------------------------------------

#: agreement of optimised maps with the plain fp32 maps, relative to the largest plain map value:
#: "fp32" for exact rewrites (BatchNorm folding, channels-last, Winograd, compile), "bf16" for autocast
MAP_TOLERANCE = {"fp32": 1e-4, "bf16": 3e-2}


@dataclass(frozen=True)
class SpeedOptions:
    """How :func:`predict` runs the networks. ``SpeedOptions()`` is the plain fp32 eager path.

    * ``fold_batchnorm``: fold each eval-mode BatchNorm into the convolution before it (same maths).
    * ``channels_last``: NHWC weights and activations (oneDNN's preferred layout on CPUs).
    * ``winograd``: 3x3 stride-1 convolutions whose input has at least ``winograd_min_area`` pixels run
      through NNPACK's Winograd/FFT kernels (fewer multiplications; fp32 rounding differs by ~1e-5).
    * ``bf16``: autocast the networks to bfloat16 on the CPU (maps computed in fp32).
    * ``compile``: ``torch.compile`` (inductor) the optimised model; compiled once per input shape.
    """

    fold_batchnorm: bool = False
    channels_last: bool = False
    winograd: bool = False
    winograd_min_area: int = 32 * 32
    bf16: bool = False
    compile: bool = False

    @classmethod
    def plain(cls) -> "SpeedOptions":
        return cls()

    @classmethod
    def fast(cls) -> "SpeedOptions":
        """BatchNorm folding + channels-last: faster than the plain path at batch 1 and at batch 16, on
        the idle and on the loaded 2-core CPU (``benchmarks/speed.py``, ``results/benchmarks/speed*.json``),
        maps equal within ``MAP_TOLERANCE["fp32"]``. Both other exact options are opt-in: Winograd buys
        a few percent at batch 1 but was slower at batch 16 (``predict``'s default batch), and
        ``compile`` recompiles for every new input shape (seconds to a minute each on a small CPU)."""
        return cls(fold_batchnorm=True, channels_last=True)

    @property
    def tolerance(self) -> float:
        return MAP_TOLERANCE["bf16" if self.bf16 else "fp32"]

    def describe(self) -> str:
        on = [k for k, v in asdict(self).items() if v is True]
        if self.winograd:
            on[on.index("winograd")] = f"winograd(>= {self.winograd_min_area} px)"
        return "+".join(on) if on else "plain"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SpeedLike = Union[None, str, SpeedOptions]


def speed_options(speed: SpeedLike) -> SpeedOptions:
    """``None`` or ``"plain"`` -> the plain path; ``"fast"`` -> :meth:`SpeedOptions.fast`."""
    if speed is None or speed == "plain":
        return SpeedOptions.plain()
    if speed == "fast":
        return SpeedOptions.fast()
    if isinstance(speed, SpeedOptions):
        return speed
    raise ValueError(f"speed must be None, 'plain', 'fast' or a SpeedOptions, got {speed!r}")


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d into the (transposed) convolution registered just before it.

    In every module of DSKD (and torchvision's ResNet) a BatchNorm directly follows the convolution
    registered before it (``conv1``/``bn1``, ``Sequential(conv, bn, ...)``), so the pair is
    y = gamma (W x - mu) / sqrt(var + eps) + beta = W' x + b'. Returns a modified *copy*.
    """
    model = copy.deepcopy(model).eval()
    for parent in model.modules():
        names = list(parent._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = parent._modules[a], parent._modules[b]
            if not (isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d)):
                continue
            out_dim = 0 if isinstance(conv, nn.Conv2d) else 1
            if conv.groups != 1 or conv.weight.shape[out_dim] != bn.num_features:
                continue
            scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
            shift = bn.bias.detach() - bn.running_mean * scale
            shape = [1, 1, 1, 1]
            shape[out_dim] = -1
            weight = conv.weight.detach() * scale.view(shape)
            bias = shift if conv.bias is None else conv.bias.detach() * scale + shift
            conv.weight = nn.Parameter(weight, requires_grad=False)
            conv.bias = nn.Parameter(bias, requires_grad=False)
            parent._modules[b] = nn.Identity()
    return model


_NNPACK_READY = False


@torch.library.custom_op("dskd::nnpack_conv3x3", mutates_args=())
def nnpack_conv3x3(x: Tensor, weight: Tensor, bias: Optional[Tensor], padding: list[int]) -> Tensor:
    """A 3x3 stride-1 convolution by NNPACK (NCHW fp32), as an op ``torch.compile`` can trace
    (a custom op with a fake kernel: inductor keeps it as one opaque call in the compiled graph)."""
    global _NNPACK_READY
    if not _NNPACK_READY:  # NNPACK fails ("SpatialConvolution_updateOutput failed") until initialised
        _NNPACK_READY = winograd_available()
    return torch._nnpack_spatial_convolution(x.contiguous(), weight.contiguous(), bias, padding, [1, 1])


@nnpack_conv3x3.register_fake
def _(x: Tensor, weight: Tensor, bias: Optional[Tensor], padding: list[int]) -> Tensor:
    h, w = x.shape[-2] + 2 * padding[0] - 2, x.shape[-1] + 2 * padding[1] - 2
    return x.new_empty((x.shape[0], weight.shape[0], h, w))


class WinogradConv2d(nn.Module):
    """A 3x3 stride-1 Conv2d run by NNPACK (Winograd F(6x6, 3x3), or FFT, as NNPACK picks) when its
    input has at least ``min_area`` pixels and is fp32 on the CPU; otherwise the usual convolution.

    NNPACK works in NCHW: a channels-last input is converted in and the output converted back, so
    the layout seen by the rest of the network does not change.
    """

    def __init__(self, conv: nn.Conv2d, min_area: int = 32 * 32) -> None:
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach().contiguous(), requires_grad=False)  # NNPACK: NCHW
        self.bias = conv.bias
        self.padding, self.min_area = list(conv.padding), min_area

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.float32 and x.device.type == "cpu" and x.shape[-2] * x.shape[-1] >= self.min_area:
            channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
            y = nnpack_conv3x3(x, self.weight, self.bias, self.padding)
            return y.contiguous(memory_format=torch.channels_last) if channels_last else y
        return F.conv2d(x, self.weight, self.bias, 1, self.padding)


def winograd_available() -> bool:
    """NNPACK is compiled in and runs on this CPU (the call also initialises it)."""
    try:
        return bool(torch._nnpack_available())
    except (AttributeError, RuntimeError):
        return False


def use_winograd(model: nn.Module, min_area: int = 32 * 32) -> nn.Module:
    """Swap every 3x3, stride-1, dilation-1, ungrouped Conv2d for a :class:`WinogradConv2d` (in place)."""
    if not winograd_available():
        return model
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):
            if (isinstance(child, nn.Conv2d) and child.kernel_size == (3, 3) and child.stride == (1, 1)
                    and child.dilation == (1, 1) and child.groups == 1 and child.padding_mode == "zeros"
                    and isinstance(child.padding, tuple)):
                parent._modules[name] = WinogradConv2d(child, min_area)
    return model


def optimize_for_inference(model: DSKD, speed: SpeedLike = "fast") -> DSKD:
    """A copy of ``model`` prepared for fast inference (the original is not touched).

    The copy carries its options as ``speed_options``; :func:`run_networks` applies the bf16
    autocast they ask for. ``compile`` wraps the copy with ``torch.compile`` (inductor, freezing):
    the first call per input shape compiles (a minute or more on a small CPU).
    """
    opts = speed_options(speed)
    fast = fold_batchnorm(model) if opts.fold_batchnorm else copy.deepcopy(model).eval()
    fast.requires_grad_(False)
    if opts.channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    if opts.winograd:
        use_winograd(fast, opts.winograd_min_area)
    fast.speed_options = opts  # type: ignore[attr-defined]
    if opts.compile:
        # inductor with freezing: weights become constants (pre-packed for oneDNN, conv+ReLU fused)
        fast = torch.compile(fast, dynamic=False, options={"freezing": True})  # type: ignore[assignment]
    return fast


def run_networks(model: DSKD, images: Tensor) -> tuple[Pyramid, Pyramid]:
    """The (reference, student) pyramids of Algorithm 2 for a batch, as fp32 (under the model's
    ``speed_options``, if :func:`optimize_for_inference` made it)."""
    opts: SpeedOptions = getattr(model, "speed_options", SpeedOptions.plain())
    if opts.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(images.device.type, dtype=torch.bfloat16) if opts.bf16 else nullcontext()
    with autocast:
        ref, stu = model.inference_pair(model(images))
    if opts.bf16:
        ref, stu = Pyramid(*(f.float() for f in ref)), Pyramid(*(f.float() for f in stu))
    return ref, stu


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
    speed: SpeedLike = None,
) -> Prediction:
    """Algorithm 2 on a batch tensor (N, 3, H, W), a data set or a loader of dicts.

    Returns the maps and scores on the CPU; for data sets also labels, masks and defect types.
    ``speed`` (``None``/``"plain"``, ``"fast"`` or a :class:`SpeedOptions`) optimises a copy of the
    model first (:func:`optimize_for_inference`); its maps agree with the plain ones within
    ``SpeedOptions.tolerance``. A model already returned by :func:`optimize_for_inference` keeps its
    options. Data sets are read by a DataLoader with ``num_workers`` worker processes.
    """
    if speed is not None and speed_options(speed) != SpeedOptions.plain():
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
        ref, stu = run_networks(model, images)
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
    #: why a metric is undefined (``nan``) or rests on incomplete ground truth; empty when all is well
    warnings: list[str] = field(default_factory=list)

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
    notes = ground_truth_warnings(labels, masks)
    for note in notes:
        warnings.warn(note, UndefinedMetricWarning, stacklevel=2)
    return EvaluationReport(
        image_auroc=overall["image_auroc"], pixel_auroc=overall["pixel_auroc"], pro=overall["pro"],
        per_defect_type=per_type, seconds_per_image=pred.seconds / max(n, 1), n_images=n,
        n_anomalous=int(labels.sum()), teacher=model.teacher_description, structure=model.structure,
        prediction=pred, warnings=notes,
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
