"""Inference and training speed of DSKD on this CPU, side by side with the machine's attainable rate
and with anomalib's reverse distillation and STFPM torch models (issue "Complexity and speed").

Everything compared is timed in one run, interleaved round by round (one call of each variant per
round, median over the rounds), so a change of load on a shared machine hits all variants alike:

* the attainable rate of each precision: a large matrix product (BLAS) and a large 3x3 convolution
  (oneDNN), in fp32 and in bf16; every variant is measured against the ceiling of its own precision;
* DS at 256 x 256, batch 1, one variant per speed option (plain fp32 eager, channels-last, BatchNorm
  folding, Winograd, their combination, bf16 autocast, torch.compile with ``--compile``), each checked
  against the plain maps (max |difference| / max |plain map| <= ``SpeedOptions.tolerance``);
* DS at 256 x 256, batch 16 (plain vs fast), and a full training step at 128 x 128, batch 16 (MT Defects'
  setting) in fp32 and bf16, plain and with the speed options, with images per second and the MT Defects
  epoch time;
* anomalib's ``ReverseDistillationModel`` and ``STFPMModel`` (ResNet18 backbone, 256 x 256, batch 1,
  eval mode, random weights: the weights do not change the speed) when anomalib is importable
  (it is installed only in the benchmark environment, never in dskd's).

* with ``--onnx`` (or ``--onnx-only``): the file ``dskd export`` writes (networks, Eq. 8-10 in one ONNX
  graph) run by onnxruntime's CPU provider with as many intra-op threads as torch uses, at 256 x 256,
  batch 1, beside PyTorch's plain and fast paths computing the same maps and scores, its maps checked
  against PyTorch's (JSON key ``onnx``).

The goals checked at the end: DS 256 batch-1 median latency <= 0.10 s; inference and a training step
at >= 60% of the attainable rate; DS's latency per GFLOP no worse than anomalib's; a bf16 training step at
>= 85% of the attainable bf16 rate (issue "Training at the speed of the CPU").

Usage::

    python benchmarks/speed.py                 # full run, ~5 minutes on an idle 2-core CPU
    python benchmarks/speed.py --compile       # also torch.compile (first compilation: minutes)
    python benchmarks/speed.py --quick         # tiny sizes, few runs (a smoke test, ~2 minutes)
    python benchmarks/speed.py --onnx-only     # ONNX vs PyTorch only: results/benchmarks/onnx_vs_pytorch.json
    <venv with anomalib>/bin/python benchmarks/speed.py   # with the anomalib comparison

Writes ``results/benchmarks/speed.json`` (``speed_quick.json`` with ``--quick``) with the machine's
description and load. The recorded ``speed.json`` comes from
``python benchmarks/speed.py --compile --train-rounds 3`` (in an environment with anomalib 2.7.0) on an
idle machine; ``speed_loaded.json`` from the same command while other jobs loaded the machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

# OpenMP threads that spin while waiting at a barrier stall every operator when other processes
# share the cores (measured on a loaded 2-core machine: DS with 2 threads 7x slower than with 1); passive
# waiting avoids it. It must be set before torch starts OpenMP. --omp-default keeps libgomp's default.
if "--omp-default" not in sys.argv:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
try:
    import dskd  # noqa: F401  (only to test that the package is installed)
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))
from dskd.speed import SpeedOptions, optimize_for_inference  # noqa: E402
from dskd.models import DSKD  # noqa: E402
from dskd.profiling import (  # noqa: E402
    _probes, bf16_probes, convolution_floor_call, count_flops, count_parameters, inference_call,
    machine_description, training_call, training_step_flops, time_interleaved,
)
from dskd.provenance import provenance, write_json  # noqa: E402

LATENCY_GOAL_S = 0.10
FRACTION_GOAL = 0.60
#: issue "Training at the speed of the CPU": a bf16 training step at 85 % of the attainable bf16 rate
BF16_TRAINING_GOAL = 0.85
#: images in MT Defects' training split (761 of the 952 MT_Free images)
MT_DEFECTS_TRAIN_IMAGES = 761
#: the timing row of the fast bf16 step's convolutions run alone (dskd.profiling.convolution_floor_call)
FLOOR = "bf16 convolutions alone (the fast step's floor)"


def realistic_batchnorm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm statistics and affine parameters away from the defaults (like a trained
    model's), so folding them into the convolutions is really tested."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=g))
    return model


def inference_variants(compile_: bool) -> dict[str, SpeedOptions]:
    fast = SpeedOptions.fast()
    v = {
        "plain": SpeedOptions.plain(),
        "channels_last": SpeedOptions(channels_last=True),
        "fold_batchnorm": SpeedOptions(fold_batchnorm=True),
        "fold+channels_last": SpeedOptions(fold_batchnorm=True, channels_last=True),
        "winograd": SpeedOptions(winograd=True),
        "fold+winograd": SpeedOptions(fold_batchnorm=True, winograd=True),
        "fold+channels_last+winograd": SpeedOptions(fold_batchnorm=True, channels_last=True, winograd=True),
        "fold+channels_last+winograd from 16x16": SpeedOptions(fold_batchnorm=True, channels_last=True,
                                                               winograd=True, winograd_min_area=16 * 16),
    }
    assert v["fold+channels_last"] == fast  # the default fast path
    if compile_:
        v["fold+channels_last+compile"] = SpeedOptions(fold_batchnorm=True, channels_last=True, compile=True)
        v["fold+channels_last+winograd+compile"] = SpeedOptions(fold_batchnorm=True, channels_last=True,
                                                                winograd=True, compile=True)
    return v


#: timed in a few rounds of their own: without AVX512-BF16/AMX, bf16 is emulated and several times slower
#: (x0.16 in the recorded speed.json)
SLOW_VARIANTS = {"fold+channels_last+bf16": SpeedOptions(fold_batchnorm=True, channels_last=True, bf16=True)}


def anomalib_models(size: int) -> dict[str, torch.nn.Module]:
    """anomalib's RD and STFPM torch models with ResNet18 (random weights), or {} without anomalib."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import anomalib.models.image.stfpm.torch_model as stfpm_module
            from anomalib.models.image.reverse_distillation.torch_model import ReverseDistillationModel
    except Exception as err:  # not installed, or an incompatible version
        print(f"[speed] anomalib not importable ({type(err).__name__}: {err}); skipping the comparison")
        return {}
    extractor = stfpm_module.TimmFeatureExtractor
    # STFPM hard-codes pre_trained=True for its teacher (a download); the weights do not change the speed
    stfpm_module.TimmFeatureExtractor = lambda *a, **k: extractor(*a, **{**k, "pre_trained": False})
    try:
        layers = ["layer1", "layer2", "layer3"]
        return {
            "anomalib RD (resnet18)": ReverseDistillationModel(
                backbone="resnet18", input_size=(size, size), layers=layers, anomaly_map_mode="multiply",
                pre_trained=False).eval(),
            "anomalib STFPM (resnet18)": stfpm_module.STFPMModel(layers=layers, backbone="resnet18").eval(),
        }
    finally:
        stfpm_module.TimmFeatureExtractor = extractor


