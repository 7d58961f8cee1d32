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
import torch
from scipy.stats import kendalltau

from .config import TrainConfig
from .evaluation import evaluate
from .inference import ALL_LAYERS, anomaly_map
from .paper_results import ABLATION_RESULTS, ABLATION_TABLES
from .provenance import grouped_commands, provenance, shown_command, write_json
from .results import shown_path
from .runs import run_key
from .training import data_description, dataset_for, train_or_load

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
    # readings of the paper where it is implicit (issue "The paper's own build"; chapter 5)
    "dfe-blocks": (Variant("1 block", {"dfe_blocks": 1}), Variant("2 blocks", {"dfe_blocks": 2})),
    "dfe-input": (Variant("raw", {"dfe_input": "raw"}), Variant("normalized", {"dfe_input": "normalized"})),
    "decoder-gradient": (Variant("l_d trains S_e", {"detach_decoder_input": False}),
                         Variant("separate", {"detach_decoder_input": True})),
    # Table 7 read as pairs inside one trained DS model (no retraining)
    "pairs": (Variant("T vs S_d", infer={"pair": ("teacher", "decoder")}),
              Variant("T vs S_e", infer={"pair": ("teacher", "encoder")}),
              Variant("S_e vs S_d", infer={"pair": ("encoder", "decoder")})),
}

#: the paper's MVTec AD means (image AUROC, pixel AUROC, PRO) in percent, and its table of each study
PAPER_RESULTS = ABLATION_RESULTS
PAPER_TABLE = ABLATION_TABLES
METRICS = ("image_auroc", "pixel_auroc", "pro")
#: the metrics as the tables and the prose name them
METRIC_NAMES = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "pro": "PRO"}


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
    if write:
        _check_same_build(results_path(out_dir, base, study), base, chosen)
    new_records = []
    examples: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        for variant in chosen:
            cfg = base.replace(seed=seed, **variant.train)
            started = time.perf_counter()
            result = train_or_load(cfg, progress=progress)
            infer = cfg.inference().replace(**variant.infer)
            test_set = dataset_for(cfg, "test")
            report = evaluate(result.model, test_set, infer, batch_size=cfg.batch_size)
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
                "train_seconds": result.seconds, "trained_now": not result.cached,
                "seconds_per_image": report.seconds_per_image,
                "inference": infer.to_dict(),
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


def _check_same_build(path: Path, base: TrainConfig, chosen: Sequence[Variant]) -> None:
    """Refuse, before any training, to add runs of one build to a variant recorded with another: the study
    would average two models under one name (the default build changed after some studies were recorded)."""
    recorded = load_results(path)["records"]
    for variant in chosen:
        want = base.replace(**variant.train).build_label()
        other = sorted({TrainConfig.from_dict(r["config"]).build_label() for r in recorded
                        if r["variant"] == variant.name} - {want})
        if other:
            raise ValueError(f"{str(path)!r} holds {variant.name!r} runs of the build {other[0]!r}, and these would "
                             f"build {want!r}: the study would average the two. Name the recorded build with "
                             f"--dfe-input, --[no-]detach-decoder-input and --dfe-blocks, or choose another --out-dir")


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
            row[m + "_seeds"] = values.tolist()  # one value per seed, for the figures' seed spreads
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


# --------------------------------------------------------------------------------------------------
# For the ablation chapters (10 to 13): the recorded studies, read back with their provenance, beside
# the paper's tables. Nothing here trains; numbers come from results files or from the caller.
# --------------------------------------------------------------------------------------------------
#: How the chapters' recorded studies (``results/ablations/mt-defects/``) are made (results/README.md):
#: MT Defects at the paper's 128 x 128 (``--preset paper``), the offline-pretrained teacher (this project
#: is built without internet, so not the paper's ImageNet teacher), three seeds and a fixed CPU budget of
#: 5 epochs for every variant (the paper: 200). The teacher study runs the two teachers available offline.
#: The records themselves always name the teacher, epochs and seeds they were made with.
RECORDING: dict[str, Any] = {"dataset": "mt-defects", "teacher": "offline-pretrained", "seeds": (0, 1, 2),
                             "epochs": 5, "variants": {"teacher": ("offline-pretrained", "random")}}
