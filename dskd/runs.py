"""The run store: one folder per distinct run, named by its config, found, shared and continued.

Every command that needs a trained model goes through here: :func:`dskd.training.train_or_load`
(chapters, ``dskd ablate``) and ``dskd reproduce``. A run is named by :func:`run_key`, a hash of its
config (without the device: a run moved to another GPU is the same run), the package version and, for
teachers loaded from a file, that file's checksum.

Where the store lives is a setting: ``$DSKD_CACHE``, else ``~/.cache/dskd`` (:func:`store_root`).
``dskd reproduce`` keeps its own runs under ``--runs-dir`` and links each finished one into the store
(:meth:`RunStore.share`), so chapters and ``dskd ablate`` load it instead of training again; the other
way round, reproduce starts from the store's finished run of the same config.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional, Union

from . import __version__
from .checkpoint import CheckpointError, read_checkpoint
from .config import TrainConfig
from .models.teacher import OFFLINE_TEACHER_PATH, file_sha256, teacher_weights_from_name

PathLike = Union[str, "os.PathLike[str]"]

#: config fields added after the first recorded runs, left out of the key while they hold these values, so
#: runs recorded before they existed keep their names
KEY_NEUTRAL_DEFAULTS: dict[str, Any] = {"holdout_fraction": 0.0}


def store_root() -> Path:
    """The run store's folder: ``$DSKD_CACHE`` if set, else ``~/.cache/dskd``."""
    return Path(os.environ.get("DSKD_CACHE", Path.home() / ".cache" / "dskd")).expanduser()


def run_key(cfg: TrainConfig) -> str:
    """A 12-digit hash naming a run: its config without the device, the package version and, for teachers
    loaded from a file, that file's checksum (new offline weights never reuse models distilled from old ones)."""
    config = cfg.replace(device="auto").to_dict()
    for name, default in KEY_NEUTRAL_DEFAULTS.items():
        if config.get(name) == default:
            config.pop(name)
    payload: dict[str, Any] = {"config": config, "dskd": __version__}
    weights = teacher_weights_from_name(cfg.teacher)
    if isinstance(weights, (str, os.PathLike)):
        path = OFFLINE_TEACHER_PATH if weights == "offline-pretrained" else Path(weights)
        payload["teacher_sha256"] = file_sha256(path, 64) if path.is_file() else "missing"
    text = json.dumps(payload, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def checkpoint_epoch(path: PathLike) -> int:
    """How many epochs a checkpoint holds (0 if there is no readable checkpoint)."""
    try:
        return int(read_checkpoint(path)["epoch"]) if Path(path).is_file() else 0
    except (CheckpointError, OSError):
        return 0


class RunStore:
    """Checkpoints of finished runs, one folder per :func:`run_key` under ``root`` (default :func:`store_root`)."""

    def __init__(self, root: Optional[PathLike] = None) -> None:
        self.root = Path(root) if root is not None else store_root()

    def folder(self, cfg: TrainConfig) -> Path:
        return self.root / run_key(cfg)

    def checkpoint(self, cfg: TrainConfig) -> Path:
        return self.folder(cfg) / "checkpoint.pt"

    def finished(self, cfg: TrainConfig) -> Optional[Path]:
        """The store's checkpoint of ``cfg`` if it has trained all ``cfg.epochs``."""
        path = self.checkpoint(cfg)
        return path if checkpoint_epoch(path) >= cfg.epochs else None

    def share(self, checkpoint: PathLike, cfg: TrainConfig) -> Optional[Path]:
        """Make a finished run kept elsewhere (``dskd reproduce``'s runs folder) the store's run of ``cfg``:
        a hard link (no copy), or a symbolic link across file systems. Nothing is replaced.

        Returns the store's path, or ``None`` when the store already holds a checkpoint of ``cfg``.
        """
        shared = self.checkpoint(cfg)
        if shared.exists() or not Path(checkpoint).is_file():
            return None
        shared.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(checkpoint, shared)
        except OSError:
            shared.symlink_to(Path(checkpoint).resolve())
        return shared


def continuable_runs(folder: Path, cfg: TrainConfig) -> list[tuple[int, Path]]:
    """Checkpoints beside ``folder`` (``<name>-<key>`` siblings of the same job) of a config that differs
    from ``cfg`` only in its epochs, as ``(epoch, path)``, at most ``cfg.epochs`` epochs in, furthest first.

    Training uses a constant learning rate and seeds each epoch's shuffle by (seed, epoch), so epoch ``k``
    of a shorter (or longer, unfinished) run is epoch ``k`` of this one: a longer budget continues it.
    """
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


def starting_point(folder: Path, cfg: TrainConfig, store: Optional[RunStore] = None) -> tuple[int, Optional[Path], str]:
    """Where a run of ``cfg`` kept in ``folder`` starts: ``(epoch, checkpoint, where)``.

    In order: the store's finished run of the same config (``where`` = "store"); the folder's own
    checkpoint ("own"); a sibling of the same job further along (:func:`continuable_runs`, "sibling").
    ``(0, None, "scratch")`` when there is none.
    """
    own = folder / "checkpoint.pt"
    epoch, path, where = checkpoint_epoch(own), (own if own.is_file() else None), "own"
    if path is None and store is not None and (finished := store.finished(cfg)) is not None:
        return checkpoint_epoch(finished), finished, "store"
    if epoch < cfg.epochs:
        further = [s for s in continuable_runs(folder, cfg) if s[0] > epoch]
        if further:
            return further[0][0], further[0][1], "sibling"
    return (epoch, path, where) if path is not None else (0, None, "scratch")
