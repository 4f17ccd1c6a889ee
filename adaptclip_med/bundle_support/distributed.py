"""Multi-process helpers for bundle runs under ``torchrun`` (one process per GPU, or several CPU
processes with gloo).

Inference needs no gradient synchronisation: every process loads its own copy of the frozen
model and scores a disjoint shard of the studies (:class:`StudyShardSampler`, so no study is
scored twice).  What the processes must agree on is small: who prepares shared files
(demo data, reference banks) while the others wait, and when everyone is done (so rank 0 can
write the run summary).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sized
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

T = TypeVar("T")


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def default_backend() -> str:
    """nccl when every process can own a GPU, gloo otherwise (CPU runs, tests)."""
    return "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"


def init_distributed(backend: str | None = None, timeout_minutes: float = 24 * 60) -> bool:
    """Join the process group torchrun describes in the environment; a no-op outside torchrun
    (so the multi-process config also runs as a single process).

    Ranks meet at barriers while rank 0 prepares shared files and before the summary, where a
    rank with a lighter shard may wait for hours on a large batch: the timeout is set for that
    rather than the 30-minute default."""
    if is_distributed():
        return True
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False
    backend = backend or default_backend()
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=timeout_minutes))
    return True


def process_device() -> torch.device:
    """This process's device: its own GPU (LOCAL_RANK) when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
    return torch.device("cpu")


def shutdown_distributed() -> None:
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()


def rank_zero_first(work: Callable[[], T]) -> T:
    """Run ``work`` on rank 0, then on the other ranks once rank 0 is done.

    For idempotent preparation of shared files: rank 0 creates them, the others find them
    ready instead of racing to write the same paths."""
    if not is_distributed():
        return work()
    result = work() if rank() == 0 else None
    dist.barrier()
    if rank() != 0:
        result = work()
    return result  # type: ignore[return-value]


class StudyShardSampler(Sampler[int]):
    """This process's share of the studies: every ``world_size``-th one from its rank.

    Unlike a padding sampler no study is scored twice, and unlike MONAI's non-padding sampler a
    run may have more processes than studies (the extra processes simply get none)."""

    def __init__(self, dataset: Sized) -> None:
        self.indices = list(range(rank(), len(dataset), world_size()))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
