"""Scale-out over processes and nodes with torch.distributed, and a no-op when run alone.

Under ``torchrun`` (WORLD_SIZE > 1 in the environment) every rank loads its own model and scores
its own share of studies; only two collectives are used: rank 0 broadcasts the discovered study
list (so every rank shards the SAME list, whatever each node's view of the source), and the
finished records are gathered to rank 0, which writes the one worklist.  Nothing else is
synchronised, so a slow study on one rank never stalls the others.  Sharding is round-robin over
the studies sorted by key: deterministic across restarts, balanced to within one study.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

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
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.startswith("cuda") else "gloo"
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
    import torch.distributed as dist

    box = [value if ranks.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_main(value: Any, ranks: Ranks) -> list[Any]:
    """Every rank's ``value`` on rank 0 (in rank order); other ranks get an empty list."""
    if not ranks.distributed:
        return [value]
    import torch.distributed as dist

    gathered: list[Any] = [None] * ranks.world
    dist.all_gather_object(gathered, value)
    return gathered if ranks.is_main else []


def shutdown(ranks: Ranks) -> None:
    if ranks.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
