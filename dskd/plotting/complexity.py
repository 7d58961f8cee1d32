"""Figures of the complexity chapter: Table 6 beside ours, where the time goes, what each speed-up bought.

Every function draws a result dictionary written by :func:`dskd.profiling.profile` or
``benchmarks/speed.py``; nothing is measured here.
"""
from __future__ import annotations

import textwrap
from typing import Any, Optional, Sequence

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from .style import dskd_style, provenance_title

_COMPONENT_LABELS = {"teacher": "teacher T", "encoder": "student S_e", "embedding": "embedding (DFE)",
                     "decoder": "student S_d", "anomaly_map": "anomaly map (Eq. 8-9)"}


def _teacher(result: dict[str, Any]) -> str:
    """The teacher a results file names (profiles: settings; benchmarks: provenance), 'random' if none."""
    name = (result.get("settings", {}).get("teacher") or result.get("provenance", {}).get("teacher")
            or "random")
    return f"{name} init (speed does not depend on weights)"


def _machine(result: dict[str, Any]) -> str:
    """'AMD EPYC, AVX512': the CPU and the SIMD level torch used (one CPU name covers several levels)."""
    m = result.get("machine", {})
    cap = m.get("cpu_capability")
    return f"{m.get('cpu', 'unknown CPU')}" + (f", {cap}" if cap else "")


def _title(text: str, data: str, teacher: str, width: int = 95) -> str:
    lines = provenance_title(text, teacher, data).split("\n")
    return "\n".join(textwrap.fill(line, width) for line in lines)


def _record(profile: dict[str, Any], structure: str, size: int) -> dict[str, Any]:
    for r in profile["records"]:
        if r["structure"] == structure and r["image_size"] == size:
            return r
    raise KeyError(f"no record for {structure} at {size} px in this profile")


def plot_table6(profile: dict[str, Any], *, size: int = 256, structure: str = "DS") -> Figure:
    """Four panels (inference time, GFLOPs, parameters, memory): the paper's Table 6 beside our
    ``structure`` at ``size`` px, plain and optimised. Our GFLOPs are shown as GMACs, the unit the
    paper's 6.17 most likely is; log scales, since PaDiM's memory is 1000 times MKD's."""
    rec = _record(profile, structure, size)
    paper = profile["paper_table6"]
    names = list(paper) + ["ours plain", "ours fast"]
    lat = rec["latency_b1"]
    values = {
        "inference time per image (s)": [paper[k]["inference_s"] for k in paper]
        + [lat["plain"]["median_s"], lat["fast"]["median_s"]],
        "GFLOPs (ours: GMACs)": [paper[k]["gflops"] for k in paper] + [rec["gmacs"]] * 2,
        "parameters (M)": [paper[k]["params_m"] for k in paper] + [rec["parameters"]["total"] / 1e6] * 2,
        "memory (MB)": [paper[k]["memory_mb"] for k in paper] + [rec["memory"]["peak_mb"]] * 2,
    }
    colours = ["#bbbbbb", "#999999", "#4c72b0", "#dd8452", "#c44e52"]
    m = profile["machine"]
    with dskd_style():
        fig, axes = plt.subplots(1, 4, figsize=(12.0, 3.6), layout="constrained")
        for ax, (label, vals) in zip(axes, values.items()):
            bars = ax.bar(range(len(names)), vals, color=colours)
            ax.set_yscale("log")
            ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=8)
            ax.set_ylabel(label)
            for b, v in zip(bars, vals):
                ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
            ax.grid(axis="x", visible=False)
        fig.suptitle(_title(f"Table 6 (paper: Intel i7 @ 2.3 GHz) beside DSKD {structure} at {size} px on "
                            f"{m['cpu']}, {profile['settings']['threads']} threads",
                            f"random input {size}x{size}, batch 1", _teacher(profile), width=130), fontsize=10)
    return fig


def plot_time_breakdown(profile: dict[str, Any], *, size: int = 256, structures: Sequence[str] = ("DS",)) -> Figure:
    """Where the time goes: per-component latency (batch 1, optimised path) beside the share of FLOPs,
    one pair of stacked bars per structure."""
    comps = list(_COMPONENT_LABELS)
    colours = dict(zip(comps, ["#4c72b0", "#55a868", "#8172b2", "#dd8452", "#937860"]))
    with dskd_style():
        fig, ax = plt.subplots(figsize=(8.0, 0.9 + 0.9 * len(structures)), layout="constrained")
        labels = []
        for i, s in enumerate(structures):
            rec = _record(profile, s, size)
            t = rec.get("components_b1_s", {})
            flops = rec["flops"]
            total_t = sum(t.values()) or 1.0
            for j, (kind, shares) in enumerate((
                    ("time", {c: t.get(c, 0.0) / total_t for c in comps}),
                    ("FLOPs", {c: flops.get(c, 0.0) / flops["total"] for c in comps}))):
                y = 2 * i + j
                left = 0.0
                for c in comps:
                    if shares[c] > 0:
                        ax.barh(y, shares[c], left=left, color=colours[c],
                                label=_COMPONENT_LABELS[c] if (i == 0 and j == 0) else None)
                        if shares[c] > 0.06:
                            ax.text(left + shares[c] / 2, y, f"{shares[c]:.0%}", ha="center", va="center",
                                    fontsize=8, color="white")
                        left += shares[c]
                suffix = f" ({total_t * 1e3:.0f} ms)" if kind == "time" else f" ({flops['total'] / 1e9:.2f} G)"
                labels.append(f"{s} {kind}{suffix}")
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of the inference path")
        ax.grid(axis="y", visible=False)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title(_title(f"Where the time goes at {size} px, batch 1 (fast path) vs where the FLOPs are",
                            f"random input {size}x{size}", _teacher(profile)))
    return fig


