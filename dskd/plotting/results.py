"""Result figures: loss curves, the paper's image / map / ground-truth grids (Fig. 5, 7), the paper's
Tables 1 to 5 beside this rebuild's numbers, and MT Defects per defect type.

The table figures draw the dictionaries of :func:`dskd.reproduce.build_tables` (or the ``table<N>.json``
files it writes); nothing is computed here but the layout.
"""
from __future__ import annotations

import textwrap
from typing import Any, Optional, Sequence

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from .style import MAP_CMAP, clean_axes, dskd_style, provenance_title, to_numpy_image


def plot_loss_curve(history: Sequence[float], *, teacher: str, data: str, ax: Optional[plt.Axes] = None) -> Figure:
    """Training loss (Eq. 7) per epoch."""
    with dskd_style():
        if ax is None:
            fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
        else:
            fig = ax.figure
        ax.plot(range(1, len(history) + 1), history, marker="o", ms=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (Eq. 7, dimensionless)")
        ax.set_title(provenance_title("Training loss", teacher, data))
    return fig


def plot_anomaly_grid(
    images: torch.Tensor,
    maps: torch.Tensor,
    masks: Optional[torch.Tensor] = None,
    *,
    titles: Optional[Sequence[str]] = None,
    teacher: str,
    data: str,
    title: str = "Images, anomaly maps and ground truth",
    vmax: Optional[float] = None,
) -> Figure:
    """The paper's Fig. 5/7 layout: one column per image; rows image, anomaly map, ground truth.

    All maps share one colour scale (``vmax`` defaults to the largest value shown), so brightness is
    comparable across columns.
    """
    n = len(images)
    rows = 3 if masks is not None else 2
    vmax = float(maps.max()) if vmax is None else vmax
    vmin = float(maps.min())
    with dskd_style():
        fig, axes = plt.subplots(rows, n, figsize=(1.9 * n + 0.8, 1.9 * rows + 0.6), squeeze=False,
                                 layout="constrained")
        for i in range(n):
            axes[0, i].imshow(to_numpy_image(images[i]))
            im = axes[1, i].imshow(maps[i].cpu().numpy(), cmap=MAP_CMAP, vmin=vmin, vmax=vmax)
            if masks is not None:
                axes[2, i].imshow(masks[i].squeeze().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                axes[0, i].set_title(titles[i], fontsize=8)
        clean_axes(axes)
        labels = ["image", "anomaly map", "ground truth"][:rows]
        for r, label in enumerate(labels):
            axes[r, 0].set_ylabel(label)
        fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.8, label="anomaly score (Eq. 9)")
        fig.suptitle(provenance_title(title, teacher, data))
    return fig


# ------------------------------------------------------------------------------- Tables 1-5 as figures
_METRIC_LABELS = {"image_auroc": "image AUROC (%)", "pixel_auroc": "pixel AUROC (%)", "pro": "PRO, FPR \u2264 0.3 (%)"}
_TABLE_METRICS = {"Table 1": ("image_auroc",), "Table 3": ("image_auroc",), "Table 2": ("pixel_auroc", "pro"),
                  "Table 4": ("pixel_auroc", "pro"), "Table 5": ("image_auroc", "pixel_auroc", "pro")}
_BENCH_NAMES = {"mt-defects": "MT Defects", "mvtec": "MVTec AD", "mvtec3d": "MVTec 3D-AD (RGB)"}
PAPER_COLOUR, OURS_COLOUR, OTHERS_COLOUR = "#4c72b0", "#dd8452", "#999999"


def _wrap(text: str, width: int = 100) -> str:
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def runs_setting(table: dict[str, Any]) -> tuple[str, str]:
    """(teacher, setting) of the runs behind a table's "Ours (rebuild)": the teacher weights and a line
    naming the epochs, image size, seeds and devices, as the result files record them."""
    runs = table.get("runs") or []
    if not runs:
        return "no run of ours yet", "rebuild: no result file"

    def joined(key: str, fmt=str) -> str:
        values = sorted({r[key] for r in runs if r.get(key) is not None}, key=str)
        return "/".join(fmt(v) for v in values) if values else "n/a"

    teacher = joined("teacher")
    seeds = joined("seed")
    setting = (f"rebuild: epochs {joined('epochs')}, {joined('image_size', lambda v: f'{v}x{v}')}, "
               f"seed{'s' if '/' in seeds else ''} {seeds}, {len(runs)} result file{'s' if len(runs) > 1 else ''}, "
               f"device {joined('device')}")
    return teacher, setting


def _paper_value(table: dict[str, Any], method: str, category: Optional[str], metric: str) -> Optional[float]:
    name = table["table"]
    if name == "Table 5":
        return table["paper"][method][list(_TABLE_METRICS["Table 5"]).index(metric)]
    v = table["paper"][method][category]
    if name in ("Table 1", "Table 3"):
        return v
    return v[0 if metric == "pixel_auroc" else 1]


def _ours_cell(table: dict[str, Any], category: Optional[str], metric: str) -> Optional[dict[str, Any]]:
    if table["table"] == "Table 5":
        return (table.get("ours") or {}).get(metric)
    if category == "mean":
        m = table["mean"][metric]
        return None if m["value"] is None else {"value": m["value"], "std": None, "paper_setting": True}
    row = next(r for r in table["rows"] if r["category"] == category)
    return (row["ours"] or {}).get(metric)


def plot_table_comparison(table: dict[str, Any]) -> Figure:
    """One of the paper's Tables 1 to 5 as a figure: per category (or, for Table 5, per metric) the
    other methods of the table (grey dots), the paper's DSKD (blue) and this rebuild (orange, with the
    standard deviation over seeds; hatched when not run at the paper's setting; "no run" where no
    result file exists). One panel per metric of the table, Table 5 in one panel."""
    from ..paper_results import OURS

    name = table["table"]
    metrics = _TABLE_METRICS[name]
    others = [m for m in table["methods"] if m != OURS]
    t5 = name == "Table 5"
    # one panel per metric; in a panel, one x position per (category, metric)
    panels = [[(None, m, _METRIC_LABELS[m].replace(" (%)", "")) for m in metrics]] if t5 else \
        [[(r["category"], m, r["name"]) for r in table["rows"]] + [("mean", m, "Mean")] for m in metrics]
    teacher, setting = runs_setting(table)
    with dskd_style():
        width = 5.0 if t5 else max(7.0, 0.55 * len(panels[0]) + 1.5)
        fig, axes = plt.subplots(len(panels), 1, figsize=(width, 3.1 * len(panels) + 1.0), squeeze=False,
                                 layout="constrained")
        for ax, cells in zip(axes[:, 0], panels):
            seen: set[str] = set()

            def label(text: str) -> Optional[str]:
                if text in seen:
                    return None
                seen.add(text)
                return text

            for x, (cat, metric, _) in enumerate(cells):
                vals = [v for v in (_paper_value(table, m, cat, metric) for m in others) if v is not None]
                if vals:
                    ax.scatter([x - 0.2] * len(vals), vals, s=10, color=OTHERS_COLOUR, zorder=3,
                               label=label("other methods (paper)"))
                pv = _paper_value(table, OURS, cat, metric)
                if pv is not None:
                    ax.bar(x, pv, 0.32, color=PAPER_COLOUR, label=label("DSKD, paper"))
                cell = _ours_cell(table, cat, metric)
                if cell is None or cell.get("value") is None:
                    ax.text(x + 0.34, 2, "no run", rotation=90, ha="center", va="bottom", fontsize=7,
                            color=OURS_COLOUR)
                else:
                    ax.bar(x + 0.34, cell["value"], 0.32, color=OURS_COLOUR, edgecolor="white",
                           hatch=None if cell.get("paper_setting") else "//", yerr=cell.get("std"), capsize=2,
                           label=label("rebuild (ours)"))
                    # the value above the bar, so that a zero shows too
                    ax.text(x + 0.34, cell["value"] + 1, f"{cell['value']:.1f}", ha="center", va="bottom",
                            fontsize=7, rotation=0 if t5 else 90, color=OURS_COLOUR)
            ax.set_xticks(range(len(cells)))
            ax.set_xticklabels([c[2] for c in cells], rotation=0 if t5 else 45, ha="center" if t5 else "right")
            ax.set_ylim(0, 104)
            ax.set_ylabel("score (%)" if t5 else _METRIC_LABELS[cells[0][1]])
            ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=7, ncol=3, borderaxespad=0.2)
        bench = _BENCH_NAMES.get(table.get("benchmark"), table.get("benchmark"))
        runs = table.get("runs") or []
        note = "; hatched: not the paper's setting" if any(not r.get("paper_setting") for r in runs) else ""
        fig.suptitle(_wrap(provenance_title(f"{name}: the paper's numbers beside this rebuild{note}", teacher,
                                            f"{bench} test split | {setting}"), 60 if t5 else 100), fontsize=9)
    return fig


