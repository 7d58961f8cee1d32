"""Complexity and speed (Sec. 4.2.4, Table 6): parameters, FLOPs, latency, throughput, memory.

What is measured, for each structure (DS, T-E, T-D, E-D) and image size:

* **parameters**: total, trainable, and per component (teacher T, student encoder S_e, embedding, S_d);
* **FLOPs** of the inference path (networks + anomaly map), counted by ``torch.utils.flop_counter``:
  convolutions (incl. transposed), matrix products and the Gaussian filter's 1-D convolutions, at
  2 FLOPs per multiply-accumulate; element-wise work (BatchNorm, ReLU, normalisation, cosine,
  interpolation) is not counted. Many papers (and probably Table 6) report multiply-accumulates
  (MACs) as "FLOPs": both are given (``gmacs = gflops / 2``). Counted on the plain model: Winograd
  kernels do fewer multiplications, but the count is that of the direct convolution;
* **latency** per image at batch 1 and **throughput** at batch 16 (images/s), on the CPU: warm-up
  runs, then the median (and minimum) of many runs, with the number of threads stated. Variants
  measured side by side (interleaved, round by round), so a change in machine load hits all alike;
* **peak memory** of inference: weights plus the largest total of live tensors during one forward
  pass and anomaly map (tracked per storage with a dispatch mode), at batch 1;
* **training throughput**: images/s of a full step (forward, loss Eq. 7, backward, Adam), plain and
  with the training speed options (:data:`FAST_TRAINING`: the teacher-feature cache
  :class:`dskd.training.TeacherCache`, fused Adam, channels-last);
* the machine's **attainable rate**: a large fp32 matrix product and a large convolution measured in
  the same run; every rate is also given as a fraction of it.

``python -m dskd profile`` writes ``results/complexity/<machine>.json`` and prints a table.
"""
from __future__ import annotations

import copy
import json
import os
import platform
import re
import statistics
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from .config import TrainConfig
from .evaluation import SpeedLike, run_networks
from .hardware import cpu_flags, cpu_model
from .inference import anomaly_map
from .losses import dskd_loss
from .models import DSKD, STRUCTURES, teacher_weights_from_name
from .paper_results import TABLE6
from .provenance import provenance, write_json
from .results import results_path
from .speed import SpeedOptions, optimize_for_inference, speed_options
from .training import training_step

#: Table 6 of the paper (kept here under its old name; the numbers live in :mod:`dskd.paper_results`)
PAPER_TABLE6 = TABLE6

#: the components of a DSKD model, in the order of the data flow
COMPONENTS = ("teacher", "encoder", "embedding", "decoder")
#: where each component sits inside DSKD (the students are one module)
_COMPONENT_PATHS = {"teacher": "teacher", "encoder": "students.encoder", "embedding": "students.embedding",
                    "decoder": "students.decoder"}

#: the training speed options of :func:`dskd.training.train` that ``benchmarks/speed.py`` found faster
#: on a 2-core CPU (the teacher cache only for structures with a teacher)
FAST_TRAINING = {"cache_teacher": True, "fused_adam": True, "channels_last": True}



# --------------------------------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------------------------------
def machine_description() -> dict[str, Any]:
    """CPU model, cores, threads, SIMD flags, torch and its math libraries."""
    cfg = torch.__config__.show()
    onednn = re.search(r"MKL-DNN v([\d.]+)", cfg)
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", cfg)
    cap = re.search(r"CPU capability usage: (\w+)", cfg)
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "simd": cpu_flags(),
        "cpu_capability": cap.group(1) if cap else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onednn": onednn.group(1) if onednn else None,
        "mkl": mkl.group(1) if mkl else None,
        "nnpack": bool(getattr(torch, "_nnpack_available", lambda: False)()),
        "load_average_1_5_15min": [round(x, 2) for x in load],
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def machine_name(desc: Optional[dict[str, Any]] = None) -> str:
    """A file-name slug for the machine: ``cpu-<model>-<N>cpu[-<SIMD level torch uses>]``.

    The SIMD level is part of the name because virtual machines sold under one CPU name differ in it
    (AVX2 against AVX-512 with BF16 here), and it changes the numbers.
    """
    desc = desc or machine_description()
    model = re.sub(r"[^a-z0-9]+", "-", desc["cpu"].lower()).strip("-")
    model = re.sub(r"-(\d+)-core-processor$", "", model)
    cap = desc.get("cpu_capability")
    return f"cpu-{model}-{desc['logical_cpus']}cpu" + (f"-{cap.lower()}" if cap else "")


# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------
@dataclass
class Timing:
    """Wall-clock seconds of one call: median and minimum of ``runs`` runs after ``warmup`` runs."""

    median_s: float
    min_s: float
    max_s: float
    runs: int
    warmup: int

    def to_dict(self) -> dict[str, Any]:
        return {"median_s": self.median_s, "min_s": self.min_s, "max_s": self.max_s, "runs": self.runs,
                "warmup": self.warmup}


def time_interleaved(fns: dict[str, Callable[[], Any]], *, runs: int = 10, warmup: int = 2) -> dict[str, Timing]:
    """Time several calls side by side: ``warmup`` rounds, then ``runs`` rounds of one call each,
    in turn, so a change in load on a shared machine affects every call alike."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    seconds: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(runs):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            seconds[k].append(time.perf_counter() - t0)
    return {k: Timing(statistics.median(v), min(v), max(v), runs, warmup) for k, v in seconds.items()}


def time_call(fn: Callable[[], Any], *, runs: int = 10, warmup: int = 2) -> Timing:
    return time_interleaved({"fn": fn}, runs=runs, warmup=warmup)["fn"]


# --------------------------------------------------------------------------------------------------
# The machine's attainable rate
# --------------------------------------------------------------------------------------------------
def _probes(size: str = "large", dtype: torch.dtype = torch.float32) -> dict[str, tuple[Callable[[], Any], float, str]]:
    """(call, FLOPs, description) of a large matrix product and a large 3x3 convolution in ``dtype``."""
    n = 1536 if size == "large" else 256
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    c, hw, batch = (256, 32, 8) if size == "large" else (32, 16, 2)
    x = torch.randn(batch, c, hw, hw, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c, 3, 3, dtype=dtype).contiguous(memory_format=torch.channels_last)
    name = {torch.float32: "fp32", torch.bfloat16: "bf16"}.get(dtype, str(dtype))
    return {
        "matmul": (lambda: torch.mm(a, b), 2.0 * n ** 3, f"{name} matmul {n}x{n} @ {n}x{n} (BLAS)"),
        "conv": (lambda: F.conv2d(x, w, padding=1), 2.0 * batch * c * c * 9 * hw * hw,
                 f"{name} 3x3 convolution, {batch}x{c}x{hw}x{hw} -> {c} channels, channels-last (oneDNN)"),
    }


def bf16_probes(size: str = "large") -> dict[str, tuple[Callable[[], Any], float, str]]:
    """The matrix product and convolution of :func:`_probes` in bfloat16, keys ``matmul_bf16`` and
    ``conv_bf16``: the ceiling a bf16 variant is measured against (a CPU with native bf16 runs them about
    twice as fast as fp32)."""
    return {f"{k}_bf16": v for k, v in _probes(size, torch.bfloat16).items()}


def attainable_rate(*, runs: int = 5, warmup: int = 2, size: str = "large") -> dict[str, Any]:
    """GFLOP/s of a large matrix product and a large convolution; ``attainable_gflops`` is the larger."""
    probes = _probes(size)
    with torch.inference_mode():
        timing = time_interleaved({k: p[0] for k, p in probes.items()}, runs=runs, warmup=warmup)
    out: dict[str, Any] = {}
    for k, (_, flops, desc) in probes.items():
        out[k] = {"description": desc, "gflops_per_s": flops / timing[k].median_s / 1e9,
                  "best_gflops_per_s": flops / timing[k].min_s / 1e9, "timing": timing[k].to_dict()}
    out["attainable_gflops_per_s"] = max(out[k]["gflops_per_s"] for k in probes)
    return out


# --------------------------------------------------------------------------------------------------
# Parameters and FLOPs
# --------------------------------------------------------------------------------------------------
def count_parameters(model: nn.Module) -> dict[str, Any]:
    """Parameters in total, trainable, per component, and the size of weights and buffers in MB (10^6 bytes)."""
    total = sum(p.numel() for p in model.parameters())
    out: dict[str, Any] = {
        "total": total,
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "per_component": {c: sum(p.numel() for p in getattr(model, c).parameters())
                          if getattr(model, c, None) is not None else 0 for c in COMPONENTS},
        "buffers": sum(b.numel() for b in model.buffers()),
    }
    out["state_dict_mb"] = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()]) / 1e6
    return out


def _flop_counts(fn: Callable[[], Any]) -> dict[str, dict[Any, int]]:
    counter = FlopCounterMode(display=False, depth=None)
    with counter:
        fn()
    return counter.get_flop_counts()


def _component_flops(counts: dict[str, dict[Any, int]], root: str, batch: int) -> dict[str, float]:
    total = sum(counts.get("Global", {}).values())
    out = {c: sum(counts.get(f"{root}.{_COMPONENT_PATHS[c]}", {}).values()) / batch for c in COMPONENTS}
    out["networks"] = sum(counts.get(root, {}).values()) / batch
    out["anomaly_map"] = total / batch - out["networks"]
    out["total"] = total / batch
    return out


def count_flops(model: DSKD, image_size: int = 256, *, batch: int = 1, sigma: float = 4.0) -> dict[str, Any]:
    """FLOPs per image of the inference path (networks + anomaly map), total and per component."""
    model = model.eval()
    x = torch.randn(batch, 3, image_size, image_size)

    def infer() -> None:
        ref, stu = model.inference_pair(model(x))
        anomaly_map(ref, stu, image_size, sigma=sigma)

    with torch.inference_mode():
        flops = _component_flops(_flop_counts(infer), type(model).__name__, batch)
    return {"flops": flops, "gflops": flops["total"] / 1e9, "gmacs": flops["total"] / 2e9,
            "counted": "conv, transposed conv, matmul and the Gaussian filter's conv1d at 2 FLOPs/MAC; "
                       "element-wise ops not counted"}


def training_step_flops(model: DSKD, image_size: int, *, batch: int = 2, cfg: Optional[TrainConfig] = None) -> float:
    """FLOPs per image of one full training step (forward, loss, backward; Adam's element-wise
    update is not counted)."""
    cfg = cfg or TrainConfig.quick(teacher="random")
    model = copy.deepcopy(model).train()
    x = torch.randn(batch, 3, image_size, image_size)

    def step() -> None:
        loss = dskd_loss(model.loss_pairs(model(x)), cfg.lam, cfg.normalization, cfg.loss_form)
        loss.backward()

    counts = _flop_counts(step)
    return sum(counts.get("Global", {}).values()) / batch


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------
class LiveTensorTracker(TorchDispatchMode):
    """Track the bytes of live tensor storages created inside the mode; ``peak_bytes`` is the largest
    total reached. Inputs and weights created before the mode are not counted."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.current = 0
        self.peak_bytes = 0

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.current -= self.sizes.pop(key)
            del self.refs[key]

    def _track(self, t: Tensor) -> None:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key == 0:
            return
        if key not in self.refs:
            self.refs[key] = 0
            self.sizes[key] = storage.nbytes()
            self.current += storage.nbytes()
            self.peak_bytes = max(self.peak_bytes, self.current)
        self.refs[key] += 1
        weakref.finalize(t, self._release, key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, Tensor) and t.device.type == "cpu":
                self._track(t)
        return out


