"""Full-scale reproduction of the paper's Tables 1 to 5 (Sec. 4.2): ``dskd reproduce``.

::

    dskd reproduce mt-defects                         # Table 5 and Fig. 7 (128 x 128, 200 epochs)
    dskd reproduce mvtec --category all               # Tables 1 and 2 (downloads MVTec AD if missing)
    dskd reproduce mvtec3d --category all             # Tables 3 and 4 (MVTec 3D-AD must be put in place)
    dskd reproduce mvtec --category all --gpus all    # one category per GPU, in parallel
    torchrun --standalone --nproc_per_node 4 -m dskd reproduce mvtec --category bottle --ddp
    dskd reproduce mvtec --tables-only                # rebuild the tables from the results present

Every (category, seed) is one *job*: train DS at the paper's settings (:meth:`TrainConfig.paper`)
into ``<runs-dir>/<benchmark>/<category>/seed<k>-<config hash>/checkpoint.pt`` (saved every
``checkpoint_every`` epochs, so an interrupted run resumes where it stopped), evaluate image AUROC,
pixel AUROC and PRO overall and per defect type, and write

* ``<out-dir>/<benchmark>[/<category>]/seed<k>.json``: metrics, config, loss history and provenance
  (teacher weights, epochs, device, seed, data and split, command, git commit). Its presence marks
  the job done: a rerun skips it. A result of a *different* config is never overwritten silently.
* figures in the style of the paper's Fig. 5/6/7 (image, anomaly map, ground truth): one image per
  defect type, and for MT Defects one figure per defect type.
* ``<out-dir>/<benchmark>/table<N>.json`` and ``.md``: the paper's table with its numbers (from
  :mod:`dskd.paper_results`) beside this rebuild's, "—" where no run exists yet together with the
  command that fills the cell. Tables are rebuilt after every run from the result files present.

Parallelism: ``devices=["cuda:0", "cuda:1", ...]`` (``--gpus``) runs jobs in worker processes, each
pinned to one device and taking the next job when it finishes one; ``ddp=True`` (``--ddp``, under
torchrun) trains one model over all ranks with :mod:`dskd.distributed`, rank 0 evaluating and writing.
"""
from __future__ import annotations

import json
import math
import os
import queue
import shlex
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np

from .config import TrainConfig, resolve_device
from .data import MVTEC3D_CATEGORIES, MVTEC_CATEGORIES, DatasetError, data_root, find_magnetic_tile_root
from .paper_results import (
    MVTEC3D_PAPER_ORDER, MVTEC_PAPER_ORDER, OURS, TABLE1, TABLE1_METHODS, TABLE2, TABLE2_METHODS, TABLE3,
    TABLE3_METHODS, TABLE4, TABLE5, TABLE5_METHODS, display_name,
)
from .provenance import provenance, write_json

__all__ = [
    "BENCHMARKS", "Job", "ResultConflictError", "parse_categories", "parse_devices", "paper_config", "make_jobs",
    "result_path", "run_folder", "job_state", "ensure_data", "run_job", "run_jobs", "reproduce",
    "collect_results", "build_tables", "table_markdown", "write_tables", "reproduce_command", "run_rows",
    "runs_markdown", "paper_gaps", "redraw_examples",
]

PathLike = Union[str, "os.PathLike[str]"]
RESULT_SCHEMA = 1
METRICS = ("image_auroc", "pixel_auroc", "pro")
#: benchmark -> (data set name, categories in the paper's order, tables, figure of the paper)
BENCHMARKS: dict[str, dict[str, Any]] = {
    "mt-defects": {"dataset": "mt-defects", "categories": (None,), "tables": ("table5",), "figure": "fig7"},
    "mvtec": {"dataset": "mvtec", "categories": MVTEC_PAPER_ORDER, "tables": ("table1", "table2"), "figure": "fig5"},
    "mvtec3d": {"dataset": "mvtec3d", "categories": MVTEC3D_PAPER_ORDER, "tables": ("table3", "table4"),
                "figure": "fig6"},
}
DEFAULT_OUT_DIR = "results"
DEFAULT_RUNS_DIR = "runs/reproduce"
DEFAULT_CHECKPOINT_EVERY = 10
#: fields compared with the paper's setting; a result that differs is marked in the tables
PAPER_FIELDS = ("image_size", "epochs", "lr", "betas", "lam", "normalization", "loss_form", "structure", "use_dfe",
                "teacher", "sigma", "layers")


class ResultConflictError(ValueError):
    """A result file exists for the same (category, seed) but from a different configuration."""


def _benchmark(name: str) -> dict[str, Any]:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}: expected one of {tuple(BENCHMARKS)}")
    return BENCHMARKS[name]


def parse_categories(benchmark: str, text: Union[str, Sequence[str], None] = "all") -> list[Optional[str]]:
    """'all' (or None) -> every category of the benchmark, in the paper's order; else a comma list."""
    known = _benchmark(benchmark)["categories"]
    if benchmark == "mt-defects":
        if text not in (None, "all", "", [None]):
            raise ValueError("mt-defects has no categories: drop --category (defect types are scored separately)")
        return [None]
    if text is None or text == "all":
        return list(known)
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t and t.strip()]
    valid = MVTEC_CATEGORIES if benchmark == "mvtec" else MVTEC3D_CATEGORIES
    bad = [n for n in names if n not in valid]
    if bad or not names:
        raise ValueError(f"unknown {benchmark} categories {bad or names}: expected 'all' or some of {', '.join(valid)}")
    return list(dict.fromkeys(names))


def parse_devices(text: Optional[str]) -> Optional[list[str]]:
    """``--gpus``: 'all' (every visible CUDA device), '0,1,3' (CUDA indices) or device names ('cpu,cpu')."""
    if text is None:
        return None
    import torch

    if text.strip() == "all":
        n = torch.cuda.device_count()
        if n == 0:
            raise ValueError("--gpus all: no CUDA device is visible")
        return [f"cuda:{i}" for i in range(n)]
    devices = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        dev = f"cuda:{item}" if item.isdigit() else item
        if dev.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ValueError(f"--gpus: cannot read {item!r}; use 'all', CUDA indices '0,1' or device names")
        devices.append(dev)
    if not devices:
        raise ValueError(f"--gpus {text!r} names no device")
    for dev in devices:  # before any worker starts: a missing GPU is one line, not a traceback per worker
        try:
            resolve_device(dev)
        except ValueError as err:
            raise ValueError(f"--gpus {text!r}: {err}") from None
    return devices


