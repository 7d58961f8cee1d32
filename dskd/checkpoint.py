"""Checkpoints hold weights, the config and provenance, so a model can be rebuilt and scored later.

A checkpoint is read with ``torch.load(..., weights_only=True)``: only tensors and plain data (dicts,
lists, strings, numbers) are unpickled, so a crafted file cannot run code when it is loaded; such a
file is refused with :class:`CheckpointError` before anything in it is used.
"""
from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch.torch_version import TorchVersion

from .config import MIN_HOLDOUT_IMAGES, TRAIN_HOLDOUT_FRACTION, TrainConfig
from .inference import Calibration, Thresholds
from .models import DSKD

CHECKPOINT_FORMAT = 1
#: the keys every checkpoint holds
CHECKPOINT_KEYS = ("format", "config", "epoch", "history", "provenance", "teacher", "model", "optimizer")
#: keys added later, absent from older checkpoints: "calibration", the stored decision threshold
#: (:class:`dskd.inference.Calibration` as plain data, or ``None``)
OPTIONAL_KEYS = ("calibration",)
#: classes allowed besides tensors and plain data: older checkpoints stored ``torch.__version__`` as
#: this ``str`` subclass (new ones store a plain string)
_SAFE_GLOBALS = [TorchVersion]


class CheckpointError(ValueError):
    """A file that is not a usable dskd checkpoint (unsafe, damaged, or of another kind)."""


