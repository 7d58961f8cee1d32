"""The "runs in this book" table: every recorded DS configuration behind a number of the book, with its
teacher, epochs, image size and seeds, and the chapters that quote it. One table, generated from the files
in ``results/``, explains why the same model on MT Defects reads 71.5 % in one chapter and 90.7 % in another.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from ..config import TrainConfig
from ..results import results_root
from .teacher import teacher_in_use

#: a recorded result folder (relative to results/) -> the chapters that read it (notebook stems)
WHERE_USED: dict[str, tuple[str, ...]] = {
    "mt-defects": ("15_results",),
    "mt-defects-100-epochs": ("15_results",),
    "mt-defects-bf16": ("14_complexity", "15_results"),
    "mt-defects-fp32": ("14_complexity", "15_results"),
    "mvtec": ("15_results",),
    "mvtec3d": ("15_results",),
    "ablations": ("10_ablation_architecture", "11_ablation_dfe", "12_ablation_layers", "13_ablation_extras",
                  "16_teacher_knowledge"),
    "ablations-40-epochs": ("10_ablation_architecture", "11_ablation_dfe", "12_ablation_layers", "13_ablation_extras",
                            "16_teacher_knowledge", "appendix_same_teacher"),
    "baselines": ("appendix_same_teacher",),
}
#: the settings of DS as the paper trains it; an ablation record with all of them is the study's baseline
BASELINE = {"structure": "DS", "use_dfe": True, "layers": [1, 2, 3], "lam": 0.1, "normalization": "unit",
            "loss_form": "pixel", "sigma": 4.0}
#: the synthetic category of the live studies of chapters 8 and 10-13 (harder than the default, so that
#: their variants differ on screen)
LIVE_STUDY_CATEGORY = "fabric"
#: the page of the book that shows the table (chapters link to it)
PAGE = "book/runs_in_this_book"


def build_label(config: dict[str, Any]) -> str:
    """:meth:`TrainConfig.build_label` of a recorded config (one written before the options existed reads
    as the build of that time, 'raw, joint')."""
    return TrainConfig.from_dict(config).build_label()


#: the build of the studies' DS baseline and of every run recorded before the readings became options
EARLIER_BUILD = "raw, joint"


def _json(path: Path) -> Optional[dict[str, Any]]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _teacher_name(record: dict[str, Any]) -> str:
    return record.get("config", {}).get("teacher") or str(record.get("provenance", {}).get("teacher", "n/a"))


def _reproduce_rows(root: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(root.rglob("seed*.json")):
        rec = _json(path)
        if not rec or rec.get("kind") != "dskd-reproduce-result" or "metrics" not in rec or "benchmark" not in rec:
            continue
        folder = path.relative_to(root).parts[0]
        cfg = rec.get("config", {})
        rows.append({"folder": folder, "what": f"`dskd reproduce {rec['benchmark']}`",
                     "data": rec["benchmark"] + (f" ({rec['category']})" if rec.get("category") else ""),
                     "teacher": _teacher_name(rec), "epochs": rec.get("training", {}).get("epochs", cfg.get("epochs")),
                     "image_size": cfg.get("image_size"), "seed": rec.get("seed"),
                     "category": rec.get("category"), "precision": cfg.get("precision", "fp32"),
                     "build": build_label(cfg), "image_auroc": rec["metrics"].get("image_auroc")})
    return rows


def _ablation_rows(root: Path) -> list[dict[str, Any]]:
    rows, seen = [], set()
    for path in sorted(root.glob("ablations*/*/*.json")):
        data = _json(path)
        if not data or "records" not in data:
            continue
        folder = path.relative_to(root).parts[0]
        for rec in data["records"]:
            cfg = rec.get("config", {})
            if any(cfg.get(k) != v for k, v in BASELINE.items()) or build_label(cfg) != EARLIER_BUILD:
                continue  # a variant of a study, not the DS its variants are compared with
            key = (folder, cfg.get("dataset"), cfg.get("teacher"), cfg.get("epochs"), cfg.get("image_size"),
                   cfg.get("precision", "fp32"), rec.get("seed"))
            if key in seen:  # the same trained model serves as every study's baseline
                continue
            seen.add(key)
            rows.append({"folder": folder, "what": "`dskd ablate` (the studies' DS baseline)",
                         "data": cfg.get("dataset", "n/a"), "teacher": cfg.get("teacher", "n/a"),
                         "epochs": cfg.get("epochs"), "image_size": cfg.get("image_size"), "seed": rec.get("seed"),
                         "category": cfg.get("category"), "precision": cfg.get("precision", "fp32"),
                         "build": EARLIER_BUILD, "image_auroc": rec.get("image_auroc")})
    return rows


def recorded_runs(root: Optional[os.PathLike] = None) -> list[dict[str, Any]]:
    """One entry per recorded DS configuration: folder, data, teacher, epochs, image size, seeds, the image
    AUROC (mean and standard deviation over seeds, categories pooled) and the chapters that use it."""
    root = Path(root) if root is not None else results_root()
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in _reproduce_rows(root) + _ablation_rows(root):
        key = (r["folder"], r["what"], r["data"] if not r["category"] else r["data"].split(" (")[0], r["teacher"],
               r["epochs"], r["image_size"], r["precision"], r["build"])
        groups.setdefault(key, []).append(r)
    runs = []
    for (folder, what, data, teacher, epochs, size, precision, build), rows in groups.items():
        values = [r["image_auroc"] for r in rows if r["image_auroc"] is not None]
        runs.append({"folder": folder, "what": what, "data": data, "teacher": teacher, "epochs": epochs,
                     "image_size": size, "precision": precision, "build": build,
                     "seeds": sorted({r["seed"] for r in rows}, key=str),
                     "categories": len({r["category"] for r in rows}),
                     "image_auroc": float(np.mean(values)) if values else None,
                     # the sample standard deviation, as the tables of dskd.reproduce and dskd.ablation
                     "image_auroc_std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
                     "where": WHERE_USED.get(folder, ())})
    return sorted(runs, key=lambda r: (r["data"], r["teacher"] != "offline-pretrained", r["epochs"] or 0,
                                       r["folder"]))


def chapter_link(stem: str, base: str = "../notebooks/") -> str:
    """A Markdown link to a chapter by its notebook stem ('15_results' -> [15](../notebooks/15_results.ipynb))."""
    return f"[{stem.split('_')[0]}]({base}{stem}.ipynb)"


def runs_markdown(root: Optional[os.PathLike] = None, *, base: str = "../notebooks/") -> str:
    """The table of :func:`recorded_runs` as Markdown, with the chapters' live runs as its last row."""
    root = Path(root) if root is not None else results_root()
    runs = recorded_runs(root)
    lines = ["| data | teacher | epochs | image size | precision | build | seeds | DS image AUROC | written by | "
             "results/ folder | used in chapters |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        auroc = "n/a" if r["image_auroc"] is None else f"{100 * r['image_auroc']:.1f}"
        if r["image_auroc_std"] is not None:
            auroc += f" ± {100 * r['image_auroc_std']:.1f}"
        seeds = ", ".join(map(str, r["seeds"])) + (f" ({r['categories']} categories)" if r["categories"] > 1 else "")
        size = f"{r['image_size']} x {r['image_size']}" if r["image_size"] else "n/a"
        lines.append(f"| {r['data']} | `{r['teacher']}` | {r['epochs']} | {size} | {r['precision']} | {r['build']} | "
                     f"{seeds} | "
                     f"**{auroc}** | "
                     f"{r['what']} | `{r['folder']}/` | {', '.join(chapter_link(c, base) for c in r['where'])} |")
    quick = TrainConfig.quick()
    lines.append(f"| synthetic ({quick.category}; {LIVE_STUDY_CATEGORY} in chapters 8 and 10-13), generated | "
                 f"`{teacher_in_use()}` (`$DSKD_TEACHER`) | "
                 f"{quick.epochs} by default, fewer where a chapter says | {quick.image_size} x {quick.image_size} | "
                 f"auto (bf16 where native) | {quick.build_label()} | "
                 f"0 | printed by each chapter | the chapter itself, live (`TrainConfig.quick()`) | none | 3-13 |")
    return "\n".join(lines)


def runs_summary(root: Optional[os.PathLike] = None) -> str:
    """A few sentences that explain the MT Defects numbers of the table: the same DS, different budgets."""
    runs = [r for r in recorded_runs(root) if r["data"] == "mt-defects" and r["image_auroc"] is not None
            and r["teacher"] != "random"]
    if not runs:
        return "No MT Defects run is recorded yet, so every number of ours in the book comes from a live run."
    builds = sorted({r["build"] for r in runs})
    parts = [f"**{100 * r['image_auroc']:.1f}** after {r['epochs']} epochs ({len(r['seeds'])} seed"
             f"{'s' if len(r['seeds']) > 1 else ''}, {r['precision']}"
             + (f", {r['build']}" if len(builds) > 1 else "") + f", `{r['folder']}/`)"
             for r in sorted(runs, key=lambda r: (r["epochs"], r["build"] != EARLIER_BUILD, r["precision"] != "fp32"))]
    teachers = sorted({r["teacher"] for r in runs})
    later = [b for b in builds if b != EARLIER_BUILD]
    why = ("the training budget differs" if not later else
           f"the training budget differs, and so does the build (*{EARLIER_BUILD}* before the default changed, "
           f"*{'*, *'.join(later)}* since; chapters 11 and 13 say why)")
    return (f"DS on MT Defects, with the `{'`, `'.join(teachers)}` teacher at "
            f"{'/'.join(sorted({str(r['image_size']) for r in runs}))} px, scores image AUROC "
            + ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
            + f". The numbers differ because {why}: each chapter quotes the row it reads, and the paper's 200 "
            "epochs with an ImageNet teacher are beyond all of them.")


def chapters_using(folder: str) -> Sequence[str]:
    """The chapters (notebook stems) that read a results folder; an unknown folder raises ``KeyError``."""
    if folder not in WHERE_USED:
        raise KeyError(f"no chapter is known to read results/{folder}/: add it to dskd.report.runs.WHERE_USED")
    return WHERE_USED[folder]


def folders_in(root: Optional[os.PathLike] = None) -> Iterable[str]:
    """The top-level result folders that hold records (for the check that every one is in WHERE_USED)."""
    root = Path(root) if root is not None else results_root()
    return sorted({r["folder"] for r in _reproduce_rows(root) + _ablation_rows(root)})