def paper_config(benchmark: str, category: Optional[str] = None, *, seed: int = 0, **overrides: Any) -> TrainConfig:
    """The paper's setting for one category (Sec. 4.1.2), with the given overrides (None = keep)."""
    dataset = _benchmark(benchmark)["dataset"]
    changes = {k: v for k, v in overrides.items() if v is not None}
    return TrainConfig.paper(dataset, category, seed=seed, **changes)


def deviations(cfg: TrainConfig) -> list[str]:
    """How a config differs from the paper's setting ('epochs 1 (paper 200)', ...); empty if it does not."""
    ref = TrainConfig.paper(cfg.dataset, cfg.category, teacher="imagenet")
    out = []
    for f in PAPER_FIELDS:
        a, b = getattr(cfg, f), getattr(ref, f)
        if a != b:
            out.append(f"{f} {a} (paper {b})")
    return out


@dataclass(frozen=True)
class Job:
    """One (benchmark, category, seed) run; ``cfg`` holds everything else."""

    benchmark: str
    category: Optional[str]
    seed: int
    cfg: TrainConfig

    @property
    def label(self) -> str:
        return f"{self.benchmark}" + (f"/{self.category}" if self.category else "") + f" seed {self.seed}"


def make_jobs(benchmark: str, categories: Iterable[Optional[str]], seeds: Iterable[int],
              **cfg_options: Any) -> list[Job]:
    """Jobs in category-major order (every seed of a category, then the next category)."""
    return [Job(benchmark, c, int(s), paper_config(benchmark, c, seed=int(s), **cfg_options))
            for c in categories for s in seeds]


def config_key(cfg: TrainConfig) -> str:
    """Hash of a config without its device: a run moved to another GPU resumes in the same folder."""
    from .training import run_key

    return run_key(cfg.replace(device="auto"))


def result_path(out_dir: PathLike, benchmark: str, category: Optional[str], seed: int) -> Path:
    base = Path(out_dir) / benchmark
    return (base / category if category else base) / f"seed{seed}.json"


def run_folder(runs_dir: PathLike, job: Job) -> Path:
    return Path(runs_dir) / job.benchmark / (job.category or "all") / f"seed{job.seed}-{config_key(job.cfg)}"


