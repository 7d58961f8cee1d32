"""Training, Algorithm 1: the students learn the teacher's pyramid on normal images only.

:func:`fit` is the one training loop, for every path: one process or DDP ranks (a
:mod:`strategy <dskd.strategies>`), cached teacher features, resume, callbacks and every speed
option. :func:`train` is its friendly front; :func:`train_or_load` reuses the run store's finished run.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from .checkpoint import (CheckpointError, checkpoint_calibration, load_checkpoint, read_checkpoint, restore_optimizer,
                         save_checkpoint)
from .config import MIN_HOLDOUT_IMAGES, TrainConfig, resolve_device
from .hardware import resolve_precision
from .data import build_dataset
from .evaluation import predict
from .inference import Calibration, check_false_alarm_rate
from .losses import dskd_loss
from .models import DSKD, Pyramid, teacher_weights_from_name
from .models.dskd import DSKDOutput
from .outputs import RunLock
from .provenance import provenance
from .runs import RunStore, run_key
from .strategies import DataParallel, SingleProcess

__all__ = ["TrainOptions", "TrainResult", "TeacherCache", "NonFiniteLossError", "TrainingInterrupted", "fit",
           "train", "train_or_load", "training_step", "build_model", "dataset_for", "data_description",
           "seed_everything", "run_key", "cache_dir", "split_holdout", "calibrate", "HoldoutWarning",
           "MIN_HOLDOUT_IMAGES"]

#: called after every epoch with (epoch, mean loss of the epoch, model)
Callback = Callable[[int, float, DSKD], None]
PathLike = Union[str, "os.PathLike[str]"]


class NonFiniteLossError(ValueError):
    """The loss became NaN or infinite: training stopped before the bad step changed the weights."""


class HoldoutWarning(UserWarning):
    """The training split is too small for the holdout ``TrainConfig.holdout_fraction`` asks for: the run
    trains on every image and its checkpoint stores no threshold."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; ``checkpoint`` holds the last finished epoch (``None`` if none was saved)."""

    def __init__(self, message: str, checkpoint: Optional[Path], epoch: int) -> None:
        super().__init__(message)
        self.checkpoint, self.epoch = checkpoint, epoch


@dataclass(frozen=True)
class TrainOptions:
    """How a run executes, apart from what it computes (:class:`TrainConfig`): none of these enters the
    run's name, since each gives the plain path's losses up to rounding. The defaults are the fast path
    (``benchmarks/speed.py`` measures each); :meth:`plain` turns every speed option off.

    * ``cache_teacher``: compute the frozen teacher's pyramid once per training image and reuse it in later
      epochs (:class:`TeacherCache`); valid because the data sets apply no random augmentation. Ignored for
      E-D (no teacher).
    * ``channels_last``: NHWC weights and activations (oneDNN); losses differ from NCHW by rounding.
    * ``fused_adam``: torch's fused Adam kernel (one pass over all parameters; CPU and CUDA, elsewhere the
      per-tensor loop); weights differ by ~1e-8.
    * ``keep_optimizer_state``: keep Adam's state in the final checkpoint (about 60 % of its size), needed
      to continue the run; intermediate checkpoints always keep it.
    * ``checkpoint_every``: also save every N epochs (0: at the end, and the last finished epoch on Ctrl-C).
    * ``sync_bn``: SyncBatchNorm across DDP ranks (CUDA only).
    * ``false_alarm_rate``: the rate the stored threshold is calibrated for, when the config holds images
      out (``TrainConfig.holdout_fraction``); it changes no weight, only the stored threshold (the held-out
      scores are stored too, so ``dskd predict --false-alarm-rate`` can pick another one later).
    """

    cache_teacher: bool = True
    channels_last: bool = True
    fused_adam: bool = True
    keep_optimizer_state: bool = True
    checkpoint_every: int = 0
    sync_bn: bool = False
    false_alarm_rate: float = 0.01

    @classmethod
    def plain(cls, **changes: Any) -> "TrainOptions":
        """No speed option: the teacher every step, NCHW tensors, Adam's per-tensor loop."""
        return cls(**{"cache_teacher": False, "channels_last": False, "fused_adam": False, **changes})

    def __post_init__(self) -> None:
        every = self.checkpoint_every
        if not isinstance(every, int) or isinstance(every, bool) or every < 0:
            raise ValueError(f"checkpoint_every={every!r} is invalid: expected an integer >= 0 "
                             f"(0: only the final checkpoint)")
        check_false_alarm_rate(self.false_alarm_rate)


