"""Training, Algorithm 1: the students learn the teacher's pyramid on normal images only."""
from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from . import __version__
from .checkpoint import load_checkpoint, read_checkpoint, restore_optimizer, save_checkpoint
from .config import TrainConfig, resolve_device
from .losses import dskd_loss
from .models import DSKD, Pyramid, teacher_weights_from_name
from .outputs import RunLock
from .provenance import provenance

#: called after every epoch with (epoch, mean loss of the epoch, model)
Callback = Callable[[int, float, DSKD], None]


class NonFiniteLossError(ValueError):
    """The loss became NaN or infinite: training stopped before the bad step changed the weights."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`train`; ``checkpoint`` holds the last finished epoch (``None`` if none was saved)."""

    def __init__(self, message: str, checkpoint: Optional[Path], epoch: int) -> None:
        super().__init__(message)
        self.checkpoint, self.epoch = checkpoint, epoch


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


# --------------------------------------------------------------------------------------------------
# Teacher-feature cache: the teacher is frozen and, without augmentation, sees the same image every
# epoch, so its pyramid can be computed once per training image and reused in later epochs.
# --------------------------------------------------------------------------------------------------
class _Indexed(Dataset):
    """The training set, each item also carrying its index (to look up cached teacher features)."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict:
        item = dict(self.base[index])
        item["_index"] = index
        return item


class TeacherCache:
    """The teacher's pyramid for every training image, filled the first time an image is seen.

    Features are computed on exactly the batches the uncached path would use, so the first epoch
    is bitwise identical; later epochs reuse them. Memory: N x (64 h1 w1 + 128 h2 w2 + 256 h3 w3)
    floats, i.e. 1.75 MiB per 256 x 256 image (0.44 MiB at 128 x 128).
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.levels: Optional[list[Tensor]] = None
        self.filled = torch.zeros(n, dtype=torch.bool)
        self.hits = 0
        self.misses = 0

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.levels) if self.levels else 0

    def features(self, teacher: nn.Module, images: Tensor, index: Tensor) -> Pyramid:
        """The teacher's pyramid of ``images`` (items ``index`` of the training set)."""
        index = torch.as_tensor(index).cpu()
        if self.levels is not None and bool(self.filled[index].all()):
            self.hits += len(index)
            idx = index.to(self.levels[0].device)
            return Pyramid(*(level[idx] for level in self.levels))
        feats = teacher(images)
        self.misses += len(index)
        if self.levels is None:
            f0 = feats[0]
            fmt = (torch.channels_last if f0.is_contiguous(memory_format=torch.channels_last)
                   and not f0.is_contiguous() else torch.contiguous_format)
            self.levels = [f.new_empty((self.n, *f.shape[1:])).contiguous(memory_format=fmt) for f in feats]
        idx = index.to(self.levels[0].device)
        for level, f in zip(self.levels, feats):
            level[idx] = f.detach()
        self.filled[index] = True
        return feats


class _FixedTeacher(nn.Module):
    """Stands in for the teacher for one forward pass, returning the features it was given."""

    def __init__(self, feats: Pyramid) -> None:
        super().__init__()
        self.feats = feats

    def forward(self, x: Tensor) -> Pyramid:
        return self.feats


@contextmanager
def _teacher_features(model: DSKD, feats: Pyramid) -> Iterator[None]:
    """Run ``model`` with its teacher replaced by ``feats`` (DSKD.forward itself is unchanged)."""
    teacher = model._modules["teacher"]
    model._modules["teacher"] = _FixedTeacher(feats)
    try:
        yield
    finally:
        model._modules["teacher"] = teacher