def read_result(path: PathLike) -> Optional[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # a torn write: redo the job
    return data if isinstance(data, dict) and data.get("kind") == "dskd-reproduce-result" else None


def job_state(job: Job, out_dir: PathLike) -> str:
    """'done' (its result file exists for this config), 'todo', or 'conflict' (a different config's result)."""
    data = read_result(result_path(out_dir, job.benchmark, job.category, job.seed))
    if data is None:
        return "todo"
    if data.get("run_key") == config_key(job.cfg) and data.get("status") == "done":
        return "done"
    return "conflict"


def reproduce_command(benchmark: str, categories: Sequence[Optional[str]] = (), *, seeds: Sequence[int] = (0,),
                      cfg: Optional[TrainConfig] = None, out_dir: Optional[PathLike] = None,
                      data_root: Optional[str] = None, eval_every: int = 0) -> str:
    """The ``dskd reproduce`` command line for these categories (options only where not the defaults,
    except the teacher, always named). ``cfg=None``: the paper's setting."""
    parts = ["dskd", "reproduce", benchmark]
    cats = [c for c in categories if c]
    if cats:
        every = set(BENCHMARKS[benchmark]["categories"])
        parts += ["--category", "all" if set(cats) == every and len(cats) == len(every) else ",".join(cats)]
    if list(seeds) != [0]:
        parts += ["--seeds", ",".join(str(s) for s in seeds)]
    if cfg is not None:
        ref = paper_config(benchmark, cfg.category)
        for flag, field in (("--epochs", "epochs"), ("--image-size", "image_size"), ("--batch-size", "batch_size")):
            if getattr(cfg, field) != getattr(ref, field):
                parts += [flag, str(getattr(cfg, field))]
        data_root = data_root or cfg.data_root
    # always explicit: without --teacher the CLI would follow $DSKD_TEACHER
    parts += ["--teacher", cfg.teacher if cfg is not None else "imagenet"]
    if data_root:
        parts += ["--data-root", str(data_root)]
    if out_dir is not None and Path(out_dir) != Path(DEFAULT_OUT_DIR):
        parts += ["--out-dir", str(out_dir)]
    if eval_every:
        parts += ["--eval-every", str(eval_every)]
    return " ".join(shlex.quote(p) for p in parts)


# ----------------------------------------------------------------------------------------------- data
def _root(benchmark: str, given: Optional[PathLike]) -> Path:
    if given is not None:
        return Path(given).expanduser()
    if benchmark == "mt-defects":
        default = data_root() / "magnetic-tile"
        return default if default.is_dir() else (find_magnetic_tile_root() or default)
    return data_root() / ("mvtec_ad" if benchmark == "mvtec" else "mvtec_3d")


def ensure_data(benchmark: str, categories: Sequence[Optional[str]], root: Optional[PathLike] = None, *,
                download: bool = True) -> Path:
    """Check the data is in place; download missing MVTec AD categories (its licence allows it).

    MVTec 3D-AD cannot be fetched automatically: a missing category raises :class:`DatasetError`
    saying where to get it and where to put it. Returns the data root.
    """
    root = _root(benchmark, root)
    if benchmark == "mt-defects":
        from .data import MagneticTile

        MagneticTile(root, "train")  # raises with the expected layout if anything is missing
        return root
    missing = [c for c in categories if c and not (root / c).is_dir()]
    if not missing:
        return root
    if benchmark == "mvtec":
        if not download:
            raise DatasetError(f"MVTec AD categories missing under {root}: {', '.join(missing)}; drop --no-download "
                               "to fetch them (CC BY-NC-SA 4.0) or get them from "
                               "https://www.mvtec.com/company/research/datasets/mvtec-ad")
        from .data import download_mvtec

        for c in missing:
            print(f"downloading MVTec AD '{c}' into {root}", flush=True)
            download_mvtec(root, c)
        return root
    from .data.mvtec import _mvtec3d_help

    raise DatasetError(f"MVTec 3D-AD categories missing under {root}: {', '.join(missing)}\n"
                       + _mvtec3d_help(root, missing[0]))


def split_description(cfg: TrainConfig, train_set: Any, test_set: Any) -> str:
    labels = test_set.labels()
    n_normal, n_defect = labels.count(0), labels.count(1)
    if cfg.dataset == "mt-defects":
        from .data.magnetic_tile import MT_TRAIN_FRACTION

        return (f"MagneticTile split (seed {cfg.seed}): train = {len(train_set)} of {len(train_set) + n_normal} "
                f"MT_Free images ({MT_TRAIN_FRACTION:.0%}, numpy default_rng(seed).permutation of the sorted list); "
                f"test = the other {n_normal} MT_Free + all {n_defect} defective images")
    if cfg.dataset == "mvtec":
        return (f"official MVTec AD split: train/good ({len(train_set)} images) for training; test/* "
                f"({n_normal} normal, {n_defect} defective, ground_truth masks) for testing")
    return (f"official MVTec 3D-AD split, RGB only: train/good/rgb ({len(train_set)} images) for training "
            f"(validation unused); test/*/rgb ({n_normal} normal, {n_defect} defective, gt masks) for testing")


# ---------------------------------------------------------------------------------------------- jobs
def _epoch_logger(label: str, every: int) -> Callable:
    def log(epoch: int, loss: float, model: Any) -> None:
        if epoch % every == 0:
            print(f"[{label}] epoch {epoch}: loss {loss:.4f}", flush=True)

    return log


def shorter_runs(folder: Path, cfg: TrainConfig) -> list[tuple[int, Path]]:
    """Checkpoints beside ``folder`` of the same job with a config that differs only in its epochs.

    Training uses a constant learning rate and seeds each epoch's shuffle by (seed, epoch), so epoch
    ``k`` of a shorter (or longer, unfinished) run is epoch ``k`` of this one: a longer budget can
    continue it instead of starting again. Returns ``(epoch, path)`` for every usable checkpoint,
    at most ``cfg.epochs`` epochs in, most epochs first.
    """
    from .checkpoint import read_checkpoint

    prefix = folder.name.rsplit("-", 1)[0] + "-"  # seed<N>-
    found = []
    for other in sorted(folder.parent.glob(prefix + "*/checkpoint.pt")):
        if other.parent == folder:
            continue
        try:
            payload = read_checkpoint(other)
            saved = TrainConfig.from_dict(payload["config"])
        except (ValueError, KeyError, TypeError, OSError):
            continue
        epoch = int(payload["epoch"])
        if saved.replace(epochs=cfg.epochs, device=cfg.device) == cfg and 0 < epoch <= cfg.epochs:
            found.append((epoch, other))
    return sorted(found, key=lambda t: -t[0])


def _train_or_resume(job: Job, cfg: TrainConfig, folder: Path, *, checkpoint_every: int, progress: bool,
                     callbacks: Sequence[Callable], ddp: bool):
    """Train, resume an interrupted run, continue a shorter one, or load a finished one.

    Returns (TrainResult, the epoch training started from).
    """
    from .checkpoint import load_checkpoint, read_checkpoint
    from .training import TrainResult, cache_dir, run_key, train

    ckpt = folder / "checkpoint.pt"
    epoch = int(read_checkpoint(ckpt)["epoch"]) if ckpt.is_file() else 0
    shared = cache_dir() / run_key(cfg) / "checkpoint.pt"  # the same run trained by `dskd ablate` / train_or_load
    if not ckpt.is_file() and shared.is_file() and (done := int(read_checkpoint(shared)["epoch"])) >= cfg.epochs:
        print(f"[{job.label}] using the identical finished run {shared}", flush=True)
        ckpt, epoch = shared, done
    if epoch < cfg.epochs and (shorter := [s for s in shorter_runs(folder, cfg) if s[0] > epoch]):
        epoch, ckpt = shorter[0]  # the furthest along, this folder's own checkpoint included
        print(f"[{job.label}] continuing {ckpt} from its epoch {epoch} (same config but the epochs; constant "
              f"learning rate and per-epoch shuffles make its first {epoch} epochs this run's)", flush=True)
        carry_curve(ckpt.parent / "curve.json", folder / "curve.json", epoch)
    if ckpt.is_file():
        if epoch >= cfg.epochs:
            model, _, payload = load_checkpoint(ckpt)
            prov = payload["provenance"]
            result = TrainResult(model.to(resolve_device(cfg.device) if not ddp else _ddp_device(cfg)), cfg,
                                 list(payload["history"]), float(prov.get("train_seconds", 0.0)), prov, ckpt,
                                 {"loaded": True})
            return result, epoch
        print(f"[{job.label}] resuming from epoch {epoch} of {cfg.epochs} ({ckpt})", flush=True)
        return train(cfg, out_dir=folder, resume=ckpt, checkpoint_every=checkpoint_every, progress=progress,
                     callbacks=callbacks, ddp=ddp, cache_teacher=not ddp), epoch
    return train(cfg, out_dir=folder, checkpoint_every=checkpoint_every, progress=progress, callbacks=callbacks,
                 ddp=ddp, cache_teacher=not ddp), 0


def carry_curve(source: Path, target: Path, epoch: int) -> None:
    """Copy the learning-curve points up to ``epoch`` of a run that this one continues: they were scored
    on the same models (the first ``epoch`` epochs of both runs are the same training)."""
    carried = [p for p in read_curve(source) if p["epoch"] <= epoch]
    if carried:
        later = [p for p in read_curve(target) if p["epoch"] > epoch]
        write_json(target, sorted(carried + later, key=lambda p: p["epoch"]))


def share_finished_run(ckpt: Path, cfg: TrainConfig) -> Optional[Path]:
    """Make a finished reproduce run visible to ``dskd ablate`` / ``train_or_load`` (their cache under
    :func:`dskd.training.cache_dir`), the way reproduce already reuses theirs: a hard link (no copy),
    or a symbolic link where the two folders are on different file systems. Nothing is replaced.

    Returns the cache path, or None when the cache already holds a checkpoint of this config.
    """
    from .training import cache_dir, run_key

    shared = cache_dir() / run_key(cfg) / "checkpoint.pt"
    if shared.exists() or not Path(ckpt).is_file():
        return None
    shared.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(ckpt, shared)
    except OSError:
        shared.symlink_to(Path(ckpt).resolve())
    return shared


def _curve_logger(cfg: TrainConfig, test_set: Any, path: Path, every: int) -> Callable:
    """Evaluate on the test split every ``every`` epochs and keep the points in ``path`` (JSON).

    The file lives in the run folder, so points from before an interruption survive a resume.
    """
    from .evaluation import evaluate

    def log(epoch: int, loss: float, model: Any) -> None:
        if epoch % every or epoch >= cfg.epochs:  # the final epoch is evaluated by run_job itself
            return
        model.eval()
        report = evaluate(model, test_set, sigma=cfg.sigma, layers=cfg.layers, lam=cfg.lam,
                          normalization=cfg.normalization, batch_size=cfg.batch_size)
        model.train()
        points = [p for p in read_curve(path) if p["epoch"] < epoch]
        points.append({"epoch": epoch, "loss": loss, **{m: getattr(report, m) for m in METRICS}})
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, points)
        print(f"[curve] epoch {epoch}: image AUROC {report.image_auroc:.3f}, pixel AUROC {report.pixel_auroc:.3f},"
              f" PRO {report.pro:.3f}", flush=True)

    return log