@dataclass
class TrainResult:
    """What :func:`fit` returns: the trained model (eval mode), its loss curve and where it was saved."""

    model: DSKD
    config: TrainConfig
    history: list[float]
    seconds: float
    provenance: dict[str, Any]
    checkpoint: Optional[Path] = None
    #: loaded from a finished checkpoint (the run store's, or reproduce's own) instead of trained now
    cached: bool = False
    #: hits, misses and bytes of the teacher-feature cache, when it was used
    teacher_cache: Optional[dict[str, int]] = None
    #: world size, backend and batch split of a DDP run
    distributed: Optional[dict[str, Any]] = None
    #: the threshold calibrated on the held-out normal images (``None``: no holdout, or too few images)
    calibration: Optional[Calibration] = None

    @property
    def extra(self) -> dict[str, Any]:
        """The typed fields above as the dictionary earlier versions returned (read-only view)."""
        out: dict[str, Any] = {"cached": self.cached}
        if self.teacher_cache is not None:
            out["teacher_cache"] = self.teacher_cache
        if self.distributed is not None:
            out["distributed"] = self.distributed
        return out


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for a reproducible run."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def dataset_for(cfg: TrainConfig, split: str) -> Dataset:
    """The data set a config names, for ``split`` ('train' or 'test')."""
    sizes = {k: v for k, v in (("n_train", cfg.n_train), ("n_test", cfg.n_test)) if v is not None}
    return build_dataset(cfg.dataset, split, category=cfg.category, root=cfg.data_root,
                         image_size=cfg.image_size, seed=cfg.seed, **sizes)


def split_holdout(train_set: Dataset, cfg: TrainConfig) -> tuple[Dataset, Optional[Subset], str]:
    """Hold ``cfg.holdout_fraction`` of the (normal) training images out for calibration.

    Returns ``(images to train on, held-out images or None, a line saying what was done)``. The held-out
    images are ``round(fraction * n)`` chosen by a generator seeded with ``cfg.seed`` (the same on every
    rank, run and resume); the rest keep their order. With fraction 0 the training set is returned as it
    is. Fewer than :data:`MIN_HOLDOUT_IMAGES` held-out images: nothing is held out, and the line says why.
    """
    n = len(train_set)  # type: ignore[arg-type]
    if cfg.holdout_fraction == 0:
        return train_set, None, "no holdout: training on every image (holdout_fraction=0)"
    k = int(round(cfg.holdout_fraction * n))
    if k < MIN_HOLDOUT_IMAGES:
        return train_set, None, (
            f"the training split of {data_description(cfg)} has {n} images: {cfg.holdout_fraction:.0%} of it is "
            f"{k} image(s), fewer than the {MIN_HOLDOUT_IMAGES} a threshold is calibrated on, so nothing is held out "
            f"and the checkpoint stores no threshold (raise holdout_fraction, or pass a threshold when predicting)")
    rng = np.random.default_rng([cfg.seed, 20])  # 20: this stream's own tag, apart from the data's splits
    held = np.sort(rng.permutation(n)[:k])
    keep = np.setdiff1d(np.arange(n), held)
    return (Subset(train_set, keep.tolist()), Subset(train_set, held.tolist()),
            f"{holdout_source(k, n, cfg.seed)} to calibrate the threshold")


def holdout_source(n_held: int, n_total: int, seed: int) -> str:
    """Where a stored threshold's scores come from, in words."""
    return f"{n_held} of {n_total} normal training images held out (seed {seed})"


def calibrate(model: DSKD, held_out: Dataset, cfg: TrainConfig, false_alarm_rate: float = 0.01,
              source: str = "") -> Calibration:
    """Score held-out normal images with Algorithm 2 (Eq. 8-10) and calibrate the Eq. (1) threshold on them."""
    scores = predict(model, held_out, cfg.inference(), batch_size=cfg.batch_size).scores
    return Calibration.from_scores(scores, false_alarm_rate, source)


def build_model(cfg: TrainConfig) -> DSKD:
    """The model a config names; the seed fixes the students' (and a random teacher's) initial weights."""
    seed_everything(cfg.seed)
    return DSKD(teacher_weights=teacher_weights_from_name(cfg.teacher), **cfg.model_options())


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

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "bytes": self.nbytes()}

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


def _autocast(precision: str, device: torch.device) -> Any:
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def training_step(model: DSKD, optimizer: torch.optim.Optimizer, images: Tensor, cfg: TrainConfig,
                  teacher_features: Optional[Pyramid] = None,
                  students: Optional[Callable[..., tuple]] = None, check_finite: bool = True) -> Tensor:
    """One step of Algorithm 1: forward, loss (Eq. 7), backward, Adam. Returns the detached loss.

    With ``cfg.precision == "bf16"`` the networks run under bf16 autocast (weights and Adam stay fp32);
    the loss is computed in fp32. ``cfg.precision`` must be resolved (not "auto": :meth:`TrainConfig.resolved`).

    ``teacher_features``: the teacher's pyramid of ``images`` when it is already known (cache);
    ``students``: the students as the strategy runs them (wrapped in DDP), default ``model.students``;
    ``check_finite``: raise :class:`NonFiniteLossError` before a NaN step (off under DDP, whose ranks
    must agree: the loop checks the all-reduced epoch loss there).
    """
    with _autocast(cfg.precision, images.device):
        t = teacher_features
        if t is None and model.teacher is not None:
            t = model.teacher(images)
        e, d = (students or model.students)(images, t)
    pairs = model.loss_pairs(DSKDOutput(t, e, d))
    if cfg.precision == "bf16":  # the networks ran in bf16; the loss (Eq. 3-7) is computed in fp32
        pairs = [(Pyramid(*(f.float() for f in a)), Pyramid(*(f.float() for f in b))) for a, b in pairs]
    loss = dskd_loss(pairs, cfg.lam, cfg.normalization, cfg.loss_form)
    if check_finite and not torch.isfinite(loss):  # before backward: a NaN step must not reach the weights or Adam's moments
        raise NonFiniteLossError(f"the loss became {float(loss.detach())}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def _read_resume(resume: PathLike, cfg: TrainConfig) -> dict[str, Any]:
    payload = read_checkpoint(resume)
    saved = TrainConfig.from_dict(payload["config"])
    if saved.replace(epochs=cfg.epochs, device=cfg.device) != cfg:
        raise ValueError(f"cannot resume {resume}: its config differs from this one beyond 'epochs'/'device'")
    if int(payload["epoch"]) > cfg.epochs:
        raise ValueError(f"cannot resume {str(resume)!r} with epochs={cfg.epochs}: it has already trained "
                         f"{payload['epoch']} epochs; ask for at least {payload['epoch']} (a checkpoint is never "
                         f"relabelled with fewer epochs than its weights have seen)")
    return payload


def fit(
    cfg: TrainConfig,
    *,
    out_dir: Optional[PathLike] = None,
    resume: Optional[PathLike] = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    train_set: Optional[Dataset] = None,
    options: TrainOptions = TrainOptions(),
    strategy: Union[SingleProcess, None] = None,
) -> TrainResult:
    """Algorithm 1: train the students of ``cfg.structure`` with Adam for ``cfg.epochs`` epochs.

    Writes ``out_dir/checkpoint.pt`` at the end (and every ``options.checkpoint_every`` epochs); the
    folder is created, test-written and locked before any work. ``resume`` continues a checkpoint of the
    same config (``epochs`` may be larger). Ctrl-C saves the last finished epoch and raises
    :class:`TrainingInterrupted`; a non-finite loss keeps it too and raises :class:`NonFiniteLossError`.
    ``strategy``: :class:`~dskd.strategies.SingleProcess` (default) or
    :class:`~dskd.strategies.DataParallel` (under torchrun).
    """
    strategy = strategy or SingleProcess.for_config(cfg)
    asked = cfg.precision
    precision, why = resolve_precision(cfg.precision, strategy.device)
    cfg = cfg.replace(precision=precision)  # the run and its checkpoint record what was used
    payload = _read_resume(resume, cfg) if resume is not None else None
    # the output folder is created, test-written and locked before any data is read or any step is taken
    lock = RunLock(out_dir).acquire() if out_dir is not None and strategy.is_main else None
    try:
        return _loop(cfg, strategy, options, payload, resume, lock, Path(out_dir) if out_dir is not None else None,
                     callbacks=callbacks, progress=progress, train_set=train_set,
                     precision_record={"asked": asked, "used": precision, "why": why})
    finally:
        if lock is not None:
            lock.release()


class _Snapshot:
    """The weights and Adam's state at the end of the last finished epoch: what Ctrl-C or a diverging loss
    saves, so the run resumes exactly (kept only where a checkpoint is written)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.epoch = 0
        self.state: Optional[tuple[dict[str, Any], dict[str, Any]]] = None

    def take(self, epoch: int, model: DSKD, optimizer: torch.optim.Optimizer) -> None:
        if self.enabled:
            self.epoch = epoch
            self.state = ({k: v.detach().clone() for k, v in model.state_dict().items()},
                          copy.deepcopy(optimizer.state_dict()))


def _loop(cfg: TrainConfig, strategy: SingleProcess, options: TrainOptions, payload: Optional[dict[str, Any]],
          resume: Optional[PathLike], lock: Optional[RunLock], out_dir: Optional[Path], *,
          callbacks: Sequence[Callback], progress: bool, train_set: Optional[Dataset],
          precision_record: dict[str, str]) -> TrainResult:
    model = strategy.build(lambda: build_model(cfg))
    if options.channels_last:
        model = model.to(memory_format=torch.channels_last)
    fused = options.fused_adam and strategy.device.type in ("cpu", "cuda")
    optimizer = torch.optim.Adam(model.student_parameters(), lr=cfg.lr, betas=cfg.betas,
                                 **({"fused": True} if fused else {}))
    history: list[float] = []
    start_epoch = 0
    if payload is not None:
        model.load_state_dict(payload["model"])
        if model.teacher is not None:
            model.teacher.weights_description = payload["teacher"]
        restore_optimizer(optimizer, payload, resume, cfg.epochs)  # type: ignore[arg-type]
        history, start_epoch = list(payload["history"]), int(payload["epoch"])
    students = strategy.wrap(model)

    train_set = train_set if train_set is not None else dataset_for(cfg, "train")
    if len(train_set) == 0:  # type: ignore[arg-type]
        raise ValueError(f"the training split of {data_description(cfg)} is empty")
    train_set, held_out, holdout_line = split_holdout(train_set, cfg)
    if cfg.holdout_fraction > 0 and held_out is None and strategy.is_main:
        warnings.warn(holdout_line, HoldoutWarning, stacklevel=3)
    cache = TeacherCache(len(train_set)) if options.cache_teacher and model.teacher is not None else None  # type: ignore[arg-type]
    loader = strategy.loader(_Indexed(train_set) if cache is not None else train_set, cfg)
    record = provenance(strategy.device, teacher=model.teacher_description, data=data_description(cfg),
                        split="train", n_train=len(train_set), seed=cfg.seed, epochs=cfg.epochs,  # type: ignore[arg-type]
                        precision=precision_record, options=dataclasses.asdict(options),
                        **({"distributed": strategy.record()} if strategy.record() else {}),
                        **({"holdout": {"n_images": len(held_out), "indices": list(held_out.indices),
                                        "note": holdout_line}} if held_out is not None else {}))
    out_path = out_dir / "checkpoint.pt" if out_dir is not None else None
    writes = out_path is not None and strategy.is_main
    snapshot = _Snapshot(writes)

    def save(epoch: int, final: bool = False, calibration: Optional[Calibration] = None) -> None:
        if writes:
            save_checkpoint(out_path, model, cfg, epoch=epoch, history=history, provenance=record,  # type: ignore[arg-type]
                            optimizer=None if final and not options.keep_optimizer_state else optimizer,
                            calibration=calibration.to_dict() if calibration is not None else None)
        strategy.barrier()

    def save_snapshot() -> Optional[Path]:
        if snapshot.state is None or out_path is None:
            return None
        if out_path.is_file() and int(read_checkpoint(out_path)["epoch"]) == snapshot.epoch:
            return out_path  # already saved by checkpoint_every
        save_checkpoint(out_path, model, cfg, epoch=snapshot.epoch, history=history[:snapshot.epoch],
                        provenance=record, model_state=snapshot.state[0], optimizer_state=snapshot.state[1])
        return out_path

    def diverged(message: str, epoch: int, where: str) -> NonFiniteLossError:
        kept = save_snapshot()
        saved = f"the checkpoint of epoch {snapshot.epoch} is kept in {kept}" if kept else "no checkpoint was written"
        return NonFiniteLossError(f"training stopped: {message} in epoch {epoch + 1}{where}; {saved}. "
                                  f"Try a smaller learning rate (lr={cfg.lr:g})")

    if start_epoch > 0:
        snapshot.take(start_epoch, model, optimizer)
    started = time.perf_counter()
    title = f"train {cfg.structure}" + (f" DDP x{strategy.world_size}" if strategy.world_size > 1 else "")
    bar = tqdm(range(start_epoch, cfg.epochs), desc=f"{title} [{model.teacher_description}]",
               disable=not (progress and strategy.is_main), unit="epoch")
    epoch = start_epoch
    try:
        for epoch in bar:
            model.train()
            strategy.begin_epoch(epoch, cfg)
            total, count = 0.0, 0
            for step, batch in enumerate(loader):
                images = batch["image"].to(strategy.device, non_blocking=True)
                if options.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                feats = cache.features(model.teacher, images, batch["_index"]) if cache is not None else None
                try:
                    loss = training_step(model, optimizer, images, cfg, feats, students,
                                         check_finite=strategy.checks_every_step)
                except NonFiniteLossError as err:
                    raise diverged(str(err), epoch, f" (batch {step + 1})") from None
                total += float(loss) * images.shape[0]
                count += images.shape[0]
            history.append(strategy.mean_loss(total, count))
            if not np.isfinite(history[-1]):  # DDP: every rank sees the same all-reduced loss
                history.pop()
                raise diverged(f"the mean loss became {total / max(count, 1)}", epoch, "")
            strategy.end_epoch(model)
            bar.set_postfix(loss=f"{history[-1]:.4f}")
            snapshot.take(epoch + 1, model, optimizer)
            if strategy.is_main:
                for cb in callbacks:
                    cb(epoch + 1, history[-1], model)
            if options.checkpoint_every and (epoch + 1) % options.checkpoint_every == 0:
                save(epoch + 1)
    except KeyboardInterrupt:
        bar.close()
        kept = save_snapshot()
        raise TrainingInterrupted(
            f"training interrupted in epoch {epoch + 1}; " + (f"epoch {snapshot.epoch} is saved in {kept}"
                                                              if kept is not None else "no finished epoch was saved"),
            kept, snapshot.epoch) from None
    seconds = time.perf_counter() - started
    record["train_seconds"] = round(seconds, 2)
    if options.channels_last:
        model = model.to(memory_format=torch.contiguous_format)
    model.eval()
    calibration = None
    if held_out is not None and strategy.is_main:  # the held-out normal images, scored by the final model
        source = holdout_source(len(held_out), len(train_set) + len(held_out), cfg.seed)  # type: ignore[arg-type]
        calibration = calibrate(model, held_out, cfg, options.false_alarm_rate, source)
    save(cfg.epochs, final=True, calibration=calibration)
    return TrainResult(model, cfg, history, seconds, record, out_path,
                       teacher_cache=cache.stats() if cache is not None else None, distributed=strategy.record(),
                       calibration=calibration)


def train(cfg: TrainConfig, *, ddp: bool = False, **keywords: Any) -> TrainResult:
    """Algorithm 1 (:func:`fit`) with its options as keywords: ``train(cfg, out_dir=..., cache_teacher=True)``.

    ``keywords`` are :func:`fit`'s (``out_dir``, ``resume``, ``callbacks``, ``progress``, ``train_set``) and
    :class:`TrainOptions`' fields (``checkpoint_every``, ``cache_teacher``, ``channels_last``,
    ``fused_adam``, ``keep_optimizer_state``, ``sync_bn``). ``ddp=True`` (in a process started by torchrun)
    trains one model over all ranks (:class:`~dskd.strategies.DataParallel`); every option applies there
    too. Batches are shuffled with a generator seeded by (seed, epoch), so a resumed run equals an
    uninterrupted one.
    """
    names = {f.name for f in dataclasses.fields(TrainOptions)}
    options = TrainOptions(**{k: keywords.pop(k) for k in list(keywords) if k in names})
    strategy = DataParallel(cfg, sync_bn=options.sync_bn) if ddp else SingleProcess.for_config(cfg)
    return fit(cfg, options=options, strategy=strategy, **keywords)


def cache_dir() -> Path:
    """The run store's folder (:func:`dskd.runs.store_root`): ``$DSKD_CACHE`` or ``~/.cache/dskd``."""
    return RunStore().root


