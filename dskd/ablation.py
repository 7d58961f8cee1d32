"""The ablation studies of Sec. 4.3 (Tables 7, 8, 9) and the ones a reader will ask for next.

Each study is a list of variants; a variant changes the training config, the inference settings,
or both. Variants with identical training configs share one trained model (:func:`train_or_load`),
so ``layers`` and ``sigma`` never retrain, and the DS baseline is trained once for all studies.

Results go to ``results/ablations/<dataset>/<study>.json``: one record per (variant, seed) with
the metrics and their provenance. Running a subset of variants adds to the file and keeps the
records of other variants, so long studies can be run in pieces.
"""
from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from .config import TrainConfig
from .evaluation import evaluate
from .provenance import provenance, write_json
from .training import data_description, dataset_for, run_key, train_or_load

RESULTS_SCHEMA = 1
#: test images per defect type (and normal images) whose maps each study keeps for the chapters' browsers
EXAMPLES_PER_TYPE = 2


@dataclass(frozen=True)
class Variant:
    """One row of a study: training-config changes and inference-setting changes."""

    name: str
    train: dict[str, Any] = field(default_factory=dict)
    infer: dict[str, Any] = field(default_factory=dict)


STUDIES: dict[str, tuple[Variant, ...]] = {
    # Table 7 / Fig. 9
    "architecture": tuple(Variant(s, {"structure": s}) for s in ("DS", "T-E", "T-D", "E-D")),
    # Table 8
    "dfe": (Variant("with DFE", {"use_dfe": True}), Variant("without DFE", {"use_dfe": False})),
    # Table 9: one trained DS model, maps from single layers or all of them
    "layers": (Variant("M1", infer={"layers": (1,)}), Variant("M2", infer={"layers": (2,)}),
               Variant("M3", infer={"layers": (3,)}), Variant("M1-3", infer={"layers": (1, 2, 3)})),
    # beyond the paper
    "teacher": (Variant("imagenet", {"teacher": "imagenet"}),
                Variant("offline-pretrained", {"teacher": "offline-pretrained"}),
                Variant("random", {"teacher": "random"})),
    "lambda": tuple(Variant(f"lambda={lam:g}", {"lam": lam}, {"lam": lam}) for lam in (0.0, 0.1, 1.0, 10.0)),
    "normalization": (Variant("unit", {"normalization": "unit"}, {"normalization": "unit"}),
                      Variant("eq3", {"normalization": "eq3"}, {"normalization": "eq3"})),
    "loss-form": (Variant("pixel", {"loss_form": "pixel"}), Variant("flat", {"loss_form": "flat"})),
    "sigma": tuple(Variant(f"sigma={s:g}", infer={"sigma": s}) for s in (0.0, 2.0, 4.0, 8.0)),
}

#: the paper's MVTec AD means (image AUROC, pixel AUROC, PRO), in percent
PAPER_RESULTS: dict[str, dict[str, tuple[float, float, float]]] = {
    "architecture": {"DS": (98.5, 97.6, 93.5), "T-E": (95.3, 96.1, 89.4), "T-D": (97.8, 97.1, 93.1),
                     "E-D": (93.2, 94.6, 87.7)},
    "dfe": {"with DFE": (98.5, 97.6, 93.5), "without DFE": (75.6, 89.6, 76.5)},
    "layers": {"M1": (96.0, 95.9, 88.0), "M2": (96.5, 96.4, 91.0), "M3": (92.7, 94.2, 88.7),
               "M1-3": (98.5, 97.5, 93.5)},
}
PAPER_TABLE = {"architecture": "Table 7", "dfe": "Table 8", "layers": "Table 9"}
METRICS = ("image_auroc", "pixel_auroc", "pro")


def study_variants(study: str, names: Optional[Sequence[str]] = None) -> tuple[Variant, ...]:
    """The variants of a study, or the named subset (in the study's order)."""
    if study not in STUDIES:
        raise ValueError(f"unknown study {study!r}: expected one of {tuple(STUDIES)}")
    variants = STUDIES[study]
    if names is None:
        return variants
    known = {v.name for v in variants}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"study {study!r} has no variant {unknown}: its variants are {sorted(known)}")
    return tuple(v for v in variants if v.name in names)


