"""What the results chapter reads from the result files: the runs behind a table, the gaps to the paper,
and a run's example maps redrawn from its checkpoint."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Subset

from ..checkpoint import load_checkpoint
from ..config import TrainConfig
from ..data import DatasetError
from ..evaluation import predict
from ..paper_results import OURS, display_name
from ..training import data_description, dataset_for
from .jobs import METRICS, PathLike



def run_field(record: dict[str, Any], name: str) -> Any:
    """A setting of one run as its provenance records it (the config's value if the provenance lacks it)."""
    value = record.get("provenance", {}).get(name)
    return record.get("config", {}).get(name) if value is None else value


def run_rows(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per result record: what produced it (teacher, epochs, image size, device, commit, command)
    and its metrics in percent. Fields a record lacks are None."""
    rows = []
    for r in records:
        prov, training = r.get("provenance", {}), r.get("training", {})
        metrics = r.get("metrics", {})
        rows.append({
            "category": r.get("category"), "seed": r.get("seed"), "teacher": prov.get("teacher"),
            "epochs": run_field(r, "epochs"), "image_size": run_field(r, "image_size"),
            "device": prov.get("device"), "train_seconds": training.get("train_seconds"),
            "n_train": prov.get("n_train"), "n_test": prov.get("n_test"), "split": prov.get("split"),
            "time_utc": prov.get("time_utc"), "git_commit": prov.get("git_commit"),
            "paper_setting": not r.get("deviations_from_paper"), "deviations": list(r.get("deviations_from_paper", [])),
            "metrics": {m: None if metrics.get(m) is None else round(100 * metrics[m], 2) for m in METRICS},
            "result": r.get("_path"), "figures": list(r.get("figures", [])), "command": r.get("reproduce_command"),
            "checkpoint": training.get("checkpoint"),
        })
    return rows



def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"



def format_percent(v: Optional[float]) -> str:
    """A number already in percent with one decimal, or "n/a"."""
    return "n/a" if v is None else f"{v:.1f}"



def runs_markdown(runs: Sequence[dict[str, Any]], *, metrics: Sequence[str] = METRICS) -> str:
    """The runs behind a table (rows of :func:`run_rows`) as Markdown: one row per result file, naming
    its teacher weights, epochs, image size and device beside its metrics (%)."""
    names = {"image_auroc": "Image AUROC", "pixel_auroc": "Pixel AUROC", "pro": "PRO"}
    with_cat = any(r["category"] for r in runs)
    header = (["Category"] if with_cat else []) + ["Seed", "Teacher", "Epochs", "Image size", "Device",
                                                   "Training time", *(names[m] for m in metrics)]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in runs:
        size = "n/a" if r["image_size"] is None else f"{r['image_size']}x{r['image_size']}"
        cells = ([display_name(r["category"])] if with_cat else []) + [
            str(r["seed"]), r["teacher"] or "n/a", "n/a" if r["epochs"] is None else str(r["epochs"]), size,
            r["device"] or "n/a", _duration(r["train_seconds"]), *(format_percent(r["metrics"][m]) for m in metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)



_TABLE_METRICS = {"Table 1": ("image_auroc",), "Table 3": ("image_auroc",), "Table 2": ("pixel_auroc", "pro"),
                  "Table 4": ("pixel_auroc", "pro"), "Table 5": METRICS}



def _paper_ours(table: dict[str, Any], category: Optional[str], metric: str) -> Optional[float]:
    """The paper's DSKD number for one cell of a table (a dict of :func:`build_tables`, or its JSON)."""
    name = table["table"]
    if name == "Table 5":
        return table["paper"][OURS][list(METRICS).index(metric)]
    value = table["paper"][OURS][category]
    if name in ("Table 1", "Table 3"):
        return value
    return value[0 if metric == "pixel_auroc" else 1]



def paper_gaps(table: dict[str, Any]) -> list[dict[str, Any]]:
    """Every cell where this rebuild has a number beside the paper's: rebuild minus paper, in points.

    One dict per (category, metric) with ``paper``, ``ours``, ``std``, ``diff``, ``n_seeds``,
    ``paper_setting`` and ``deviations``; cells without a run of ours are left out.
    """
    metrics = _TABLE_METRICS[table["table"]]
    cells = ([(None, "MT Defects", table["ours"])] if table["table"] == "Table 5" and table.get("ours") else
             [(r["category"], r["name"], r["ours"]) for r in table.get("rows", []) if r.get("ours")])
    gaps = []
    for category, name, ours in cells:
        for m in metrics:
            cell, paper = ours.get(m), _paper_ours(table, category, m)
            if cell is None or cell["value"] is None:
                continue
            gaps.append({"category": category, "name": name, "metric": m, "paper": paper, "ours": cell["value"],
                         "std": cell.get("std"), "diff": None if paper is None else round(cell["value"] - paper, 2),
                         "n_seeds": cell["n_seeds"], "paper_setting": cell["paper_setting"],
                         "deviations": cell["deviations"]})
    return gaps



def _existing(path: Optional[str], bases: Sequence[Path]) -> Optional[Path]:
    if not path:
        return None
    p = Path(path).expanduser()
    for candidate in ([p] if p.is_absolute() else [p, *(b / p for b in bases)]):
        if candidate.is_file():
            return candidate
    return None



def redraw_examples(record: dict[str, Any], *, base: Optional[PathLike] = None, per_type: int = 1, start: int = 0,
                    defect_types: Optional[Sequence[str]] = None, device: str = "cpu") -> Optional[dict[str, Any]]:
    """Image, anomaly map and mask of test images of a result record, recomputed from its checkpoint.

    Takes images ``start`` to ``start + per_type - 1`` of each defect type in file order (never picked
    by score), as :func:`save_figures` does, and returns the keyword arguments of
    :func:`dskd.plotting.plot_anomaly_grid` (``images``, ``maps``, ``masks``, ``titles``, ``teacher``,
    ``data``, ``title``) plus ``indices``. Relative checkpoint paths are looked up from the current
    folder and from ``base`` (the folder the run was started in). Returns None when the checkpoint or
    the data set is not on this machine: then the figures the run wrote are all there is.
    """
    bases = [Path(base)] if base is not None else []
    ckpt = _existing(record.get("training", {}).get("checkpoint"), bases)
    if ckpt is None:
        return None
    cfg = TrainConfig.from_dict(record["config"])
    root = record.get("provenance", {}).get("data_root") or cfg.data_root
    try:
        test_set = dataset_for(cfg.replace(data_root=root, device=device), "test")
    except (DatasetError, FileNotFoundError, OSError):
        return None
    types = test_set.defect_types_list()
    wanted = [t for t in (defect_types or sorted(set(types) - {"good"})) if t in types]
    indices = [i for t in wanted for i in [j for j, u in enumerate(types) if u == t][start:start + per_type]]
    if not indices:
        return None
    model, _, payload = load_checkpoint(ckpt)
    model = model.to(device)
    pred = predict(model, Subset(test_set, indices), cfg.inference(), batch_size=cfg.batch_size)
    items = [test_set[i] for i in indices]
    return {"images": torch.stack([it["image"] for it in items]), "maps": pred.maps,
            "masks": torch.stack([it["mask"] for it in items]),
            "titles": [f"{types[i]}\nscore {float(s):.3f}" for i, s in zip(indices, pred.scores)],
            "teacher": model.teacher_description, "data": data_description(cfg) + ", test split",
            "title": f"Redrawn from {ckpt.name} ({record.get('training', {}).get('epochs')} epochs): images "
                     f"{start + 1}-{start + per_type} of each defect type in file order",
            "indices": indices}


def seed_comparison(records_a: Sequence[dict[str, Any]], records_b: Sequence[dict[str, Any]], *,
                         labels: tuple[str, str] = ("fp32", "bf16")) -> dict[str, Any]:
    """The same seeds trained two ways (two precisions, two builds), metric by metric: each side's mean and
    seed standard deviation (percent) and whether the difference of the means lies within the seed spread (at
    most the larger of the two standard deviations). ``records_a`` / ``records_b``: result records of
    :func:`dskd.reproduce.run_job`; ``labels`` name the two sides.
    """
    rows = []
    for m in METRICS:
        sides = []
        for records in (records_a, records_b):
            values = np.array([100 * r["metrics"][m] for r in records if r["metrics"].get(m) is not None])
            sides.append((float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None, len(values)))
        (mean_a, std_a, n_a), (mean_b, std_b, n_b) = sides
        spread = max(s for s in (std_a, std_b) if s is not None) if (std_a or std_b) else None
        diff = mean_b - mean_a
        rows.append({"metric": m, labels[0]: round(mean_a, 2), f"{labels[0]}_std": std_a and round(std_a, 2),
                     labels[1]: round(mean_b, 2), f"{labels[1]}_std": std_b and round(std_b, 2),
                     "n": (n_a, n_b), "difference": round(diff, 2), "spread": spread and round(spread, 2),
                     "within_spread": spread is not None and abs(diff) <= spread})
    return {"labels": list(labels), "rows": rows, "all_within_spread": all(r["within_spread"] for r in rows),
            "seeds": {labels[0]: sorted(r["seed"] for r in records_a), labels[1]: sorted(r["seed"] for r in records_b)}}


def seed_comparison_markdown(comparison: dict[str, Any], *, difference: Optional[str] = None) -> str:
    """:func:`seed_comparison` as a Markdown table with one sentence that says what it shows; ``difference``
    heads the column of differences (default '<b> − <a>')."""
    a, b = comparison["labels"]
    names = {"image_auroc": "Image AUROC", "pixel_auroc": "Pixel AUROC", "pro": "PRO"}
    lines = [f"| Metric (%) | {a} | {b} | {difference or f'{b} − {a}'} | seed spread | within |",
             "| --- | --- | --- | --- | --- | --- |"]

    def spread_text(value: Optional[float]) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    for r in comparison["rows"]:
        def cell(name: str) -> str:
            std = r[f"{name}_std"]
            return f"{r[name]:.1f}" + (f" ± {std:.1f}" if std is not None else "")
        lines.append(f"| {names[r['metric']]} | {cell(a)} | {cell(b)} | {r['difference']:+.1f} | "
                     f"{spread_text(r['spread'])} | "
                     f"{'yes' if r['within_spread'] else 'no'} |")
    verdict = ("every difference lies within the seed spread" if comparison["all_within_spread"] else
               "not every difference lies within the seed spread")
    seeds = "; ".join(f"{name}: seeds {', '.join(map(str, comparison['seeds'][name]))}" for name in (a, b))
    lines += ["", f"{seeds}. {verdict[0].upper() + verdict[1:]} (the spread is the larger of the two seed "
              f"standard deviations)."]
    return "\n".join(lines)
