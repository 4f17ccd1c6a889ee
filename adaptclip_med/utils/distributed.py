"""Scale-out with torch.distributed for batch runs and bundle runs, and a no-op when run alone.

One backend decision for both (:func:`backend_for`): nccl when the process works on a CUDA
device and nccl is available, gloo otherwise (CPU runs, tests).

Batch (``adaptclip-med batch`` under ``torchrun``): every rank loads its own model and scores its
own share of studies; only two collectives are used: rank 0 broadcasts the discovered study list
(so every rank shards the SAME list, whatever each node's view of the source), and the finished
records are gathered to rank 0, which writes the one worklist.  Nothing else is synchronised, so
a slow study on one rank never stalls the others.  Sharding is round-robin over the studies
sorted by key: deterministic across restarts, balanced to within one study.

Bundle (``multi_gpu_inference.json``): no gradient synchronisation either; what the processes
must agree on is who prepares shared files (demo data, reference banks) while the others wait
(:func:`rank_zero_first`), and when everyone is done (so rank 0 can write the run summary).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

T = TypeVar("T")

#: Scoring one study can take minutes; the final gather waits for the slowest rank.
_COLLECTIVE_TIMEOUT = datetime.timedelta(hours=24)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_ranks(device: str) -> Ranks:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=_COLLECTIVE_TIMEOUT)
    return Ranks(dist.get_rank(), dist.get_world_size(), local_rank)


def rank_device(device: str, ranks: Ranks) -> str:
    """Each rank of a node takes its own GPU; CPU ranks share the CPU."""
    if ranks.distributed and device == "cuda":
        return f"cuda:{ranks.local_rank}"
    return device


def shard(items: Sequence[T], ranks: Ranks) -> list[T]:
    return list(items[ranks.rank::ranks.world])


def broadcast_from_main(value: Any, ranks: Ranks) -> Any:
    if not ranks.distributed:
        return value
    box = [value if ranks.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_main(value: Any, ranks: Ranks) -> list[Any]:
    """Every rank's ``value`` on rank 0 (in rank order); other ranks get an empty list."""
    if not ranks.distributed:
        return [value]
    gathered: list[Any] = [None] * ranks.world
    dist.all_gather_object(gathered, value)
    return gathered if ranks.is_main else []


def shutdown(ranks: Ranks) -> None:
    if ranks.distributed and dist.is_initialized():
        dist.destroy_process_group()


def backend_for(device: str | torch.device) -> str:
    """nccl for a CUDA device when nccl is available, gloo otherwise."""
    if str(device).startswith("cuda") and torch.cuda.is_available() and dist.is_nccl_available():
        return "nccl"
    return "gloo"


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


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
    backend = backend or backend_for("cuda" if torch.cuda.is_available() else "cpu")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=timeout_minutes))
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
