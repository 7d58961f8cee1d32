"""Planning and running the jobs of ``dskd reproduce``: one (benchmark, category, seed) each.

A job trains DS at the paper's settings (:meth:`TrainConfig.paper`) into
``<runs-dir>/<benchmark>/<category>/seed<k>-<run key>/checkpoint.pt`` (saved every ``checkpoint_every``
epochs, so an interrupted run resumes where it stopped; where to start from is the run store's call,
:func:`dskd.runs.starting_point`), evaluates image AUROC, pixel AUROC and PRO overall and per defect
type, and writes ``<out-dir>/<benchmark>[/<category>]/seed<k>.json`` (metrics, config, loss history,
provenance) and figures in the style of the paper's Fig. 5/6/7. The result file marks the job done.
"""
from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import torch

from ..config import TrainConfig, resolve_device
from ..data import MVTEC3D_CATEGORIES, MVTEC_CATEGORIES, DatasetError, MagneticTile, data_root, download_mvtec
from ..data.magnetic_tile import MT_TRAIN_FRACTION
from ..data.mvtec import mvtec3d_help
from ..distributed import barrier, dist_info, rank_device
from ..evaluation import evaluate
from ..metrics import pro_variants
from ..paper_results import MVTEC3D_PAPER_ORDER, MVTEC_PAPER_ORDER
from ..provenance import provenance, write_json
from ..runs import RunStore, run_key, starting_point
from ..training import TrainResult, data_description, dataset_for, load_finished, train

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
    """How a config differs from the paper's setting ('epochs 1 (paper 200)', ...); empty if it does not.

    The paper does not state its arithmetic; plain PyTorch training is fp32, so bf16 is listed as a deviation."""
    ref = TrainConfig.paper(cfg.dataset, cfg.category, teacher="imagenet")
    out = []
    for f in PAPER_FIELDS:
        a, b = getattr(cfg, f), getattr(ref, f)
        if a != b:
            out.append(f"{f} {a} (paper {b})")
    if cfg.resolved().precision != "fp32":
        out.append(f"precision {cfg.resolved().precision} (paper: not stated, presumably fp32)")
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
    return [Job(benchmark, c, int(s), paper_config(benchmark, c, seed=int(s), **cfg_options).resolved())
            for c in categories for s in seeds]


def result_path(out_dir: PathLike, benchmark: str, category: Optional[str], seed: int) -> Path:
    base = Path(out_dir) / benchmark
    return (base / category if category else base) / f"seed{seed}.json"


def run_folder(runs_dir: PathLike, job: Job) -> Path:
    return Path(runs_dir) / job.benchmark / (job.category or "all") / f"seed{job.seed}-{run_key(job.cfg)}"


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
    if data.get("run_key") == run_key(job.cfg) and data.get("status") == "done":
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
    if cfg is not None:  # always explicit too: "auto" means bf16 on one machine and fp32 on another
        parts += ["--precision", cfg.resolved().precision]
    return " ".join(shlex.quote(p) for p in parts)


def _root(benchmark: str, given: Optional[PathLike]) -> Path:
    if given is not None:
        return Path(given).expanduser()
    if benchmark == "mt-defects":
        return data_root() / "magnetic-tile"
    return data_root() / ("mvtec_ad" if benchmark == "mvtec" else "mvtec_3d")


def ensure_data(benchmark: str, categories: Sequence[Optional[str]], root: Optional[PathLike] = None, *,
                download: bool = True) -> Path:
    """Check the data is in place; download missing MVTec AD categories (its licence allows it).

    MVTec 3D-AD cannot be fetched automatically: a missing category raises :class:`DatasetError`
    saying where to get it and where to put it. Returns the data root.
    """
    root = _root(benchmark, root)
    if benchmark == "mt-defects":
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
        for c in missing:
            print(f"downloading MVTec AD '{c}' into {root}", flush=True)
            download_mvtec(root, c)
        return root
    raise DatasetError(f"MVTec 3D-AD categories missing under {root}: {', '.join(missing)}\n"
                       + mvtec3d_help(root, missing[0]))


def split_description(cfg: TrainConfig, train_set: Any, test_set: Any) -> str:
    labels = test_set.labels()
    n_normal, n_defect = labels.count(0), labels.count(1)
    if cfg.dataset == "mt-defects":
        return (f"MagneticTile split (seed {cfg.seed}): train = {len(train_set)} of {len(train_set) + n_normal} "
                f"MT_Free images ({MT_TRAIN_FRACTION:.0%}, numpy default_rng(seed).permutation of the sorted list); "
                f"test = the other {n_normal} MT_Free + all {n_defect} defective images")
    if cfg.dataset == "mvtec":
        return (f"official MVTec AD split: train/good ({len(train_set)} images) for training; test/* "
                f"({n_normal} normal, {n_defect} defective, ground_truth masks) for testing")
    return (f"official MVTec 3D-AD split, RGB only: train/good/rgb ({len(train_set)} images) for training "
            f"(validation unused); test/*/rgb ({n_normal} normal, {n_defect} defective, gt masks) for testing")


