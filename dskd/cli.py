"""Command line: ``dskd {train,evaluate,predict,export,demo,ablate,reproduce,profile,baseline,pretrain-teacher}``
(``python -m dskd`` is the same)."""
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
from .checkpoint import decision_threshold as choose_threshold
from .checkpoint import load_checkpoint, read_checkpoint
from .cli_args import (
    EXIT_USAGE,
    Parser,
    UsageError,
    add_config_arguments,
    config_from_args,
)
from .cli_experiments import add_experiment_commands
from .config import TRAIN_HOLDOUT_FRACTION, TrainConfig, resolve_device
from .data import DatasetError
from .data.transforms import load_image, normalize
from .evaluation import UndefinedMetricWarning, evaluate, predict
from .export import ExportError
from .inference import check_false_alarm_rate
from .models import TeacherWeightsError
from .outputs import writable_dir, writable_file
from .provenance import provenance, write_json
from .report.demo import demo_report_markdown
from .training import (
    HoldoutWarning,
    TrainingInterrupted,
    data_description,
    dataset_for,
    train,
)

__all__ = ["main", "build_parser", "config_from_args", "train_config_from_args", "UsageError"]

# matplotlib (figures) is imported by the commands that draw, so the others start without it


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
    from .export import (  # onnx, onnxscript and onnxruntime load only here
        export_onnx,
        require_onnx,
    )

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
    (out / "demo_report.md").write_text(demo_report_markdown(
        report, data=data, seed=cfg.seed, epochs=cfg.epochs, train_seconds=result.seconds,
        final_loss=result.history[-1], total_seconds=time.perf_counter() - started))
    print(report.summary())
    print(f"report: {out / 'demo_report.md'}; figures: {out / 'demo_maps.png'}, {out / 'demo_loss.png'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dskd", description="Dual-Student Knowledge Distillation for anomaly detection.")
    parser.add_argument("--version", action="version", version=f"dskd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    p = sub.add_parser("train", help="train a model (Algorithm 1) and save a checkpoint",
                       description="Train DSKD (Algorithm 1). Starts from --preset and applies the other flags.")
    add_config_arguments(p)
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

    add_experiment_commands(sub)


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