def save_checkpoint(
    path: Union[str, os.PathLike],
    model: DSKD,
    cfg: TrainConfig,
    *,
    epoch: int,
    history: list[float],
    provenance: dict[str, Any],
    optimizer: Optional[torch.optim.Optimizer] = None,
    optimizer_state: Optional[dict[str, Any]] = None,
    model_state: Optional[dict[str, Any]] = None,
    calibration: Optional[dict[str, Any]] = None,
) -> Path:
    """Write a checkpoint atomically: a crash never leaves a half-written ``path``.

    The payload goes to a uniquely named temporary file in the same folder, which then replaces
    ``path`` (two writers never share a temporary file; a failed write removes its own).
    ``optimizer``: Adam's state (two moment estimates, twice the size of the students' weights), needed
    to continue training exactly; ``None`` writes a checkpoint that can be scored but not continued.
    ``model_state`` / ``optimizer_state`` save given state dicts instead of the live objects' (a
    snapshot taken at the end of an epoch). ``calibration``: the threshold calibrated on held-out normal
    images (:meth:`dskd.inference.Calibration.to_dict`), written by the final save of a run that held some out.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if optimizer_state is None and optimizer is not None:
        optimizer_state = optimizer.state_dict()
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": cfg.to_dict(),
        "epoch": int(epoch),
        "history": [float(h) for h in history],
        "provenance": plain_data(provenance),
        "teacher": str(model.teacher_description),
        "model": model_state if model_state is not None else model.state_dict(),
        "optimizer": optimizer_state,
        "calibration": plain_data(calibration) if calibration is not None else None,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def plain_data(value: Any) -> Any:
    """``value`` with every string-like object turned into ``str`` and numbers into int/float, so that
    ``torch.load(weights_only=True)`` can read it back (e.g. ``torch.__version__`` is a str subclass)."""
    if isinstance(value, dict):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return plain_data(value.item())
    return str(value)


def _load_safely(path: Path) -> Any:
    shown = str(path)
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "Weights only load failed" in text or "Unsupported global" in text or "GLOBAL" in text:
            found = re.search(r"GLOBAL ([\w.]+)", text)
            what = f" ({found.group(1)})" if found else ""
            raise CheckpointError(
                f"refused to load {shown!r}: it holds Python objects other than tensors and plain data{what}, "
                f"which could run code; it was not unpickled. Load only checkpoints written by dskd") from None
        raise CheckpointError(f"cannot read {shown!r}: not a checkpoint file ({_first_line(text)})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError, IndexError) as err:
        raise CheckpointError(f"cannot read {shown!r}: not a torch checkpoint, or a truncated one "
                              f"({type(err).__name__}: {_first_line(str(err))})") from None


def _first_line(text: str, limit: int = 160) -> str:
    line = next((s.strip() for s in text.splitlines() if s.strip()), "")
    return line if len(line) <= limit else line[:limit] + "..."


def read_checkpoint(path: Union[str, os.PathLike]) -> dict[str, Any]:
    """Load a checkpoint's dictionary (weights on the CPU), refusing anything but tensors and plain data.

    Raises ``FileNotFoundError`` for a missing path and :class:`CheckpointError` (one line, naming the
    file and what was expected) for a folder, an empty, damaged, unsafe or foreign file.
    """
    path = Path(path)
    if path.is_dir():
        inside = path / "checkpoint.pt"
        hint = f"; did you mean {str(inside)!r}?" if inside.is_file() else ""
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder, expected a checkpoint file{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty (0 bytes)")
    payload = _load_safely(path)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        kind = "a state dict of tensors" if isinstance(payload, dict) and payload and all(
            isinstance(v, torch.Tensor) for v in payload.values()) else f"a {type(payload).__name__}"
        raise CheckpointError(f"{str(path)!r} is not a dskd checkpoint (format {CHECKPOINT_FORMAT}, written by "
                              f"'dskd train'); it holds {kind}")
    missing = [k for k in CHECKPOINT_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{str(path)!r} is an incomplete dskd checkpoint: no {', '.join(missing)}")
    return payload


def checkpoint_calibration(payload: dict[str, Any], path: Union[str, os.PathLike] = "") -> Optional[Calibration]:
    """The decision threshold a checkpoint stores, or ``None`` when it has none (written before thresholds
    travelled with models, or trained without a holdout). A damaged record raises :class:`CheckpointError`."""
    record = payload.get("calibration")
    if record is None:
        return None
    try:
        return Calibration.from_dict(record)
    except ValueError as err:
        raise CheckpointError(f"{str(path)!r} holds a damaged threshold record: {_first_line(str(err))}") from None


def no_threshold_reason(payload: dict[str, Any]) -> str:
    """Why a checkpoint stores no threshold, in words."""
    if "calibration" not in payload:
        return "it was written before checkpoints stored a threshold"
    holdout = payload.get("config", {}).get("holdout_fraction", 0.0)
    if not holdout:
        return "it was trained on every training image (holdout_fraction=0, as reproduce and ablate do)"
    return (f"its training split was too small for holdout_fraction={holdout} "
            f"(fewer than {MIN_HOLDOUT_IMAGES} images to calibrate on)")


def decision_threshold(payload: dict[str, Any], path: Union[str, os.PathLike] = "", *,
                       threshold: Optional[float] = None,
                       false_alarm_rate: Optional[float] = None,
                       ) -> tuple[Optional[Union[Thresholds, Calibration]], list[str]]:
    """The Eq. (1) threshold to decide with, and notes for the user: ``threshold`` if given (a number typed
    by the user), else the checkpoint's held-out scores calibrated for ``false_alarm_rate`` if given, else
    the stored threshold (both a :class:`Calibration`, which has ``threshold`` and ``rule`` too);
    ``(None, [why])`` when the checkpoint stores none. Raises ``ValueError`` when a rate is asked of a
    checkpoint without held-out scores."""
    if threshold is not None:
        return Thresholds(float(threshold), "given on the command line"), []
    calibration = checkpoint_calibration(payload, path)
    if calibration is None:
        reason = no_threshold_reason(payload)
        if false_alarm_rate is not None:
            raise ValueError(f"a false-alarm rate needs the held-out normal scores a checkpoint stores, and "
                             f"{str(path)!r} stores none ({reason}); pass --threshold VALUE instead")
        return None, [f"{path} stores no threshold ({reason}): no decision is made; pass --threshold, or train "
                      f"with 'dskd train' (it holds out {TRAIN_HOLDOUT_FRACTION:.0%} of the training images to store one)"]
    if false_alarm_rate is not None:
        calibration = calibration.at_rate(false_alarm_rate)
    return calibration, [calibration.note] if calibration.note else []


def load_checkpoint(path: Union[str, os.PathLike]) -> tuple[DSKD, TrainConfig, dict[str, Any]]:
    """Rebuild the model (teacher weights included, from the checkpoint itself) in eval mode."""
    payload = read_checkpoint(path)
    try:
        cfg = TrainConfig.from_dict(payload["config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{str(path)!r} holds an invalid config: {_first_line(str(err))}") from None
    model = DSKD(teacher_weights=None, **cfg.model_options())  # weights come from the state dict
    load_weights(model, payload["model"], path, cfg)
    if model.teacher is not None:
        model.teacher.weights_description = str(payload["teacher"])
    model.eval()
    return model, cfg, payload


def load_weights(model: DSKD, state: Any, path: Union[str, os.PathLike], cfg: TrainConfig) -> None:
    """``model.load_state_dict(state)``, with a one-line error when the weights belong to another model."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{str(path)!r}: its 'model' entry is a {type(state).__name__}, expected a state dict")
    try:
        model.load_state_dict(state)
    except RuntimeError:
        expected = set(model.state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            example = (missing or unexpected)[0]
            detail = f"{len(missing)} missing and {len(unexpected)} unexpected tensors (e.g. {example})"
        else:
            detail = "tensor shapes differ"
        raise CheckpointError(f"{str(path)!r}: its weights do not fit the {cfg.structure} model "
                              f"(use_dfe={cfg.use_dfe}) its config names: {detail}") from None


def restore_optimizer(optimizer: torch.optim.Optimizer, payload: dict[str, Any], path: Union[str, os.PathLike],
                      epochs: int) -> None:
    """Load a checkpoint's optimizer state before training continues from it.

    Raises when epochs remain to be trained and the checkpoint holds no optimizer state (the cache of
    :func:`dskd.training.train_or_load` keeps weights only): fresh Adam moments would make a
    different run from the uninterrupted one.
    """
    state = payload.get("optimizer")
    if state is not None:
        optimizer.load_state_dict(state)
    elif int(payload["epoch"]) < epochs:
        raise ValueError(f"cannot continue {str(path)!r}: it holds weights but no optimizer state (a finished "
                         f"run saved for scoring only); train from scratch or from a checkpoint written by "
                         f"train(..., keep_optimizer_state=True)")
