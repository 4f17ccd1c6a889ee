"""Device and backend choice per rank (utils/distributed.py), on a CPU: what a torchrun batch on
N GPUs relies on (each rank its own GPU, nccl only for CUDA, every study on exactly one rank)."""

from __future__ import annotations

import pytest

from adaptclip_med.utils import distributed
from adaptclip_med.utils.distributed import Ranks, backend_for, rank_device, shard


def test_each_rank_of_a_node_takes_its_own_gpu():
    assert rank_device("cuda", Ranks(rank=5, world=8, local_rank=1)) == "cuda:1"
    assert rank_device("cuda", Ranks()) == "cuda"  # alone: whatever torch's current device is
    assert rank_device("cpu", Ranks(rank=1, world=2, local_rank=1)) == "cpu"


def test_backend_is_gloo_without_cuda(monkeypatch):
    assert backend_for("cpu") == "gloo"
    monkeypatch.setattr(distributed.torch.cuda, "is_available", lambda: False)
    assert backend_for("cuda:0") == "gloo"
    monkeypatch.setattr(distributed.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(distributed.dist, "is_nccl_available", lambda: True)
    assert backend_for("cuda:0") == "nccl" and backend_for("cpu") == "gloo"


@pytest.mark.parametrize("studies, world", [(10, 3), (2, 4), (8, 8)])
def test_every_study_lands_on_exactly_one_rank(studies, world):
    keys = [f"k{i:02d}" for i in range(studies)]
    shards = [shard(keys, Ranks(rank=r, world=world, local_rank=r)) for r in range(world)]
    assert sorted(k for s in shards for k in s) == keys
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
