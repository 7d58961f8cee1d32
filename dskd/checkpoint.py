"""Checkpoints hold weights, the config and provenance, so a model can be rebuilt and scored later."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Union

import torch

from .config import TrainConfig
from .models import DSKD

CHECKPOINT_FORMAT = 1


def save_checkpoint(
    path: Union[str, os.PathLike],
    model: DSKD,
    cfg: TrainConfig,
    *,
    epoch: int,
    history: list[float],
    provenance: dict[str, Any],
    optimizer: Optional[torch.optim.Optimizer] = None,
) -> Path:
    """Write a checkpoint atomically (a crash never leaves a half-written file).

    ``optimizer``: Adam's state (two moment estimates, twice the size of the students' weights), needed to
    continue training exactly; ``None`` writes a checkpoint that can be scored but not continued.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": cfg.to_dict(),
        "epoch": epoch,
        "history": list(history),
        "provenance": provenance,
        "teacher": model.teacher_description,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: Union[str, os.PathLike]) -> dict[str, Any]:
    """Load a checkpoint's dictionary (weights on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{str(path)!r} is not a dskd checkpoint (format {CHECKPOINT_FORMAT})")
    return payload


def load_checkpoint(path: Union[str, os.PathLike]) -> tuple[DSKD, TrainConfig, dict[str, Any]]:
    """Rebuild the model (teacher weights included, from the checkpoint itself) in eval mode."""
    payload = read_checkpoint(path)
    cfg = TrainConfig.from_dict(payload["config"])
    model = DSKD(cfg.structure, cfg.use_dfe, teacher_weights=None)  # weights come from the state dict
    model.load_state_dict(payload["model"])
    if model.teacher is not None:
        model.teacher.weights_description = payload["teacher"]
    model.eval()
    return model, cfg, payload


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
