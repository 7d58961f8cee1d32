"""Figures of the ablation studies: our metrics per variant beside the paper's."""
from __future__ import annotations

import textwrap
from typing import Any, Optional, Sequence

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from .style import MAP_CMAP, clean_axes, dskd_style, provenance_title

_LABELS = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "pro": "PRO (FPR ≤ 0.3)"}
#: what a map of random scores gets: 0.5 for an AUROC, max_fpr / 2 = 0.15 for the normalised PRO area
CHANCE = {"image_auroc": 0.5, "pixel_auroc": 0.5, "pro": 0.15}


def _chance_marks(ax, metrics: Sequence[str]) -> None:
    """A dashed line at each metric's chance level, across that metric's group of bars only."""
    for i, m in enumerate(metrics):
        ax.hlines(CHANCE[m], i - 0.45, i + 0.45, color="grey", lw=0.8, ls="--", zorder=4)
    # named once, in a margin right of the last group, where no bar can hide it
    right = len(metrics) - 0.5
    ax.set_xlim(-0.55, right + 0.4)
    ax.text(right + 0.02, CHANCE[metrics[-1]], "chance", color="grey", fontsize=8, ha="left", va="center",
            zorder=4)


def _label_bar_feet(ax, bars, means: Sequence[float], *, digits: int = 0, fontsize: float = 7) -> None:
    """Each bar's mean, in %, written upwards along its foot (white on the bar)."""
    for b, v in zip(bars, means):
        if not np.isnan(v):
            ax.annotate(f"{100 * v:.{digits}f}", (b.get_x() + b.get_width() / 2, 0.02), ha="center", va="bottom",
                        fontsize=fontsize, color="white", rotation=90)


def _score_axes(ax, metrics: Sequence[str]) -> None:
    """The axes of a grouped-bar figure of scores: chance marks, metric names, 0 to 1."""
    _chance_marks(ax, metrics)
    ax.set_xticks(range(len(metrics)), [_LABELS[m] for m in metrics])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score (1 = perfect; dashed: chance)")


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
        fig, ax = plt.subplots(figsize=(7.0, 4.0), layout="constrained")
        x = np.arange(len(metrics))
        _grouped_bars(ax, rows, metrics, errors=True)  # seaborn: mean ± std over seeds, and every seed
        handles: list[Any] = [plt.Rectangle((0, 0), 1, 1, color=f"C{i}") for i in range(n)]
        labels = [f"{row['variant']} (n={row.get('n_seeds', 1)})" for row in rows]
        for i, row in enumerate(rows):
            if paper and row["variant"] in paper:
                pos = x - 0.4 + width * (i + 0.5)
                diamonds = ax.scatter(pos, np.array(paper[row["variant"]]) / 100, marker="D", color="black", s=18,
                                      zorder=5)
                if not any(r["variant"] in paper for r in rows[:i]):
                    handles.append(diamonds)
                    labels.append(paper_label)
        ax.set_title(_wrap(provenance_title(f"Ablation '{study}'", teacher, data), 90))
        ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _wrap(text: str, width: int) -> str:
    """Wrap each line of ``text`` on its own (textwrap.fill would count the newlines as characters); a line
    too long that holds ``" | "`` (teacher | data) breaks there first, so no clause is split across lines."""
    lines = []
    for line in text.split("\n"):
        parts = line.split(" | ") if len(line) > width else [line]
        lines += [textwrap.fill(part, width, break_on_hyphens=False) for part in parts]
    return "\n".join(lines)


