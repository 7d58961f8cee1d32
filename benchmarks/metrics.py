"""Benchmark dskd.metrics.pro_score against anomalib's exact AUPRO (and the legacy variants).

On MVTec-sized synthetic test sets (default: 100 images at 256x256 and 20 images at
1024x1024; about half the images have blob/ellipse defects, the maps are smooth noise
plus a smoothed signal of random strength on each defect), this script

* times ``dskd.metrics.pro_score`` (median of ``--repeats`` runs) and anomalib's
  ``anomalib.metrics.aupro._AUPRO(fpr_limit=0.3)`` (``update(maps, masks)`` then
  ``compute()``, exact global-sort AUPRO since anomalib PR #3115),
* checks that the two values agree and prints the speed ratio,
* prints the legacy variants (RD4AD's and STPM's published evaluation code) on the same
  maps: how far each variant moves the number,
* writes everything, with a machine description, to ``results/benchmarks/metrics.json``.

If anomalib is not importable, the exact value is compared with a threshold-loop
reference written from the definition instead, on smaller quantised inputs (the loop
is O(thresholds x pixels)), and the output says so.

Usage::

    python benchmarks/metrics.py            # full run (a few minutes on 2 cores)
    python benchmarks/metrics.py --quick    # tiny sizes, one repeat, seconds
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import scipy
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
try:
    import dskd.metrics  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))
from dskd.metrics import legacy_pro_rd4ad, legacy_pro_stpm, pro_score  # noqa: E402

MAX_FPR = 0.3


# --------------------------------------------------------------------------------------
# Synthetic MVTec-like data
# --------------------------------------------------------------------------------------
def _defect(rng: np.random.Generator, size: int) -> np.ndarray:
    """One defect: an ellipse (possibly a thin scratch) or an irregular blob."""
    yy, xx = np.ogrid[:size, :size]
    cy, cx = rng.uniform(0.1, 0.9, 2) * size
    if rng.random() < 0.3:  # scratch
        a, b = size * rng.uniform(0.05, 0.2), size * rng.uniform(0.003, 0.012)
    else:
        a, b = size * rng.uniform(0.02, 0.12, 2)
    th = rng.uniform(0, np.pi)
    u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
    v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
    ellipse = (u / a) ** 2 + (v / b) ** 2 <= 1.0
    if rng.random() < 0.5:  # blob: the ellipse cut by smooth noise (may split in pieces)
        low = max(8, size // 16)
        noise = ndimage.gaussian_filter(rng.standard_normal((low, low)), 1.0)
        noise = ndimage.zoom(noise, size / low, order=1)[:size, :size]
        ellipse &= noise > np.quantile(noise, 0.3)
    return ellipse


def make_data(n: int, size: int, seed: int, defect_fraction: float = 0.5, levels: int = 0):
    """Masks (N, size, size) bool and maps float32 (quantised to ``levels`` values if > 0)."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=bool)
    maps = np.empty((n, size, size), dtype=np.float32)
    low = max(8, size // 8)
    defective = rng.permutation(n) < round(defect_fraction * n)
    for i in range(n):
        noise = ndimage.gaussian_filter(rng.standard_normal((low, low)), 1.5)
        noise = ndimage.zoom(noise, size / low, order=1)[:size, :size]
        amap = (noise / noise.std()).astype(np.float32)
        if defective[i]:
            signal = np.zeros((size, size), dtype=np.float32)
            for _ in range(int(rng.integers(1, 4))):
                d = _defect(rng, size)
                masks[i] |= d
                signal[d] = np.maximum(signal[d], rng.uniform(1.0, 6.0))
            amap += ndimage.gaussian_filter(signal, sigma=max(1.0, size / 128))
        amap += rng.normal(0, 0.1, amap.shape).astype(np.float32)  # pixel noise
        maps[i] = amap
    if not masks.any():
        masks[0, size // 2, size // 2] = True
    if levels:
        lo, hi = maps.min(), maps.max()
        maps = (np.round((maps - lo) / (hi - lo) * (levels - 1)) / (levels - 1)).astype(np.float32)
    return masks, maps


def describe(masks: np.ndarray) -> dict:
    n_regions = sum(
        ndimage.label(m, structure=np.ones((3, 3), dtype=int))[1] for m in masks if m.any()
    )
    return {
        "images": int(masks.shape[0]),
        "height": int(masks.shape[1]),
        "width": int(masks.shape[2]),
        "pixels": int(masks.size),
        "defective_images": int(masks.reshape(len(masks), -1).any(axis=1).sum()),
        "anomalous_pixel_fraction": float(masks.mean()),
        "regions": int(n_regions),
    }


# --------------------------------------------------------------------------------------
# Competitors
# --------------------------------------------------------------------------------------
def time_runs(fn, repeats: int) -> tuple[float, list[float]]:
    value, times = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return float(value), times


def load_anomalib():
    try:
        import anomalib
        import torch
        from anomalib.metrics.aupro import _AUPRO
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available"
        return None, f"{type(exc).__name__}: {exc}"
    return (anomalib, torch, _AUPRO), None


def anomalib_aupro(mods, masks: np.ndarray, maps: np.ndarray) -> float:
    _, torch, _AUPRO = mods
    metric = _AUPRO(fpr_limit=MAX_FPR)
    metric.update(torch.from_numpy(maps), torch.from_numpy(masks.astype(np.uint8)))
    return float(metric.compute())


def loop_reference(masks: np.ndarray, maps: np.ndarray, max_fpr: float = MAX_FPR) -> float:
    """The definition as a loop over every distinct threshold (slow; for quantised maps)."""
    regions = []
    for i, m in enumerate(masks):
        lab, n = ndimage.label(m, structure=np.ones((3, 3), dtype=int))
        regions.extend((i, lab == r) for r in range(1, n + 1))
    normal = ~masks
    n_normal = np.count_nonzero(normal)
    area, x0, y0 = 0.0, 0.0, 0.0
    for t in np.unique(maps)[::-1]:
        pred = maps >= t
        x1 = np.count_nonzero(pred & normal) / n_normal
        y1 = float(np.mean([pred[i][r].mean() for i, r in regions]))
        if x1 >= max_fpr:
            ye = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0)
            area += (max_fpr - x0) * (y0 + ye) / 2
            break
        area += (x1 - x0) * (y0 + y1) / 2
        x0, y0 = x1, y1
    return area / max_fpr


def peak_memory(fn) -> int:
    """Peak bytes allocated through Python/numpy while running fn (tracemalloc)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------
def machine(mods) -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        if names:
            info["cpu_model"] = names[0]
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        info["torch"] = None
    info["anomalib"] = mods[0].__version__ if mods else None
    return info


def run_case(name, n, size, seed, repeats, mods, levels=0) -> dict:
    t0 = time.perf_counter()
    masks, maps = make_data(n, size, seed, levels=levels)
    gen_s = time.perf_counter() - t0
    rec = {"name": name, "seed": seed, "data": describe(masks), "data_generation_s": gen_s}
    if levels:
        rec["data"]["quantised_levels"] = levels
    print(f"\n== {name}: {n} images {size}x{size}, {rec['data']['defective_images']} defective, "
          f"{rec['data']['regions']} regions, {100 * rec['data']['anomalous_pixel_fraction']:.2f}% "
          f"anomalous pixels (generated in {gen_s:.1f} s)")

    ours, ours_t = time_runs(lambda: pro_score(masks, maps, max_fpr=MAX_FPR), repeats)
    rec["ours"] = {"value": ours, "median_s": statistics.median(ours_t), "runs_s": ours_t,
                   "peak_traced_bytes": peak_memory(lambda: pro_score(masks, maps, max_fpr=MAX_FPR))}
    print(f"dskd pro_score       : {ours:.6f}   median {rec['ours']['median_s']:.3f} s "
          f"(runs {', '.join(f'{t:.3f}' for t in ours_t)}); peak numpy memory "
          f"{rec['ours']['peak_traced_bytes'] / 2**20:.0f} MiB for {maps.nbytes / 2**20:.0f} MiB of maps")

    if mods is not None:
        ref, ref_t = time_runs(lambda: anomalib_aupro(mods, masks, maps), max(1, repeats))
        rec["reference"] = {"kind": "anomalib _AUPRO (exact)", "value": ref,
                            "median_s": statistics.median(ref_t), "runs_s": ref_t}
        label = "anomalib _AUPRO     "
    else:
        ref, ref_t = time_runs(lambda: loop_reference(masks, maps), 1)
        rec["reference"] = {"kind": "threshold-loop reference (anomalib not importable)", "value": ref,
                            "median_s": statistics.median(ref_t), "runs_s": ref_t}
        label = "threshold-loop ref. "
    rec["abs_diff"] = abs(ours - ref)
    rec["speedup"] = rec["reference"]["median_s"] / rec["ours"]["median_s"]
    print(f"{label}: {ref:.6f}   median {rec['reference']['median_s']:.3f} s")
    print(f"|difference|         : {rec['abs_diff']:.2e}    speed ratio (reference / ours): "
          f"{rec['speedup']:.1f}x")

    legacy = {}
    for key, fn in (
        ("rd4ad (per image, 200 thr.)", lambda: legacy_pro_rd4ad(masks, maps, MAX_FPR)),
        ("rd4ad_global (200 thr.)", lambda: legacy_pro_rd4ad(masks, maps, MAX_FPR, per_image=False)),
        ("stpm (4000 thr., rescaled)", lambda: legacy_pro_stpm(masks, maps, MAX_FPR)),
    ):
        value, t = time_runs(fn, 1)
        legacy[key.split(" ")[0]] = {"value": value, "seconds": t[0], "shift": value - ours}
        print(f"legacy {key:28s}: {value:.4f}  ({value - ours:+.4f} vs exact, {t[0]:.2f} s)")
    rec["legacy"] = legacy
    return rec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and one repeat (smoke test)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per method (median is reported)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="JSON output (default results/benchmarks/metrics.json, "
                        "metrics-quick.json with --quick)")
    p.add_argument("--no-anomalib", action="store_true", help="use the threshold-loop reference")
    args = p.parse_args(argv)

    mods, why = (None, "disabled by --no-anomalib") if args.no_anomalib else load_anomalib()
    if mods is None:
        print(f"anomalib is not available ({why}); comparing with the threshold-loop reference "
              f"on smaller, quantised inputs instead.")
    if args.quick:
        cases = [("small", 10, 64, args.seed), ("large", 4, 128, args.seed + 1)]
        repeats = 1
    else:
        cases = [("mvtec_256", 100, 256, args.seed), ("mvtec_1024", 20, 1024, args.seed + 1)]
        repeats = args.repeats
    levels = 0
    if mods is None:  # the loop reference needs few distinct scores and small inputs
        cases = [(name + "_loopref", max(2, n // 4), min(size, 128), seed) for name, n, size, seed in cases]
        levels = 256

    info = machine(mods)
    print("machine:", ", ".join(f"{k}={v}" for k, v in info.items()))
    results = [run_case(name, n, size, seed, repeats, mods, levels) for name, n, size, seed in cases]

    out = args.out or REPO / "results" / "benchmarks" / ("metrics-quick.json" if args.quick else "metrics.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "benchmarks/metrics.py",
        "max_fpr": MAX_FPR,
        "quick": args.quick,
        "reference": "anomalib" if mods is not None else "threshold-loop (anomalib not importable: " + str(why) + ")",
        "machine": info,
        "cases": results,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
