"""Process-group helpers for training one model over several processes (DistributedDataParallel).

Launch any ``dskd reproduce`` run under ``torchrun`` with ``--ddp``::

    # one machine, 4 GPUs, one model (one category at a time)
    torchrun --standalone --nproc_per_node 4 -m dskd reproduce mvtec --category bottle --ddp
    # two machines with 8 GPUs each (run on both; host0 is reachable from host1)
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint host0:29500 \\
        -m dskd reproduce mvtec --category all --ddp
    # from Python, in a script started by torchrun
    train(cfg, out_dir="runs/x", ddp=True)

(Several GPUs and many categories are usually better served by ``dskd reproduce ... --gpus all``,
which trains one category per GPU in parallel; DDP is for making one model train faster.)

The training loop is :func:`dskd.training.fit`, the same for one process and for DDP; what DDP changes
(sampler, wrapped students, all-reduced loss, broadcast BatchNorm buffers, rank-0-only writes) is
:class:`dskd.strategies.DataParallel`. This module only joins, describes and leaves the process group.
Backend: NCCL on CUDA (device ``cuda:LOCAL_RANK``), gloo on CPU (the tests run two CPU ranks).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "launched_by_torchrun", "init_distributed", "dist_info", "barrier", "is_main_process",
           "cleanup", "rank_device"]


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