def _grouped_bars(ax, rows: Sequence[dict[str, Any]], metrics: Sequence[str], *, errors: bool,
                  colours: Optional[dict[str, int]] = None) -> None:
    """One group of bars per metric, one bar per variant. With ``errors`` and rows that carry one value per
    seed (``<metric>_seeds``, from :func:`dskd.ablation.summarize`), seaborn draws the bars as the mean over
    seeds with the standard deviation as error bar, and every seed as a dot on its bar."""
    n = len(rows)
    width = 0.8 / max(n, 1)
    x = np.arange(len(metrics))
    palette = {row["variant"]: f"C{colours.get(row['variant'], i) if colours else i}" for i, row in enumerate(rows)}
    label = {row["variant"]: f"{row['variant']}" + (f" (n={row['n_seeds']})" if "n_seeds" in row else "")
             for row in rows}
    seeds = errors and all(m + "_seeds" in row for row in rows for m in metrics)
    if seeds:
        import pandas as pd
        import seaborn as sns

        long = pd.DataFrame([{"metric": m, "variant": label[row["variant"]], "value": v}
                             for row in rows for m in metrics for v in row[m + "_seeds"]])
        hue_order = [label[row["variant"]] for row in rows]
        sns.barplot(long, x="metric", y="value", hue="variant", order=list(metrics), hue_order=hue_order,
                    palette={label[k]: c for k, c in palette.items()}, errorbar="sd", capsize=0.15,
                    err_kws={"linewidth": 1.0}, width=0.8, saturation=1.0, ax=ax)
        sns.stripplot(long, x="metric", y="value", hue="variant", order=list(metrics), hue_order=hue_order,
                      dodge=True, palette={h: "black" for h in hue_order}, size=3, jitter=0.08, legend=False,
                      ax=ax, zorder=3)
        ax.set_xlabel("")
        if ax.get_legend() is not None:  # the callers draw one legend for the whole figure
            ax.get_legend().remove()
        for i, row in enumerate(rows):  # the mean of each bar, in %, along its foot
            for j, m in enumerate(metrics):
                v = row[m]
                if not np.isnan(v):
                    ax.annotate(f"{100 * v:.0f}", (j - 0.4 + width * (i + 0.5), 0.02), ha="center", va="bottom",
                                fontsize=7, color="white", rotation=90)
    else:
        for i, row in enumerate(rows):
            pos = x - 0.4 + width * (i + 0.5)
            means = [row[m] for m in metrics]
            stds = [row.get(m + "_std", 0.0) for m in metrics] if errors and row.get("n_seeds", 1) > 1 else None
            bars = ax.bar(pos, means, width * 0.9, yerr=stds, capsize=3, color=palette[row["variant"]],
                          label=label[row["variant"]])
            _label_bar_feet(ax, bars, means)
    _score_axes(ax, metrics)


def plot_study_comparison(
    rows: Optional[Sequence[dict[str, Any]]],
    *,
    study: str,
    teacher: str,
    data: str,
    paper: Optional[dict[str, tuple[float, float, float]]] = None,
    paper_label: str = "paper: MVTec AD means, ImageNet teacher, 200 epochs",
    missing: str = "no recorded results",
) -> Figure:
    """The paper's table (left, where the paper has the study) beside ours (right: mean over seeds,
    error bar = standard deviation). With ``rows`` empty or None the right panel says ``missing``
    (e.g. the command that fills it). Variants keep one colour in both panels; bars are annotated in %.
    """
    metrics = list(_LABELS)
    rows = list(rows or [])
    names = [r["variant"] for r in rows] + [v for v in (paper or {}) if v not in {r["variant"] for r in rows}]
    colour = {n: i for i, n in enumerate(names)}
    with dskd_style():
        ncols = 2 if paper else 1
        fig, axes = plt.subplots(1, ncols, figsize=(6.0 * ncols + 1.5, 4.2), squeeze=False, layout="constrained",
                                 sharey=True)
        axes = axes[0]
        if paper:
            prow = [{"variant": v, **{m: paper[v][k] / 100 for k, m in enumerate(metrics)}} for v in paper]
            _grouped_bars(axes[0], prow, metrics, errors=False, colours=colour)
            axes[0].set_title(textwrap.fill(paper_label, 60), fontsize=9)
        ax = axes[-1]
        if rows:
            _grouped_bars(ax, rows, metrics, errors=True, colours=colour)
            ax.set_title(textwrap.fill(f"ours: {data}", 70), fontsize=9)
        else:
            ax.set_xticks(range(len(metrics)), [_LABELS[m] for m in metrics])
            ax.set_ylim(0, 1.05)
            ax.set_ylabel("score (1 = perfect; dashed: chance)")
            ax.text(0.5, 0.5, textwrap.fill(missing, 48), transform=ax.transAxes, ha="center", va="center",
                    fontsize=8.5, family="monospace", bbox=dict(fc="0.95", ec="0.6"))
            ax.set_title("ours: none recorded yet", fontsize=9)
        handles = [plt.Rectangle((0, 0), 1, 1, color=f"C{colour[n]}") for n in names]
        by_name = {r["variant"]: r for r in rows}
        labels = [n + (f" (n={by_name[n]['n_seeds']})" if n in by_name else "") for n in names]
        if names:
            axes[-1].legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                            title="variant (seeds)" if rows else "variant", title_fontsize=8)
        what = "the paper beside ours" if paper else "ours (the paper has no such study)"
        fig.suptitle(_wrap(provenance_title(f"Ablation '{study}': {what}", teacher, data), 90))
    return fig