def peak_inference_memory(model: DSKD, image_size: int = 256, *, batch: int = 1) -> dict[str, float]:
    """MB (10^6 bytes) of weights and of the peak of live activations in one inference pass."""
    x = torch.randn(batch, 3, image_size, image_size)
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    tracker = LiveTensorTracker()
    with torch.inference_mode(), tracker:
        ref, stu = model.inference_pair(model(x))
        maps = anomaly_map(ref, stu, image_size)
        del ref, stu, maps
    return {"weights_mb": weights / 1e6, "activations_peak_mb": tracker.peak_bytes / 1e6,
            "peak_mb": (weights + tracker.peak_bytes) / 1e6}


# --------------------------------------------------------------------------------------------------
# Inference and training calls
# --------------------------------------------------------------------------------------------------
def inference_call(model: DSKD, images: Tensor, *, sigma: float = 4.0) -> Callable[[], Tensor]:
    """A call computing the anomaly maps of ``images`` (networks, Eq. 8-9), as :func:`predict` does.

    ``model`` may come from :func:`optimize_for_inference` (its speed options apply)."""
    size = images.shape[-2:]

    def call() -> Tensor:
        with torch.inference_mode():
            ref, stu = run_networks(model, images)
            return anomaly_map(ref, stu, size, sigma=sigma)

    return call