def _anomalib_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("anomalib")
    except PackageNotFoundError:
        return "unknown"


def _anomalib_call(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    def call() -> Any:
        with torch.inference_mode():
            return model(x).anomaly_map
    return call


def _flops(fn: Callable[[], Any]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        fn()
    return float(counter.get_total_flops())


def onnx_section(model: torch.nn.Module, size: int, rounds: int) -> dict[str, Any]:
    """onnxruntime (CPU) running the exported graph beside PyTorch computing the same maps and scores,
    batch 1, interleaved; {} with the reason when onnx/onnxruntime are not installed."""
    import tempfile

    from dskd.config import TrainConfig
    from dskd.export import OPSET, ExportError, export_onnx, onnx_session
    from dskd.inference import anomaly_score

    cfg = TrainConfig.quick(image_size=size, teacher="random")
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "ds.onnx"
            info = export_onnx(model, cfg, path)
            session = onnx_session(path, threads=torch.get_num_threads())
            version = __import__("onnxruntime").__version__
    except ExportError as err:
        print(f"[speed] ONNX skipped: {err}")
        return {"skipped": str(err)}
    g = torch.Generator().manual_seed(2)
    x1 = torch.randn(1, 3, size, size, generator=g)
    x1_np = x1.numpy()
    plain_call = inference_call(model, x1)
    fast_call = inference_call(optimize_for_inference(model, "fast"), x1)
    calls = {
        "pytorch plain (maps + score)": lambda: anomaly_score(plain_call()),
        "pytorch fast (maps + score)": lambda: anomaly_score(fast_call()),
        "onnxruntime CPU (maps + score)": lambda: session.run(["anomaly_map", "score"], {"images": x1_np}),
    }
    maps_onnx = session.run(["anomaly_map", "score"], {"images": x1_np})[0]
    maps_torch = plain_call()
    rel = float((torch.from_numpy(maps_onnx) - maps_torch).abs().max() / maps_torch.abs().max())
    print(f"[speed] timing onnxruntime vs PyTorch at {size}x{size}, batch 1, {rounds} rounds", flush=True)
    timing = time_interleaved(calls, runs=rounds, warmup=2)
    plain = timing["pytorch plain (maps + score)"].median_s
    return {"image_size": size, "batch": 1, "onnxruntime_version": version, "opset": OPSET,
            "intra_op_threads": torch.get_num_threads(), "bytes": info["bytes"],
            "map_rel_diff_vs_pytorch": rel, "export_check": info["check"],
            "latency": {k: {**t.to_dict(), "speedup_vs_pytorch_plain": plain / t.median_s} for k, t in timing.items()}}


def threads_experiment(size: int, rounds: int) -> dict[str, Any]:
    """DS latency (batch 1, plain and fast) at 1 and at 2 threads, interleaved, in this process
    (whose OMP_WAIT_POLICY is fixed at start-up)."""
    torch.manual_seed(0)
    model = DSKD("DS", teacher_weights=None).eval()
    x = torch.randn(1, 3, size, size)
    calls = {"plain": inference_call(model, x), "fast": inference_call(optimize_for_inference(model, "fast"), x)}
    saved = torch.get_num_threads()
    times: dict[str, list[float]] = {}
    for n in (1, 2):
        torch.set_num_threads(n)
        for c in calls.values():
            c()
    for _ in range(rounds):
        for n in (1, 2):
            torch.set_num_threads(n)
            for k, c in calls.items():
                t0 = time.perf_counter()
                c()
                times.setdefault(f"{k}_{n}thread", []).append(time.perf_counter() - t0)
    torch.set_num_threads(saved)
    return {"omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "load_average": [round(v, 2) for v in os.getloadavg()],
            **{k: {"median_s": statistics.median(v), "min_s": min(v)} for k, v in times.items()}}


def _threads_in_child(size: int, rounds: int, default_policy: bool) -> dict[str, Any]:
    """:func:`threads_experiment` in a fresh interpreter (the wait policy is read once, at start-up)."""
    import json
    import subprocess

    cmd = [sys.executable, __file__, "--threads-only", "--size", str(size), "--rounds", str(rounds)]
    env = dict(os.environ)
    if default_policy:
        cmd.append("--omp-default")
        env.pop("OMP_WAIT_POLICY", None)
    else:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": out.stderr[-2000:]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes and few runs (smoke test)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile variants")
    ap.add_argument("--rounds", type=int, default=25, help="timed rounds at batch 1")
    ap.add_argument("--batch-rounds", type=int, default=5, help="timed rounds at batch 16")
    ap.add_argument("--train-rounds", type=int, default=5, help="timed training steps")
    ap.add_argument("--train-batch", type=int, default=16)
    ap.add_argument("--train-size", type=int, default=128, help="image size of the training steps (MT Defects')")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    ap.add_argument("--omp-default", action="store_true", help="do not set OMP_WAIT_POLICY=PASSIVE")
    ap.add_argument("--threads-only", action="store_true",
                    help="only time DS at 1 and 2 threads under this process's wait policy; print JSON")
    ap.add_argument("--size", type=int, default=256, help="image size of --threads-only")
    ap.add_argument("--no-threads-experiment", action="store_true",
                    help="skip timing 1 vs 2 threads under both OpenMP wait policies")
    ap.add_argument("--out", help="output JSON (default results/benchmarks/speed.json)")
    ap.add_argument("--onnx", action="store_true", help="also time the exported ONNX graph with onnxruntime")
    ap.add_argument("--onnx-only", action="store_true",
                    help="only the ONNX section (onnxruntime vs PyTorch, batch 1) and the machine's description")
    args = ap.parse_args(argv)
    if args.threads_only:
        import json

        print(json.dumps(threads_experiment(args.size, args.rounds)))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    size = 64 if args.quick else 256
    rounds, brounds, trounds = (3, 1, 1) if args.quick else (args.rounds, args.batch_rounds, args.train_rounds)
    batch, tbatch = (2, 2) if args.quick else (16, args.train_batch)
    started = time.perf_counter()
    machine = machine_description()
    print(f"[speed] {machine['cpu']}, {machine['logical_cpus']} CPUs, {torch.get_num_threads()} threads, "
          f"torch {machine['torch']}, load {machine['load_average_1_5_15min']}", flush=True)

    torch.manual_seed(0)
    model = realistic_batchnorm(DSKD("DS", teacher_weights=None).eval())
    if args.onnx_only:
        return _onnx_only(args, model, size, rounds, machine, started)
    flops = count_flops(model, size)["flops"]["total"]
    probes = {**_probes("small" if args.quick else "large"), **bf16_probes("small" if args.quick else "large")}
    probe_calls = {f"probe:{k}": p[0] for k, p in probes.items()}
    g = torch.Generator().manual_seed(1)
    x1 = torch.randn(1, 3, size, size, generator=g)

    # 1. inference at batch 1: every option, checked against the plain maps
    variants = {**inference_variants(args.compile), **SLOW_VARIANTS}
    plain_maps = inference_call(model, x1)()
    calls: dict[str, Callable[[], Any]] = {}
    agreement: dict[str, Any] = {}
    compile_seconds: dict[str, float] = {}
    for name, opts in variants.items():
        fast_model = model if name == "plain" else optimize_for_inference(model, opts)
        call = inference_call(fast_model, x1)
        t0 = time.perf_counter()
        maps = call()
        if opts.compile:
            compile_seconds[name] = time.perf_counter() - t0
        err = float((maps - plain_maps).abs().max() / plain_maps.abs().max())
        agreement[name] = {"max_rel_diff": err, "tolerance": opts.tolerance, "agrees": err <= opts.tolerance}
        calls[name] = call
    print(f"[speed] timing {len(calls)} inference variants at {size}x{size}, batch 1, {rounds} rounds", flush=True)
    slow = {k: calls.pop(k) for k in SLOW_VARIANTS}
    t1 = time_interleaved({**calls, **probe_calls}, runs=rounds, warmup=2)
    t_slow = time_interleaved({"plain": calls["plain"], **slow}, runs=min(rounds, 3), warmup=1)
    plain_ref = {k: t1["plain"] for k in calls}
    for k in slow:  # timed beside the plain path in rounds of their own
        t1[k], plain_ref[k] = t_slow[k], t_slow["plain"]
        calls[k] = slow[k]

    def rates(timing: dict) -> dict[str, float]:
        return {k: probes[k][1] / timing[f"probe:{k}"].median_s / 1e9 for k in probes}

    def ceilings(rate: dict[str, float]) -> dict[str, float]:
        """The attainable rate of each precision: the faster of its matmul and convolution probes."""
        return {"fp32": max(v for k, v in rate.items() if not k.endswith("_bf16")),
                "bf16": max(v for k, v in rate.items() if k.endswith("_bf16"))}

    r1 = rates(t1)
    att1 = ceilings(r1)
    latency = {k: {**t1[k].to_dict(), "gflops_per_s": flops / t1[k].median_s / 1e9,
                   "precision": "bf16" if variants[k].bf16 else "fp32",
                   "fraction_of_attainable": flops / t1[k].median_s / 1e9 / att1["bf16" if variants[k].bf16 else "fp32"],
                   "speedup_vs_plain": plain_ref[k].median_s / t1[k].median_s, **agreement[k],
                   "options": variants[k].describe()} for k in calls}
    usable = [k for k in calls if agreement[k]["agrees"]]
    best = min(usable, key=lambda k: t1[k].median_s)

    # 2. throughput at batch 16, plain vs fast vs the best batch-1 variant
    xb = torch.randn(batch, 3, size, size, generator=g)
    bvariants = {"plain": SpeedOptions.plain(), "fast (fold+channels_last)": SpeedOptions.fast(),
                 "fold+channels_last+winograd": SpeedOptions(fold_batchnorm=True, channels_last=True, winograd=True)}
    bcalls = {k: inference_call(model if k == "plain" else optimize_for_inference(model, o), xb)
              for k, o in bvariants.items()}
    print(f"[speed] timing batch {batch}, {brounds} rounds", flush=True)
    tb = time_interleaved({**bcalls, **probe_calls}, runs=brounds, warmup=1)
    rb = rates(tb)
    attb = ceilings(rb)["fp32"]
    throughput = {k: {**tb[k].to_dict(), "batch": batch, "images_per_s": batch / tb[k].median_s,
                      "fraction_of_attainable": flops * batch / tb[k].median_s / 1e9 / attb} for k in bcalls}

    # 3. a full training step at the setting (128 x 128, batch 16: MT Defects), each precision against
    # the ceiling of its own precision, on the FLOPs it executes (a cached teacher skips the teacher's forward)
    tsize = 64 if args.quick else args.train_size
    xt = torch.randn(tbatch, 3, tsize, tsize, generator=g)
    fast = {"cache_teacher": True, "fused_adam": True, "channels_last": True}
    tvariants = {
        "fp32 plain": {},
        "fp32 cached_teacher+fused_adam": {"cache_teacher": True, "fused_adam": True},
        "fp32 fast (cached_teacher+fused_adam+channels_last)": fast,
        "bf16 cached_teacher+fused_adam": {"cache_teacher": True, "fused_adam": True, "precision": "bf16"},
        "bf16 fast (the default where bf16 is native)": {**fast, "precision": "bf16"},
    }
    tcalls = {k: training_call(model, xt, **o) for k, o in tvariants.items()}
    # the floor under the fast bf16 step: its own convolutions, each run alone (no BatchNorm, ReLU, loss,
    # Adam or casts): how close to the ceiling the step could come if all its other work cost nothing
    floor_call, floor_flops = convolution_floor_call(model, xt, precision="bf16", channels_last=True)
    tcalls_and_floor = {**tcalls, FLOOR: floor_call}
    step_flops = training_step_flops(model, tsize)
    teacher_flops = count_flops(model, tsize)["flops"]["teacher"]
    print(f"[speed] timing training steps ({tsize}x{tsize}, batch {tbatch}), {trounds} rounds", flush=True)
    tt = time_interleaved({**tcalls_and_floor, **probe_calls}, runs=trounds, warmup=1)
    rt = rates(tt)
    attt = ceilings(rt)
    training = {}
    for k in tcalls:
        precision = tvariants[k].get("precision", "fp32")
        executed = step_flops - (teacher_flops if tvariants[k].get("cache_teacher") else 0.0)
        ips = tbatch / tt[k].median_s
        training[k] = {**tt[k].to_dict(), "options": tvariants[k], "precision": precision, "image_size": tsize,
                       "batch": tbatch, "images_per_s": ips, "executed_gflops_per_image": executed / 1e9,
                       "gflops_per_s": executed * ips / 1e9, "ceiling_gflops_per_s": attt[precision],
                       "fraction_of_attainable": executed * ips / 1e9 / attt[precision],
                       "mt_defects_epoch_s": MT_DEFECTS_TRAIN_IMAGES / ips,
                       "speedup_vs_plain": tt["fp32 plain"].median_s / tt[k].median_s}
    fast_bf16 = training["bf16 fast (the default where bf16 is native)"]
    floor = {**tt[FLOOR].to_dict(), "precision": "bf16", "image_size": tsize, "batch": tbatch,
             "executed_gflops_per_image": floor_flops / tbatch / 1e9,
             "gflops_per_s": floor_flops / tt[FLOOR].median_s / 1e9, "ceiling_gflops_per_s": attt["bf16"],
             "fraction_of_attainable": floor_flops / tt[FLOOR].median_s / 1e9 / attt["bf16"],
             "share_of_fast_step": tt[FLOOR].median_s / fast_bf16["median_s"]}

    # 4. anomalib's RD and STFPM beside DS (batch 1)
    others = anomalib_models(size)
    comparison: dict[str, Any] = {}
    if others:
        ccalls = {"DSKD DS (plain)": inference_call(model, x1),
                  "DSKD DS (fast)": inference_call(optimize_for_inference(model, "fast"), x1),
                  "DSKD DS (fast+winograd)": inference_call(optimize_for_inference(
                      model, SpeedOptions(fold_batchnorm=True, channels_last=True, winograd=True)), x1)}
        cflops = {k: flops for k in ccalls}
        for name, m in others.items():
            ccalls[name] = _anomalib_call(m, x1)
            cflops[name] = _flops(ccalls[name])
        print(f"[speed] timing DS vs anomalib, {rounds} rounds", flush=True)
        tc = time_interleaved({**ccalls, **probe_calls}, runs=rounds, warmup=2)
        for k in ccalls:
            comparison[k] = {**tc[k].to_dict(), "gflops": cflops[k] / 1e9,
                             "params_m": (count_parameters(model)["total"] if k.startswith("DSKD")
                                          else sum(p.numel() for p in others[k].parameters())) / 1e6,
                             "ms_per_gflop": tc[k].median_s * 1e3 / (cflops[k] / 1e9)}
        comparison["attainable_gflops_per_s"] = max(rates(tc).values())
        comparison["anomalib_version"] = _anomalib_version()

    # 5. 1 vs 2 threads, under libgomp's default wait policy and under PASSIVE (fresh interpreters)
    threads: dict[str, Any] = {}
    if not args.no_threads_experiment:
        print("[speed] timing 1 vs 2 threads under both OpenMP wait policies", flush=True)
        n = 2 if args.quick else max(5, rounds // 3)
        threads = {"PASSIVE": _threads_in_child(size, n, False), "default": _threads_in_child(size, n, True)}

    # goals
    fast_lat = latency[best]["median_s"]
    best_inference_fraction = max(max(v["fraction_of_attainable"] for k, v in latency.items() if agreement[k]["agrees"]),
                                  max(v["fraction_of_attainable"] for v in throughput.values()))
    best_train = max(training.values(), key=lambda v: v["images_per_s"])
    goals: dict[str, Any] = {
        "latency_b1_s": {"goal": LATENCY_GOAL_S, "value": fast_lat, "variant": best, "image_size": size,
                             "met": fast_lat <= LATENCY_GOAL_S,
                             "lower_bound_at_attainable_s": flops / 1e9 / att1[latency[best]["precision"]]},
        "inference_fraction": {"goal": FRACTION_GOAL, "value": best_inference_fraction,
                               "met": best_inference_fraction >= FRACTION_GOAL},
        "training_fraction": {"goal": FRACTION_GOAL, "value": best_train["fraction_of_attainable"],
                              "met": best_train["fraction_of_attainable"] >= FRACTION_GOAL},
    }
    bf16_train = [v for v in training.values() if v["precision"] == "bf16"]
    if bf16_train:
        fastest = max(bf16_train, key=lambda v: v["images_per_s"])
        goals["bf16_training_fraction"] = {
            "goal": BF16_TRAINING_GOAL, "value": fastest["fraction_of_attainable"],
            "images_per_s": fastest["images_per_s"], "mt_defects_epoch_s": fastest["mt_defects_epoch_s"],
            "image_size": fastest["image_size"], "batch": fastest["batch"],
            "convolution_floor_fraction": floor["fraction_of_attainable"],
            "met": fastest["fraction_of_attainable"] >= BF16_TRAINING_GOAL}
    if comparison:
        ours = min(comparison[k]["ms_per_gflop"] for k in comparison if k.startswith("DSKD DS"))
        theirs = min(v["ms_per_gflop"] for k, v in comparison.items() if k.startswith("anomalib ")
                     and isinstance(v, dict))
        goals["per_gflop_vs_anomalib"] = {"ours_ms_per_gflop": ours, "best_anomalib_ms_per_gflop": theirs,
                                          "met": ours <= theirs}
    onnx = onnx_section(model, size, rounds) if args.onnx else {}
    payload = {
        "machine": machine,
        "image_size": size, "gflops_ds": flops / 1e9, "threads": torch.get_num_threads(),
        "attainable": {"batch1_round": r1, "batch_round": rb, "training_round": rt,
                       "attainable_gflops_per_s": statistics.median([att1["fp32"], attb, attt["fp32"]]),
                       "attainable_bf16_gflops_per_s": statistics.median([att1["bf16"], attt["bf16"]]),
                       "probes": {k: p[2] for k, p in probes.items()}},
        "inference_b1": latency, "best_b1_variant": best, "compile_seconds": compile_seconds,
        "throughput": throughput, "training": training, "training_convolution_floor": floor,
        "training_gflops_per_image": step_flops / 1e9, "anomalib": comparison, "threads_experiment": threads,
        **({"onnx": onnx} if onnx else {}),
        "goals": goals,
        "notes": ("FLOPs by torch.utils.flop_counter (conv, matmul; 2 per MAC) of the direct convolution; "
                  "Winograd variants execute fewer multiplications, so their fraction is an effective rate. "
                  "Teacher: random init (speed does not depend on weights)."),
        "seconds": time.perf_counter() - started,
        "provenance": provenance("cpu", quick=args.quick),
    }
    payload["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out) if args.out else REPO / "results" / "benchmarks" / ("speed_quick.json" if args.quick else "speed.json")
    write_json(out, payload)

    print(f"\nattainable: fp32 {payload['attainable']['attainable_gflops_per_s']:.1f} GFLOP/s "
          f"(matmul {r1['matmul']:.1f}, conv {r1['conv']:.1f} in the batch-1 rounds), bf16 "
          f"{payload['attainable']['attainable_bf16_gflops_per_s']:.1f} (matmul {r1['matmul_bf16']:.1f}, "
          f"conv {r1['conv_bf16']:.1f})")
    print(f"\nDS {size}x{size}, batch 1 ({flops / 1e9:.2f} GFLOPs):")
    for k, v in latency.items():
        print(f"  {k:>28}: {v['median_s'] * 1e3:7.1f} ms (min {v['min_s'] * 1e3:6.1f})  x{v['speedup_vs_plain']:.2f}  "
              f"{v['fraction_of_attainable']:4.0%} of attainable  maps rel diff {v['max_rel_diff']:.1e} "
              f"(tol {v['tolerance']:.0e}){'' if v['agrees'] else '  DISAGREES'}")
    print(f"\nbatch {batch}:")
    for k, v in throughput.items():
        print(f"  {k:>28}: {v['images_per_s']:6.2f} img/s  {v['fraction_of_attainable']:4.0%} of attainable")
    print(f"\ntraining step ({tsize}x{tsize}, batch {tbatch}, {step_flops / 1e9:.1f} GFLOPs/image):")
    for k, v in training.items():
        print(f"  {k:>50}: {v['images_per_s']:6.2f} img/s  x{v['speedup_vs_plain']:.2f}  "
              f"{v['fraction_of_attainable']:4.0%} of the {v['precision']} ceiling  "
              f"MT Defects epoch {v['mt_defects_epoch_s']:.1f} s")
    print(f"  {FLOOR:>50}: {floor['median_s'] * 1e3:.0f} ms a step, {floor['fraction_of_attainable']:4.0%} of the "
          f"bf16 ceiling, {floor['share_of_fast_step']:.0%} of the fast bf16 step's time")
    if comparison:
        print("\nvs anomalib (batch 1):")
        for k, v in comparison.items():
            if isinstance(v, dict):
                print(f"  {k:>28}: {v['median_s'] * 1e3:7.1f} ms  {v['gflops']:5.2f} GFLOPs  "
                      f"{v['ms_per_gflop']:5.1f} ms/GFLOP  {v['params_m']:.1f} M params")
    if onnx:
        _print_onnx(onnx)
    if threads:
        print("\n1 vs 2 threads (DS batch 1, median ms), per OpenMP wait policy:")
        for pol, v in threads.items():
            if "error" in v:
                print(f"  {pol}: failed: {v['error'][-300:]}")
                continue
            print(f"  {pol:>8} (load {v['load_average'][0]}): " + "  ".join(
                f"{k} {v[k]['median_s'] * 1e3:.0f}" for k in v if k.endswith("thread")))
    print("\ngoals:")
    for k, v in goals.items():
        print(f"  {k}: {'MET' if v['met'] else 'not met'}  {v}")
    print(f"\n{out} ({payload['seconds']:.0f} s)")
    return 0


def _print_onnx(onnx: dict[str, Any]) -> None:
    if "latency" not in onnx:
        print(f"\nONNX: {onnx.get('skipped')}")
        return
    print(f"\nONNX (onnxruntime {onnx['onnxruntime_version']}, {onnx['intra_op_threads']} threads) vs PyTorch, "
          f"{onnx['image_size']}x{onnx['image_size']}, batch 1; maps rel diff {onnx['map_rel_diff_vs_pytorch']:.1e}:")
    for k, v in onnx["latency"].items():
        print(f"  {k:>32}: {v['median_s'] * 1e3:7.1f} ms (min {v['min_s'] * 1e3:6.1f})  "
              f"x{v['speedup_vs_pytorch_plain']:.2f} vs PyTorch plain")


def _onnx_only(args: argparse.Namespace, model: torch.nn.Module, size: int, rounds: int, machine: dict[str, Any],
               started: float) -> int:
    onnx = onnx_section(model, size, rounds)
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    payload = {"machine": machine, "image_size": size, "threads": torch.get_num_threads(), "onnx": onnx,
               "notes": "Teacher: random init (speed does not depend on weights); BatchNorm statistics set away "
                        "from the defaults, as a trained model's.",
               "seconds": time.perf_counter() - started, "provenance": provenance("cpu", quick=args.quick)}
    out = Path(args.out) if args.out else REPO / "results" / "benchmarks" / "onnx_vs_pytorch.json"
    write_json(out, payload)
    _print_onnx(onnx)
    print(f"\n{out} ({payload['seconds']:.0f} s)")
    return 0 if "latency" in onnx else 1


if __name__ == "__main__":
    sys.exit(main())