def plot_per_defect_type(table: dict[str, Any], *, paper: bool = True) -> Figure:
    """MT Defects per defect type (a Table 5 dict of :func:`dskd.reproduce.build_tables`): image AUROC,
    pixel AUROC and PRO of this rebuild for each type (each scored against all normal test images),
    with the rebuild's overall value of each metric as a solid line and, with ``paper=True``, the
    paper's overall value as a dotted one (the paper reports no per-type numbers)."""
    per_type = table.get("per_defect_type") or {}
    if not per_type or not table.get("ours"):
        raise ValueError("this table holds no per-defect-type results of the rebuild: run `dskd reproduce "
                         "mt-defects` first (the table is built from its result files)")
    from ..paper_results import OURS

    metrics = _TABLE_METRICS["Table 5"]
    colours = dict(zip(metrics, ("#4c72b0", "#dd8452", "#55a868")))
    types = list(per_type)
    teacher, setting = runs_setting(table)
    with dskd_style():
        fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(types) + 2.5), 3.8), layout="constrained")
        w = 0.8 / len(metrics)
        for mi, m in enumerate(metrics):
            vals = [per_type[t][m]["value"] if per_type[t].get(m) and per_type[t][m]["value"] is not None
                    else np.nan for t in types]
            errs = [per_type[t][m].get("std") or 0 if per_type[t].get(m) else 0 for t in types]
            x = np.arange(len(types)) + (mi - (len(metrics) - 1) / 2) * w
            ax.bar(x, vals, w * 0.95, color=colours[m], yerr=errs if any(errs) else None, capsize=2,
                   label=_METRIC_LABELS[m].replace(" (%)", ""))
            overall = table["ours"][m]["value"] if table["ours"].get(m) else None
            if overall is not None:
                ax.axhline(overall, color=colours[m], lw=1.2, label=f"all types, rebuild ({overall:.1f})")
            pv = table["paper"][OURS][mi]
            if paper and pv is not None:
                ax.axhline(pv, color=colours[m], lw=1.0, ls=":", label=f"all types, paper ({pv:.1f})")
        ax.set_xticks(range(len(types)))
        ax.set_xticklabels(types)
        ax.set_xlabel("defect type (MT Defects)")
        ax.set_ylabel("score (%)")
        ax.set_ylim(0, 104)
        ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.18))
        ax.set_title(_wrap(provenance_title("MT Defects per defect type (rebuild)", teacher,
                                            f"MT Defects test split | {setting}"), 95), fontsize=9)
    return fig