def training_call(model: DSKD, images: Tensor, *, cache_teacher: bool = False, channels_last: bool = False,
                  fused_adam: bool = False, precision: str = "fp32",
                  cfg: Optional[TrainConfig] = None) -> Callable[[], Tensor]:
    """A call doing one full training step (Algorithm 1) on a private copy of ``model``.

    ``cache_teacher``: the teacher's features of ``images`` are computed once, then reused (the
    steady state of :class:`dskd.training.TeacherCache` after the first epoch); ``precision``: "fp32" or
    "bf16" (autocast, as :func:`dskd.training.training_step` runs it)."""
    cfg = (cfg or TrainConfig.quick(teacher="random")).replace(precision=precision)
    model = copy.deepcopy(model).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.student_parameters(), lr=cfg.lr, betas=cfg.betas,
                                 **({"fused": True} if fused_adam else {}))
    feats = None
    if cache_teacher and model.teacher is not None:
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            feats = model.teacher(images)

    def call() -> Tensor:
        return training_step(model, optimizer, images, cfg, feats)

    return call


def convolution_floor_call(model: DSKD, images: Tensor, *, precision: str = "bf16",
                           channels_last: bool = True) -> tuple[Callable[[], None], float]:
    """What a training step's convolutions cost on their own: a call that runs every student
    convolution of one step on ``images`` (forward, then backward to its input and its weight), each
    alone on random tensors of its shape, in the step's precision and memory layout (a gradient to the
    input only where the step computes one: not for the image nor the teacher's features), and the FLOPs
    that call executes. A step's time above this floor is its other work: BatchNorm, ReLU, the loss, Adam and
    autocast's casts. The teacher's convolutions are left out (a cached teacher does not run them)."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = copy.deepcopy(model).train()
    shapes: list[tuple[nn.Module, torch.Size, bool]] = []  # (conv, input shape, input needs a gradient)
    hooks = [m.register_forward_hook(lambda m, inp, out: shapes.append((m, inp[0].shape, inp[0].requires_grad)))
             for name, m in model.named_modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and not name.startswith("teacher")]
    try:
        with torch.no_grad():
            teacher = model.teacher(images) if model.teacher is not None else None
        model.students(images, teacher)  # with autograd on, as in a step: which inputs need a gradient
    finally:
        for h in hooks:
            h.remove()
    g = torch.Generator().manual_seed(0)
    work = []
    for module, shape, needs_grad in shapes:
        conv = copy.deepcopy(module).to(dtype=dtype, memory_format=layout)
        x = torch.randn(shape, generator=g).to(dtype=dtype, memory_format=layout).requires_grad_(needs_grad)
        with torch.no_grad():
            grad_out = torch.randn(conv(x).shape, generator=g).to(dtype=dtype, memory_format=layout)
        work.append((conv, x, grad_out))

    def call() -> None:
        for conv, x, grad_out in work:
            conv(x).backward(grad_out)
            x.grad = conv.weight.grad = None  # each call computes the gradients afresh, as a step does

    counts = _flop_counts(call)
    return call, float(sum(counts.get("Global", {}).values()))


def component_calls(model: DSKD, image_size: int, *, batch: int = 1) -> dict[str, Callable[[], Any]]:
    """One call per component of the inference path (and the anomaly map), on precomputed inputs."""
    x = torch.randn(batch, 3, image_size, image_size)
    opts: SpeedOptions = getattr(model, "speed_options", SpeedOptions.plain())
    if opts.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out = model(x)
        ref, stu = model.inference_pair(out)
        source = out.teacher if model.structure == "T-D" else out.encoder
        emb = model.embedding(source) if model.embedding is not None else None
    calls: dict[str, Callable[[], Any]] = {}
    if model.teacher is not None:
        calls["teacher"] = lambda: model.teacher(x)
    if model.encoder is not None:
        calls["encoder"] = lambda: model.encoder(x)
    if model.embedding is not None:
        calls["embedding"] = lambda: model.embedding(source)
        calls["decoder"] = lambda: model.decoder(emb)
    calls["anomaly_map"] = lambda: anomaly_map(ref, stu, image_size)

    def under_inference_mode(fn: Callable[[], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with torch.inference_mode():
                return fn()
        return call

    return {k: under_inference_mode(v) for k, v in calls.items()}


def map_agreement(model: DSKD, speed: SpeedLike, image_size: int = 128, *, batch: int = 2,
                  seed: int = 0) -> dict[str, Any]:
    """max |fast map - plain map| / max |plain map| for the options ``speed``, and the tolerance."""
    opts = speed_options(speed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, image_size, image_size, generator=g)
    plain = inference_call(model, x)()
    fast = inference_call(optimize_for_inference(model, opts), x)()
    err = float((fast - plain).abs().max() / plain.abs().max().clamp_min(1e-12))
    return {"options": opts.describe(), "max_rel_diff": err, "tolerance": opts.tolerance,
            "agrees": err <= opts.tolerance}


# --------------------------------------------------------------------------------------------------
# The profile
# --------------------------------------------------------------------------------------------------
def _make_model(structure: str, teacher: str = "random", seed: int = 0) -> DSKD:
    torch.manual_seed(seed)
    return DSKD(structure, teacher_weights=teacher_weights_from_name(teacher)).eval()


def profile_structure(
    structure: str,
    image_size: int,
    *,
    speed: SpeedLike = "fast",
    runs: int = 15,
    warmup: int = 3,
    throughput_batch: int = 16,
    throughput_runs: int = 5,
    train_batch: int = 8,
    train_runs: int = 3,
    components: bool = True,
    model: Optional[DSKD] = None,
    attainable_size: str = "large",
) -> dict[str, Any]:
    """Every measurement of one structure at one image size (see the module docstring).

    Inference variants are the plain fp32 path and ``speed``; the attainable-rate probes are timed in
    the same rounds, so each fraction compares rates measured under the same load.
    """
    model = model if model is not None else _make_model(structure)
    opts = speed_options(speed)
    fast = optimize_for_inference(model, opts)
    flops = count_flops(model, image_size)
    rec: dict[str, Any] = {
        "structure": structure, "image_size": image_size, "speed_options": opts.describe(),
        "parameters": count_parameters(model), **flops,
        "memory": peak_inference_memory(model, image_size),
        "teacher": model.teacher_description,
    }
    # latency at batch 1 and throughput at batch N, side by side with the attainable-rate probes
    probes = _probes(attainable_size)
    x1 = torch.randn(1, 3, image_size, image_size)
    xb = torch.randn(throughput_batch, 3, image_size, image_size)
    calls = {"plain_b1": inference_call(model, x1), "fast_b1": inference_call(fast, x1)}
    calls.update({f"probe_{k}": p[0] for k, p in probes.items()})
    timing = time_interleaved(calls, runs=runs, warmup=warmup)
    calls_b = {"plain_bN": inference_call(model, xb), "fast_bN": inference_call(fast, xb)}
    calls_b.update({f"probe_{k}": p[0] for k, p in probes.items()})
    timing_b = time_interleaved(calls_b, runs=throughput_runs, warmup=1)

    def rate(k: str, tm: dict[str, Timing]) -> float:
        return probes[k][1] / tm[f"probe_{k}"].median_s / 1e9

    attainable = max(rate(k, timing) for k in probes)
    attainable_b = max(rate(k, timing_b) for k in probes)
    total = flops["flops"]["total"]
    rec["latency_b1"] = {
        "plain": timing["plain_b1"].to_dict(), "fast": timing["fast_b1"].to_dict(),
        "speedup": timing["plain_b1"].median_s / timing["fast_b1"].median_s,
        "attainable_gflops_per_s": attainable,
        "fraction_of_attainable": {v: total / timing[f"{v}_b1"].median_s / 1e9 / attainable
                                   for v in ("plain", "fast")},
    }
    rec["throughput"] = {
        "batch": throughput_batch,
        "plain_images_per_s": throughput_batch / timing_b["plain_bN"].median_s,
        "fast_images_per_s": throughput_batch / timing_b["fast_bN"].median_s,
        "plain": timing_b["plain_bN"].to_dict(), "fast": timing_b["fast_bN"].to_dict(),
        "attainable_gflops_per_s": attainable_b,
        "fraction_of_attainable": {v: total * throughput_batch / timing_b[f"{v}_bN"].median_s / 1e9 / attainable_b
                                   for v in ("plain", "fast")},
    }
    # training: a full step, plain and with the training speed options (FAST_TRAINING)
    xt = torch.randn(train_batch, 3, image_size, image_size)
    fast_training = {**FAST_TRAINING, "cache_teacher": FAST_TRAINING["cache_teacher"] and model.teacher is not None}
    tcalls = {"step": training_call(model, xt), "step_fast": training_call(model, xt, **fast_training)}
    tcalls.update({f"probe_{k}": p[0] for k, p in probes.items()})
    ttiming = time_interleaved(tcalls, runs=train_runs, warmup=1)
    attainable_t = max(rate(k, ttiming) for k in probes)
    step_flops = training_step_flops(model, image_size)
    # a cached teacher's forward is not executed: count only the FLOPs that run
    executed_fast = step_flops - (flops["flops"]["teacher"] if fast_training["cache_teacher"] else 0.0)
    rec["training"] = {
        "batch": train_batch, "flops_per_image": step_flops, "gflops_per_image": step_flops / 1e9,
        "images_per_s": train_batch / ttiming["step"].median_s, "step": ttiming["step"].to_dict(),
        "fast_options": fast_training,
        "fast_images_per_s": train_batch / ttiming["step_fast"].median_s, "step_fast": ttiming["step_fast"].to_dict(),
        "fast_speedup": ttiming["step"].median_s / ttiming["step_fast"].median_s,
        "attainable_gflops_per_s": attainable_t,
        "fraction_of_attainable": {
            "plain": step_flops * train_batch / ttiming["step"].median_s / 1e9 / attainable_t,
            "fast": executed_fast * train_batch / ttiming["step_fast"].median_s / 1e9 / attainable_t},
    }
    if components:
        ctiming = time_interleaved(component_calls(fast, image_size), runs=runs, warmup=warmup)
        rec["components_b1_s"] = {k: v.median_s for k, v in ctiming.items()}
    rec["attainable_gflops_per_s"] = statistics.median([attainable, attainable_b, attainable_t])
    return rec


def profile(
    structures: Sequence[str] = STRUCTURES,
    sizes: Sequence[int] = (128, 256),
    *,
    speed: SpeedLike = "fast",
    runs: int = 15,
    warmup: int = 3,
    throughput_batch: int = 16,
    throughput_runs: int = 5,
    train_batch: int = 8,
    train_runs: int = 3,
    threads: Optional[int] = None,
    attainable_size: str = "large",
    teacher: str = "random",
    progress: bool = True,
) -> dict[str, Any]:
    """:func:`profile_structure` for every structure and size, with the machine and its attainable
    rate (measured at the start, and beside every measurement). The teacher's weights do not change
    the speed, so a random teacher is used by default (stated in the records)."""
    bad = [s for s in structures if s not in STRUCTURES]
    if bad:
        raise ValueError(f"unknown structures {bad}: expected a subset of {STRUCTURES}")
    if any(int(s) < 32 or int(s) % 32 for s in sizes):
        raise ValueError(f"image sizes must be multiples of 32, at least 32, got {list(sizes)}")
    if threads is not None:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    machine = machine_description()
    result: dict[str, Any] = {
        "machine": machine, "machine_name": machine_name(machine),
        "attainable_at_start": attainable_rate(size=attainable_size),
        "settings": {"speed": speed_options(speed).to_dict(), "speed_description": speed_options(speed).describe(),
                     "runs": runs, "warmup": warmup, "throughput_batch": throughput_batch,
                     "throughput_runs": throughput_runs, "train_batch": train_batch, "train_runs": train_runs,
                     "threads": torch.get_num_threads(), "teacher": teacher, "timing": "median of interleaved runs"},
        "paper_table6": TABLE6,
        "records": [],
    }
    for size in sizes:
        for structure in structures:
            t0 = time.perf_counter()
            rec = profile_structure(structure, int(size), speed=speed, runs=runs, warmup=warmup,
                                    throughput_batch=throughput_batch, throughput_runs=throughput_runs,
                                    train_batch=train_batch, train_runs=train_runs,
                                    model=_make_model(structure, teacher), attainable_size=attainable_size)
            result["records"].append(rec)
            if progress:
                lat = rec["latency_b1"]
                print(f"[profile] {structure:>3} @ {size}: {rec['gflops']:.2f} GFLOPs, latency "
                      f"{lat['plain']['median_s'] * 1e3:.0f} -> {lat['fast']['median_s'] * 1e3:.0f} ms, "
                      f"train {rec['training']['images_per_s']:.1f} img/s ({time.perf_counter() - t0:.0f} s)",
                      flush=True)
    result["attainable_gflops_per_s"] = statistics.median(
        [r["attainable_gflops_per_s"] for r in result["records"]]
        + [result["attainable_at_start"]["attainable_gflops_per_s"]])
    result["agreement"] = map_agreement(_make_model("DS", teacher), speed, min(sizes))
    result["seconds"] = time.perf_counter() - started
    result["provenance"] = provenance("cpu", teacher=teacher)
    return result


def _fmt(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}"


def format_table(result: dict[str, Any]) -> str:
    """A markdown table of a :func:`profile` result."""
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {result['settings']['threads']} torch threads, "
        f"torch {m['torch']}; attainable {result['attainable_gflops_per_s']:.1f} GFLOP/s (median of probes); "
        f"fast = {result['settings']['speed_description']}",
        "",
        "| structure | size | params (M) | T / S_e / emb / S_d (M) | GFLOPs (GMACs) | latency b1 plain / fast (ms) "
        f"| fraction b1 fast | img/s b{result['settings']['throughput_batch']} fast | peak mem (MB) "
        "| train img/s plain / fast | train fraction fast |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["records"]:
        pc = r["parameters"]["per_component"]
        lat, thr, tr = r["latency_b1"], r["throughput"], r["training"]
        lines.append(
            f"| {r['structure']} | {r['image_size']} | {r['parameters']['total'] / 1e6:.2f} | "
            + " / ".join(_fmt(pc[c] / 1e6, 2) for c in COMPONENTS)
            + f" | {r['gflops']:.2f} ({r['gmacs']:.2f}) | {lat['plain']['median_s'] * 1e3:.0f} / "
            f"{lat['fast']['median_s'] * 1e3:.0f} | {lat['fraction_of_attainable']['fast']:.0%} | "
            f"{thr['fast_images_per_s']:.1f} | {r['memory']['peak_mb']:.0f} | {tr['images_per_s']:.2f} / "
            f"{tr['fast_images_per_s']:.2f} | {tr['fraction_of_attainable']['fast']:.0%} |")
    a = result.get("agreement")
    if a:
        lines += ["", f"Maps of '{a['options']}' vs plain fp32: max relative difference {a['max_rel_diff']:.1e} "
                      f"(tolerance {a['tolerance']:.0e})."]
    return "\n".join(lines)


def write_profile(result: dict[str, Any], out_dir: Union[str, os.PathLike] = "results/complexity",
                  name: Optional[str] = None) -> Path:
    """Write ``<out_dir>/<machine>.json`` (relative to the current folder)."""
    path = Path(out_dir) / f"{name or result['machine_name']}.json"
    return write_json(path, result)


def load_profiles(folder: Union[str, os.PathLike, None] = None) -> dict[str, dict[str, Any]]:
    """Every recorded profile JSON in ``folder`` (default: the recorded ``complexity/`` results), by file stem."""
    folder = folder if folder is not None else results_path("complexity")
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))}


def records_table(result: dict[str, Any], structures: Iterable[str] = STRUCTURES) -> list[dict[str, Any]]:
    """Flat rows (one per structure and size) for display or a DataFrame."""
    rows = []
    for r in result["records"]:
        if r["structure"] not in structures:
            continue
        rows.append({
            "structure": r["structure"], "size": r["image_size"],
            "params_M": r["parameters"]["total"] / 1e6, "GFLOPs": r["gflops"], "GMACs": r["gmacs"],
            "latency_plain_ms": r["latency_b1"]["plain"]["median_s"] * 1e3,
            "latency_fast_ms": r["latency_b1"]["fast"]["median_s"] * 1e3,
            "imgs_per_s_b16": r["throughput"]["fast_images_per_s"],
            "peak_MB": r["memory"]["peak_mb"],
            "train_imgs_per_s": r["training"]["images_per_s"],
            "train_fast_imgs_per_s": r["training"]["fast_images_per_s"],
        })
    return rows