def _epoch_logger(label: str, every: int) -> Callable:
    def log(epoch: int, loss: float, model: Any) -> None:
        if epoch % every == 0:
            print(f"[{label}] epoch {epoch}: loss {loss:.4f}", flush=True)

    return log


def _train_or_resume(job: Job, cfg: TrainConfig, folder: Path, *, checkpoint_every: int, progress: bool,
                     callbacks: Sequence[Callable], ddp: bool) -> tuple[TrainResult, int]:
    """Train, resume an interrupted run, continue a shorter one, or load a finished one
    (:func:`dskd.runs.starting_point` says which). Returns (TrainResult, the epoch training started from)."""
    epoch, ckpt, where = starting_point(folder, cfg, RunStore())
    if where == "store":
        print(f"[{job.label}] using the identical finished run {ckpt}", flush=True)
    elif where == "sibling":
        print(f"[{job.label}] continuing {ckpt} from its epoch {epoch} (same config but the epochs; constant "
              f"learning rate and per-epoch shuffles make its first {epoch} epochs this run's)", flush=True)
        carry_curve(ckpt.parent / "curve.json", folder / "curve.json", epoch)
    if ckpt is not None and epoch >= cfg.epochs:
        result = load_finished(ckpt, cfg)
        if ddp:
            result.model.to(_ddp_device(cfg))
        return result, epoch
    if ckpt is not None:
        print(f"[{job.label}] resuming from epoch {epoch} of {cfg.epochs} ({ckpt})", flush=True)
    return train(cfg, out_dir=folder, resume=ckpt, checkpoint_every=checkpoint_every, progress=progress,
                 callbacks=callbacks, ddp=ddp, cache_teacher=not ddp), epoch


def carry_curve(source: Path, target: Path, epoch: int) -> None:
    """Copy the learning-curve points up to ``epoch`` of a run that this one continues: they were scored
    on the same models (the first ``epoch`` epochs of both runs are the same training)."""
    carried = [p for p in read_curve(source) if p["epoch"] <= epoch]
    if carried:
        later = [p for p in read_curve(target) if p["epoch"] > epoch]
        write_json(target, sorted(carried + later, key=lambda p: p["epoch"]))


def _curve_logger(cfg: TrainConfig, test_set: Any, path: Path, every: int) -> Callable:
    """Evaluate on the test split every ``every`` epochs and keep the points in ``path`` (JSON).

    The file lives in the run folder, so points from before an interruption survive a resume.
    """
    def log(epoch: int, loss: float, model: Any) -> None:
        if epoch % every or epoch >= cfg.epochs:  # the final epoch is evaluated by run_job itself
            return
        model.eval()
        report = evaluate(model, test_set, cfg.inference(), batch_size=cfg.batch_size)
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


def _ddp_device(cfg: TrainConfig) -> torch.device:
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
    if not ddp and result.checkpoint is not None and (shared := RunStore().share(result.checkpoint, job.cfg)):
        print(f"[{job.label}] finished run shared with dskd ablate's cache: {shared}", flush=True)
    model = result.model
    dev = next(model.parameters()).device
    train_set = dataset_for(cfg, "train")
    report = evaluate(model, test_set, cfg.inference(), batch_size=cfg.batch_size, progress=progress)
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
        "run_key": run_key(job.cfg),
        "metrics": {k: getattr(report, k) for k in (*METRICS, "per_defect_type", "n_images", "n_anomalous",
                                                     "seconds_per_image")},
        "pro_codes": pro_codes,
        "paper_setting": not deviations(cfg),
        "deviations_from_paper": deviations(cfg),
        "training": {"epochs": cfg.epochs, "final_loss": result.history[-1] if result.history else None,
                     "history": result.history, "train_seconds": round(result.seconds, 2),
                     "resumed_from_epoch": resumed_from, "checkpoint": str(result.checkpoint),
                     "loaded_finished_checkpoint": result.cached,
                     "distributed": result.distributed,
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
    from matplotlib import pyplot as plt  # matplotlib is imported only where a figure is drawn

    from ..plotting import plot_anomaly_grid

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
