"""What every ``dskd`` command shares: the one-line parser, usage errors, the training-config flags."""
from __future__ import annotations

import argparse

from .config import DATASETS, TrainConfig
from .losses import LOSS_FORMS, NORMALIZATIONS
from .models import STRUCTURES

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments in one line (and exit code 2), without the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class UsageError(Exception):
    """A bad argument found after parsing; reported in one line with exit code 2."""


def add_config_arguments(p: argparse.ArgumentParser) -> None:
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
    p.add_argument("--dfe-input", choices=("normalized", "raw"),
                   help="what the DFE embeds: S_e's l2-normalised features (Alg. 2, line 7; default) or raw ones "
                        "(the build of runs recorded before the default changed)")
    p.add_argument("--detach-decoder-input", action=argparse.BooleanOptionalAction, default=None,
                   help="l_d trains the DFE and S_d only, not S_e: the two distillations apart (default); "
                        "--no-detach-decoder-input lets l_d train S_e too, as runs recorded before the default changed")
    p.add_argument("--teacher", help="'imagenet' (default, needs internet once), 'offline-pretrained' (shipped, no ImageNet), "
                                     "'random', or a state-dict path; "
                                     "default $DSKD_TEACHER or imagenet")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--num-workers", type=int)
    p.add_argument("--holdout", type=float, metavar="FRACTION",
                   help="fraction of the normal training images held out to calibrate the stored threshold "
                        "(train: default 0.1; ablate: default 0, the paper's full training split)")
    add_precision_argument(p)


def add_precision_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                   help="training arithmetic: auto (default: bf16 autocast where the hardware has native bf16, "
                        "else fp32), fp32 or bf16; losses and metrics are always fp32")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of ``--preset`` with the flags of :func:`add_config_arguments` applied."""
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
    if args.detach_decoder_input is not None:
        overrides["detach_decoder_input"] = args.detach_decoder_input
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


def csv_items(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in csv_items(text)]
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated integers, got {text!r}") from None