_NO_TEACHER = "none (E-D"


def ablate_command(study: str, *, dataset: Optional[str] = None, teacher: Optional[str] = None,
                   seeds: Optional[Sequence[int]] = None, epochs: Optional[int] = None,
                   variants: Optional[Sequence[str]] = None) -> str:
    """The shell command that records ``study`` the way the chapters read it (defaults:
    :data:`RECORDING`; ``<E>`` stands for the epoch budget if none is set there)."""
    variants = RECORDING["variants"].get(study) if variants is None else variants
    study_variants(study, variants)  # validates the names
    dataset = dataset or RECORDING["dataset"]
    teacher = teacher or RECORDING["teacher"]
    seeds = RECORDING["seeds"] if seeds is None else seeds
    epochs = RECORDING["epochs"] if epochs is None else epochs
    subset = f"--variants {','.join(variants)} " if variants else ""
    return (f"DSKD_DATA=<folder> dskd ablate --study {study} {subset}--preset paper --dataset {dataset} "
            f"--epochs {'<E>' if epochs is None else int(epochs)} --teacher {teacher} "
            f"--seeds {','.join(str(int(s)) for s in seeds)}")


def teacher_caveat(teachers: Sequence[str], data: str = "") -> str:
    """One or two sentences on what the named teacher(s) mean for the numbers (Markdown)."""
    synthetic = data.startswith("synthetic")
    notes = []
    if any(t.startswith("random") for t in teachers):
        notes.append("A **random teacher** is random network distillation, not the paper's method: "
                     + ("on these synthetic defects it works, but on real data its numbers are near chance."
                        if synthetic else "on real data such as this its numbers are near chance (image AUROC "
                                          "about 0.5), so differences between variants are mostly noise."))
    if any(t.startswith("offline-pretrained") for t in teachers):
        notes.append("The **offline-pretrained** teacher was pretrained without ImageNet (the project is built "
                     "offline); it is not the paper's ImageNet teacher, so levels need not match the paper's.")
    if any(t.startswith("file ") for t in teachers):
        notes.append("The teacher came from a local weights file (named above); whether it holds the ImageNet "
                     "weights is only as sure as that file.")
    if any(t.startswith("ImageNet") for t in teachers):
        notes.append("The ImageNet teacher is the paper's.")
    if any(t.startswith(_NO_TEACHER) for t in teachers):
        notes.append("E-D has no teacher at all.")
    return " ".join(notes)


