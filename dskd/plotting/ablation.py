"""Figures of the ablation studies: our metrics per variant beside the paper's."""
from __future__ import annotations

import textwrap
from typing import Any, Optional, Sequence

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from .style import dskd_style, provenance_title

_LABELS = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "pro": "PRO (FPR ≤ 0.3)"}


def plot_study(
    rows: Sequence[dict[str, Any]],
    *,
    study: str,
    teacher: str,
    data: str,
    paper: Optional[dict[str, tuple[float, float, float]]] = None,
    paper_label: str = "paper (MVTec AD mean)",
) -> Figure:
    """Grouped bars: one group per metric, one bar per variant (mean over seeds, error bar = std).

    ``rows`` come from :func:`dskd.ablation.summarize`. The paper's values, where the paper has the
    study, are drawn as black diamonds on the same bars; they are MVTec AD means, so compare the
    ordering of the variants, not the levels, when our data set differs.
    """
    metrics = list(_LABELS)
    n = len(rows)
    width = 0.8 / max(n, 1)
    with dskd_style():
        fig, ax = plt.subplots(figsize=(8.0, 4.0), layout="constrained")
        x = np.arange(len(metrics))
        for i, row in enumerate(rows):
            means = [row[m] for m in metrics]
            stds = [row[m + "_std"] for m in metrics]
            pos = x - 0.4 + width * (i + 0.5)
            seeds = row.get("n_seeds", 1)
            ax.bar(pos, means, width * 0.9, yerr=stds if seeds > 1 else None, capsize=3,
                   label=f"{row['variant']} (n={seeds})")
            if paper and row["variant"] in paper:
                ax.scatter(pos, np.array(paper[row["variant"]]) / 100, marker="D", color="black", s=18, zorder=3,
                           label=paper_label if i == 0 or not any(r["variant"] in paper for r in rows[:i]) else None)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.text(len(metrics) - 0.5, 0.505, "chance", color="grey", fontsize=8, ha="right", va="bottom")
        ax.set_xticks(x, [_LABELS[m] for m in metrics])
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("score (1 = perfect)")
        ax.set_title(textwrap.fill(provenance_title(f"Ablation '{study}'", teacher, data), 90,
                                   replace_whitespace=False))
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig
