"""Command line: ``dskd {train,evaluate,predict,demo}`` (``python -m dskd`` is the same)."""
from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from . import __version__
from .ablation import STUDIES, run_study, summarize, write_study
from .checkpoint import decision_threshold as choose_threshold
from .checkpoint import load_checkpoint, read_checkpoint
from .config import DATASETS, TRAIN_HOLDOUT_FRACTION, TrainConfig, resolve_device
from .data import DatasetError
from .data.transforms import load_image, normalize
from .distributed import cleanup, dist_info, init_distributed
from .evaluation import UndefinedMetricWarning, evaluate, predict
from .export import ExportError
from .inference import check_false_alarm_rate
from .losses import LOSS_FORMS, NORMALIZATIONS
from .models import STRUCTURES, TeacherWeightsError
from .outputs import writable_dir, writable_file
from .provenance import provenance, write_json
from .reproduce import parse_devices, reproduce, write_tables
from .training import HoldoutWarning, TrainingInterrupted, data_description, dataset_for, train

# matplotlib (figures), the speed module (it registers a custom op), profiling and pretraining are imported by
# the commands that use them, so the others start without them

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments in one line (and exit code 2), without the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class UsageError(Exception):
    """A bad argument found after parsing; reported in one line with exit code 2."""


def _add_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=("quick", "paper"), default="quick",
                   help="starting point: 'quick' (synthetic, minutes on a CPU) or 'paper' (Sec. 4.1.2 settings)")
    p.add_argument("--dataset", choices=DATASETS, help="data set (default: the preset's)")
    p.add_argument("--category", help="category within the data set")
    p.add_argument("--data-root", help="data folder (default: $DSKD_DATA/<data set>)")
    p.add_argument("--image-size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--lam", type=float, help="lambda of Eq. (6)")
    p.add_argument("--normalization", choices=NORMALIZATIONS)
    p.add_argument("--loss-form", choices=LOSS_FORMS)
    p.add_argument("--structure", choices=STRUCTURES)
    p.add_argument("--no-dfe", action="store_true", help="replace the deep feature embedding (Table 8)")
    p.add_argument("--dfe-blocks", type=int, choices=(1, 2),
                   help="residual blocks in the DFE: 1 (Fig. 4, default) or 2 (RD4AD's bottleneck)")
    p.add_argument("--dfe-input", choices=("raw", "normalized"),
                   help="what the DFE embeds: S_e's raw features (default) or l2-normalised ones (Alg. 2, line 7)")
    p.add_argument("--detach-decoder-input", action="store_true",
                   help="l_d trains the DFE and S_d only, not S_e (the two distillations apart)")
    p.add_argument("--teacher", help="'imagenet' (default, needs internet once), 'offline-pretrained' (shipped, no ImageNet), "
                                     "'random', or a state-dict path; "
                                     "default $DSKD_TEACHER or imagenet")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--num-workers", type=int)
    p.add_argument("--holdout", type=float, metavar="FRACTION",
                   help="fraction of the normal training images held out to calibrate the stored threshold "
                        "(train: default 0.1; ablate: default 0, the paper's full training split)")
    _add_precision_argument(p)


def _add_precision_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                   help="training arithmetic: auto (default: bf16 autocast where the hardware has native bf16, "
                        "else fp32), fp32 or bf16; losses and metrics are always fp32")


def _threshold_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--threshold", type=float, help="decide at this score (Eq. 1) instead of the stored threshold")
    group.add_argument("--false-alarm-rate", type=float, metavar="RATE",
                       help="decide at the threshold calibrated for this rate (0 <= RATE < 1) on the held-out "
                            "normal scores the checkpoint stores, instead of its stored rate")


def _check_threshold_arguments(args: argparse.Namespace) -> None:
    """The threshold flags' values, checked before any file is read."""
    _finite("--threshold", args.threshold)
    if args.false_alarm_rate is not None:
        try:
            check_false_alarm_rate(args.false_alarm_rate)
        except ValueError as err:
            raise UsageError(f"--false-alarm-rate: {err}") from None


def decision_threshold(args: argparse.Namespace, payload: dict[str, Any], checkpoint: str):
    """:func:`dskd.checkpoint.decision_threshold` with the command's ``--threshold`` / ``--false-alarm-rate``."""
    return choose_threshold(payload, checkpoint, threshold=args.threshold, false_alarm_rate=args.false_alarm_rate)


