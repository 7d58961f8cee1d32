"""One model trained over several processes (GPUs, machines or CPU cores): DistributedDataParallel.

Launch any ``dskd reproduce`` run under ``torchrun`` with ``--ddp``::

    # one machine, 4 GPUs, one model (one category at a time)
    torchrun --standalone --nproc_per_node 4 -m dskd reproduce mvtec --category bottle --ddp
    # two machines with 8 GPUs each (run on both; host0 is reachable from host1)
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint host0:29500 \\
        -m dskd reproduce mvtec --category all --ddp
    # from Python, in a script started by torchrun
    train(cfg, out_dir="runs/x", ddp=True)          # == dskd.distributed.train_ddp(cfg, ...)

(Several GPUs and many categories are usually better served by ``dskd reproduce ... --gpus all``,
which trains one category per GPU in parallel; DDP is for making one model train faster.)

What happens (:func:`train_ddp`):

* Every rank builds the same model from ``cfg.seed`` (rank 0 first, so only it downloads teacher
  weights). The frozen teacher stays a plain module on every rank; only the students (S_e, the DFE,
  S_d: :class:`StudentNetworks`) are wrapped in ``DistributedDataParallel``, so only their
  gradients are all-reduced.
* A ``DistributedSampler`` (seed ``cfg.seed``, ``set_epoch(epoch)``) shards each epoch's shuffled
  order; each rank takes ``cfg.batch_size // world_size`` images per step, so one optimizer step sees
  ``cfg.batch_size`` images, as a single-process run does. (The sampler pads the data set by
  repeating a few images so every rank gets the same number of batches.)
* BatchNorm: each rank normalises with its own batch statistics (the torchvision reference scripts'
  default); ``sync_bn=True`` uses ``SyncBatchNorm`` instead (CUDA only). At the end of every epoch
  the students' BatchNorm buffers are broadcast from rank 0, so all ranks hold identical weights and
  the rank-0 checkpoint *is* the model.
* Rank 0 alone writes checkpoints (same format as :func:`dskd.train`, so ``dskd evaluate`` and
  ``resume`` work unchanged), shows progress and calls the callbacks; the other ranks wait at
  barriers. Resuming: every rank loads the same checkpoint.
* Backend: NCCL on CUDA (device ``cuda:LOCAL_RANK``), gloo on CPU (the tests run two CPU ranks).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

__all__ = ["DistInfo", "StudentNetworks", "launched_by_torchrun", "init_distributed", "dist_info", "barrier",
           "is_main_process", "cleanup", "train_ddp"]


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True inside a process started by ``torchrun`` (it sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def dist_info() -> DistInfo:
    """Rank and world size of the initialised process group (rank 0 of 1 when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return DistInfo(0, 1, 0)


def is_main_process() -> bool:
    return dist_info().is_main


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def rank_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """This rank's device: 'auto'/'cuda' -> cuda:LOCAL_RANK when CUDA is there; an explicit one as given."""
    if device in ("auto", "cuda"):
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if device == "cuda":
            raise ValueError("device 'cuda' was asked for but CUDA is not available")
        return torch.device("cpu")
    return torch.device(device)


def init_distributed(
    device: str = "auto",
    *,
    backend: Optional[str] = None,
    init_method: Optional[str] = None,
    rank: Optional[int] = None,
    world_size: Optional[int] = None,
) -> tuple[DistInfo, torch.device]:
    """Join the process group (once) and pick this rank's device.

    Under torchrun everything comes from the environment; ``init_method`` (e.g. ``file:///tmp/x``)
    with ``rank`` and ``world_size`` serves ``torch.multiprocessing.spawn``.
    """
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this PyTorch build")
    if not dist.is_initialized():
        if init_method is None and not launched_by_torchrun():
            raise RuntimeError("--ddp needs a process group: start the command with torchrun, e.g. "
                               "'torchrun --standalone --nproc_per_node 2 -m dskd reproduce ... --ddp'")
        local = int(os.environ.get("LOCAL_RANK", rank or 0))
        dev = rank_device(device, local)
        backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        kwargs: dict[str, Any] = {"backend": backend, "init_method": init_method or "env://"}
        if rank is not None:
            kwargs.update(rank=rank, world_size=world_size)
        dist.init_process_group(**kwargs)
    info = dist_info()
    return info, rank_device(device, info.local_rank)


def cleanup() -> None:
    """Leave the process group (call once at the end of a DDP program)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class StudentNetworks(nn.Module):
    """The trainable part of a :class:`~dskd.models.DSKD` (S_e, embedding, S_d), sharing its modules.

    ``forward(x, teacher_pyramid)`` returns ``(encoder pyramid, decoder pyramid)`` exactly as
    :meth:`DSKD.forward` computes them; the teacher's pyramid is computed outside (frozen), so DDP
    wraps, broadcasts and all-reduces the students only.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.structure = model.structure
        self.encoder = model.encoder
        self.embedding = model.embedding
        self.decoder = model.decoder

    def forward(self, x: Tensor, teacher: Optional[Sequence[Tensor]]):
        e = self.encoder(x) if self.encoder is not None else None
        d = None
        if self.decoder is not None:
            source = teacher if self.structure == "T-D" else e
            d = self.decoder(self.embedding(source))
        return e, d


def _broadcast_buffers(module: nn.Module) -> None:
    for buf in module.buffers():
        dist.broadcast(buf, src=0)


def train_ddp(
    cfg,
    *,
    out_dir: Union[str, os.PathLike, None] = None,
    resume: Union[str, os.PathLike, None] = None,
    callbacks: Sequence = (),
    progress: bool = True,
    train_set: Optional[Dataset] = None,
    checkpoint_every: int = 0,
    sync_bn: bool = False,
):
    """Algorithm 1 under DistributedDataParallel (see the module docstring); returns a TrainResult.

    Joins the process group from the torchrun environment if it is not initialised yet. Every rank
    returns the same trained model (eval mode); only rank 0 writes ``out_dir/checkpoint.pt``.
    """
    from tqdm.auto import tqdm

    from .checkpoint import read_checkpoint, restore_optimizer, save_checkpoint
    from .config import TrainConfig
    from .losses import dskd_loss
    from .models.dskd import DSKDOutput
    from .provenance import provenance
    from .training import TrainResult, build_model, data_description, dataset_for

    info, device = init_distributed(cfg.device)
    if not info.is_main:
        barrier()  # rank 0 builds first: only it fetches teacher weights
    model = build_model(cfg).to(device)
    if info.is_main:
        barrier()
    students = StudentNetworks(model)
    if sync_bn:
        if device.type != "cuda":
            raise ValueError("sync_bn needs CUDA devices (SyncBatchNorm has no CPU implementation)")
        nn.SyncBatchNorm.convert_sync_batchnorm(students)
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
        restore_optimizer(optimizer, payload, resume, cfg.epochs)
        history, start_epoch = list(payload["history"]), int(payload["epoch"])
    ddp = DistributedDataParallel(students, device_ids=[device.index] if device.type == "cuda" else None)

    train_set = train_set if train_set is not None else dataset_for(cfg, "train")
    if len(train_set) == 0:
        raise ValueError(f"the training split of {data_description(cfg)} is empty")
    sampler = DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=False)
    per_rank = max(1, cfg.batch_size // info.world_size)
    loader = DataLoader(train_set, batch_size=per_rank, sampler=sampler, num_workers=cfg.num_workers,
                        drop_last=len(sampler) % per_rank == 1,  # equal on all ranks: the sampler pads
                        pin_memory=device.type == "cuda", persistent_workers=cfg.num_workers > 0)
    record = provenance(device, teacher=model.teacher_description, data=data_description(cfg), split="train",
                        n_train=len(train_set), seed=cfg.seed, epochs=cfg.epochs,
                        distributed={"world_size": info.world_size, "backend": dist.get_backend(),
                                     "batch_per_rank": per_rank, "global_batch": per_rank * info.world_size,
                                     "sync_bn": sync_bn})
    out_path = Path(out_dir) / "checkpoint.pt" if out_dir is not None else None

    def save(epoch: int) -> None:
        if out_path is not None and info.is_main:
            save_checkpoint(out_path, model, cfg, epoch=epoch, history=history, provenance=record,
                            optimizer=optimizer)
        barrier()

    started = time.perf_counter()
    bar = tqdm(range(start_epoch, cfg.epochs), desc=f"train {cfg.structure} DDP x{info.world_size} "
               f"[{model.teacher_description}]", disable=not (progress and info.is_main), unit="epoch")
    for epoch in bar:
        model.train()
        sampler.set_epoch(epoch)
        sums = torch.zeros(2, dtype=torch.float64, device=device)  # (loss * images, images)
        for batch in loader:
            images = batch["image"].to(device, non_blocking=True)
            t = model.teacher(images) if model.teacher is not None else None
            e, d = ddp(images, t)
            loss = dskd_loss(model.loss_pairs(DSKDOutput(t, e, d)), cfg.lam, cfg.normalization, cfg.loss_form)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums[0] += float(loss.detach()) * images.shape[0]
            sums[1] += images.shape[0]
        dist.all_reduce(sums)
        history.append(float(sums[0] / sums[1]))
        _broadcast_buffers(students)
        bar.set_postfix(loss=f"{history[-1]:.4f}")
        if info.is_main:
            for cb in callbacks:
                cb(epoch + 1, history[-1], model)
        if checkpoint_every and (epoch + 1) % checkpoint_every == 0:
            save(epoch + 1)
    seconds = time.perf_counter() - started
    record["train_seconds"] = round(seconds, 2)
    save(cfg.epochs)
    model.eval()
    return TrainResult(model, cfg, history, seconds, record, out_path, {"distributed": dict(record["distributed"])})