#: how train_or_load trains: the fast path; its models are only loaded and scored, never continued, so
#: Adam's state is not kept (a chapter's ablations store dozens of runs).
STORE_OPTIONS = TrainOptions(keep_optimizer_state=False)


def load_finished(path: Path, cfg: TrainConfig) -> TrainResult:
    """A :class:`TrainResult` for a finished checkpoint, on ``cfg``'s device."""
    model, _, payload = load_checkpoint(path)
    prov = payload["provenance"]
    return TrainResult(model.to(resolve_device(cfg.device)), cfg, list(payload["history"]),
                       float(prov.get("train_seconds", 0.0)), prov, path, cached=True,
                       calibration=checkpoint_calibration(payload, path))


def train_or_load(cfg: TrainConfig, *, progress: bool = True, callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Load the run store's finished run of ``cfg`` (:mod:`dskd.runs`), or train one and keep it there.

    Chapters that need a trained model call this, so a reader (or the test suite) running the
    chapters in order trains each quick model once.
    """
    store = RunStore()
    if (finished := store.finished(cfg)) is not None:
        return load_finished(finished, cfg)
    options = STORE_OPTIONS
    partial = store.checkpoint(cfg)  # an interrupted run (Ctrl-C keeps its last finished epoch): continue it
    try:
        resume = partial if partial.is_file() and read_checkpoint(partial)["optimizer"] is not None else None
    except CheckpointError:
        resume = None  # a damaged leftover: train again (the new checkpoint replaces it)
    return fit(cfg, out_dir=store.folder(cfg), resume=resume, progress=progress, callbacks=callbacks,
               options=options)
