"""What this machine can do: CPU model and SIMD flags, and whether bf16 arithmetic is native here.

Training runs in bf16 autocast only where the hardware computes bf16 natively (CPUs with AVX-512 BF16 or
AMX, ``bf16`` on Arm; CUDA GPUs that support it); elsewhere bf16 is emulated and slower than fp32, so
``precision="auto"`` falls back to fp32 and the run record says why.
"""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Union

import torch

#: the precisions a run can ask for; "auto" is bf16 where native (:func:`native_bf16`), else fp32
PRECISIONS = ("auto", "fp32", "bf16")
#: SIMD flags worth recording (x86)
_KEPT_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "avx_vnni")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _all_cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):  # x86 / Arm
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_flags() -> list[str]:
    """The SIMD flags that matter for convolutions (x86), as /proc/cpuinfo lists them."""
    flags = _all_cpu_flags()
    return [f for f in _KEPT_FLAGS if f in flags]


def native_bf16(device: Union[torch.device, str]) -> tuple[bool, str]:
    """Whether ``device`` computes bf16 natively, and the reason in words."""
    device = torch.device(device)
    if device.type == "cuda":
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return ok, f"CUDA device {'supports' if ok else 'does not support'} bf16"
    if device.type != "cpu":
        return False, f"bf16 autocast is not used on {device.type}"
    flags = _all_cpu_flags()
    native = sorted(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    if native:
        return True, f"the CPU has native bf16 ({', '.join(native)})"
    return False, "the CPU has no native bf16 (no avx512_bf16, amx_bf16 or Arm bf16): bf16 would be emulated"


def resolve_precision(precision: str, device: Union[torch.device, str]) -> tuple[str, str]:
    """``(precision used, why)`` for a run asking for ``precision`` on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is invalid: expected one of {PRECISIONS}")
    if precision != "auto":
        return precision, "asked for"
    native, why = native_bf16(device)
    return ("bf16" if native else "fp32"), why