def training_step(model: DSKD, optimizer: torch.optim.Optimizer, images: Tensor, cfg: TrainConfig,
                  teacher_feats: Optional[Pyramid] = None) -> Tensor:
    """One step of Algorithm 1: forward, loss (Eq. 7), backward, Adam. Returns the detached loss.

    ``teacher_feats``: the teacher's pyramid of ``images`` when it is already known (cache).
    """
    if teacher_feats is not None:
        with _teacher_features(model, teacher_feats):
            out = model(images)
    else:
        out = model(images)
    loss = dskd_loss(model.loss_pairs(out), cfg.lam, cfg.normalization, cfg.loss_form)
    if not torch.isfinite(loss):  # before backward: a NaN step must not reach the weights or Adam's moments
        raise NonFiniteLossError(f"the loss became {float(loss.detach())}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train(
    cfg: TrainConfig,
    *,
    out_dir: Union[str, os.PathLike, None] = None,
    resume: Union[str, os.PathLike, None] = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    train_set: Optional[Dataset] = None,
    checkpoint_every: int = 0,
    ddp: bool = False,
    cache_teacher: bool = False,
    channels_last: bool = False,
    fused_adam: bool = False,
    keep_optimizer_state: bool = True,
) -> TrainResult:
    """Algorithm 1: train S_e and S_d (or a structure's students) with Adam for ``cfg.epochs`` epochs.

    Writes ``out_dir/checkpoint.pt`` at the end (and every ``checkpoint_every`` epochs when > 0).
    ``keep_optimizer_state=False`` leaves Adam's state out of the final checkpoint (about 60% of its
    size): the model can be scored but not continued. Intermediate checkpoints always keep it.
    ``resume`` continues from a checkpoint of the same config (``epochs`` may be larger). Batches are
    shuffled with a generator seeded by (seed, epoch), so a resumed run equals an uninterrupted one.
    ``ddp=True`` (in a process started by torchrun) trains with DistributedDataParallel:
    :func:`dskd.distributed.train_ddp`.

    Speed options (they do not enter the config):

    * ``cache_teacher``: compute the frozen teacher's pyramid once per training image and reuse it in
      later epochs (:class:`TeacherCache`). Valid because the data sets apply no random augmentation;
      the losses equal the uncached run's (bitwise when the teacher's kernels do not depend on the
      batch size). Needs memory for every image's pyramid. Ignored for E-D (no teacher).
    * ``channels_last``: NHWC weights and activations (oneDNN); losses differ from NCHW by rounding.
    * ``fused_adam``: torch's fused Adam kernel (one pass over all parameters; several times faster on a
      CPU than the default per-tensor loop); weights differ from the default by rounding (~1e-8).
    """
    if not isinstance(checkpoint_every, int) or isinstance(checkpoint_every, bool) or checkpoint_every < 0:
        raise ValueError(f"checkpoint_every={checkpoint_every!r} is invalid: expected an integer >= 0 "
                         f"(0: only the final checkpoint)")
    if ddp:
        from .distributed import train_ddp

        return train_ddp(cfg, out_dir=out_dir, resume=resume, callbacks=callbacks, progress=progress,
                         train_set=train_set, checkpoint_every=checkpoint_every)
    device = resolve_device(cfg.device)
    payload = read_checkpoint(resume) if resume is not None else None
    if payload is not None:
        saved = TrainConfig.from_dict(payload["config"])
        if saved.replace(epochs=cfg.epochs, device=cfg.device) != cfg:
            raise ValueError(f"cannot resume {resume}: its config differs from this one beyond 'epochs'/'device'")
        if int(payload["epoch"]) > cfg.epochs:
            raise ValueError(f"cannot resume {str(resume)!r} with epochs={cfg.epochs}: it has already trained "
                             f"{payload['epoch']} epochs; ask for at least {payload['epoch']} (a checkpoint is never "
                             f"relabelled with fewer epochs than its weights have seen)")
    # the output folder is created, test-written and locked before any data is read or any step is taken
    lock = RunLock(out_dir).acquire() if out_dir is not None else None
    try:
        return _train(cfg, device, payload, resume, lock, callbacks=callbacks, progress=progress,
                      train_set=train_set, checkpoint_every=checkpoint_every, cache_teacher=cache_teacher,
                      channels_last=channels_last, fused_adam=fused_adam,
                      keep_optimizer_state=keep_optimizer_state)
    finally:
        if lock is not None:
            lock.release()