_CURVE_METRICS = (("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"), ("pro", "PRO (FPR up to 0.3)"))


def plot_learning_curve(records: Sequence[dict[str, Any]], *, paper: Optional[Sequence[float]] = None,
                        goal: Optional[float] = None) -> Figure:
    """Test-split scores against epochs for result records of ``dskd reproduce --eval-every N``
    (``training.curve``), one line per seed, their mean in black where every seed has the epoch.

    ``paper``: the paper's (image AUROC, pixel AUROC, PRO) in percent, drawn dotted (its 200-epoch value);
    ``goal``: an image AUROC to mark (dashed)."""
    runs = [r for r in records if r.get("training", {}).get("curve")]
    if not runs:
        raise ValueError("no record holds a learning curve: run `dskd reproduce ... --eval-every N` (the result's "
                         "training.curve lists the test scores every N epochs)")
    teachers = sorted({r["provenance"]["teacher"] for r in runs})
    epochs = sorted({r["training"]["epochs"] for r in runs})
    data = sorted({r["provenance"]["data"] for r in runs})
    gaps = {b["epoch"] - a["epoch"] for r in runs for a, b in zip(r["training"]["curve"], r["training"]["curve"][1:])}
    every = f"scored every {min(gaps)} epoch{'s' if min(gaps) > 1 else ''}" if gaps else "scored at the end"
    with dskd_style():
        fig, axes = plt.subplots(1, 3, figsize=(12.0, 3.6), layout="constrained", sharex=True)
        for i, (ax, (m, label)) in enumerate(zip(axes, _CURVE_METRICS)):
            by_epoch: dict[int, list[float]] = {}
            for r in sorted(runs, key=lambda r: r["seed"]):
                pts = [(p["epoch"], p[m]) for p in r["training"]["curve"] if p.get(m) is not None]
                ax.plot(*zip(*pts), marker="o", ms=3, lw=1, alpha=0.7, label=f"seed {r['seed']}")
                for e, v in pts:
                    by_epoch.setdefault(e, []).append(v)
            full = sorted(e for e, v in by_epoch.items() if len(v) == len(runs))
            if len(runs) > 1 and full:
                ax.plot(full, [np.mean(by_epoch[e]) for e in full], color="black", lw=2,
                        label=f"mean of {len(runs)} seeds")
            if paper is not None:
                pv = paper[i]  # the paper's values come in _CURVE_METRICS' order
                if pv is not None:
                    ax.axhline(pv / 100, color="#4c72b0", ls=":", lw=1.2, label=f"paper, 200 epochs ({pv / 100:.3f})")
            if goal is not None and m == "image_auroc":
                ax.axhline(goal, color="#c44e52", ls="--", lw=1, label=f"goal {goal:.2f}")
            ax.set_xlabel("epoch")
            ax.set_ylabel(f"{label} (test split)")
            ax.set_title(label)
            ax.set_ylim(0, 1)
            ax.legend(fontsize=7, loc="lower right")
        fig.suptitle(_wrap(provenance_title(
            f"Test scores during training ({'/'.join(map(str, epochs))} epochs, {every})",
            "; ".join(teachers), f"{', '.join(data)}, test split"), 120), fontsize=10)
    return fig
