"""Where Algorithm 1 runs: in this process, or spread over DistributedDataParallel ranks.

:func:`dskd.training.fit` holds the one training loop; a strategy supplies the few steps that differ
between one process and several (nanoGPT's "DDP as a switch"):

* :class:`SingleProcess`: one device; batches shuffled by a generator seeded with (seed, epoch).
* :class:`DataParallel`: one model over all ranks of a process group (torchrun). Every rank builds the
  same model from ``cfg.seed`` (rank 0 first, so only it downloads teacher weights); only the students
  are wrapped in ``DistributedDataParallel`` (the teacher is frozen: nothing of it is all-reduced); a
  ``DistributedSampler`` (seed ``cfg.seed``, ``set_epoch``) shards each epoch and each rank takes
  ``batch_size // world_size`` images, so one optimizer step sees ``batch_size`` images; the students'
  BatchNorm buffers are broadcast from rank 0 after every epoch, so every rank holds the same weights
  and rank 0's checkpoint *is* the model; rank 0 alone writes, shows progress and calls callbacks.
  ``sync_bn=True`` uses SyncBatchNorm (CUDA only).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .config import TrainConfig, resolve_device
from .distributed import barrier, init_distributed
from .models import DSKD, Pyramid

if TYPE_CHECKING:  # pragma: no cover
    from .models import Students

StudentsCall = Callable[[Tensor, Optional[Pyramid]], tuple]


class SingleProcess:
    """Train on one device in this process."""

    world_size = 1
    rank = 0
    is_main = True
    #: a NaN loss is caught before the step that would spread it (one process: nothing to agree on)
    checks_every_step = True

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._generator = torch.Generator()

    @classmethod
    def for_config(cls, cfg: TrainConfig) -> "SingleProcess":
        return cls(resolve_device(cfg.device))

    def build(self, make_model: Callable[[], DSKD]) -> DSKD:
        return make_model().to(self.device)

    def wrap(self, model: DSKD) -> "Students | nn.Module":
        return model.students

    def loader(self, dataset: Dataset, cfg: TrainConfig) -> DataLoader:
        n = len(dataset)  # type: ignore[arg-type]
        return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, generator=self._generator,
                          num_workers=cfg.num_workers, drop_last=n % cfg.batch_size == 1,
                          pin_memory=self.device.type == "cuda", persistent_workers=cfg.num_workers > 0)

    def begin_epoch(self, epoch: int, cfg: TrainConfig) -> None:
        # each epoch's order depends on (seed, epoch) only, so a resumed run equals an uninterrupted one
        self._generator.manual_seed(cfg.seed * 1_000_003 + epoch)

    def mean_loss(self, total: float, count: int) -> float:
        return total / count

    def end_epoch(self, model: DSKD) -> None:
        pass

    def barrier(self) -> None:
        pass

    def record(self) -> Optional[dict[str, Any]]:
        return None


class DataParallel(SingleProcess):
    """One model over every rank of the process group (started by torchrun); see the module docstring."""

    checks_every_step = False  # ranks must agree: the epoch's all-reduced loss is checked instead

    def __init__(self, cfg: TrainConfig, *, sync_bn: bool = False) -> None:
        info, device = init_distributed(cfg.device)
        super().__init__(device)
        self.info = info
        self.rank, self.world_size, self.is_main = info.rank, info.world_size, info.is_main
        self.sync_bn = sync_bn
        if sync_bn and device.type != "cuda":
            raise ValueError("sync_bn needs CUDA devices (SyncBatchNorm has no CPU implementation)")
        self.per_rank = max(1, cfg.batch_size // info.world_size)
        self._sampler: Optional[DistributedSampler] = None

    def build(self, make_model: Callable[[], DSKD]) -> DSKD:
        if not self.is_main:
            barrier()  # rank 0 builds first: only it fetches teacher weights
        model = make_model().to(self.device)
        if self.is_main:
            barrier()
        if self.sync_bn:  # before the optimizer is built: the conversion creates new BatchNorm parameters
            nn.SyncBatchNorm.convert_sync_batchnorm(model.students)
        return model

    def wrap(self, model: DSKD) -> nn.Module:
        return DistributedDataParallel(model.students,
                                       device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def loader(self, dataset: Dataset, cfg: TrainConfig) -> DataLoader:
        self._sampler = DistributedSampler(dataset, num_replicas=self.world_size, rank=self.rank, shuffle=True,
                                           seed=cfg.seed, drop_last=False)
        return DataLoader(dataset, batch_size=self.per_rank, sampler=self._sampler, num_workers=cfg.num_workers,
                          drop_last=len(self._sampler) % self.per_rank == 1,  # equal on all ranks: the sampler pads
                          pin_memory=self.device.type == "cuda", persistent_workers=cfg.num_workers > 0)

    def begin_epoch(self, epoch: int, cfg: TrainConfig) -> None:
        assert self._sampler is not None
        self._sampler.set_epoch(epoch)

    def mean_loss(self, total: float, count: int) -> float:
        sums = torch.tensor([total, count], dtype=torch.float64, device=self.device)
        dist.all_reduce(sums)
        return float(sums[0] / sums[1])

    def end_epoch(self, model: DSKD) -> None:
        for buf in model.students.buffers():
            dist.broadcast(buf, src=0)

    def barrier(self) -> None:
        barrier()

    def record(self) -> Optional[dict[str, Any]]:
        return {"world_size": self.world_size, "backend": dist.get_backend(), "batch_per_rank": self.per_rank,
                "global_batch": self.per_rank * self.world_size, "sync_bn": self.sync_bn}