def read_curve(path: PathLike) -> list[dict[str, Any]]:
    """The learning-curve points of a run folder's ``curve.json`` (empty if none)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else []


def _ddp_device(cfg: TrainConfig):
    from .distributed import dist_info, rank_device

    return rank_device(cfg.device, dist_info().local_rank)


def run_job(
    job: Job,
    *,
    device: Optional[str] = None,
    out_dir: PathLike = DEFAULT_OUT_DIR,
    runs_dir: PathLike = DEFAULT_RUNS_DIR,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    n_examples: int = 6,
    progress: bool = True,
    callbacks: Sequence[Callable] = (),
    ddp: bool = False,
    overwrite: bool = False,
    eval_every: int = 0,
    rescore: bool = False,
) -> dict[str, Any]:
    """Train (or resume, or load), evaluate, draw and record one job; skip it if its result exists.

    ``rescore=True`` evaluates a job whose result exists again (its finished checkpoint is loaded, nothing
    is trained) and rewrites the result: what a change of the evaluation or of the record needs.
    ``eval_every`` > 0 also scores the test split every that many epochs during training and records
    the learning curve (``training.curve`` in the result; held in the run folder across resumes).
    """
    from .distributed import barrier, dist_info
    from .evaluation import evaluate
    from .metrics import pro_variants
    from .training import data_description, dataset_for

    if eval_every < 0:
        raise ValueError(f"eval_every must be >= 0 (0: no learning curve), got {eval_every}")
    cfg = job.cfg.replace(device=device) if device is not None else job.cfg
    path = result_path(out_dir, job.benchmark, job.category, job.seed)
    state = job_state(job, out_dir)
    summary = {"job": job.label, "category": job.category, "seed": job.seed, "result": str(path),
               "device": cfg.device, "pid": os.getpid()}
    if state == "done" and not rescore:
        return {**summary, "status": "skipped (result exists)"}
    if state == "conflict" and not overwrite:
        raise ResultConflictError(f"{path} holds a result of a different configuration; pass --overwrite "
                                  "(overwrite=True) to replace it, or choose another --out-dir")
    folder = run_folder(runs_dir, job)
    started = time.perf_counter()
    if not progress and not ddp:
        callbacks = (*callbacks, _epoch_logger(f"{cfg.device}] [{job.label}", max(1, cfg.epochs // 10)))
    curve_path = folder / "curve.json"
    test_set = dataset_for(cfg, "test")
    if eval_every and not ddp:
        callbacks = (*callbacks, _curve_logger(cfg, test_set, curve_path, eval_every))
    result, resumed_from = _train_or_resume(job, cfg, folder, checkpoint_every=checkpoint_every, progress=progress,
                                            callbacks=callbacks, ddp=ddp)
    if ddp and not dist_info().is_main:
        barrier()  # rank 0 evaluates and writes
        return {**summary, "status": f"trained (rank {dist_info().rank})"}
    if not ddp and result.checkpoint is not None and (shared := share_finished_run(result.checkpoint, job.cfg)):
        print(f"[{job.label}] finished run shared with dskd ablate's cache: {shared}", flush=True)
    model = result.model
    dev = next(model.parameters()).device
    train_set = dataset_for(cfg, "train")
    report = evaluate(model, test_set, sigma=cfg.sigma, layers=cfg.layers, lam=cfg.lam,
                      normalization=cfg.normalization, batch_size=cfg.batch_size, progress=progress)
    figures = save_figures(job, cfg, report, test_set, path.parent, n_examples)
    data = data_description(cfg)
    if eval_every:  # the final point joins the run folder's curve, so a longer budget continuing this run has it
        curve = [*(p for p in read_curve(curve_path) if p["epoch"] < cfg.epochs),
                 {"epoch": cfg.epochs, "loss": result.history[-1] if result.history else None,
                  **{m: getattr(report, m) for m in METRICS}}]
        write_json(curve_path, curve)
    masks, maps = report.prediction.masks.numpy(), report.prediction.maps.numpy()
    # the same maps under the PRO codes of other papers' repositories (chapter 9): the tables use the exact
    # one only; these let the results chapter measure how much of a PRO gap the choice of code can make
    pro_codes = pro_variants(masks, maps) if masks.any() and not masks.all() else None
    record = {
        "schema": RESULT_SCHEMA,
        "kind": "dskd-reproduce-result",
        "status": "done",
        "benchmark": job.benchmark,
        "category": job.category,
        "seed": job.seed,
        "run_key": config_key(job.cfg),
        "metrics": {k: getattr(report, k) for k in (*METRICS, "per_defect_type", "n_images", "n_anomalous",
                                                     "seconds_per_image")},
        "pro_codes": pro_codes,
        "paper_setting": not deviations(cfg),
        "deviations_from_paper": deviations(cfg),
        "training": {"epochs": cfg.epochs, "final_loss": result.history[-1] if result.history else None,
                     "history": result.history, "train_seconds": round(result.seconds, 2),
                     "resumed_from_epoch": resumed_from, "checkpoint": str(result.checkpoint),
                     "loaded_finished_checkpoint": bool(result.extra.get("loaded")),
                     "distributed": result.extra.get("distributed"),
                     **({"curve": curve} if eval_every else {})},
        "figures": [str(Path(f).relative_to(path.parent)) for f in figures],
        "config": cfg.to_dict(),
        "reproduce_command": reproduce_command(job.benchmark, [job.category], seeds=[job.seed], cfg=cfg,
                                               out_dir=out_dir, eval_every=eval_every),
        "provenance": provenance(
            dev, teacher=report.teacher, epochs=cfg.epochs, seed=job.seed, data=data,
            data_root=str(getattr(test_set, "root", cfg.data_root)), split=split_description(cfg, train_set, test_set),
            image_size=cfg.image_size, n_train=len(train_set), n_test=report.n_images, training=result.provenance,
            wall_seconds=round(time.perf_counter() - started, 2)),
    }
    write_json(path, record)
    if ddp:
        barrier()
    status = "done" + (f" (resumed from epoch {resumed_from})" if resumed_from and resumed_from < cfg.epochs else "")
    print(f"[{job.label}] image AUROC {report.image_auroc:.3f}, pixel AUROC {report.pixel_auroc:.3f}, "
          f"PRO {report.pro:.3f} [teacher: {report.teacher}] -> {path}", flush=True)
    return {**summary, "status": status, **{m: getattr(report, m) for m in METRICS}}


def save_figures(job: Job, cfg: TrainConfig, report: Any, test_set: Any, folder: Path, n_examples: int) -> list[Path]:
    """Fig. 5/6/7 style grids (image, anomaly map, ground truth) of the first images in file order.

    One figure with the first image of every defect type; for MT Defects also one figure per defect
    type with its first ``n_examples`` images. Images are picked by position, never by score.
    """
    import torch
    from matplotlib import pyplot as plt

    from .plotting import plot_anomaly_grid
    from .training import data_description

    pred = report.prediction
    types = list(pred.defect_types)
    fig_name = BENCHMARKS[job.benchmark]["figure"]
    data = data_description(cfg) + ", test split"
    groups: list[tuple[str, list[int], str]] = []
    firsts = [types.index(t) for t in sorted(report.per_defect_type)]
    if firsts:
        groups.append((f"{fig_name}_seed{job.seed}.png", firsts,
                       f"Anomaly localisation (paper Fig. {fig_name[3:]} layout): first image of each defect type"))
    if job.benchmark == "mt-defects" and n_examples > 0:
        for t in sorted(report.per_defect_type):
            idx = [i for i, u in enumerate(types) if u == t][:n_examples]
            groups.append((f"{fig_name}_seed{job.seed}_{t}.png", idx, f"MT Defects, defect type '{t}': first "
                           f"{len(idx)} images in file order"))
    paths = []
    folder.mkdir(parents=True, exist_ok=True)
    for name, idx, title in groups:
        items = [test_set[i] for i in idx]
        fig = plot_anomaly_grid(torch.stack([it["image"] for it in items]), pred.maps[idx],
                                torch.stack([it["mask"] for it in items]),
                                titles=[f"{types[i]}\nscore {float(pred.scores[i]):.3f}" for i in idx],
                                teacher=report.teacher, data=data, title=title)
        fig.savefig(folder / name)
        plt.close(fig)
        paths.append(folder / name)
    return paths


def _worker(device: str, tasks: Any, results: Any, runner: Callable, opts: dict[str, Any]) -> None:
    """A worker process pinned to one device: run jobs from the queue until the sentinel (None)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.set_device(torch.device(device))
    while True:
        item = tasks.get()
        if item is None:
            return
        index, job = item
        try:
            out = runner(job, device=device, **opts)
            results.put((index, device, os.getpid(), "ok", out))
        except KeyboardInterrupt:  # Ctrl-C reaches every worker: stop, do not take the next job
            return
        except BaseException as err:  # report and take the next job; the main process lists failures
            text = f"{type(err).__name__}: {err}\n{traceback.format_exc()}"
            results.put((index, device, os.getpid(), "failed", text))


