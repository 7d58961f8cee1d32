"""Training, Algorithm 1: the students learn the teacher's pyramid on normal images only."""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from . import __version__
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .config import TrainConfig, resolve_device
from .losses import dskd_loss
from .models import DSKD, teacher_weights_from_name
from .provenance import provenance

#: called after every epoch with (epoch, mean loss of the epoch, model)
Callback = Callable[[int, float, DSKD], None]


@dataclass
class TrainResult:
    """What :func:`train` returns: the trained model (eval mode), its loss curve and where it was saved."""

    model: DSKD
    config: TrainConfig
    history: list[float]
    seconds: float
    provenance: dict[str, Any]
    checkpoint: Optional[Path] = None
    extra: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for a reproducible run."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def dataset_for(cfg: TrainConfig, split: str) -> Dataset:
    """The data set a config names, for ``split`` ('train' or 'test')."""
    from .data import build_dataset

    sizes = {k: v for k, v in (("n_train", cfg.n_train), ("n_test", cfg.n_test)) if v is not None}
    return build_dataset(cfg.dataset, split, category=cfg.category, root=cfg.data_root,
                         image_size=cfg.image_size, seed=cfg.seed, **sizes)


def build_model(cfg: TrainConfig) -> DSKD:
    """The model a config names; the seed fixes the students' (and a random teacher's) initial weights."""
    seed_everything(cfg.seed)
    return DSKD(cfg.structure, cfg.use_dfe, teacher_weights=teacher_weights_from_name(cfg.teacher))


def data_description(cfg: TrainConfig) -> str:
    name = cfg.dataset + (f"/{cfg.category}" if cfg.category else "")
    return f"{name}, {cfg.image_size}x{cfg.image_size}"


def train(
    cfg: TrainConfig,
    *,
    out_dir: Union[str, os.PathLike, None] = None,
    resume: Union[str, os.PathLike, None] = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    train_set: Optional[Dataset] = None,
    checkpoint_every: int = 0,
) -> TrainResult:
    """Algorithm 1: train S_e and S_d (or a structure's students) with Adam for ``cfg.epochs`` epochs.

    Writes ``out_dir/checkpoint.pt`` at the end (and every ``checkpoint_every`` epochs when > 0).
    ``resume`` continues from a checkpoint of the same config (``epochs`` may be larger). Batches are
    shuffled with a generator seeded by (seed, epoch), so a resumed run equals an uninterrupted one.
    """
    device = resolve_device(cfg.device)
    model = build_model(cfg).to(device)
    optimizer = torch.optim.Adam(model.student_parameters(), lr=cfg.lr, betas=cfg.betas)
    history: list[float] = []
    start_epoch = 0
    if resume is not None:
        payload = read_checkpoint(resume)
        saved = TrainConfig.from_dict(payload["config"])
        if saved.replace(epochs=cfg.epochs, device=cfg.device) != cfg:
            raise ValueError(f"cannot resume {resume}: its config differs from this one beyond 'epochs'/'device'")
        model.load_state_dict(payload["model"])
        if model.teacher is not None:
            model.teacher.weights_description = payload["teacher"]
        if payload.get("optimizer") is not None:
            optimizer.load_state_dict(payload["optimizer"])
        history, start_epoch = list(payload["history"]), int(payload["epoch"])

    train_set = train_set if train_set is not None else dataset_for(cfg, "train")
    if len(train_set) == 0:
        raise ValueError(f"the training split of {data_description(cfg)} is empty")
    generator = torch.Generator()
    loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, generator=generator,
                        num_workers=cfg.num_workers, drop_last=len(train_set) % cfg.batch_size == 1,
                        pin_memory=device.type == "cuda", persistent_workers=cfg.num_workers > 0)
    record = provenance(device, teacher=model.teacher_description, data=data_description(cfg),
                        split="train", n_train=len(train_set), seed=cfg.seed, epochs=cfg.epochs)
    out_path = Path(out_dir) / "checkpoint.pt" if out_dir is not None else None

    def save(epoch: int) -> None:
        if out_path is not None:
            save_checkpoint(out_path, model, cfg, epoch=epoch, history=history, provenance=record,
                            optimizer=optimizer)

    started = time.perf_counter()
    bar = tqdm(range(start_epoch, cfg.epochs), desc=f"train {cfg.structure} [{model.teacher_description}]",
               disable=not progress, unit="epoch")
    for epoch in bar:
        model.train()
        generator.manual_seed(cfg.seed * 1_000_003 + epoch)
        total, count = 0.0, 0
        for batch in loader:
            images = batch["image"].to(device, non_blocking=True)
            loss = dskd_loss(model.loss_pairs(model(images)), cfg.lam, cfg.normalization, cfg.loss_form)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * images.shape[0]
            count += images.shape[0]
        history.append(total / count)
        bar.set_postfix(loss=f"{history[-1]:.4f}")
        for cb in callbacks:
            cb(epoch + 1, history[-1], model)
        if checkpoint_every and (epoch + 1) % checkpoint_every == 0:
            save(epoch + 1)
    seconds = time.perf_counter() - started
    record["train_seconds"] = round(seconds, 2)
    save(cfg.epochs)
    model.eval()
    return TrainResult(model, cfg, history, seconds, record, out_path)


def cache_dir() -> Path:
    """Where :func:`train_or_load` keeps checkpoints: ``$DSKD_CACHE`` or ``~/.cache/dskd``."""
    return Path(os.environ.get("DSKD_CACHE", Path.home() / ".cache" / "dskd"))


def run_key(cfg: TrainConfig) -> str:
    """A short hash of a config (and the package version): one folder per distinct run."""
    text = json.dumps({"config": cfg.to_dict(), "dskd": __version__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def train_or_load(cfg: TrainConfig, *, progress: bool = True, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Load the checkpoint of an identical earlier run from :func:`cache_dir`, or train and save one.

    Chapters that need a trained model call this, so a reader (or the test suite) running the
    chapters in order trains each quick model once.
    """
    folder = cache_dir() / run_key(cfg)
    path = folder / "checkpoint.pt"
    if path.is_file():
        model, _, payload = load_checkpoint(path)
        prov = payload["provenance"]
        return TrainResult(model.to(resolve_device(cfg.device)), cfg, list(payload["history"]),
                           float(prov.get("train_seconds", 0.0)), prov, path, {"cached": True})
    result = train(cfg, out_dir=folder, progress=progress, callbacks=callbacks)
    result.extra["cached"] = False
    return result