@dataclass
class StudyResults:
    """One study's results read back: summary rows, the seed-0 example maps, and what produced them."""

    study: str
    path: Path
    data: Optional[dict[str, Any]]  # the results file; None when there is none
    rows: list[dict[str, Any]]
    examples: dict[str, Any]

    @property
    def present(self) -> bool:
        return bool(self.rows)

    @property
    def records(self) -> list[dict[str, Any]]:
        return list(self.data["records"]) if self.data else []

    @property
    def teachers(self) -> list[str]:
        """The teacher descriptions of the records (E-D's 'none' last)."""
        found = sorted({r["provenance"]["teacher"] for r in self.records})
        return [t for t in found if not t.startswith(_NO_TEACHER)] + [t for t in found if t.startswith(_NO_TEACHER)]

    @property
    def teacher(self) -> str:
        """For titles: the teacher(s) the records name ('none' for E-D only when nothing else)."""
        named = [t for t in self.teachers if not t.startswith(_NO_TEACHER)]
        text = " / ".join(named) if named else "none"
        return text + ("; E-D: none" if named and len(named) < len(self.teachers) else "")

    @property
    def dataset(self) -> str:
        return str(self.data.get("dataset", "?")) if self.data else "?"

    @property
    def epochs(self) -> list[int]:
        return sorted({int(r["config"]["epochs"]) for r in self.records})

    @property
    def seeds(self) -> list[int]:
        return sorted({int(r["seed"]) for r in self.records})

    @property
    def description(self) -> str:
        """'<data>, <E> epochs, seeds 0,1,2' for titles."""
        if not self.present:
            return "no recorded results"
        return (f"{self.dataset}, {'/'.join(map(str, self.epochs))} epochs, "
                f"seed{'s' if len(self.seeds) > 1 else ''} {','.join(map(str, self.seeds))}")

    @property
    def commands(self) -> list[str]:
        """The commands that wrote the records, once each, in the order they ran."""
        return list(dict.fromkeys(shown_command(r["provenance"].get("command", "?")) for r in self.records))

    @property
    def random_teacher(self) -> bool:
        return any(t.startswith("random") for t in self.teachers)

    def caveat(self) -> str:
        return teacher_caveat(self.teachers, self.dataset)

    def figure_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`dskd.plotting.plot_study_comparison` for this study, present or not."""
        if self.present:
            return {"study": self.study, "teacher": self.teacher, "data": self.description,
                    "paper": PAPER_RESULTS.get(self.study)}
        return {"study": self.study, "teacher": f"{RECORDING['teacher']} (to be recorded)",
                "data": f"{RECORDING['dataset']} (no results file yet)", "paper": PAPER_RESULTS.get(self.study),
                "missing": "not recorded yet: " + ablate_command(self.study)}

    def markdown(self) -> str:
        """What was recorded, by what, with which teacher, and the table beside the paper's; or, when
        nothing is, a plain statement and the command that fills it."""
        if not self.present:
            shows = ("this section shows only the paper's numbers" if self.study in PAPER_RESULTS
                     else "there is nothing of ours to show here (and the paper has no such study)")
            return (f"**Not recorded yet.** There is no `{shown_path(self.path)}`, so {shows}. The command that records the study (on {RECORDING['dataset']}, teacher "
                    f"`{RECORDING['teacher']}`, not the paper's ImageNet one):\n\n```bash\n"
                    f"{ablate_command(self.study)}\n```\n\n"
                    + ("`<E>` is the recording's epoch budget (`dskd.ablation.RECORDING['epochs']`, not yet set); "
                       "the records name the epochs they were trained for. " if RECORDING["epochs"] is None else "")
                    + "Rerun this chapter afterwards and the text below fills in from the file.")
        n = len(self.records)
        cmds = "; ".join(f"`{c}`" + (f" for `{values}`" if values else "")  # `<seed>` outside code is an HTML tag
                         for c, values in grouped_commands(self.commands))
        commits = sorted({str(r["provenance"].get("git_commit", "?"))[:12] for r in self.records})
        return (f"**Recorded** in `{shown_path(self.path)}`: {n} runs, variants {', '.join(r['variant'] for r in self.rows)}; "
                f"data {self.dataset}; {'/'.join(map(str, self.epochs))} epochs; seeds "
                f"{', '.join(map(str, self.seeds))}; teacher {self.teacher}. Written by {cmds} at commit "
                f"{', '.join(commits)}. {self.caveat()}\n\n{results_table(self.rows, self.study)}\n\n"
                f"*Ours: mean ± standard deviation over seeds, in %. "
                + ("Paper: MVTec AD means (ImageNet teacher, 200 epochs, 256 x 256); the data sets differ, so "
                   "compare the order of the variants rather than the levels.*" if self.study in PAPER_RESULTS
                   else "The paper has no such study.*"))


def study_results(data: dict[str, Any], study: str) -> StudyResults:
    """A results dict (as :func:`run_study` returns it) with its summary and example maps."""
    ex_path = data.get("examples_path") or (examples_path(data["path"]) if data.get("path") else None)
    examples = load_examples(ex_path) if ex_path else {}
    if examples:  # the study's order (the file keeps them sorted by name)
        order = [v.name for v in STUDIES.get(study, ())]
        examples["maps"] = dict(sorted(examples["maps"].items(),
                                       key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])))
    return StudyResults(study, Path(data.get("path", "")), data, summarize(data["records"], study), examples)


def load_study(folder: Path | str, study: str) -> StudyResults:
    """``<folder>/<study>.json`` and its examples file; ``present`` is False when there is no file."""
    study_variants(study)
    path = Path(folder) / f"{study}.json"
    if not path.is_file():
        return StudyResults(study, path, None, [], {})
    data = load_results(path)
    data["path"] = str(path)
    return study_results(data, study)


def summarize_per_type(records: Sequence[dict[str, Any]], study: str,
                       metric: str = "image_auroc") -> tuple[list[str], list[str], np.ndarray]:
    """(variants, defect types, means (V, T)): ``metric`` per defect type, mean over seeds (NaN where
    undefined). Each defect type is scored against all normal test images (as in :func:`evaluate`)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: expected one of {METRICS}")
    variants = [r["variant"] for r in summarize(records, study)]
    types = sorted({t for r in records for t in r.get("per_defect_type", {})})
    table = np.full((len(variants), len(types)), np.nan)
    for i, v in enumerate(variants):
        for j, t in enumerate(types):
            vals = [r["per_defect_type"][t][metric] for r in records
                    if r["variant"] == v and t in r.get("per_defect_type", {})]
            vals = [x for x in vals if x is not None and not math.isnan(x)]
            if vals:
                table[i, j] = float(np.mean(vals))
    return variants, types, table