def plot_speedups(speed: dict[str, Any], *, goal_s: Optional[float] = 0.10) -> Figure:
    """Left: DS latency per speed option (median, batch 1) with the goal and the time the FLOPs would
    take at the machine's attainable rate (options slower than 1.6x the plain path are clipped and
    labelled). Right: training images/s per option."""
    inf = speed["inference_b1"]
    tr = speed["training"]
    size = speed["image_size"]
    att = speed["attainable"]["attainable_gflops_per_s"]
    with dskd_style():
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(14.0, 4.4), layout="constrained",
                                     gridspec_kw={"width_ratios": [1.5, 1.0]})
        names = list(inf)
        ms = [inf[k]["median_s"] * 1e3 for k in names]
        xmax = 1.6 * inf["plain"]["median_s"] * 1e3  # slower options are clipped and labelled at the edge
        colours = ["#c44e52" if not inf[k]["agrees"] else ("#dd8452" if k == speed["best_b1_variant"] else "#4c72b0")
                   for k in names]
        a1.barh(names, [min(v, xmax) for v in ms], color=colours)
        for y, (k, v) in enumerate(zip(names, ms)):
            clipped = v > xmax
            a1.text(xmax * 0.42 if clipped else v, y,
                    f" {v:.0f} ms  x{inf[k]['speedup_vs_plain']:.2f}" + (" (clipped)" if clipped else ""),
                    va="center", fontsize=8, color="white" if clipped else "black")
        # the bound benchmarks/speed.py states: DS's FLOPs at the rate of the probes timed beside batch 1
        att_b1 = max(speed["attainable"].get("batch1_round", {"all": att}).values())
        bound = speed["gflops_ds"] / att_b1 * 1e3
        lines = [(bound, f"FLOPs at {att_b1:.0f} GFLOP/s", "grey", "--")]
        if goal_s:
            lines.append((goal_s * 1e3, f"goal {goal_s * 1e3:.0f} ms", "black", ":"))
        lines.sort()
        for i, (x, label, colour, style) in enumerate(lines):
            a1.axvline(x, color=colour, ls=style, lw=1)
            # labels grow away from each other: the left line's to the left, the right line's to the right
            left = i == 0 and len(lines) > 1
            a1.text(x, -0.8, f"{label} " if left else f" {label}", fontsize=7, color=colour, va="center",
                    ha="right" if left else "left")
        a1.set_ylim(len(names) - 0.5, -1.3)  # inverted, with a row on top for the line labels
        a1.set_xlabel(f"latency per image, batch 1 (ms, median of {inf['plain']['runs']} runs)")
        a1.set_xlim(0, xmax)
        a1.grid(axis="y", visible=False)
        a1.set_title(f"DS inference, {size}x{size}")
        tnames = list(tr)
        ips = [tr[k]["images_per_s"] for k in tnames]
        a2.barh(tnames, ips, color="#55a868")
        for y, (k, v) in enumerate(zip(tnames, ips)):
            a2.text(v, y, f" {v:.2f}  x{tr[k]['speedup_vs_plain']:.2f}", va="center", fontsize=8)
        a2.invert_yaxis()
        a2.set_xlim(0, max(ips) * 1.6)
        a2.set_xlabel(f"training images per second (batch {next(iter(tr.values()))['batch']})")
        a2.grid(axis="y", visible=False)
        a2.set_title(f"DS training step, {size}x{size}")
        m = speed["machine"]
        fig.suptitle(_title(f"What each speed-up bought on {_machine(speed)} ({speed['threads']} threads, torch {m['torch']})",
                            f"random input {size}x{size}", _teacher(speed), width=130), fontsize=10)
    return fig


def plot_fractions(profile: dict[str, Any]) -> Figure:
    """Achieved GFLOP/s as a fraction of the attainable rate, per structure and size: inference at
    batch 1 and 16 (plain and fast) and a training step."""
    recs = profile["records"]
    labels = [f"{r['structure']} {r['image_size']}" for r in recs]
    series = {
        "inference b1 plain": [r["latency_b1"]["fraction_of_attainable"]["plain"] for r in recs],
        "inference b1 fast": [r["latency_b1"]["fraction_of_attainable"]["fast"] for r in recs],
        "inference b16 fast": [r["throughput"]["fraction_of_attainable"]["fast"] for r in recs],
        "training step fast": [r["training"]["fraction_of_attainable"]["fast"] for r in recs],
    }
    width = 0.8 / len(series)
    x = np.arange(len(recs))
    with dskd_style():
        fig, ax = plt.subplots(figsize=(9.0, 3.6), layout="constrained")
        for i, (name, vals) in enumerate(series.items()):
            ax.bar(x - 0.4 + width * (i + 0.5), vals, width * 0.9, label=name)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.axhline(0.6, color="black", lw=0.8, ls=":", label="goal 60%")
        ax.set_xticks(x, labels)
        ax.set_ylabel("GFLOP/s / attainable GFLOP/s")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title(_title(f"Counted FLOPs per second as a fraction of the attainable rate on "
                            f"{_machine(profile)} ({profile['attainable_gflops_per_s']:.0f} GFLOP/s, fast = "
                            f"{profile['settings']['speed_description']})", "random input", _teacher(profile),
                            width=110))
    return fig