def plot_study_per_type(
    variants: Sequence[str],
    defect_types: Sequence[str],
    table: np.ndarray,
    *,
    study: str,
    metric: str,
    teacher: str,
    data: str,
) -> Figure:
    """A variant x defect-type heat map of one metric (Fig. 9's per-category view), each cell annotated
    in %; from :func:`dskd.ablation.summarize_per_type`. Grey cells: undefined (NaN)."""
    table = np.asarray(table, dtype=float)
    if table.shape != (len(variants), len(defect_types)):
        raise ValueError(f"table has shape {table.shape}, expected ({len(variants)}, {len(defect_types)})")
    with dskd_style():
        fig, ax = plt.subplots(figsize=(1.1 * len(defect_types) + 3.2, 0.55 * len(variants) + 2.0),
                               layout="constrained")
        cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
        im = ax.imshow(np.ma.masked_invalid(table), cmap=cmap, vmin=CHANCE[metric], vmax=1.0, aspect="auto")
        for i in range(len(variants)):
            for j in range(len(defect_types)):
                v = table[i, j]
                ax.text(j, i, "—" if np.isnan(v) else f"{100 * v:.1f}", ha="center", va="center", fontsize=8,
                        color="black" if not np.isnan(v) and v > 0.8 else "white")
        ax.set_xticks(range(len(defect_types)), defect_types, rotation=30, ha="right")
        ax.set_yticks(range(len(variants)), variants)
        ax.set_xlabel("defect type (each scored against all normal test images)")
        ax.set_ylabel("variant")
        ax.grid(False)
        fig.colorbar(im, ax=ax, label=f"{_LABELS[metric]} (colour from {CHANCE[metric]:g} = chance)")
        ax.set_title(_wrap(provenance_title(f"Ablation '{study}': {_LABELS[metric]} per defect type",
                                                    teacher, data), 90))
    return fig


def _example_rows(examples: dict[str, Any], per_type: int) -> list[int]:
    types = list(examples["defect_types"])
    order = ["good"] + sorted(set(types) - {"good"})
    return [i for t in order for i in [j for j, d in enumerate(types) if d == t][:per_type]]


def _scales(examples: dict[str, Any], variants: Sequence[str], scale: str) -> dict[str, tuple[float, float]]:
    if scale not in ("shared", "per variant"):
        raise ValueError(f"scale must be 'shared' or 'per variant', got {scale!r}")
    lims = {v: (float(np.min(examples["maps"][v])), float(np.max(examples["maps"][v]))) for v in variants}
    if scale == "shared":
        lo, hi = min(a for a, _ in lims.values()), max(b for _, b in lims.values())
        lims = {v: (lo, hi) for v in variants}
    return lims


def _check_examples(examples: dict[str, Any], variants: Optional[Sequence[str]]) -> list[str]:
    if not examples or not examples.get("maps"):
        raise ValueError("no example maps: expected the dict of dskd.ablation.load_examples (a study run with "
                         "write=True keeps them)")
    names = list(examples["maps"]) if variants is None else list(variants)
    unknown = [v for v in names if v not in examples["maps"]]
    if unknown:
        raise ValueError(f"no example maps for variants {unknown}: the file has {sorted(examples['maps'])}")
    return names


def _draw_example_row(axes, examples, i, variants, lims, with_titles=True):
    images, masks = np.asarray(examples["images"]), np.asarray(examples["masks"])
    t = examples["defect_types"][i]
    axes[0].imshow(images[i], cmap="gray" if images.ndim == 3 else None)
    axes[0].set_title(f"{t} (test image {int(examples['indices'][i])})", fontsize=8)
    axes[1].imshow(masks[i], cmap="gray", vmin=0, vmax=1)
    axes[1].set_title(f"ground truth ({100 * masks[i].mean():.1f}% px)", fontsize=8)
    ims = []
    for ax, v in zip(axes[2:], variants):
        m = examples["maps"][v][i]
        lo, hi = lims[v]
        ims.append(ax.imshow(m, cmap=MAP_CMAP, vmin=lo, vmax=hi))
        ax.set_title(f"{v}\nmax {float(m.max()):.3g}" if with_titles else f"max {float(m.max()):.3g}", fontsize=8)
    return ims