def order_by(rows: Sequence[dict[str, Any]], metric: str = "image_auroc") -> list[str]:
    """Variant names, best first, by a metric's mean (NaN last)."""
    return [r["variant"] for r in sorted(rows, key=lambda r: -r[metric] if not math.isnan(r[metric]) else math.inf)]


def paper_order(study: str, metric: str = "image_auroc") -> list[str]:
    """The paper's variants of a study, best first."""
    k = METRICS.index(metric)
    table = PAPER_RESULTS[study]
    return sorted(table, key=lambda v: -table[v][k])


def kendall_tau(order_a: Sequence[str], order_b: Sequence[str]) -> float:
    """Kendall's tau between two rankings of the same names (1: same order, -1: reversed); only the
    names both contain count. NaN with fewer than two."""
    common = [n for n in order_a if n in order_b]
    if len(common) < 2:
        return float("nan")
    rank_b = {n: i for i, n in enumerate(order_b)}
    return float(kendalltau(range(len(common)), [rank_b[n] for n in common]).statistic)


def format_percent_with_std(value: Optional[float], std: Optional[float] = None) -> str:
    """A fraction as percent with one decimal ("± std" when given); "—" for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * value:.1f}" + (f" ± {100 * std:.1f}" if std else "")


def paper_table(study: str) -> str:
    """The paper's table of a study (MVTec AD means, in %) as Markdown, best value of each column in bold."""
    if study not in PAPER_RESULTS:
        raise ValueError(f"the paper has no table for study {study!r}: it has {tuple(PAPER_RESULTS)}")
    table = PAPER_RESULTS[study]
    best = [max(v[k] for v in table.values()) for k in range(len(METRICS))]
    lines = [f"| {PAPER_TABLE[study]}: variant | image AUROC | pixel AUROC | PRO |", "|---|---|---|---|"]
    for name, values in table.items():
        cells = [f"**{x:.1f}**" if x == b else f"{x:.1f}" for x, b in zip(values, best)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_table(rows: Sequence[dict[str, Any]], study: str) -> str:
    """A Markdown table: per variant, ours (mean ± std over seeds, in %) beside the paper's (MVTec AD
    means, where the paper has the study); '—' where there is no number."""
    paper = PAPER_RESULTS.get(study, {})
    names = [r["variant"] for r in rows] + [v for v in paper if v not in {r["variant"] for r in rows}]
    by_name = {r["variant"]: r for r in rows}
    head = ["variant", "seeds"] + [f"ours: {METRIC_NAMES[m]}" for m in METRICS]
    if paper:
        head += [f"paper: {METRIC_NAMES[m]}" for m in METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in names:
        r = by_name.get(n)
        cells = [n, str(r["n_seeds"]) if r else "0"]
        cells += [format_percent_with_std(r[m], r[m + "_std"]) if r else "—" for m in METRICS]
        if paper:
            cells += [f"{x:.1f}" for x in paper[n]] if n in paper else ["—"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def agreement_markdown(result: StudyResults) -> str:
    """Conditional prose from the records: our order of the variants per metric beside the paper's
    (Kendall's tau), and whether the gap between our two best variants exceeds the seed spread."""
    if not result.present:
        return ""
    lines = []
    for m in METRICS:
        ours = order_by(result.rows, m)
        line = f"- **{METRIC_NAMES[m]}**: ours {' > '.join(ours)}"
        if result.study in PAPER_RESULTS:
            theirs = paper_order(result.study, m)
            tau = kendall_tau(ours, theirs)
            verdict = ("the same order" if tau == 1 else "the reversed order" if tau == -1  # on the common variants
                       else "a different order" if not math.isnan(tau) else "too few common variants to compare")
            line += f"; paper {' > '.join(theirs)}: {verdict} (Kendall's tau {tau:.2f})"
        by = {r["variant"]: r for r in result.rows}
        if len(ours) >= 2 and not math.isnan(by[ours[1]][m]):
            a, b = by[ours[0]], by[ours[1]]
            gap = a[m] - b[m]
            spread = max(a[m + "_std"], b[m + "_std"])
            if min(a["n_seeds"], b["n_seeds"]) < 2:
                line += f". {ours[0]} leads {ours[1]} by {100 * gap:.1f} points, from one seed: the spread is unknown"
            else:
                line += (f". {ours[0]} leads {ours[1]} by {100 * gap:.1f} points; the larger seed standard deviation "
                         f"of the two is {100 * spread:.1f}, so the lead is "
                         f"{'larger than' if gap > spread else 'within'} the seed-to-seed spread")
        lines.append(line + ".")
    return "\n".join(lines)


def map_contrast(examples: dict[str, Any]) -> dict[str, float]:
    """Per variant of an examples file: the mean map value on defect pixels divided by the mean on the
    normal ('good') example images. Scale-free, so variants whose maps differ by a constant (lambda
    under unit normalisation) get the same number; 1 means defects do not stand out at all."""
    if not examples:
        return {}
    masks = np.asarray(examples["masks"]).astype(bool)
    good = np.array([t == "good" for t in examples["defect_types"]])
    if not masks.any() or not good.any():
        raise ValueError("the examples need at least one normal image and one defect pixel")
    out = {}
    for name, maps in examples["maps"].items():
        maps = np.asarray(maps, dtype=np.float64)
        out[name] = float(maps[masks].mean() / max(maps[good].mean(), 1e-12))
    return out


def level_discrepancy(model, dataset, *, lam: float = 0.1, normalization: str = "unit",
                      batch_size: int = 16) -> dict[str, list[float]]:
    """Per pyramid level k (M_1..M_3 of Eq. 6, upsampled, not smoothed) of a trained model's inference
    pair: ``normal``, the mean over every pixel of the normal test images (how closely the pair agrees
    where nothing is wrong), ``defect``, the mean over defect pixels, and ``contrast`` = defect / normal.
    """
    from torch.utils.data import DataLoader

    model = model.eval()
    device = next(model.parameters()).device
    sums = {"normal": np.zeros(3), "defect": np.zeros(3)}
    counts = {"normal": 0, "defect": 0}
    for batch in DataLoader(dataset, batch_size=batch_size):
        images = batch["image"].to(device)
        masks = batch["mask"][:, 0].bool().numpy()
        good = (batch["label"] == 0).numpy()
        with torch.no_grad():
            ref, stu = model.inference_pair(model(images))
            per_level = [anomaly_map(ref, stu, images.shape[-2:], layers=(k,), sigma=0, lam=lam,
                                     normalization=normalization).cpu().numpy() for k in ALL_LAYERS]
        for k, m in enumerate(per_level):
            sums["normal"][k] += m[good].sum()
            sums["defect"][k] += m[masks].sum()
        counts["normal"] += int(good.sum()) * masks[0].size
        counts["defect"] += int(masks.sum())
    if not counts["normal"] or not counts["defect"]:
        raise ValueError("level_discrepancy needs normal images and defect pixels in the data set")
    normal = (sums["normal"] / counts["normal"]).tolist()
    defect = (sums["defect"] / counts["defect"]).tolist()
    return {"normal": normal, "defect": defect, "contrast": [d / max(n, 1e-12) for d, n in zip(defect, normal)]}
