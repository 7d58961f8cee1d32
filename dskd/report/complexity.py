"""Chapter 14's tables and prose (Table 6 for this implementation) and the appendix's speed catalogue,
generated from the recorded runs in ``results/`` (``dskd profile``, ``benchmarks/speed.py``) and the
counts a chapter makes live. Every function returns Markdown."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..paper_build import paper_accounting
from ..profiling import PAPER_TABLE6, load_profiles
from ..reproduce import collect_results, seed_comparison, seed_comparison_markdown
from ..results import results_root

#: the book's machine (2 cores, AVX-512 with BF16): its profile file, without .json
BOOK_PROFILE = "cpu-amd-epyc-2cpu-avx512"
#: what each option of benchmarks/speed.py does, and why it helped or not on the book's CPU
SPEED_OPTION_WHY = {
    "channels_last": "NHWC is oneDNN's native layout on CPUs: no reorders between layers, and the anomaly map's "
                     "reductions over channels read contiguous memory.",
    "fold_batchnorm": "one pass less over each feature map (section 3 of chapter 14).",
    "fold+channels_last": "both; this pair is `SpeedOptions.fast()`, the default fast path.",
    "winograd": "NNPACK computes $3\\times3$ stride-1 convolutions on maps of at least $32\\times32$ with fewer "
                "multiplications, in AVX2 kernels and NCHW only: on this CPU oneDNN's AVX-512 direct convolutions "
                "are nearly as fast, and converting layouts eats the rest.",
    "fold+winograd": "folding and Winograd.",
    "fold+channels_last+winograd": "all three exact rewrites.",
    "fold+channels_last+winograd from 16x16": "Winograd on $16\\times16$ maps too: slower still, too little work "
                                              "per tile transform.",
    "fold+channels_last+compile": "`torch.compile` (inductor, frozen weights) fuses the element-wise tail of each "
                                  "block and pre-packs the weights.",
    "fold+channels_last+winograd+compile": "compile with Winograd: NNPACK's convolution is a custom op "
                                           "(`dskd::nnpack_conv3x3`) that the compiled graph calls.",
    "fold+channels_last+bf16": "bf16 autocast on top of the fast path. This CPU has AVX512-BF16, whose "
                               "`vdpbf16ps` multiplies pairs of bf16 numbers and adds them into fp32, twice the "
                               "products per instruction of fp32 FMA, on half the bytes. Not exact: the maps "
                               "agree within the bf16 tolerance, so it is opt-in (`SpeedOptions(bf16=True)`).",
}
PAPER = PAPER_TABLE6["DSKD (paper)"]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms"


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


@dataclass
class Recorded:
    """The recorded complexity and speed runs of chapter 14 and its appendix."""

    profile: dict[str, Any]        # complexity/<BOOK_PROFILE>.json (`dskd profile`)
    speed: dict[str, Any]          # benchmarks/speed_avx512.json, the same CPU
    avx2: dict[str, Any]           # benchmarks/speed.json: an AVX2-only CPU of the same name, idle
    loaded: dict[str, Any]         # benchmarks/speed_loaded.json: that CPU under load
    files: dict[str, dict[str, Any]]  # file name (relative to results/) -> run, for the list of sources

    @classmethod
    def read(cls, root: Optional[os.PathLike] = None, profile_name: str = BOOK_PROFILE) -> "Recorded":
        root = Path(root) if root is not None else results_root()
        profiles = load_profiles(root / "complexity")
        if profile_name not in profiles:
            raise FileNotFoundError(f"no profile {profile_name!r} in {root / 'complexity'} (found: "
                                    f"{', '.join(sorted(profiles)) or 'none'}); `dskd profile` writes one")
        bench = {name: json.loads((root / "benchmarks" / f"{name}.json").read_text())
                 for name in ("speed_avx512", "speed", "speed_loaded")}
        files = {f"complexity/{profile_name}.json": profiles[profile_name],
                 **{f"benchmarks/{k}.json": v for k, v in bench.items()}}
        return cls(profiles[profile_name], bench["speed_avx512"], bench["speed"], bench["speed_loaded"], files)

    def record(self, structure: str, size: int) -> dict[str, Any]:
        """One structure's record at one image size, from the profile."""
        return next(r for r in self.profile["records"] if r["structure"] == structure and r["image_size"] == size)

    def sources(self) -> str:
        """One line per recorded file: date, CPU, logical CPUs, SIMD."""
        lines = []
        for name, run in self.files.items():
            m = run["machine"]
            lines.append(f"recorded: {name:<40} {run['provenance']['time_utc'][:10]}  {m['cpu']}, "
                         f"{m['logical_cpus']} logical CPUs, {m['cpu_capability']} ({', '.join(m['simd'])})")
        return "\n".join(lines)

    def same_machine(self, machine: dict[str, Any]) -> bool:
        """Does a live ``machine_description()`` match the CPU the speed runs were recorded on?"""
        m = self.speed["machine"]
        return (machine["cpu"], machine["logical_cpus"], machine["simd"]) == (m["cpu"], m["logical_cpus"], m["simd"])