def plot_variant_maps(
    examples: dict[str, Any],
    *,
    defect_type: str = "good",
    index: int = 0,
    variants: Optional[Sequence[str]] = None,
    scale: str = "shared",
    teacher: str,
    data: str,
    study: str = "",
) -> Figure:
    """One example test image of ``defect_type`` (``index``-th of that type): image | ground truth | each
    variant's seed-0 anomaly map (Eq. 9), titled with its maximum (the image score, Eq. 10).

    ``scale="shared"``: one colour scale for every variant and example image, so brightness compares
    across variants and images; ``"per variant"``: each variant its own scale (over all its example
    images), to compare the *shape* of maps whose levels differ (lambda, normalisation). The explorer
    :func:`dskd.widgets.ablation_explorer` renders with this function.
    """
    names = _check_examples(examples, variants)
    types = list(examples["defect_types"])
    of_type = [j for j, t in enumerate(types) if t == defect_type]
    if not of_type:
        raise ValueError(f"no example of defect type {defect_type!r}: the file has {sorted(set(types))}")
    if not 0 <= index < len(of_type):
        raise ValueError(f"index must be in 0..{len(of_type) - 1} for {defect_type!r}, got {index}")
    i = of_type[index]
    lims = _scales(examples, names, scale)
    with dskd_style():
        n = 2 + len(names)
        fig, axes = plt.subplots(1, n, figsize=(1.85 * n + 0.9, 3.0), squeeze=False, layout="constrained")
        ims = _draw_example_row(axes[0], examples, i, names, lims)
        clean_axes(axes)
        if scale == "shared":
            fig.colorbar(ims[0], ax=axes[0, 2:].tolist(), shrink=0.8, label="anomaly score (Eq. 9)")
        else:
            for ax, im in zip(axes[0, 2:], ims):
                fig.colorbar(im, ax=ax, orientation="horizontal", shrink=0.9, pad=0.02)
        label = f"Ablation '{study}': seed-0 maps per variant" if study else "Seed-0 maps per variant"
        fig.suptitle(_wrap(provenance_title(f"{label} ({scale} colour scale)", teacher, data), 110))
    return fig


def plot_variant_gallery(
    examples: dict[str, Any],
    *,
    per_type: int = 1,
    variants: Optional[Sequence[str]] = None,
    scale: str = "shared",
    teacher: str,
    data: str,
    study: str = "",
) -> Figure:
    """Rows: the first ``per_type`` example images of every defect type ('good' first); columns: image |
    ground truth | each variant's seed-0 map, titled with its maximum (Eq. 10). One colour scale for
    the whole figure with ``scale="shared"``, one per variant column with ``"per variant"``."""
    names = _check_examples(examples, variants)
    if per_type < 1:
        raise ValueError(f"per_type must be >= 1, got {per_type}")
    rows = _example_rows(examples, per_type)
    lims = _scales(examples, names, scale)
    with dskd_style():
        n = 2 + len(names)
        fig, axes = plt.subplots(len(rows), n, figsize=(1.6 * n + 0.9, 1.65 * len(rows) + 1.0), squeeze=False,
                                 layout="constrained")
        for r, i in enumerate(rows):
            ims = _draw_example_row(axes[r], examples, i, names, lims, with_titles=(r == 0))
        clean_axes(axes)
        for r, i in enumerate(rows):
            axes[r, 0].set_ylabel(examples["defect_types"][i])
        if scale == "shared":
            fig.colorbar(ims[0], ax=axes[:, 2:].ravel().tolist(), shrink=0.6, label="anomaly score (Eq. 9)")
        else:
            for c, im in enumerate(ims):
                fig.colorbar(im, ax=axes[-1, 2 + c], orientation="horizontal", shrink=0.9, pad=0.02)
        label = f"Ablation '{study}'" if study else "Ablation"
        fig.suptitle(_wrap(provenance_title(
            f"{label}: the same test images under every variant (seed 0, {scale} colour scale)", teacher, data), 120))
    return fig


def plot_level_discrepancy(
    levels: dict[str, dict[str, Sequence[float]]],
    *,
    teacher: str,
    data: str,
    title: str = "Where the inference pair disagrees, level by level",
) -> Figure:
    """Per variant (from :func:`dskd.ablation.level_discrepancy`): left, the mean M_k over normal images
    (how closely the pair agrees where nothing is wrong); right, defect pixels / normal pixels."""
    if not levels:
        raise ValueError("levels is empty: expected {variant: level_discrepancy(...)}")
    with dskd_style():
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.5, 3.6), layout="constrained")
        n = len(levels)
        width = 0.8 / n
        x = np.arange(3)
        for i, (name, d) in enumerate(levels.items()):
            pos = x - 0.4 + width * (i + 0.5)
            a1.bar(pos, d["normal"], width * 0.9, color=f"C{i}", label=name)
            a2.bar(pos, d["contrast"], width * 0.9, color=f"C{i}", label=name)
        for ax in (a1, a2):
            ax.set_xticks(x, ["M1 (H/4)", "M2 (H/8)", "M3 (H/16)"])
            ax.set_xlabel("pyramid level (map resolution)")
        a1.set_ylabel("mean M_k on normal images (Eq. 6)")
        a1.set_title("agreement on normal images (lower = closer)", fontsize=9)
        a2.axhline(1.0, color="grey", lw=0.8, ls="--")
        a2.set_ylabel("defect pixels / normal pixels")
        a2.set_title("contrast (1 = defects do not stand out)", fontsize=9)
        a2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.suptitle(_wrap(provenance_title(title, teacher, data), 110))
    return fig