def results_path(out_dir: Path | str, cfg: TrainConfig, study: str) -> Path:
    dataset = cfg.dataset if cfg.dataset != "synthetic" else f"synthetic-{cfg.category}"
    return Path(out_dir) / dataset / f"{study}.json"


def load_results(path: Path | str) -> dict[str, Any]:
    """A study's results file, or an empty one."""
    path = Path(path)
    if not path.is_file():
        return {"schema": RESULTS_SCHEMA, "records": []}
    data = json.loads(path.read_text())
    if data.get("schema") != RESULTS_SCHEMA or not isinstance(data.get("records"), list):
        raise ValueError(f"{path} is not a dskd ablation results file (schema {RESULTS_SCHEMA})")
    return data


def merge_records(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep every earlier record except those a new one replaces (same variant, seed and run)."""
    def key(r: dict[str, Any]) -> tuple:
        return r["variant"], r["seed"], r["run_key"]

    replaced = {key(r) for r in new}
    return [r for r in old if key(r) not in replaced] + list(new)


def example_indices(defect_types: Sequence[str], per_type: int = EXAMPLES_PER_TYPE) -> list[int]:
    """The first ``per_type`` test images of every defect type ('good' first), in split order: the
    same images for every variant and seed of every study."""
    order = ["good"] + sorted(set(defect_types) - {"good"})
    return [i for t in order for i in [j for j, d in enumerate(defect_types) if d == t][:per_type]]


def examples_path(results_file: Path | str) -> Path:
    return Path(results_file).with_name(Path(results_file).stem + "_examples.npz")


def save_examples(path: Path, examples: dict[str, dict[str, Any]], test_set) -> Path:
    """Write (and merge into) ``<study>_examples.npz``: the example images (uint8), masks, defect
    types and, per variant, its seed-0 anomaly maps (float16)."""
    old = load_examples(path)
    maps = dict(old.get("maps", {}))
    for name, ex in examples.items():
        maps[name] = ex["maps"]
    first = next(iter(examples.values()))
    idx = first["indices"]
    if old and list(old["indices"]) != list(idx):
        maps = {name: ex["maps"] for name, ex in examples.items()}  # another split: start again
    images = np.stack([test_set[i]["image"].numpy() for i in idx])  # (N, 3, H, W), normalised
    lo, hi = images.min(axis=(1, 2, 3), keepdims=True), images.max(axis=(1, 2, 3), keepdims=True)
    images = np.round(255 * (images - lo) / np.maximum(hi - lo, 1e-8)).astype(np.uint8).transpose(0, 2, 3, 1)
    names = sorted(maps)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, indices=np.asarray(idx), images=images, masks=first["masks"].astype(np.uint8),
                        defect_types=np.asarray(first["defect_types"]), variants=np.asarray(names),
                        **{f"maps_{i}": maps[n].astype(np.float16) for i, n in enumerate(names)})
    return path


def load_examples(path: Path | str) -> dict[str, Any]:
    """The examples file of a study as a dict (``maps``: variant -> (N, H, W)), or {} if absent."""
    path = Path(path)
    if not path.is_file():
        return {}
    with np.load(path) as z:
        names = [str(n) for n in z["variants"]]
        return {"indices": z["indices"], "images": z["images"], "masks": z["masks"],
                "defect_types": [str(t) for t in z["defect_types"]],
                "maps": {n: z[f"maps_{i}"].astype(np.float32) for i, n in enumerate(names)}}


def run_study(
    study: str,
    base: TrainConfig,
    *,
    variants: Optional[Sequence[str]] = None,
    seeds: Sequence[int] = (0,),
    out_dir: Path | str = "results/ablations",
    progress: bool = True,
    write: bool = True,
) -> dict[str, Any]:
    """Train (or load) and evaluate every (variant, seed); write and return the results file."""
    chosen = study_variants(study, variants)
    new_records = []
    examples: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        for variant in chosen:
            cfg = base.replace(seed=seed, **variant.train)
            started = time.perf_counter()
            result = train_or_load(cfg, progress=progress)
            infer = {k: getattr(cfg, k) for k in ("sigma", "layers", "lam", "normalization")}
            infer.update(variant.infer)
            test_set = dataset_for(cfg, "test")
            report = evaluate(result.model, test_set, batch_size=cfg.batch_size, **infer)
            if seed == 0:  # the browsers show seed 0; other seeds only add numbers
                pred = report.prediction
                idx = example_indices(pred.defect_types)
                examples[variant.name] = {"indices": idx, "maps": pred.maps[idx].numpy(),
                                          "masks": pred.masks[idx].numpy(),
                                          "defect_types": [pred.defect_types[i] for i in idx]}
            new_records.append({
                "study": study, "variant": variant.name, "seed": seed, "run_key": run_key(cfg),
                "image_auroc": report.image_auroc, "pixel_auroc": report.pixel_auroc, "pro": report.pro,
                "per_defect_type": report.per_defect_type,
                "train_seconds": result.seconds, "trained_now": not result.extra.get("cached", False),
                "seconds_per_image": report.seconds_per_image,
                "inference": {k: list(v) if isinstance(v, tuple) else v for k, v in infer.items()},
                "config": cfg.to_dict(),
                "provenance": provenance(
                    next(result.model.parameters()).device,
                    teacher=report.teacher, data=data_description(cfg), split="test",
                    n_test=report.n_images, epochs=cfg.epochs, image_size=cfg.image_size, seed=seed,
                    training=result.provenance, wall_seconds=round(time.perf_counter() - started, 2)),
            })
    path = results_path(out_dir, base, study)
    with _locked(path if write else None):  # several `dskd ablate` processes may share a results file
        data = load_results(path)
        data.update(schema=RESULTS_SCHEMA, study=study, dataset=data_description(base),
                    records=merge_records(data["records"], new_records))
        if write:
            write_json(path, data)
            data["path"] = str(path)
            if examples:
                data["examples_path"] = str(save_examples(examples_path(path), examples, test_set))
    return data


@contextmanager
def _locked(path: Optional[Path]) -> Iterator[None]:
    """An exclusive lock on ``<path>.lock`` (POSIX; no lock elsewhere or when ``path`` is None)."""
    try:
        import fcntl
    except ImportError:  # Windows: one process at a time is the user's job
        fcntl = None
    if path is None or fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def summarize(records: Sequence[dict[str, Any]], study: str) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds, per variant, in the study's order."""
    order = [v.name for v in STUDIES.get(study, ())]
    names = sorted({r["variant"] for r in records}, key=lambda n: (order.index(n) if n in order else len(order), n))
    rows = []
    for name in names:
        rs = [r for r in records if r["variant"] == name]
        row: dict[str, Any] = {"variant": name, "n_seeds": len(rs),
                               "teacher": sorted({r["provenance"]["teacher"] for r in rs}),
                               "epochs": sorted({r["config"]["epochs"] for r in rs})}
        for m in METRICS:
            values = np.array([r[m] for r in rs if r[m] is not None and not math.isnan(r[m])], dtype=float)
            row[m] = float(values.mean()) if len(values) else float("nan")
            row[m + "_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def study_figure(data: dict[str, Any], study: str):
    """The study's figure from its results file (teacher, data and epochs in the title)."""
    from .plotting import plot_study

    rows = summarize(data["records"], study)
    teachers = sorted({t for r in rows for t in r["teacher"]})
    epochs = sorted({e for r in rows for e in r["epochs"]})
    return plot_study(rows, study=study, teacher=", ".join(teachers),
                      data=f"{data.get('dataset', '?')}, {'/'.join(map(str, epochs))} epochs",
                      paper=PAPER_RESULTS.get(study))


def write_study(data: dict[str, Any], study: str) -> Path:
    """Save ``<study>.png`` beside the results file; returns its path."""
    from matplotlib import pyplot as plt

    png = Path(data["path"]).with_suffix(".png")
    fig = study_figure(data, study)
    fig.savefig(png)
    plt.close(fig)
    return png