def run_jobs(
    jobs: Sequence[Job],
    *,
    devices: Optional[Sequence[str]] = None,
    runner: Optional[Callable[..., dict[str, Any]]] = None,
    mp_context: str = "spawn",
    **opts: Any,
) -> list[dict[str, Any]]:
    """Run jobs in this process (``devices`` None or one device), or one worker process per device.

    Workers take jobs from a shared queue, so a fast category frees its GPU for the next one. A job
    that fails is reported (``status`` 'failed', with the traceback) without stopping the others.
    ``runner`` (default :func:`run_job`) is called as ``runner(job, device=..., **opts)``; it must be
    a module-level function, since it travels to the workers.
    """
    runner = runner or run_job
    if not devices or len(devices) == 1:
        device = devices[0] if devices else None
        return [runner(job, device=device, **opts) for job in jobs]
    import multiprocessing as mp

    opts = {**opts, "progress": False} if runner is run_job else opts
    ctx = mp.get_context(mp_context)
    tasks, results = ctx.Queue(), ctx.Queue()
    for item in enumerate(jobs):
        tasks.put(item)
    for _ in devices:
        tasks.put(None)
    procs = [ctx.Process(target=_worker, args=(d, tasks, results, runner, opts), name=f"dskd-worker-{d}")
             for d in devices]
    for p in procs:
        p.start()
    print(f"running {len(jobs)} jobs on {len(devices)} workers: {', '.join(devices)}", flush=True)
    out: list[Optional[dict[str, Any]]] = [None] * len(jobs)
    pending = len(jobs)
    try:
        while pending:
            try:
                index, device, pid, status, payload = results.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    break
                continue
            if status == "ok":
                out[index] = {**payload, "device": device, "pid": pid}
            else:
                print(f"[{device}] {jobs[index].label} failed: {payload}", flush=True)
                out[index] = {"job": jobs[index].label, "category": jobs[index].category, "seed": jobs[index].seed,
                              "status": "failed", "error": payload, "device": device, "pid": pid}
            pending -= 1
    finally:
        for p in procs:
            p.join(timeout=5 if pending == 0 else 0.1)
            if p.is_alive():
                p.terminate()
                p.join()
    return [o if o is not None else {"job": j.label, "category": j.category, "seed": j.seed, "status": "failed",
                                     "error": "its worker process died"} for o, j in zip(out, jobs)]