def config_from_args(args: argparse.Namespace):

    overrides = {
        key: getattr(args, key)
        for key in ("dataset", "category", "data_root", "image_size", "epochs", "batch_size", "lr", "lam",
                    "normalization", "loss_form", "structure", "teacher", "seed", "device", "num_workers",
                    "precision")
        if getattr(args, key, None) is not None
    }
    if getattr(args, "holdout", None) is not None:
        overrides["holdout_fraction"] = args.holdout
    if args.no_dfe:
        overrides["use_dfe"] = False
    if args.dfe_blocks is not None:
        overrides["dfe_blocks"] = args.dfe_blocks
    if args.dfe_input is not None:
        overrides["dfe_input"] = args.dfe_input
    if args.detach_decoder_input:
        overrides["detach_decoder_input"] = True
    if args.preset == "paper":
        dataset = overrides.pop("dataset", None)
        if dataset is None:
            raise UsageError("--preset paper needs --dataset")
        return TrainConfig.paper(dataset, overrides.pop("category", None), **overrides)
    if "dataset" in overrides and overrides["dataset"] != "synthetic":
        overrides.setdefault("category", None)
        overrides.setdefault("n_train", None)
        overrides.setdefault("n_test", None)
    return TrainConfig.quick(**overrides)


def _report_payload(report, cfg, checkpoint: Optional[Path], extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "metrics": report.to_dict(),
        "config": cfg.to_dict(),
        "checkpoint": str(checkpoint) if checkpoint else None,
        "provenance": provenance(cfg.device if cfg.device != "auto" else "cpu", teacher=report.teacher,
                                 data=data_description(cfg), split="test", **extra),
    }


def train_config_from_args(args: argparse.Namespace):
    """``dskd train``'s config: as :func:`config_from_args`, but holding :data:`TRAIN_HOLDOUT_FRACTION` of the
    training images out unless ``--holdout`` says otherwise (a resumed run keeps its checkpoint's holdout)."""
    if args.holdout is None:
        args.holdout = (read_checkpoint(args.resume)["config"].get("holdout_fraction", 0.0) if args.resume
                        else TRAIN_HOLDOUT_FRACTION)
    return config_from_args(args)


