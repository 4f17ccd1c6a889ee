"""Chunked 1-nearest-neighbour search over reference patches by cosine distance.

A volume's reference memory can hold k scans x several slices x N patches (N = 1369 at 518 px),
so the full (N x M) similarity matrix is never materialised: the memory is scanned in chunks of
``chunk_size`` patches with a running best match, which bounds memory at B x N x chunk_size floats
whatever the number of references.
"""

from __future__ import annotations

import torch


def nearest_neighbours(query: torch.Tensor, memory: torch.Tensor, chunk_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """query: (B, N, D) and memory: (B or 1, M, D), both L2-normalised.

    Returns the cosine distance to the nearest memory patch, d = 1 - q.p, as (B, N) and its index
    into M as (B, N) (the first one on ties, like ``argmax``).
    """
    if memory.shape[1] == 0:
        raise ValueError("reference memory is empty")
    best_sim: torch.Tensor | None = None
    best_idx: torch.Tensor | None = None
    memory_t = memory.transpose(1, 2)
    for start in range(0, memory.shape[1], chunk_size):
        sims = torch.matmul(query, memory_t[:, :, start:start + chunk_size])
        chunk_sim, chunk_idx = sims.max(dim=-1)
        chunk_idx = chunk_idx + start
        if best_sim is None:
            best_sim, best_idx = chunk_sim, chunk_idx
        else:
            better = chunk_sim > best_sim
            best_sim = torch.where(better, chunk_sim, best_sim)
            best_idx = torch.where(better, chunk_idx, best_idx)
    return 1.0 - best_sim, best_idx
