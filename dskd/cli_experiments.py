"""The commands behind the book's experiments: ``dskd ablate``, ``reproduce``, ``profile``, ``baseline`` and
``pretrain-teacher`` (:func:`add_experiment_commands` adds them to ``dskd``'s parser)."""
from __future__ import annotations

import argparse
import sys

import torch

from .ablation import STUDIES, run_study, summarize, write_study
from .cli_args import (
    UsageError,
    add_config_arguments,
    add_precision_argument,
    config_from_args,
    csv_items,
    parse_seeds,
)
from .config import resolve_device
from .distributed import cleanup, dist_info, init_distributed
from .outputs import writable_dir, writable_file
from .reproduce import parse_devices, reproduce, write_tables

# the speed module (it registers a custom op), profiling, baselines and pretraining are imported by the
# commands that use them, so the others start without them


def cmd_ablate(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    seeds = parse_seeds(args.seeds)
    variants = csv_items(args.variants) if args.variants else None
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
    seeds = parse_seeds(args.seeds)
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
    structures = csv_items(args.structures)
    try:
        sizes = [int(s) for s in csv_items(args.sizes)]
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

    seeds = parse_seeds(args.seeds)
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


def add_experiment_commands(sub: argparse._SubParsersAction) -> None:
    """Add the experiment commands to ``dskd``'s sub-command parsers."""
    p = sub.add_parser("ablate", help="run an ablation study (Sec. 4.3 and beyond) and record its results",
                       description="Train/evaluate every variant of a study; results go to "
                                   "<out-dir>/<dataset>/<study>.json (added to, never overwritten) and a figure.")
    p.add_argument("--study", required=True, choices=tuple(STUDIES))
    p.add_argument("--variants", help="comma-separated subset of the study's variants (default: all)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--out-dir", default="results/ablations")
    add_config_arguments(p)
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
    add_precision_argument(p)
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