# ----------------------------------------------------------------------------- chapter 14


def parameters_markdown(p: dict[str, Any]) -> str:
    """The parameter count of DS (``count_parameters``) beside Table 6's, and why they differ."""
    import torchvision

    pc = p["per_component"]
    resnet = torchvision.models.resnet18()
    resnet18 = sum(q.numel() for q in resnet.parameters())
    conv5 = sum(q.numel() for q in resnet.layer4.parameters())
    two_full = 2 * resnet18 + pc["embedding"] + pc["decoder"]
    return (f"$T$ and $S_e$ are ResNet18 cut after conv4_x: {pc['teacher'] / 1e6:.2f} M each (ResNet18's conv5_x "
            f"alone holds {conv5 / 1e6:.1f} M of its {resnet18 / 1e6:.1f} M). The DFE is the largest part "
            f"({pc['embedding'] / 1e6:.2f} M): its residual block turns 768 channels into 512 with a $3\\times3$ "
            f"convolution, followed by a $512\\to512$ one. $S_d$ holds {pc['decoder'] / 1e6:.2f} M. The paper's "
            f"{PAPER['params_m']} M cannot be rebuilt from the text: two *full* ResNet18s plus our DFE and $S_d$ "
            f"make {two_full / 1e6:.1f} M, so the authors either counted more layers or built a wider decoder; "
            f"nothing in Sec. 3 says which. Ours has {p['total'] / 1e6:.1f} M.")


def flops_markdown(f: dict[str, Any]) -> str:
    """The FLOPs at 256 px (``count_flops``) against Table 6's "GFLOPs"."""
    return (f"At 256 x 256, DS does {f['gflops']:.2f} GFLOPs, i.e. {f['gmacs']:.2f} G multiply-adds per image, "
            f"close to the paper's \"{PAPER['gflops']} GFLOPs\". Profilers such as `thop` and `ptflops` report MACs "
            f"under the name FLOPs, which is most likely what Table 6 does, at 256 px; in true FLOPs the paper's "
            f"number would be about {2 * PAPER['gflops']:.1f} G. The anomaly map (the Gaussian of Eq. 9) adds "
            f"{f['flops']['anomaly_map'] / f['flops']['total']:.2%} of the FLOPs. It adds much more of the time, "
            f"as section 6 shows.")