def cmd_train(args: argparse.Namespace) -> int:
    cfg = train_config_from_args(args)
    try:
        rate = check_false_alarm_rate(args.false_alarm_rate)
    except ValueError as err:
        raise UsageError(f"--false-alarm-rate: {err}") from None
    out = Path(args.out)
    shown = warnings.showwarning

    def note(message, category, *rest) -> None:  # the holdout note as one line, when it happens
        if issubclass(category, HoldoutWarning):
            print(f"dskd train: note: {message}", file=sys.stderr)
        else:
            shown(message, category, *rest)

    try:
        warnings.showwarning = note
        result = train(cfg, out_dir=out, resume=args.resume, checkpoint_every=args.checkpoint_every,
                       false_alarm_rate=rate)
    except TrainingInterrupted as stop:
        print(f"\ndskd train: {stop}", file=sys.stderr)
        if stop.checkpoint is not None:
            print(f"dskd train: resume with: {_resume_command(args, stop.checkpoint)}", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown
    print(f"trained {cfg.structure} for {cfg.epochs} epochs in {result.seconds:.1f} s "
          f"[teacher: {result.model.teacher_description}]; final loss {result.history[-1]:.4f}")
    if result.calibration is not None:
        cal = result.calibration
        print(f"threshold {cal.threshold:.4g} stored ({cal.rule})")
        if cal.note:
            print(f"dskd train: note: {cal.note}", file=sys.stderr)
    print(f"checkpoint: {result.checkpoint}")
    return 0


def _resume_command(args: argparse.Namespace, checkpoint: Path) -> str:
    """The command line that continues an interrupted ``dskd train`` from ``checkpoint``."""

    argv, kept, skip = list(getattr(args, "argv", []) or []), [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--resume":
            skip = True
        elif not item.startswith("--resume="):
            kept.append(item)
    return shlex.join(["dskd", *kept, "--resume", str(checkpoint)])


def cmd_evaluate(args: argparse.Namespace) -> int:
    _check_threshold_arguments(args)
    out = writable_file(Path(args.out) if args.out else Path(args.checkpoint).with_name("evaluation.json"),
                        "report file (--out)")
    model, cfg, payload = load_checkpoint(args.checkpoint)
    threshold, notes = decision_threshold(args, payload, args.checkpoint)
    if args.data_root:
        cfg = cfg.replace(data_root=args.data_root)
    device = resolve_device(args.device or "auto")
    model.to(device)
    with warnings.catch_warnings():  # printed below as one line each
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        report = evaluate(model, dataset_for(cfg, "test"), cfg.inference(), batch_size=cfg.batch_size,
                          progress=True, threshold=threshold)
    for note in notes:
        print(f"dskd evaluate: note: {note}", file=sys.stderr)
    print(report.summary())
    for t, m in report.per_defect_type.items():
        print(f"  {t:>12}: image AUROC {m['image_auroc']:.3f}  pixel AUROC {m['pixel_auroc']:.3f}  PRO {m['pro']:.3f}")
    for note in report.warnings:
        print(f"dskd evaluate: warning: {note}", file=sys.stderr)
    write_json(out, _report_payload(report, cfg, Path(args.checkpoint), {"train": payload["provenance"]}))
    print(f"report: {out}")
    return 0


def _image_files(inputs: Sequence[str]) -> list[tuple[Path, Path]]:
    """Every image named or found (recursively) in ``inputs``, each with the relative path its outputs are
    named after: the path below the folder given, so ``a/x.png`` and ``b/x.png`` never share an output."""
    exts = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
    found: dict[Path, Path] = {}
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in sorted(f for f in p.rglob("*") if f.suffix.lower() in exts and f.is_file()):
                found.setdefault(f.resolve(), f.relative_to(p))
        elif p.is_file():
            found.setdefault(p.resolve(), Path(p.name))
        else:
            raise UsageError(f"input {item!r} is neither an image file nor a folder")
    if not found:
        raise UsageError(f"no images ({', '.join(sorted(exts))}) found in {list(inputs)}")
    names: dict[Path, Path] = {}
    for path, rel in found.items():  # files given one by one may still share a name: number the later ones
        name, k = rel, 1
        while name in names.values():
            k += 1
            name = rel.with_name(f"{rel.stem}-{k}{rel.suffix}")
        names[path] = name
    return [(path, names[path]) for path in found]


def _finite(name: str, value: Optional[float]) -> Optional[float]:
    if value is not None and not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number, got {value}")
    return value


def cmd_predict(args: argparse.Namespace) -> int:
    from matplotlib import pyplot as plt

    from .plotting import plot_decisions

    _check_threshold_arguments(args)
    files = _image_files(args.images)
    out = writable_dir(args.out, "output folder (--out)")
    model, cfg, payload = load_checkpoint(args.checkpoint)
    threshold, notes = decision_threshold(args, payload, args.checkpoint)
    for note in notes:
        print(f"dskd predict: note: {note}", file=sys.stderr)
    images = torch.stack([normalize(load_image(f, cfg.image_size)) for f, _ in files])
    pred = predict(model, images, cfg.inference(), batch_size=cfg.batch_size)
    value = threshold.threshold if threshold is not None else None
    vmax = max(float(pred.maps.max()), 1.05 * value if value is not None else 0.0)
    records = []
    for i, (f, rel) in enumerate(files):
        score = float(pred.scores[i])
        fig = plot_decisions(images[i:i + 1], pred.maps[i:i + 1], [score], threshold, names=[str(rel)],
                             teacher=model.teacher_description, data=f"{cfg.dataset} model", vmax=vmax)
        png = out / rel.parent / f"{rel.stem}_heatmap.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png)
        plt.close(fig)
        records.append({"image": str(f), "score": score, "anomalous": score >= value if value is not None else None,
                        "threshold": value, "rule": threshold.rule if threshold is not None else None,
                        "region_fraction": float((pred.maps[i] >= value).float().mean()) if value is not None
                        else None, "heatmap": str(png)})
    result = {"checkpoint": str(args.checkpoint), "teacher": model.teacher_description,
              "threshold": {"value": value, "rule": threshold.rule} if threshold is not None else None,
              "images": records}
    write_json(out / "scores.json", result)
    flagged = sum(1 for r in records if r["anomalous"])
    decided = (f": {flagged} anomalous at threshold {value:.4g} ({threshold.rule})" if threshold is not None
               else ": no threshold, no decision")
    print(f"scored {len(files)} images [teacher: {model.teacher_description}]{decided} -> {out / 'scores.json'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_onnx, require_onnx  # onnx, onnxscript and onnxruntime load only here

    _check_threshold_arguments(args)
    out = writable_file(Path(args.out) if args.out else Path(args.checkpoint).with_name("model.onnx"),
                        "ONNX file (--out)")
    require_onnx()
    model, cfg, payload = load_checkpoint(args.checkpoint)
    threshold, notes = decision_threshold(args, payload, args.checkpoint)
    for note in notes:
        print(f"dskd export: note: {note}", file=sys.stderr)

    info = export_onnx(model, cfg, out, threshold=threshold, checkpoint=args.checkpoint)
    shown = f"threshold {threshold.threshold:.4g} ({threshold.rule})" if threshold is not None else "no threshold"
    print(f"exported {cfg.structure} [teacher: {model.teacher_description}] for {cfg.image_size}x{cfg.image_size} "
          f"images, {shown}, max |map difference| {info['check']['max_abs_map_diff']:.2e} against PyTorch -> {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from matplotlib import pyplot as plt

    from .plotting import plot_anomaly_grid, plot_loss_curve

    started = time.perf_counter()
    overrides: dict[str, Any] = {}
    if args.teacher:
        overrides["teacher"] = args.teacher
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    cfg = TrainConfig.quick(**overrides)
    out = writable_dir(args.out, "output folder (--out)")
    print(f"dskd demo: {data_description(cfg)}, {cfg.epochs} epochs, teacher '{cfg.teacher}'")
    result = train(cfg, out_dir=out)
    test_set = dataset_for(cfg, "test")
    report = evaluate(result.model, test_set, cfg.inference())
    teacher, data = report.teacher, data_description(cfg)
    pred = report.prediction
    picks = [next(i for i, t in enumerate(pred.defect_types) if t == d) for d in ["good", *sorted(report.per_defect_type)]]
    batch = [test_set[i] for i in picks]

    fig = plot_anomaly_grid(torch.stack([b["image"] for b in batch]), pred.maps[picks],
                            torch.stack([b["mask"] for b in batch]), titles=[pred.defect_types[i] for i in picks],
                            teacher=teacher, data=data + ", test split")
    fig.savefig(out / "demo_maps.png")
    plt.close(fig)
    fig = plot_loss_curve(result.history, teacher=teacher, data=data)
    fig.savefig(out / "demo_loss.png")
    plt.close(fig)
    write_json(out / "demo_report.json", _report_payload(report, cfg, result.checkpoint, {}))
    lines = [
        "# dskd demo report", "",
        f"- data: {data} (embedded synthetic data set, generated from seed {cfg.seed})",
        f"- teacher: {teacher}",
        f"- training: {cfg.epochs} epochs, {result.seconds:.1f} s; final loss {result.history[-1]:.4f}",
        f"- image AUROC {report.image_auroc:.3f}, pixel AUROC {report.pixel_auroc:.3f}, PRO {report.pro:.3f}",
        "", "| defect type | image AUROC | pixel AUROC | PRO |", "| --- | --- | --- | --- |",
        *[f"| {t} | {m['image_auroc']:.3f} | {m['pixel_auroc']:.3f} | {m['pro']:.3f} |"
          for t, m in report.per_defect_type.items()],
        "", "Figures: demo_maps.png (image / anomaly map / ground truth), demo_loss.png.",
        f"Total time {time.perf_counter() - started:.1f} s.",
    ]
    (out / "demo_report.md").write_text("\n".join(lines) + "\n")
    print(report.summary())
    print(f"report: {out / 'demo_report.md'}; figures: {out / 'demo_maps.png'}, {out / 'demo_loss.png'}")
    return 0


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def cmd_ablate(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        seeds = [int(s) for s in _csv(args.seeds)]
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    variants = _csv(args.variants) if args.variants else None
    writable_dir(args.out_dir, "results folder (--out-dir)")
    data = run_study(args.study, cfg, variants=variants, seeds=seeds, out_dir=args.out_dir)
    png = write_study(data, args.study)
    for row in summarize(data["records"], args.study):
        print(f"{row['variant']:>14}: image AUROC {row['image_auroc']:.3f}±{row['image_auroc_std']:.3f}  "
              f"pixel AUROC {row['pixel_auroc']:.3f}  PRO {row['pro']:.3f}  (n={row['n_seeds']}, "
              f"teacher {', '.join(row['teacher'])})")
    print(f"results: {data['path']}; figure: {png}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    if args.tables_only:
        for path in write_tables(args.out_dir, args.benchmark):
            print(f"table: {path}")
        return 0
    try:
        seeds = [int(s) for s in _csv(args.seeds)]
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    devices = parse_devices(args.gpus)
    resolve_device(args.device or "auto")
    writable_dir(args.out_dir, "results folder (--out-dir)")
    writable_dir(args.runs_dir, "checkpoints folder (--runs-dir)")
    if args.ddp:
        if devices and len(devices) > 1:
            raise UsageError("--ddp and --gpus exclude each other: DDP spreads one model over the torchrun ranks, "
                             "--gpus runs one category per GPU")
        try:
            init_distributed(args.device or "auto")
        except RuntimeError as err:
            raise UsageError(str(err)) from None
    main_rank = dist_info().is_main
    try:
        out = reproduce(args.benchmark, args.category, seeds, epochs=args.epochs, teacher=args.teacher,
                        device=args.device or "auto", data_root=args.data_root, image_size=args.image_size,
                        batch_size=args.batch_size, num_workers=args.num_workers, precision=args.precision,
                        out_dir=args.out_dir,
                        runs_dir=args.runs_dir, devices=devices, ddp=args.ddp, download=not args.no_download,
                        checkpoint_every=args.checkpoint_every, n_examples=args.examples, overwrite=args.overwrite,
                        eval_every=args.eval_every, rescore=args.rescore)
    except KeyboardInterrupt:
        print(f"\ndskd reproduce: interrupted. Run the same command again to resume from the last checkpoint "
              f"(saved every {args.checkpoint_every} epochs under {args.runs_dir}); finished categories are kept.",
              file=sys.stderr)
        return 130
    finally:
        if args.ddp:
            cleanup()
    if not main_rank:
        return 0
    for s in out["jobs"]:
        print(f"  {s['job']:>28}: {s['status']}" + (f" on {s['device']}" if s.get("device") else ""))
    for path in out["tables"]:
        print(f"table: {path}")
    if out["failed"]:
        print(f"dskd reproduce: {len(out['failed'])} job(s) failed: {', '.join(out['failed'])}", file=sys.stderr)
        return 1
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from .profiling import format_table, profile, write_profile
    from .speed import SpeedOptions

    if args.paper_accounting:
        from .paper_build import format_paper_accounting

        print(format_paper_accounting())
        return 0
    structures = _csv(args.structures)
    try:
        sizes = [int(s) for s in _csv(args.sizes)]
    except ValueError:
        raise UsageError(f"--sizes must be comma-separated integers, got {args.sizes!r}") from None
    speed = SpeedOptions.fast() if args.speed == "fast" else SpeedOptions.plain()
    if args.out_dir != "-":
        writable_dir(args.out_dir, "profile folder (--out-dir)")
    result = profile(structures, sizes, speed=speed, runs=args.runs, warmup=args.warmup,
                     throughput_batch=args.throughput_batch, throughput_runs=args.throughput_runs,
                     train_batch=args.train_batch, train_runs=args.train_runs, threads=args.threads,
                     attainable_size=args.probe_size)
    print(format_table(result))
    if args.out_dir != "-":
        print(f"profile: {write_profile(result, args.out_dir, args.name)}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from .baselines import record_baseline
    from .outputs import writable_dir

    try:
        seeds = [int(s) for s in _csv(args.seeds)]
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    if not 0 < args.coreset_fraction <= 1:
        raise UsageError(f"--coreset-fraction must be in (0, 1], got {args.coreset_fraction}")
    writable_dir(args.out_dir, "results folder (--out-dir)")
    for seed in seeds:
        rec = record_baseline(seed, dataset=args.dataset, teacher=args.teacher, image_size=args.image_size,
                              data_root=args.data_root, out_dir=args.out_dir, coreset_fraction=args.coreset_fraction,
                              device=args.device)
        m = rec["metrics"]
        print(f"PatchCore seed {seed} [teacher: {rec['provenance']['teacher']}]: image AUROC {m['image_auroc']:.3f}, "
              f"pixel AUROC {m['pixel_auroc']:.3f}, PRO {m['pro']:.3f} ({rec['settings']['bank_size']} of "
              f"{rec['settings']['n_train_patches']} patches in the bank; {rec['wall_seconds']:.0f} s) -> {rec['path']}")
    return 0


def cmd_pretrain_teacher(args: argparse.Namespace) -> int:
    from .pretrain import PretrainConfig, pretrain_teacher, save_teacher

    fields = ("n_categories", "per_category", "image_size", "epochs", "batch_size", "lr", "seed", "recipe",
              "ssl_sources", "ssl_steps_per_epoch", "ssl_min_scale", "ssl_grey", "ssl_weight")
    cfg = PretrainConfig(**{k: getattr(args, k) for k in fields if getattr(args, k) is not None})
    writable_file(args.out or f"runs/teacher/offline_{cfg.recipe}.pt", "weights file (--out)")
    if args.threads:
        torch.set_num_threads(args.threads)
    state, record = pretrain_teacher(cfg, progress=True)
    path = save_teacher(state, record, args.out or f"runs/teacher/offline_{cfg.recipe}.pt")
    last = record["history"][-1]
    shown = ", ".join(f"{k.replace('_', ' ')} {last[k]:.3f}" for k in ("loss", "accuracy", "rotation_accuracy")
                      if k in last)
    sources = f"; source images {', '.join(record['source_images'])}" if record["source_images"] else ""
    print(f"teacher ({cfg.recipe}): {path} (sha256 {record.get('sha256', '?')}); {record['wall_seconds']:.0f} s; "
          f"last epoch {shown}{sources}")
    print(f"use it with --teacher {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dskd", description="Dual-Student Knowledge Distillation for anomaly detection.")
    parser.add_argument("--version", action="version", version=f"dskd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("train", help="train a model (Algorithm 1) and save a checkpoint",
                       description="Train DSKD (Algorithm 1). Starts from --preset and applies the other flags.")
    _add_config_arguments(p)
    p.add_argument("--out", default="runs/train", help="output folder for checkpoint.pt (default runs/train)")
    p.add_argument("--resume", help="checkpoint to continue from")
    p.add_argument("--checkpoint-every", type=int, default=0,
                   help="also save every N epochs (default 0: at the end, and the last finished epoch on Ctrl-C)")
    p.add_argument("--false-alarm-rate", type=float, default=0.01, metavar="RATE",
                   help="the share of normal images the stored threshold may flag, calibrated on the held-out "
                        "images (default 0.01)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="image AUROC, pixel AUROC and PRO of a checkpoint on its test split")
    p.add_argument("checkpoint", help="a checkpoint.pt written by 'dskd train'")
    p.add_argument("--data-root", help="override the data folder recorded in the checkpoint")
    p.add_argument("--device", help="auto, cpu, cuda or mps")
    p.add_argument("--out", help="report JSON (default: evaluation.json beside the checkpoint)")
    _threshold_arguments(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="anomalous or not, with scores (JSON) and anomaly maps (PNG), for image "
                                       "files or folders",
                       description="Score images (Algorithm 2) and decide (Eq. 1) at the threshold the checkpoint "
                                   "stores (calibrated on held-out normal training images by 'dskd train').")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--out", default="runs/predict", help="output folder (default runs/predict)")
    _threshold_arguments(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="one ONNX file: image batch -> anomaly maps and image scores (Eq. 8-10)",
                       description="Export a checkpoint for inference without dskd: the networks, the maps "
                                   "(Eq. 8-9: upsampling, sum, Gaussian) and the score (Eq. 10, max) in one graph; "
                                   "input size, normalisation and the decision threshold in its metadata.")
    p.add_argument("checkpoint")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="file format (default onnx)")
    p.add_argument("--out", help="output file (default: model.onnx beside the checkpoint)")
    _threshold_arguments(p)
    p.set_defaults(func=cmd_export)


    p = sub.add_parser("ablate", help="run an ablation study (Sec. 4.3 and beyond) and record its results",
                       description="Train/evaluate every variant of a study; results go to "
                                   "<out-dir>/<dataset>/<study>.json (added to, never overwritten) and a figure.")
    p.add_argument("--study", required=True, choices=tuple(STUDIES))
    p.add_argument("--variants", help="comma-separated subset of the study's variants (default: all)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--out-dir", default="results/ablations")
    _add_config_arguments(p)
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("reproduce", help="the paper's Tables 1-5 at full scale: train, evaluate, tables, figures",
                       description="Train DS at the paper's settings per category (resuming interrupted runs, "
                                   "skipping finished ones), evaluate, and write <out-dir>/<benchmark>/ results "
                                   "(JSON with provenance, figures) and the paper's tables with its numbers beside "
                                   "ours (table<N>.json/.md).")
    p.add_argument("benchmark", choices=("mt-defects", "mvtec", "mvtec3d"),
                   help="mt-defects: Table 5, Fig. 7; mvtec: Tables 1-2; mvtec3d: Tables 3-4")
    p.add_argument("--category", help="'all' (default) or comma-separated categories (not for mt-defects)")
    p.add_argument("--seeds", "--seed", dest="seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--epochs", type=int, help="default: the paper's 200")
    p.add_argument("--teacher", help="'imagenet' (the paper's), 'offline-pretrained', 'random' or a state-dict path; "
                                     "default $DSKD_TEACHER or imagenet")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--gpus", help="run categories in parallel, one worker per device: 'all', '0,1,3' or device names")
    p.add_argument("--ddp", action="store_true", help="one model over all torchrun ranks (DistributedDataParallel); "
                                                      "start with 'torchrun --nproc_per_node N -m dskd reproduce ...'")
    p.add_argument("--data-root", help="data folder (default $DSKD_DATA/<magnetic-tile|mvtec_ad|mvtec_3d>)")
    p.add_argument("--out-dir", default="results", help="results folder (default results)")
    p.add_argument("--runs-dir", default="runs/reproduce", help="checkpoints folder (default runs/reproduce)")
    p.add_argument("--checkpoint-every", type=int, default=10, help="save a resumable checkpoint every N epochs")
    p.add_argument("--eval-every", type=int, default=0,
                   help="also score the test split every N epochs and record the learning curve (default 0: no)")
    p.add_argument("--image-size", type=int, help="default: the paper's (128 for mt-defects, 256 otherwise)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--num-workers", type=int)
    _add_precision_argument(p)
    p.add_argument("--examples", type=int, default=6, help="images per defect-type figure (MT Defects)")
    p.add_argument("--no-download", action="store_true", help="never download MVTec AD")
    p.add_argument("--overwrite", action="store_true", help="replace results of a different configuration")
    p.add_argument("--rescore", action="store_true",
                   help="evaluate the jobs already done again from their finished checkpoints (trains nothing "
                        "where the checkpoint is there) and rewrite their results")
    p.add_argument("--tables-only", action="store_true", help="only rebuild the tables from the results present")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("profile", help="Table 6 for this machine: parameters, FLOPs, latency, throughput, memory",
                       description="Profile each structure on the CPU (Sec. 4.2.4, Table 6) beside the machine's "
                                   "attainable rate; prints a table and writes <out-dir>/<machine>.json.")
    p.add_argument("--structures", default="DS,T-E,T-D,E-D", help="comma-separated (default all four)")
    p.add_argument("--sizes", default="128,256", help="comma-separated image sizes (default 128,256)")
    p.add_argument("--speed", choices=("fast", "plain"), default="fast",
                   help="the optimised variant timed beside the plain one (default fast)")
    p.add_argument("--runs", type=int, default=15, help="timed runs at batch 1 (median reported)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--throughput-batch", type=int, default=16)
    p.add_argument("--throughput-runs", type=int, default=5)
    p.add_argument("--train-batch", type=int, default=8)
    p.add_argument("--train-runs", type=int, default=3)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    p.add_argument("--probe-size", choices=("large", "small"), default="large",
                   help="size of the attainable-rate probes ('small' only for smoke tests)")
    p.add_argument("--out-dir", default="results/complexity", help="JSON folder ('-': do not write)")
    p.add_argument("--name", help="JSON file stem (default: a slug of the CPU model)")
    p.add_argument("--paper-accounting", action="store_true",
                   help="only print Table 6's parameters, MACs and size counted from the paper's probable build "
                        "(whole ResNet18s, RD4AD's two-block bottleneck) beside ours, at 256 x 256; times nothing")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("baseline", help="the same-teacher PatchCore baseline: memory bank of T's features, "
                                        "recorded per seed",
                       description="Fit a PatchCore-style memory bank (T's conv3_x + conv4_x patch features, greedy "
                                   "coreset) on each seed's training split and score the test split with DSKD's "
                                   "maps and metrics; writes <out-dir>/<dataset>/seed<N>.json with provenance.")
    p.add_argument("--dataset", choices=("mt-defects", "synthetic"), default="mt-defects",
                   help="mt-defects (default; the recorded runs) or synthetic (the embedded data set, a smoke test)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds; the seed picks the MT Defects split "
                                                    "(default 0,1,2)")
    p.add_argument("--teacher", default="offline-pretrained",
                   help="'offline-pretrained' (default), 'imagenet', 'random' or a state-dict path")
    p.add_argument("--image-size", type=int, default=128, help="default 128 (the paper's MT Defects size)")
    p.add_argument("--data-root", help="data folder (default $DSKD_DATA/<data set>)")
    p.add_argument("--coreset-fraction", type=float, default=0.1, help="share of training patches kept (default 0.1)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--out-dir", default="results/baselines", help="results folder (default results/baselines)")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("pretrain-teacher", help="pretrain the teacher's stem..layer3 offline (fractals and/or "
                                                "self-supervision on shipped natural images; no download)",
                       description="Pretraining of ResNet18 stem..layer3 without a download, for a teacher worth "
                                   "distilling from where ImageNet weights cannot be had. --recipe fractal: "
                                   "formula-driven (FractalDB-style fractal categories); ssl: RotNet on heavily "
                                   "augmented crops of the natural images installed packages ship (scikit-learn's "
                                   "sample images), after Asano et al. 2020; mix: both losses each step. Writes the "
                                   "weights and a provenance JSON beside them.")
    p.add_argument("--recipe", choices=("fractal", "ssl", "mix"), help="what the backbone learns from "
                   "(default fractal)")
    p.add_argument("--out", help="weights file, a .json is written beside it (default "
                                 "runs/teacher/offline_<recipe>.pt)")
    p.add_argument("--n-categories", type=int, help="fractal categories (classes); fractal and mix")
    p.add_argument("--per-category", type=int, help="images per category; fractal and mix")
    p.add_argument("--image-size", type=int, help="rendered image / crop size")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="images per step and per task (a multiple of 4 for ssl and mix)")
    p.add_argument("--lr", type=float, help="peak learning rate (one-cycle SGD)")
    p.add_argument("--seed", type=int)
    p.add_argument("--ssl-sources", choices=("sklearn", "skimage", "sklearn+skimage"),
                   help="natural images to crop (default sklearn: china.jpg, flower.jpg; skimage needs scikit-image)")
    p.add_argument("--ssl-steps-per-epoch", type=int, help="steps per epoch of the ssl recipe (default 100)")
    p.add_argument("--ssl-min-scale", type=float, help="smallest crop as a fraction of the image area (default 0.01)")
    p.add_argument("--ssl-grey", type=float, help="probability of a greyscale crop (default 0.5)")
    p.add_argument("--ssl-weight", type=float, help="mix: weight of the rotation loss (default 1)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.set_defaults(func=cmd_pretrain_teacher)

    p = sub.add_parser("demo", help="synthetic data end to end in a few minutes: train, evaluate, report, figure")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--teacher", help="teacher weights (default $DSKD_TEACHER or imagenet)")
    p.add_argument("--epochs", type=int, help="override the quick preset's epochs")
    p.set_defaults(func=cmd_demo)
    return parser


def _one_line(err: BaseException) -> str:
    """An error as one line. A DataLoader worker's error carries the worker's whole traceback in its
    message; its last line is the original message."""
    text = str(err).strip() or type(err).__name__
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv

    try:
        return int(args.func(args) or 0)
    except (UsageError, ValueError, FileNotFoundError, TeacherWeightsError, DatasetError, ExportError) as err:
        print(f"dskd {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\ndskd {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - a user sees one line; DSKD_TRACEBACK=1 shows the rest
        if os.environ.get("DSKD_TRACEBACK"):
            raise
        print(f"dskd {args.command}: error: {type(err).__name__}: {_one_line(err)} (set DSKD_TRACEBACK=1 to see "
              f"the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