def reproduce(
    benchmark: str,
    categories: Union[str, Sequence[str], None] = "all",
    seeds: Sequence[int] = (0,),
    *,
    epochs: Optional[int] = None,
    teacher: Optional[str] = None,
    device: str = "auto",
    data_root: Optional[str] = None,
    image_size: Optional[int] = None,
    batch_size: Optional[int] = None,
    num_workers: Optional[int] = None,
    out_dir: PathLike = DEFAULT_OUT_DIR,
    runs_dir: PathLike = DEFAULT_RUNS_DIR,
    devices: Optional[Sequence[str]] = None,
    ddp: bool = False,
    download: bool = True,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    n_examples: int = 6,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callable] = (),
    mp_context: str = "spawn",
    eval_every: int = 0,
    rescore: bool = False,
) -> dict[str, Any]:
    """The whole pipeline for one benchmark: check/download data, run the jobs not done yet, write tables.

    ``rescore=True`` also re-evaluates the jobs already done, from their finished checkpoints
    (:func:`run_job`); a job whose checkpoint is gone trains again.

    Returns ``{"jobs": [summary per job], "tables": [paths], "failed": [labels]}``.
    """
    from .distributed import barrier, dist_info

    if ddp and devices and len(devices) > 1:
        raise ValueError("--ddp and --gpus exclude each other: DDP spreads one model over the torchrun ranks, "
                         "--gpus runs one category per GPU")
    cats = parse_categories(benchmark, categories)
    jobs = make_jobs(benchmark, cats, seeds, epochs=epochs, teacher=teacher, device=device, data_root=data_root,
                     image_size=image_size, batch_size=batch_size, num_workers=num_workers)
    states = {j.label: job_state(j, out_dir) for j in jobs}
    conflicts = [j for j in jobs if states[j.label] == "conflict"]
    if conflicts and not overwrite:
        paths = [str(result_path(out_dir, j.benchmark, j.category, j.seed)) for j in conflicts]
        raise ResultConflictError(f"results of a different configuration exist: {', '.join(paths)}; pass --overwrite "
                                  "to replace them or choose another --out-dir")
    todo = [j for j in jobs if rescore or states[j.label] != "done"]
    done = sum(state == "done" for state in states.values())
    print(f"dskd reproduce {benchmark}: {len(jobs)} jobs, {done} already done"
          + (" (rescored from their checkpoints)" if rescore and done else ""), flush=True)
    if todo:
        if dist_info().is_main:
            ensure_data(benchmark, sorted({j.category for j in todo}, key=str), data_root, download=download)
        barrier()
    opts = dict(out_dir=out_dir, runs_dir=runs_dir, checkpoint_every=checkpoint_every, n_examples=n_examples,
                progress=progress, ddp=ddp, overwrite=overwrite, eval_every=eval_every, rescore=rescore)
    if callbacks:
        opts["callbacks"] = callbacks
    summaries = [{"job": j.label, "category": j.category, "seed": j.seed, "status": "skipped (result exists)",
                  "result": str(result_path(out_dir, j.benchmark, j.category, j.seed))} for j in jobs if j not in todo]
    summaries += run_jobs(todo, devices=devices, mp_context=mp_context, **opts)
    tables = write_tables(out_dir, benchmark) if dist_info().is_main else []
    failed = [s["job"] for s in summaries if s.get("status") == "failed"]
    return {"jobs": summaries, "tables": [str(t) for t in tables], "failed": failed}


# -------------------------------------------------------------------------------------------- tables
def collect_results(out_dir: PathLike, benchmark: str) -> dict[Optional[str], list[dict[str, Any]]]:
    """Finished result records under ``<out_dir>/<benchmark>``, grouped by category (None for MT)."""
    base = Path(out_dir) / benchmark
    found: dict[Optional[str], list[dict[str, Any]]] = {}
    if not base.is_dir():
        return found
    for path in sorted(base.rglob("seed*.json")):
        data = read_result(path)
        if data is None or data.get("status") != "done" or data.get("benchmark") != benchmark:
            continue
        data["_path"] = str(path.relative_to(base))
        found.setdefault(data.get("category"), []).append(data)
    return found


def _nanmean(values: Sequence[Optional[float]]) -> tuple[Optional[float], Optional[float]]:
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if not len(v):
        return None, None
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else None)


def _ours(records: list[dict[str, Any]],
          getter: Callable[[dict[str, Any]], Optional[float]]) -> Optional[dict[str, Any]]:
    """Mean (and std over seeds) of one metric, in percent, with where it came from."""
    if not records:
        return None
    mean, std = _nanmean([getter(r) for r in records])
    devs = sorted({d for r in records for d in r.get("deviations_from_paper", [])})
    return {
        "value": None if mean is None else round(100 * mean, 2),
        "std": None if std is None else round(100 * std, 2),
        "n_seeds": len(records),
        "seeds": sorted(r["seed"] for r in records),
        "paper_setting": not devs,
        "deviations": devs,
        "teacher": sorted({r["provenance"]["teacher"] for r in records}),
        "epochs": sorted({e for r in records if (e := _run_field(r, "epochs")) is not None}),
        "image_size": sorted({e for r in records if (e := _run_field(r, "image_size")) is not None}),
        "devices": sorted({d for r in records if (d := r.get("provenance", {}).get("device"))}),
        "results": [r["_path"] for r in records],
    }


def _run_field(record: dict[str, Any], name: str) -> Any:
    """A setting of one run as its provenance records it (the config's value if the provenance lacks it)."""
    value = record.get("provenance", {}).get(name)
    return record.get("config", {}).get(name) if value is None else value