def table6_markdown(rec: Recorded, accounting: Optional[dict[str, Any]] = None) -> str:
    """Table 6 for this implementation: the paper's column beside ours, and what the paper leaves open.

    ``accounting``: :func:`dskd.paper_build.paper_accounting` (counted here when not given), the build
    whose counts reproduce Table 6's parameters, FLOPs and memory."""
    acc = accounting if accounting is not None else paper_accounting()
    t = acc["totals"]
    ds = rec.record("DS", 256)
    lat, mem, par = ds["latency_b1"], ds["memory"], ds["parameters"]
    speed, prof = rec.speed, rec.profile
    best = speed["best_b1_variant"]
    rows = [
        ("inference time per image", f"{PAPER['inference_s']} s",
         f"{ms(lat['plain']['median_s'])} plain, {ms(lat['fast']['median_s'])} fast (profile); "
         f"{ms(speed['inference_b1'][best]['median_s'])} best (`{best}`, [speed catalogue]"
         "(appendix_speed_catalogue.ipynb))"),
        ("FLOPs", f"{PAPER['gflops']} G", f"{ds['gmacs']:.2f} GMACs = {ds['gflops']:.2f} GFLOPs"),
        ("parameters", f"{PAPER['params_m']} M", f"{par['total'] / 1e6:.1f} M ({par['trainable'] / 1e6:.1f} M trained)"),
        ("memory", f"{PAPER['memory_mb']} MB", f"{mem['peak_mb']:.0f} MB peak = {mem['weights_mb']:.0f} MB weights "
         f"+ {mem['activations_peak_mb']:.0f} MB activations (batch 1)"),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    m = prof["machine"]
    return (f"| | paper (i7 @ 2.3 GHz laptop) | ours ({m['cpu']} {m['cpu_capability']}, {m['logical_cpus']} "
            f"logical CPUs, fp32 unless named, {prof['settings']['threads']} threads) |\n| --- | --- | --- |\n"
            f"{table}\n\n"
            f"*Table 6's methods (grey) and DSKD as published (blue) beside our DS at 256 px, plain (orange) and "
            f"optimised (red), in the figure above; log scales. Ours is counted in GMACs, the unit the paper's "
            f"FLOPs most likely are.*\n\n"
            f"The paper defines none of its three counts. One build reproduces all of them (`dskd.paper_build`, "
            f"chapter 5): whole torchvision ResNet18s for $T$ and $S_e$ and RD4AD's two-block bottleneck as the "
            f"DFE count {t['params_m']['paper_build']:.2f} M parameters, "
            f"{t['gmacs']['paper_build_networks']:.3f} GMACs in the networks (so Table 6's \"FLOPs\" are "
            f"multiply-accumulates) and {t['size_mib']['paper_build']:.1f} MiB when the trained students ($S_e$, "
            f"bottleneck, $S_d$) are saved with `torch.save`, against Table 6's {PAPER['params_m']} M, "
            f"{PAPER['gflops']} G and {PAPER['memory_mb']} MB. So its \"memory\" is most likely that file, not a "
            f"process's footprint; counted the same way our DS is {t['params_m']['ours']:.2f} M, "
            f"{t['gmacs']['ours']:.2f} GMACs and {t['size_mib']['ours']:.1f} MiB "
            f"(`dskd profile --paper-accounting` prints every line). Our memory in the table is the peak of live "
            f"tensors, weights included. Our fast path takes "
            f"{lat['fast']['median_s'] / PAPER['inference_s']:.2f} of the paper's time, on a 2-core virtual "
            f"machine; the paper does not state its timing method (batch, threads, median or mean, with or without "
            f"the Gaussian). At 128 px (the MT Defects size) DS takes "
            f"{ms(rec.record('DS', 128)['latency_b1']['fast']['median_s'])}.")


def time_breakdown_markdown(rec: Recorded) -> str:
    """Where the batch-1 time of DS at 256 px goes, component by component, against the FLOPs."""
    ds = rec.record("DS", 256)
    t = ds["components_b1_s"]
    total_t = sum(t.values())
    share_t = {k: v / total_t for k, v in t.items()}
    share_f = {k: ds["flops"][k] / ds["flops"]["total"] for k in t}
    lines = "\n".join(f"| {k} | {t[k] * 1e3:.1f} ms | {share_t[k]:.0%} | {share_f[k]:.1%} | "
                      f"{ds['flops'][k] / t[k] / 1e9:.0f} |" for k in t)
    return (f"*For each structure, the upper bar splits the batch-1 latency of the fast path by component (each "
            f"timed separately on its own input, `components_b1_s` in the profile); the lower bar splits the "
            f"FLOPs.* DS at 256 px:\n\n"
            f"| component | time | share of time | share of FLOPs | GFLOP/s |\n| --- | --- | --- | --- | --- |\n"
            f"{lines}\n\n"
            f"Time follows FLOPs closely for $T$, $S_e$ and $S_d$. Two parts run less efficiently. The **DFE** works "
            f"on $16\\times16$ and $8\\times8$ maps with up to 768 channels: there is little spatial work to split "
            f"between the cores per weight loaded. The **anomaly map** has almost no counted FLOPs but takes "
            f"{t['anomaly_map'] * 1e3:.0f} ms ({share_t['anomaly_map']:.0%}): normalising 64 to 256 channels per "
            f"pixel, the cosine and bilinear upsampling move memory without doing much arithmetic. On NCHW tensors "
            f"the reduction over channels is strided; on channels-last ones it is contiguous. That is one reason "
            f"channels-last helps even where the convolutions themselves do not speed up.")


def fractions_markdown(rec: Recorded) -> str:
    """How close DS runs to the machine's attainable rate, from the profile (and the speed run's goals)."""
    ds, d128 = rec.record("DS", 256), rec.record("DS", 128)
    speed = rec.speed
    gi, gt = speed["goals"]["inference_fraction"], speed["goals"]["training_fraction"]
    inf, thr = speed["inference_b1"], speed["throughput"]
    candidates = {**{f"{k}, batch 1": v for k, v in inf.items() if v["agrees"]},
                  **{f"{k}, batch {v['batch']}": v for k, v in thr.items()}}
    source = min(candidates, key=lambda k: abs(candidates[k]["fraction_of_attainable"] - gi["value"]))
    wino_note = ("the goal's value comes from a Winograd variant, so read it as an effective rate"
                 if "winograd" in source else "the goal's value comes from a variant without Winograd")
    return (f"*Counted GFLOP/s (FLOPs of the direct convolution over measured time) as a fraction of the attainable "
            f"rate measured in the same rounds, from the profile.*\n\n"
            f"At 256 px DS's fast path runs at {ds['latency_b1']['fraction_of_attainable']['fast']:.0%} of the "
            f"attainable rate at batch 1, {ds['throughput']['fraction_of_attainable']['fast']:.0%} at batch "
            f"{ds['throughput']['batch']}, and a fast training step at "
            f"{ds['training']['fraction_of_attainable']['fast']:.0%}. At 128 px the maps are 4 times smaller and "
            f"batch 1 falls to {d128['latency_b1']['fraction_of_attainable']['fast']:.0%}: too little work per "
            f"operator to split over two cores. The goals of the issue, from speed_avx512.json: inference "
            f"{gi['value']:.0%} (goal {gi['goal']:.0%}, met: {yes(gi['met'])}; `{source}`), training step "
            f"{gt['value']:.0%} (goal {gt['goal']:.0%}, met: {yes(gt['met'])}). A Winograd variant's fraction "
            f"overstates its efficiency, since it executes fewer multiplications than are counted: {wino_note}.")


def training_cache_markdown(rec: Recorded, teacher_flops_256: float) -> str:
    """The training-step options side by side (teacher cache, fused Adam, channels-last)."""
    speed, avx2 = rec.speed, rec.avx2
    tr = speed["training"]
    cache_bytes = 4 * (64 * 64 * 64 + 128 * 32 * 32 + 256 * 16 * 16)  # fp32 F1, F2, F3 of one 256 px image
    teacher_share = teacher_flops_256 / speed["training_gflops_per_image"] / 1e9
    steps = "\n".join(f"| {k} | {v['images_per_s']:.2f} | x{v['speedup_vs_plain']:.2f} | "
                      f"{v['fraction_of_attainable']:.0%} |" for k, v in tr.items())
    fastest = max(tr, key=lambda k: tr[k]["images_per_s"])
    return (f"| training step (batch {tr['plain']['batch']}, 256 px, speed_avx512.json) | images/s | speed-up | "
            f"fraction of attainable |\n| --- | --- | --- | --- |\n{steps}\n\n"
            f"At 256 px the cache holds {cache_bytes / 2**20:.2f} MiB per training image and skips the teacher's "
            f"forward pass, {teacher_share:.0%} of a DS training step's counted FLOPs: "
            f"x{tr['cached_teacher']['speedup_vs_plain']:.2f} measured. Fused Adam (one kernel over all student "
            f"parameters) gives x{tr['fused_adam']['speedup_vs_plain']:.2f}: the update is a small part of a 256 px "
            f"step. Channels-last gives x{tr['channels_last']['speedup_vs_plain']:.2f} "
            f"(x{avx2['training']['channels_last']['speedup_vs_plain']:.2f} on the AVX2 machine). Its losses differ "
            f"from NCHW's by rounding, and Adam amplifies that over a few epochs (it divides by $\\sqrt{{v}}$, so "
            f"rounding-size differences in tiny gradients become full-size steps; "
            f"`test_channels_last_and_fused_adam_training_match_within_rounding` bounds the drift). All three "
            f"together (`dskd.profiling.FAST_TRAINING`, `{fastest}`) give x{tr[fastest]['speedup_vs_plain']:.2f}.")


def chapter_summary_markdown(rec: Recorded, p: dict[str, Any]) -> str:
    """Chapter 14's summary: Table 6 for this implementation, in five points."""
    ds = rec.record("DS", 256)
    lat, m = ds["latency_b1"], rec.profile["machine"]
    tr = rec.speed["training"]
    fastest = max(tr, key=lambda k: tr[k]["images_per_s"])
    goal = rec.speed["goals"]["latency_b1_s"]
    return (f"- DS has {p['total'] / 1e6:.1f} M parameters ({p['trainable'] / 1e6:.1f} M trained) and costs "
            f"{ds['gmacs']:.2f} GMACs at 256 px; Table 6's \"{PAPER['gflops']} GFLOPs\" matches this count in "
            f"multiply-adds. The paper's {PAPER['params_m']} M parameters and {PAPER['memory_mb']} MB cannot be "
            f"rebuilt from its text.\n"
            f"- On a {m['logical_cpus']}-CPU {m['cpu']} virtual machine with {m['cpu_capability']}, DS takes "
            f"{ms(lat['plain']['median_s'])} plain and {ms(lat['fast']['median_s'])} with "
            f"`predict(..., speed=\"fast\")` (BatchNorm folded, channels-last) per 256 px image, against the "
            f"paper's {PAPER['inference_s']} s on a laptop i7; {ms(goal['value'])} with bf16 (`{goal['variant']}`), "
            f"as the [speed catalogue](appendix_speed_catalogue.ipynb) shows.\n"
            f"- Time follows FLOPs for the three ResNet-like networks; the DFE's small maps and the anomaly map's "
            f"memory-bound arithmetic run below the network's average rate.\n"
            f"- Training: caching the frozen teacher's features is exact and saves its share of the work "
            f"(x{tr['cached_teacher']['speedup_vs_plain']:.2f}); with fused Adam and channels-last, "
            f"x{tr[fastest]['speedup_vs_plain']:.2f}.\n"
            f"- Every number is from a recorded file or a live cell of this chapter; on another machine, "
            f"`dskd profile` records the same table.")


# ----------------------------------------------------------------------------- the speed catalogue (appendix)


def speedups_markdown(rec: Recorded) -> str:
    """What each speed option bought against the plain path, on the book's CPU."""
    speed = rec.speed
    inf, thr = speed["inference_b1"], speed["throughput"]
    if not ("avx512_bf16" in speed["machine"]["simd"] and "bf16" in speed["best_b1_variant"]):
        raise ValueError("the recorded speed run is not from a CPU with AVX512-BF16 whose fastest option is bf16: "
                         "the catalogue's prose describes that machine; re-record or update the prose")
    items = "\n".join(f"- **{k}** ({ms(v['median_s'])}, x{v['speedup_vs_plain']:.2f}; maps within "
                      f"{v['max_rel_diff']:.0e}): {SPEED_OPTION_WHY.get(k, '')}" for k, v in inf.items() if k != "plain")
    thr_items = ", ".join(f"{k} {v['images_per_s']:.2f} images/s ({v['fraction_of_attainable']:.0%} of the "
                          f"attainable rate)" for k, v in thr.items())
    compile_s = ", ".join(f"{k} {v:.0f} s" for k, v in speed["compile_seconds"].items())
    best_b16 = max(thr, key=lambda k: thr[k]["images_per_s"])
    return (f"*Left: batch-1 latency per option (orange: the fastest whose maps agree; a bar slower than 1.6 times "
            f"plain is clipped at the edge; dashed: the time DS's FLOPs would take at the attainable rate; dotted: "
            f"the 0.10 s goal). Right: training images per second per option.*\n\n"
            f"What each option bought against the plain path ({ms(inf['plain']['median_s'])}, inference mode, as "
            f"`predict` always runs):\n\n{items}\n\n"
            f"Compilation of the first call per input shape took {compile_s} in this run (inductor keeps compiled "
            f"kernels in an on-disk cache; a first compilation on a fresh machine takes longer), so `compile` is "
            f"opt-in. So is Winograd: at **batch {thr['plain']['batch']}** the fastest option was `{best_b16}` "
            f"({thr_items}). A batch gives every operator enough work to keep both cores busy, so throughput beats "
            f"$1/\\text{{latency}}$. `predict` feeds data sets through a `DataLoader` whose workers decode images "
            f"while the networks run.")


def two_cpus_markdown(rec: Recorded) -> str:
    """The same options on the AVX2 machine and on the AVX-512 one."""
    speed, avx2 = rec.speed, rec.avx2
    inf = speed["inference_b1"]
    rows = "\n".join(
        f"| {k} | {ms(avx2['inference_b1'][k]['median_s'])} (x{avx2['inference_b1'][k]['speedup_vs_plain']:.2f}) | "
        f"{ms(v['median_s'])} (x{v['speedup_vs_plain']:.2f}) |" for k, v in inf.items() if k in avx2["inference_b1"])
    return (f"**The same options on two CPUs.** Both machines call themselves AMD EPYC with 2 logical CPUs; one has "
            f"AVX2 only ({avx2['attainable']['attainable_gflops_per_s']:.0f} GFLOP/s attainable), the other AVX-512 "
            f"with BF16 and VNNI ({speed['attainable']['attainable_gflops_per_s']:.0f} GFLOP/s). DS at 256 px, "
            f"batch 1, median:\n\n| option | AVX2 (speed.json) | AVX-512 (speed_avx512.json) |\n| --- | --- | --- |\n"
            f"{rows}\n\nChannels-last gains more on AVX-512, where oneDNN's NHWC kernels are its fastest. Winograd "
            f"gains less: NNPACK's kernels are AVX2 either way, so against a faster direct convolution they save "
            f"little. bf16 turns from the slowest option into the fastest.")


def _threads_line(run: dict[str, Any], policy: str) -> str:
    e = run["threads_experiment"][policy]
    return (f"{ms(e['plain_1thread']['median_s'])} with 1 thread, {ms(e['plain_2thread']['median_s'])} with 2 "
            f"(load {e['load_average'][0]})")


def threads_markdown(rec: Recorded) -> str:
    """1 against 2 threads under each OpenMP wait policy, idle and loaded."""
    speed, avx2, loaded = rec.speed, rec.avx2, rec.loaded
    inf = speed["inference_b1"]
    return (f"**Threads** (DS plain, batch 1, `threads_experiment` in each file; each policy in a fresh interpreter "
            f"that switches between 1 and 2 threads every round):\n\n"
            f"| OpenMP wait policy | AVX2 machine, idle (speed.json) | AVX2 machine, loaded (speed_loaded.json) | "
            f"this machine (speed_avx512.json) |\n| --- | --- | --- | --- |\n"
            f"| libgomp default (spin) | {_threads_line(avx2, 'default')} | {_threads_line(loaded, 'default')} | "
            f"{_threads_line(speed, 'default')} |\n"
            f"| `PASSIVE` | {_threads_line(avx2, 'PASSIVE')} | {_threads_line(loaded, 'PASSIVE')} | "
            f"{_threads_line(speed, 'PASSIVE')} |\n\n"
            f"The load average counts the benchmark's own threads (about 2 on an otherwise idle machine). Under load, "
            f"spinning threads wait for a core that another process holds, and every operator's barrier stalls: 2 "
            f"threads become many times slower than 1. Passive waiting removes the collapse (2 threads then gain "
            f"nothing over 1, but lose nothing either) and costs a little on an idle machine. These runs are short, in "
            f"a fresh interpreter that resizes its thread pool every round, and noisier than the interleaved rounds "
            f"above: on this machine `PASSIVE` with 2 threads took "
            f"{ms(speed['threads_experiment']['PASSIVE']['plain_2thread']['median_s'])} here but "
            f"{ms(inf['plain']['median_s'])} in the rounds above, also `PASSIVE` with 2 threads. The collapse under "
            f"load, {ms(loaded['threads_experiment']['default']['plain_2thread']['median_s'])} against "
            f"{ms(loaded['threads_experiment']['PASSIVE']['plain_2thread']['median_s'])}, is far larger than that "
            f"noise.")


def goal_markdown(rec: Recorded, networks_flops: float, winograd_flops: float) -> str:
    """The 0.10 s goal: the bound from FLOPs over the attainable rate, what fp32, bf16 and Winograd give.

    ``networks_flops`` are DS's network FLOPs at 256 px and ``winograd_flops`` the part that Winograd serves
    (3x3 stride-1 convolutions on maps of at least 32 x 32), both counted by the chapter."""
    speed, avx2 = rec.speed, rec.avx2
    inf = speed["inference_b1"]
    goal, goal_avx2 = speed["goals"]["latency_b1_s"], avx2["goals"]["latency_b1_s"]
    if not (goal["met"] and "bf16" in goal["variant"] and not goal_avx2["met"]):
        raise ValueError("the recorded goals differ from what the catalogue's prose says (met with bf16 here, not "
                         "on the AVX2 machine): re-record or update the prose")
    att_b1 = max(speed["attainable"]["batch1_round"].values())
    gf = speed["gflops_ds"]
    ideal = 36 * 9 / 64  # Winograd F(6x6, 3x3): 64 products per 8x8 tile instead of 36 outputs x 9 taps
    fp32_fast = inf["fold+channels_last"]
    frac_fast = fp32_fast["fraction_of_attainable"]
    bf16 = inf["fold+channels_last+bf16"]
    share = winograd_flops / networks_flops

    def with_winograd(s: float) -> float:  # seconds at the attainable rate if share s of the FLOPs cost 1/ideal
        return gf * (1 - s + s / ideal) / att_b1

    def wino_gain(run: dict[str, Any]) -> float:  # NNPACK on top of the fast path, measured
        b1 = run["inference_b1"]
        return b1["fold+channels_last"]["median_s"] / b1["fold+channels_last+winograd"]["median_s"]

    return (f"- **The bound.** DS does {gf:.2f} GFLOPs per 256 px image. At the {att_b1:.0f} GFLOP/s that this "
            f"machine's probes reached beside the batch-1 runs, that is **{ms(goal['lower_bound_at_attainable_s'])}** "
            f"if every operator ran as fast as a large matrix product. On the AVX2 machine the same bound was "
            f"{ms(goal_avx2['lower_bound_at_attainable_s'])}, "
            f"{goal_avx2['lower_bound_at_attainable_s'] / goal['goal']:.1f} times the goal: no exact rewrite could "
            f"have met it there.\n"
            f"- **fp32 comes close.** The fastest exact path here, `fold+channels_last`, takes "
            f"{ms(fp32_fast['median_s'])} ({frac_fast:.0%} of the attainable rate): "
            f"{fp32_fast['median_s'] / goal['goal']:.2f} times the goal. At batch 1 a 256 px image leaves the DFE and "
            f"the anomaly map too little work per operator for two cores (chapter 14, section 6).\n"
            f"- **bf16 meets it.** `{goal['variant']}` takes **{ms(goal['value'])}** (goal met: {yes(goal['met'])}), "
            f"x{fp32_fast['median_s'] / bf16['median_s']:.2f} over fp32's fast path, with maps within "
            f"{bf16['max_rel_diff']:.1e} of fp32 (tolerance {bf16['tolerance']:.0e}). This CPU's AVX512-BF16 "
            f"instructions do twice the products per instruction on half the bytes. On the AVX2 machine, without "
            f"them, the same option took {ms(avx2['inference_b1']['fold+channels_last+bf16']['median_s'])}: oneDNN "
            f"converts bf16 to fp32 and back in slower kernels.\n"
            f"- **Winograd helps less than it promises.** The $3\\times3$ stride-1 convolutions on maps of at least "
            f"$32\\times32$ (what `winograd=True` serves) hold {share:.0%} of the network FLOPs. An ideal F(6x6, 3x3) "
            f"Winograd does {ideal:.1f} times fewer multiplications on them (transforms not counted), so DS would "
            f"need {ms(with_winograd(share))} at the full attainable rate and about "
            f"{ms(with_winograd(share) / frac_fast)} at the fast path's {frac_fast:.0%} of it. Measured, NNPACK "
            f"changed the fast path's time by x{wino_gain(speed):.2f} here and x{wino_gain(avx2):.2f} on the AVX2 "
            f"machine. Its kernels use AVX2 and NCHW only: the layout conversions and tile transforms eat the saving, "
            f"and on this CPU oneDNN's AVX-512 direct convolution is faster than NNPACK's.\n"
            f"- **Without bf16.** A smaller input: at 128 px (the paper's MT Defects size) DS takes "
            f"{ms(rec.record('DS', 128)['latency_b1']['fast']['median_s'])} in fp32 with the fast path. This CPU "
            f"also has AVX512-VNNI, so int8 is the next candidate; quantised maps would need a calibration set and a "
            f"tolerance of their own, and it was not tried.")


def anomalib_lines(rec: Recorded) -> str:
    """anomalib's RD and STFPM beside ours, one line each, from the speed run."""
    an = rec.speed["anomalib"]
    lines = [f"anomalib {an.get('anomalib_version', '(version: see results/README.md)')}"]
    for k, v in an.items():
        if isinstance(v, dict):
            lines.append(f"{k:>28}: {v['median_s'] * 1e3:5.0f} ms  {v['gflops']:5.2f} GFLOPs  "
                         f"{v['ms_per_gflop']:5.1f} ms/GFLOP  {v['params_m']:5.1f} M parameters")
    return "\n".join(lines)


def anomalib_markdown(rec: Recorded) -> str:
    """Time per GFLOP of DS against anomalib's RD and STFPM, on both machines."""
    speed, avx2, loaded = rec.speed, rec.avx2, rec.loaded
    an, pg = speed["anomalib"], speed["goals"]["per_gflop_vs_anomalib"]

    def pair(run: dict[str, Any]) -> str:
        g = run["goals"]["per_gflop_vs_anomalib"]
        return f"{g['ours_ms_per_gflop']:.1f} against {g['best_anomalib_ms_per_gflop']:.1f}"

    return (f"STFPM is our T-E with another anomaly map; RD is a teacher and a reversed student like our T-D. DS does "
            f"more work than either, yet spends less time per GFLOP: {pg['ours_ms_per_gflop']:.1f} ms/GFLOP at best, "
            f"against {pg['best_anomalib_ms_per_gflop']:.1f} for the better of the two (goal met: {yes(pg['met'])}); "
            f"even our plain path ({an['DSKD DS (plain)']['ms_per_gflop']:.1f}) is no worse. The AVX2 machine keeps "
            f"the order, idle ({pair(avx2)}) and under load ({pair(loaded)}).")


def catalogue_summary_markdown(rec: Recorded) -> str:
    """The appendix's summary: what each speed-up bought, and the 0.10 s goal."""
    speed, avx2 = rec.speed, rec.avx2
    inf = speed["inference_b1"]
    goal, goal_avx2 = speed["goals"]["latency_b1_s"], avx2["goals"]["latency_b1_s"]
    gi, gt = speed["goals"]["inference_fraction"], speed["goals"]["training_fraction"]
    fp32_fast, bf16 = inf["fold+channels_last"], inf["fold+channels_last+bf16"]
    exact = [inf[k]["speedup_vs_plain"] for k in ("channels_last", "fold_batchnorm", "winograd")]
    return (f"- The 0.10 s goal is met with bf16 autocast on the fast path ({ms(goal['value'])}; maps within "
            f"{bf16['max_rel_diff']:.0e} of fp32), which this CPU runs natively; the best fp32 path takes "
            f"{ms(fp32_fast['median_s'])}. On the AVX2 machine no option could meet it: its FLOPs alone needed "
            f"{ms(goal_avx2['lower_bound_at_attainable_s'])}.\n"
            f"- Inference reaches {gi['value']:.0%} and a training step {gt['value']:.0%} of the attainable rate "
            f"(goal 60%), and DS spends less time per GFLOP than anomalib's RD and STFPM, on both machines.\n"
            f"- What a speed-up buys depends on the CPU: each exact rewrite buys between x{min(exact):.2f} and "
            f"x{max(exact):.2f} alone here, x{fp32_fast['speedup_vs_plain']:.2f} for folding with channels-last; "
            f"bf16 is x{bf16['speedup_vs_plain']:.2f} here and "
            f"x{avx2['inference_b1']['fold+channels_last+bf16']['speedup_vs_plain']:.2f} without hardware support. "
            f"Measure on the machine that will run the model. On a shared machine, spinning OpenMP threads can make "
            f"2 threads far slower than 1; `OMP_WAIT_POLICY=PASSIVE` avoids it.")


# ----------------------------------------------------------------------------- chapter 14: bf16 training
#: the speed run with per-precision ceilings and the 128 px training steps (issue "Training at the speed of
#: the CPU"), and the Table 5 runs in both precisions
BF16_SPEED = "benchmarks/speed_avx512_bf16.json"


#: how benchmarks/speed.py's training options read in a table
_TRAINING_OPTIONS = {"cached_teacher": "teacher cache", "fused_adam": "fused Adam", "channels_last": "channels-last"}


def training_variant_label(name: str) -> str:
    """A training variant of ``benchmarks/speed.py`` (``"fp32 fast (cached_teacher+fused_adam+channels_last)"``)
    as a short table label (``"fp32 + teacher cache, fused Adam, channels-last"``)."""
    precision, _, rest = name.partition(" ")
    if rest.startswith("plain"):
        return f"{precision}, no options"
    if rest.startswith("fast"):
        options = list(_TRAINING_OPTIONS.values())
    else:
        options = [label for key, label in _TRAINING_OPTIONS.items() if key in rest]
    if not options:  # an unknown variant: shown as benchmarks/speed.py names it
        return name
    return f"{precision} + {', '.join(options)}" + (" (default)" if "default" in rest else "")


def bf16_training_markdown(root: Optional[os.PathLike] = None) -> str:
    """Training at MT Defects' setting in fp32 and bf16: images per second, the epoch time, each against the
    ceiling of its own precision; then the 40-epoch Table 5 runs in both precisions side by side."""
    root = Path(root) if root is not None else results_root()
    speed = json.loads((root / BF16_SPEED).read_text())
    ceil = speed["attainable"]
    tr = speed["training"]
    rows = "\n".join(f"| {training_variant_label(k)} | {v['images_per_s']:.1f} | {v['mt_defects_epoch_s']:.1f} s | "
                     f"{v['gflops_per_s']:.0f} | {v['fraction_of_attainable']:.0%} of {v['precision']} |"
                     for k, v in tr.items())
    first = next(iter(tr.values()))
    best = max(tr.values(), key=lambda v: v["images_per_s"])
    goal = speed["goals"].get("bf16_training_fraction", {})
    text = (f"| step ({first['image_size']} px, batch {first['batch']}) | images/s | epoch | GFLOP/s | of the "
            f"ceiling |\n| --- | --- | --- | --- | --- |\n{rows}\n\n"
            f"*An epoch is MT Defects' 761 training images; GFLOP/s counts the FLOPs a step executes (the teacher's "
            f"forward drops out with its cache).*\n\n"
            f"The ceilings are the same large convolution and matrix product in each precision, measured in the "
            f"same run (`results/{BF16_SPEED}`): {ceil['attainable_gflops_per_s']:.0f} GFLOP/s in fp32 and "
            f"{ceil['attainable_bf16_gflops_per_s']:.0f} in bf16, which this CPU computes natively. With bf16 "
            f"autocast (the networks in bf16, the loss and Adam's weights in fp32) and the fast options, an epoch "
            f"takes {best['mt_defects_epoch_s']:.1f} s instead of {tr['fp32 plain']['mt_defects_epoch_s']:.1f} s. "
            f"It reaches {best['fraction_of_attainable']:.0%} of the bf16 ceiling, short of the "
            f"{goal.get('goal', 0.85):.0%} the speed issue asked for.")
    floor = speed.get("training_convolution_floor")
    if floor:
        step_ms = floor["median_s"] / floor["share_of_fast_step"] * 1e3
        goal_ms = step_ms * best["fraction_of_attainable"] / goal.get("goal", 0.85)
        text += (f" Why: run alone at their shapes, the step's own convolutions (forward, and backward to input "
                 f"and weight) take {floor['median_s'] * 1e3:.0f} ms, {floor['fraction_of_attainable']:.0%} of the "
                 f"bf16 ceiling, and {floor['share_of_fast_step']:.0%} of the step's {step_ms:.0f} ms. The other "
                 f"{step_ms - floor['median_s'] * 1e3:.0f} ms go to BatchNorm, ReLU, the loss, Adam and autocast's "
                 f"casts, work that moves memory and counts few FLOPs. At "
                 f"{goal.get('goal', 0.85):.0%} the whole step would take {goal_ms:.0f} ms")
        if goal_ms > floor["median_s"] * 1e3:
            text += f", leaving that work {goal_ms - floor['median_s'] * 1e3:.0f} ms."
        else:
            text += (": less than its convolutions take alone, so no saving on the other work can reach the goal "
                     "on this CPU; only faster convolution kernels at these small shapes could.")
    fp32 = [r for recs in collect_results(root / "mt-defects-fp32", "mt-defects").values() for r in recs]
    bf16 = [r for recs in collect_results(root / "mt-defects-bf16", "mt-defects").values() for r in recs]
    if fp32 and bf16:
        text += ("\n\nDoes bf16 train the same model? Table 5's three 40-epoch runs as first recorded in fp32 "
                 "(`results/mt-defects-fp32/`), trained again in bf16 (`results/mt-defects-bf16/`), both of the build "
                 "before the default changed (chapter 15; see [the runs in this book](../book/runs_in_this_book.md))"
                 ":\n\n"
                 + seed_comparison_markdown(seed_comparison(fp32, bf16)))
    return text