def _train(cfg: TrainConfig, device: torch.device, payload: Optional[dict[str, Any]],
           resume: Union[str, os.PathLike, None], lock: Optional[RunLock], *, callbacks: Sequence[Callback],
           progress: bool, train_set: Optional[Dataset], checkpoint_every: int, cache_teacher: bool,
           channels_last: bool, fused_adam: bool, keep_optimizer_state: bool) -> TrainResult:
    model = build_model(cfg).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.student_parameters(), lr=cfg.lr, betas=cfg.betas,
                                 **({"fused": True} if fused_adam else {}))
    history: list[float] = []
    start_epoch = 0
    if payload is not None:
        model.load_state_dict(payload["model"])
        if model.teacher is not None:
            model.teacher.weights_description = payload["teacher"]
        restore_optimizer(optimizer, payload, resume, cfg.epochs)
        history, start_epoch = list(payload["history"]), int(payload["epoch"])

    train_set = train_set if train_set is not None else dataset_for(cfg, "train")
    if len(train_set) == 0:
        raise ValueError(f"the training split of {data_description(cfg)} is empty")
    cache = TeacherCache(len(train_set)) if cache_teacher and model.teacher is not None else None
    generator = torch.Generator()
    loader = DataLoader(_Indexed(train_set) if cache is not None else train_set, batch_size=cfg.batch_size, shuffle=True, generator=generator,
                        num_workers=cfg.num_workers, drop_last=len(train_set) % cfg.batch_size == 1,
                        pin_memory=device.type == "cuda", persistent_workers=cfg.num_workers > 0)
    record = provenance(device, teacher=model.teacher_description, data=data_description(cfg),
                        split="train", n_train=len(train_set), seed=cfg.seed, epochs=cfg.epochs)
    out_path = lock.folder / "checkpoint.pt" if lock is not None else None
    # the weights and Adam's state at the end of the last finished epoch: what Ctrl-C or a diverging loss
    # saves, so that the run can be resumed exactly (kept only when there is a folder to save into)
    snapshot: Optional[tuple[int, dict[str, Any], dict[str, Any]]] = None

    def take_snapshot(epoch: int) -> None:
        nonlocal snapshot
        if out_path is not None:
            snapshot = (epoch, {k: v.detach().clone() for k, v in model.state_dict().items()},
                        copy.deepcopy(optimizer.state_dict()))

    def save(epoch: int, final: bool = False) -> None:
        if out_path is not None:
            save_checkpoint(out_path, model, cfg, epoch=epoch, history=history, provenance=record,
                            optimizer=None if final and not keep_optimizer_state else optimizer)

    def save_snapshot() -> Optional[Path]:
        if snapshot is None or out_path is None:
            return None
        epoch, model_state, optimizer_state = snapshot
        if out_path.is_file() and int(read_checkpoint(out_path)["epoch"]) == epoch:
            return out_path  # already saved by checkpoint_every
        save_checkpoint(out_path, model, cfg, epoch=epoch, history=history[:epoch], provenance=record,
                        model_state=model_state, optimizer_state=optimizer_state)
        return out_path

    if start_epoch > 0:
        take_snapshot(start_epoch)
    started = time.perf_counter()
    bar = tqdm(range(start_epoch, cfg.epochs), desc=f"train {cfg.structure} [{model.teacher_description}]",
               disable=not progress, unit="epoch")
    epoch = start_epoch
    try:
        for epoch in bar:
            model.train()
            generator.manual_seed(cfg.seed * 1_000_003 + epoch)
            total, count = 0.0, 0
            for step, batch in enumerate(loader):
                images = batch["image"].to(device, non_blocking=True)
                if channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                feats = cache.features(model.teacher, images, batch["_index"]) if cache is not None else None
                try:
                    loss = training_step(model, optimizer, images, cfg, feats)
                except NonFiniteLossError as err:
                    kept = save_snapshot()
                    where = (f"the checkpoint of epoch {snapshot[0]} is kept in {kept}" if kept is not None and snapshot
                             else "no checkpoint was written")
                    raise NonFiniteLossError(
                        f"training stopped: {err} in epoch {epoch + 1} (batch {step + 1}); {where}. "
                        f"Try a smaller learning rate (lr={cfg.lr:g})") from None
                total += float(loss) * images.shape[0]
                count += images.shape[0]
            history.append(total / count)
            bar.set_postfix(loss=f"{history[-1]:.4f}")
            take_snapshot(epoch + 1)
            for cb in callbacks:
                cb(epoch + 1, history[-1], model)
            if checkpoint_every and (epoch + 1) % checkpoint_every == 0:
                save(epoch + 1)
    except KeyboardInterrupt:
        bar.close()
        kept = save_snapshot()
        done = snapshot[0] if snapshot is not None else 0
        raise TrainingInterrupted(
            f"training interrupted in epoch {epoch + 1}; " + (f"epoch {done} is saved in {kept}" if kept is not None
                                                              else "no finished epoch was saved"),
            kept, done) from None
    seconds = time.perf_counter() - started
    record["train_seconds"] = round(seconds, 2)
    if channels_last:
        model = model.to(memory_format=torch.contiguous_format)
    save(cfg.epochs, final=True)
    model.eval()
    extra: dict[str, Any] = {}
    if cache is not None:
        extra["teacher_cache"] = {"hits": cache.hits, "misses": cache.misses, "bytes": cache.nbytes()}
    return TrainResult(model, cfg, history, seconds, record, out_path, extra)


def cache_dir() -> Path:
    """Where :func:`train_or_load` keeps checkpoints: ``$DSKD_CACHE`` or ``~/.cache/dskd``."""
    return Path(os.environ.get("DSKD_CACHE", Path.home() / ".cache" / "dskd"))


def run_key(cfg: TrainConfig) -> str:
    """A short hash of a config, the package version and, for teachers loaded from a file, that file's
    checksum: one folder per distinct run (new offline weights never reuse models distilled from old ones)."""
    payload: dict[str, Any] = {"config": cfg.to_dict(), "dskd": __version__}
    weights = teacher_weights_from_name(cfg.teacher)
    if isinstance(weights, (str, os.PathLike)):
        from .models.teacher import OFFLINE_TEACHER_PATH, file_sha256

        path = OFFLINE_TEACHER_PATH if weights == "offline-pretrained" else Path(weights)
        payload["teacher_sha256"] = file_sha256(path, 64) if path.is_file() else "missing"
    text = json.dumps(payload, sort_keys=True)
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
    # speed options only (not in the config): the teacher's features are computed once per image (the
    # data sets do not augment) and Adam runs fused; losses equal the plain path's up to rounding. The
    # cache's models are only loaded and scored, never continued, so Adam's state is not kept (a
    # chapter's ablations cache dozens of runs).
    result = train(cfg, out_dir=folder, progress=progress, callbacks=callbacks, cache_teacher=True,
                   fused_adam=resolve_device(cfg.device).type in ("cpu", "cuda"), keep_optimizer_state=False)
    result.extra["cached"] = False
    return result
