"""Speed options for inference: BatchNorm folding, channels-last, NNPACK Winograd, bf16, ``torch.compile``.

Loaded only when asked for (``predict(..., speed=...)``, ``dskd profile``, ``benchmarks/speed.py``):
importing this module registers the ``dskd::nnpack_conv3x3`` custom op, which wraps torch's private
``torch._nnpack_spatial_convolution``. Every option is checked against the plain fp32 eager path: the
maps must agree within :data:`MAP_TOLERANCE` (max |difference| / max |plain map|).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models import DSKD

# --------------------------------------------------------------------------------------------------

#: agreement of optimised maps with the plain fp32 maps, relative to the largest plain map value:
#: "fp32" for exact rewrites (BatchNorm folding, channels-last, Winograd, compile), "bf16" for autocast
MAP_TOLERANCE = {"fp32": 1e-4, "bf16": 3e-2}


@dataclass(frozen=True)
class SpeedOptions:
    """How :func:`dskd.evaluation.predict` runs the networks. ``SpeedOptions()`` is the plain fp32 eager path.

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
