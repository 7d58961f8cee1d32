"""The same-teacher comparison: PatchCore's memory bank beside DS, T-E and T-D."""
from __future__ import annotations

import textwrap
from typing import Any, Sequence

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from .ablation import _LABELS, _label_bar_feet, _score_axes, _wrap
from .style import dskd_style, provenance_title


def plot_same_teacher(rows: Sequence[dict[str, Any]], *, teacher: str, data: str) -> Figure:
    """Grouped bars, one group per metric (image AUROC, pixel AUROC, PRO) and one bar per method: the
    mean over seeds, the standard deviation as an error bar, each seed as a black dot, the mean in % at
    the bar's foot. A method without a record (``recorded`` False) keeps its place as an empty hatched
    bar marked "not recorded". ``rows`` come from :func:`dskd.baselines.same_teacher_comparison`."""
    metrics = list(_LABELS)
    n = len(rows)
    width = 0.8 / max(n, 1)
    x = np.arange(len(metrics))
    with dskd_style():
        fig, ax = plt.subplots(figsize=(7.0, 5.0), layout="constrained")  # drawn at the column's width
        for i, row in enumerate(rows):
            pos = x - 0.4 + width * (i + 0.5)
            label = f"{row['method']}: {row['what']}"
            if not row.get("recorded", True):
                ax.bar(pos, [1.0] * len(metrics), width * 0.9, fill=False, hatch="//", edgecolor=f"C{i}", alpha=0.45,
                       label=textwrap.fill(label + " (not recorded yet)", 44))
                for p in pos:
                    ax.text(p, 0.5, "not recorded", rotation=90, ha="center", va="center", fontsize=7.5, color=f"C{i}")
                continue
            means = [row[m] for m in metrics]
            seeds = row.get("seeds", [])
            stds = [row[f"{m}_std"] for m in metrics] if len(seeds) > 1 else None
            bars = ax.bar(pos, means, width * 0.9, yerr=stds, capsize=3, color=f"C{i}",
                          label=textwrap.fill(f"{label} (n={len(seeds)})", 44))
            for j, m in enumerate(metrics):
                values = [v for v in row.get(f"{m}_per_seed", []) if v is not None]
                ax.scatter([pos[j]] * len(values), values, s=9, color="black", zorder=3,
                           label="one seed" if i == 0 and j == 0 else None)
            _label_bar_feet(ax, bars, means, digits=1, fontsize=7.5)
        _score_axes(ax, metrics)
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2)  # below: the bars keep the width
        ax.set_title(_wrap(provenance_title("The same teacher: a memory bank of its features vs distillation",
                                            teacher, data), 80))
    return fig