def _in_paper_order(benchmark: str, results: dict[Optional[str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    order = {c: i for i, c in enumerate(BENCHMARKS[benchmark]["categories"])}
    return sorted((r for recs in results.values() for r in recs),
                  key=lambda r: (order.get(r.get("category"), len(order)), r.get("seed", 0)))


def run_rows(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per result record: what produced it (teacher, epochs, image size, device, commit, command)
    and its metrics in percent. Fields a record lacks are None."""
    rows = []
    for r in records:
        prov, training = r.get("provenance", {}), r.get("training", {})
        metrics = r.get("metrics", {})
        rows.append({
            "category": r.get("category"), "seed": r.get("seed"), "teacher": prov.get("teacher"),
            "epochs": _run_field(r, "epochs"), "image_size": _run_field(r, "image_size"),
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
            r["device"] or "n/a", _duration(r["train_seconds"]), *(_f(r["metrics"][m]) for m in metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _metric(name: str) -> Callable[[dict[str, Any]], Optional[float]]:
    return lambda r: r["metrics"].get(name)


def _table_rows(benchmark: str, results: dict, out_dir: PathLike, columns: dict[str, Callable]) -> tuple[list, dict]:
    """Per-category 'ours' cells (a dict per metric) and the mean row (only when every category has a result)."""
    rows, per_metric = [], {m: [] for m in columns}
    for cat in BENCHMARKS[benchmark]["categories"]:
        recs = results.get(cat, [])
        ours = {m: _ours(recs, get) for m, get in columns.items()}
        rows.append({"category": cat, "name": display_name(cat), "ours": ours if recs else None,
                     "command": reproduce_command(benchmark, [cat], out_dir=out_dir) if not recs else
                     recs[0].get("reproduce_command")})
        for m in columns:
            per_metric[m].append(ours[m]["value"] if recs and ours[m] else None)
    n = len(BENCHMARKS[benchmark]["categories"])
    mean = {}
    for m, vals in per_metric.items():
        have = [v for v in vals if v is not None]
        mean[m] = {"value": round(float(np.mean(have)), 2) if len(have) == n else None,
                   "n_categories": len(have),
                   "partial_mean": round(float(np.mean(have)), 2) if 0 < len(have) < n else None}
    return rows, mean


def build_tables(out_dir: PathLike, benchmark: str, *,
                 command_out_dir: Optional[PathLike] = None) -> dict[str, dict[str, Any]]:
    """The benchmark's tables as dicts (paper numbers, ours, the runs behind ours, commands for missing
    cells, provenance). ``command_out_dir``: the ``--out-dir`` those commands name (default ``out_dir``;
    a notebook in ``notebooks/`` reads ``../results`` but prints commands for the repository root)."""
    results = collect_results(out_dir, benchmark)
    cmd_out = out_dir if command_out_dir is None else command_out_dir
    missing = [c for c in BENCHMARKS[benchmark]["categories"] if c not in results]
    fill = (reproduce_command(benchmark, missing if benchmark != "mt-defects" else [], out_dir=cmd_out)
            if missing else None)
    common = {"benchmark": benchmark, "unit": "%", "fill_missing": fill,
              "runs": run_rows(_in_paper_order(benchmark, results)),
              "provenance": provenance("cpu", made_by="dskd.reproduce.build_tables", results_dir=str(out_dir))}
    common["provenance"].pop("device")
    tables: dict[str, dict[str, Any]] = {}
    if benchmark == "mvtec":
        rows, mean = _table_rows(benchmark, results, cmd_out, {"image_auroc": _metric("image_auroc")})
        tables["table1"] = {"table": "Table 1", "title": "Image-level AUROC (%) on MVTec AD",
                            "methods": list(TABLE1_METHODS), "paper": TABLE1, "rows": rows, "mean": mean, **common}
        rows, mean = _table_rows(benchmark, results, cmd_out, {"pixel_auroc": _metric("pixel_auroc"),
                                                               "pro": _metric("pro")})
        tables["table2"] = {"table": "Table 2", "title": "Pixel-level AUROC (%) / PRO (%) on MVTec AD",
                            "methods": list(TABLE2_METHODS), "paper": TABLE2, "rows": rows, "mean": mean, **common}
    elif benchmark == "mvtec3d":
        rows, mean = _table_rows(benchmark, results, cmd_out, {"image_auroc": _metric("image_auroc")})
        tables["table3"] = {"table": "Table 3", "title": "Image-level AUROC (%) on MVTec 3D-AD (RGB)",
                            "methods": list(TABLE3_METHODS), "paper": TABLE3, "rows": rows, "mean": mean, **common}
        rows, mean = _table_rows(benchmark, results, cmd_out, {"pixel_auroc": _metric("pixel_auroc"),
                                                               "pro": _metric("pro")})
        tables["table4"] = {"table": "Table 4", "title": "Pixel-level AUROC (%) and PRO (%) on MVTec 3D-AD (RGB)",
                            "methods": [OURS], "paper": {OURS: TABLE4}, "rows": rows, "mean": mean, **common}
    else:
        recs = results.get(None, [])
        ours = {m: _ours(recs, _metric(m)) for m in METRICS} if recs else None
        types = sorted({t for r in recs for t in r["metrics"].get("per_defect_type", {})})
        per_type = {t: {m: _ours(recs, lambda r, t=t, m=m: r["metrics"]["per_defect_type"].get(t, {}).get(m))
                        for m in METRICS} for t in types}
        tables["table5"] = {"table": "Table 5", "title": "Anomaly detection results on MT Defects (%)",
                            "methods": list(TABLE5_METHODS), "metrics": list(METRICS),
                            "paper": {m: list(v) for m, v in TABLE5.items()}, "ours": ours, "per_defect_type": per_type,
                            "command": (recs[0]["reproduce_command"] if recs
                                        else reproduce_command(benchmark, out_dir=cmd_out)),
                            **common}
    return tables


DASH = "—"


def _fmt_paper(v: Optional[float]) -> str:
    if v is None:
        return "-"
    return str(v) if isinstance(v, int) else f"{v:.1f}"


def _f(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _fmt_ours(cell: Optional[dict[str, Any]]) -> str:
    if cell is None:
        return DASH
    if cell["value"] is None:
        return "n/a"
    text = f"{cell['value']:.1f}"
    if cell.get("std") is not None:
        text += f" ± {cell['std']:.1f}"
    return text + ("" if cell["paper_setting"] else "*")


def _notes(table: dict[str, Any], cells: Iterable[Optional[dict[str, Any]]], generated: bool = True) -> list[str]:
    cells = [c for c in cells if c]
    lines = ["", f"Paper's numbers: Table {table['table'].split()[-1]} of Yao et al. (transcribed in "
             "`dskd/paper_results.py`; '-' = not reported there). \"Ours (rebuild)\": this package, mean over seeds "
             "(± standard deviation when more than one), from the result files beside this table."]
    devs = sorted({d for c in cells for d in c["deviations"]})
    if devs:
        lines.append(f"\\* not the paper's setting: {'; '.join(devs)}.")
    teachers = sorted({t for c in cells for t in c["teacher"]})
    if teachers:
        lines.append(f"Teacher weights of the rebuild's runs: {', '.join(teachers)}.")
    if table.get("runs"):
        metrics = {"Table 1": ("image_auroc",), "Table 3": ("image_auroc",), "Table 2": ("pixel_auroc", "pro"),
                   "Table 4": ("pixel_auroc", "pro")}.get(table["table"], METRICS)
        lines += ["", "Runs behind \"Ours (rebuild)\" (one row per result file, as each file records them):", "",
                  runs_markdown(table["runs"], metrics=metrics)]
    if table.get("fill_missing"):
        lines += ["", f"{DASH}: no run yet. Fill the missing cells with:", "", "```", table["fill_missing"], "```"]
    if generated:
        prov = table["provenance"]
        lines += ["", f"Generated {prov['time_utc']} by `{prov['command']}` at commit {prov['git_commit']}."]
    return lines


def table_markdown(table: dict[str, Any], *, generated: bool = True) -> str:
    """A table in the paper's layout, as Markdown, with the paper's and the rebuild's numbers side by side.

    ``generated=False`` leaves out the last line (when, by which command and at which commit the table
    was built), for a page that builds the table itself from the result files."""
    title = f"# {table['table']}. {table['title']}"
    name = table["table"]
    lines = [title, ""]
    if name in ("Table 1", "Table 3"):
        methods = [m for m in table["methods"] if m != OURS]
        header = ["Category", *methods, "Ours (paper)", "Ours (rebuild)"]
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        for row in table["rows"]:
            cell = row["ours"]["image_auroc"] if row["ours"] else None
            vals = [_fmt_paper(table["paper"][m][row["category"]]) for m in methods]
            lines.append(f"| {row['name']} | " + " | ".join([*vals, _fmt_paper(table["paper"][OURS][row["category"]]),
                                                           _fmt_ours(cell)]) + " |")
        mean = table["mean"]["image_auroc"]
        vals = [_fmt_paper(table["paper"][m]["mean"]) for m in methods]
        ours = f"{mean['value']:.1f}" if mean["value"] is not None else DASH
        lines.append("| **Mean** | " + " | ".join([*vals, _fmt_paper(table["paper"][OURS]["mean"]), ours]) + " |")
        cells = [r["ours"]["image_auroc"] for r in table["rows"] if r["ours"]]
        if mean["partial_mean"] is not None:
            lines += ["", f"Mean of the {mean['n_categories']} categories run so far: {mean['partial_mean']:.1f} "
                      "(not comparable with the paper's mean over all categories)."]
    elif name == "Table 2":
        methods = [m for m in table["methods"] if m != OURS]
        header = ["Category", *methods, "Ours (paper)", "Ours (rebuild)"]
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]

        def pair(v: tuple) -> str:
            return f"{_fmt_paper(v[0])}/{_fmt_paper(v[1])}"

        for row in table["rows"]:
            o = row["ours"]
            ours = f"{_fmt_ours(o['pixel_auroc'])}/{_fmt_ours(o['pro'])}" if o else DASH
            vals = [pair(table["paper"][m][row["category"]]) for m in methods]
            lines.append(f"| {row['name']} | " + " | ".join([*vals, pair(table["paper"][OURS][row["category"]]), ours])
                         + " |")
        mean = table["mean"]
        ours = (f"{mean['pixel_auroc']['value']:.1f}/{mean['pro']['value']:.1f}"
                if mean["pixel_auroc"]["value"] is not None and mean["pro"]["value"] is not None else DASH)
        vals = [pair(table["paper"][m]["mean"]) for m in methods]
        lines.append("| **Mean** | " + " | ".join([*vals, pair(table["paper"][OURS]["mean"]), ours]) + " |")
        cells = [r["ours"][m] for r in table["rows"] if r["ours"] for m in ("pixel_auroc", "pro")]
        if mean["pixel_auroc"]["partial_mean"] is not None:
            lines += ["", f"Mean of the {mean['pixel_auroc']['n_categories']} categories run so far: "
                      f"{_f(mean['pixel_auroc']['partial_mean'])}/{_f(mean['pro']['partial_mean'])} "
                      "(not comparable with the paper's mean over all categories)."]
    elif name == "Table 4":
        header = ["Category", "AUROC (paper)", "PRO (paper)", "AUROC (rebuild)", "PRO (rebuild)"]
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        paper = table["paper"][OURS]
        for row in table["rows"]:
            o = row["ours"]
            a, p = paper[row["category"]]
            lines.append(f"| {row['name']} | {_fmt_paper(a)} | {_fmt_paper(p)} | "
                         f"{_fmt_ours(o['pixel_auroc']) if o else DASH} | {_fmt_ours(o['pro']) if o else DASH} |")
        mean = table["mean"]
        a, p = paper["mean"]
        fm = [f"{mean[m]['value']:.1f}" if mean[m]["value"] is not None else DASH for m in ("pixel_auroc", "pro")]
        lines.append(f"| **Mean** | {_fmt_paper(a)} | {_fmt_paper(p)} | {fm[0]} | {fm[1]} |")
        cells = [r["ours"][m] for r in table["rows"] if r["ours"] for m in ("pixel_auroc", "pro")]
        if mean["pixel_auroc"]["partial_mean"] is not None:
            lines += ["", f"Mean of the {mean['pixel_auroc']['n_categories']} categories run so far: "
                      f"{_f(mean['pixel_auroc']['partial_mean'])} / {_f(mean['pro']['partial_mean'])} "
                      "(not comparable with the paper's mean over all categories)."]
    else:  # Table 5
        header = ["Method", "Image-level AUROC", "Pixel-level AUROC", "PRO"]
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        for m in table["methods"]:
            label = "Ours (paper)" if m == OURS else m
            lines.append(f"| {label} | " + " | ".join(_fmt_paper(v) for v in table["paper"][m]) + " |")
        o = table["ours"]
        lines.append("| Ours (rebuild) | " + " | ".join(_fmt_ours(o[m]) if o else DASH for m in METRICS) + " |")
        cells = [o[m] for m in METRICS] if o else []
        if not o:
            table = {**table, "fill_missing": table["command"]}
        if table["per_defect_type"]:
            lines += ["", "Per defect type (the rebuild only: the paper reports no per-type numbers); each type is "
                      "scored against all normal test images.", "",
                      "| Defect type | Image-level AUROC | Pixel-level AUROC | PRO |", "| --- | --- | --- | --- |"]
            for t, ms in table["per_defect_type"].items():
                lines.append(f"| {t} | " + " | ".join(_fmt_ours(ms[m]) for m in METRICS) + " |")
    lines += _notes(table, cells, generated)
    return "\n".join(lines) + "\n"


def write_tables(out_dir: PathLike, benchmark: str) -> list[Path]:
    """Write ``table<N>.json`` and ``table<N>.md`` for a benchmark; returns the paths."""
    paths = []
    for key, table in build_tables(out_dir, benchmark).items():
        base = Path(out_dir) / benchmark / key
        paths.append(write_json(base.with_suffix(".json"), table))
        base.with_suffix(".md").write_text(table_markdown(table))
        paths.append(base.with_suffix(".md"))
    return paths


# ------------------------------------------------------------------------------------- the chapter's view
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
    import torch
    from torch.utils.data import Subset

    from .checkpoint import load_checkpoint
    from .data import DatasetError
    from .evaluation import predict
    from .training import data_description, dataset_for

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
    pred = predict(model, Subset(test_set, indices), sigma=cfg.sigma, layers=cfg.layers, lam=cfg.lam,
                   normalization=cfg.normalization, batch_size=cfg.batch_size)
    items = [test_set[i] for i in indices]
    return {"images": torch.stack([it["image"] for it in items]), "maps": pred.maps,
            "masks": torch.stack([it["mask"] for it in items]),
            "titles": [f"{types[i]}\nscore {float(s):.3f}" for i, s in zip(indices, pred.scores)],
            "teacher": model.teacher_description, "data": data_description(cfg) + ", test split",
            "title": f"Redrawn from {ckpt.name} ({record.get('training', {}).get('epochs')} epochs): images "
                     f"{start + 1}-{start + per_type} of each defect type in file order",
            "indices": indices}
