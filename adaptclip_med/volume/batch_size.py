"""``--batch-size auto``: slices per forward pass chosen for the device.

Why: on a GPU the right batch is whatever fills the card (an H200 holds hundreds of ViT-L@518
slices, a 16 GiB card a few dozen), and a fixed default either wastes the card or runs out of
memory.  On CUDA, ``auto`` measures what one more slice costs (peak allocated memory of a batch of
2 minus a batch of 1, through the method's own encode + predict, so it holds for every method),
and takes the largest batch that fits in a fraction of the FREE memory, capped.  On a CPU larger
batches do not pay (the cores are saturated by one slice; docs/performance.md), so ``auto`` keeps
the CPU default.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from adaptclip_med.errors import AdaptClipError

if TYPE_CHECKING:
    from adaptclip_med.methods.base import AnomalyMethod

log = logging.getLogger(__name__)

AUTO = "auto"
#: The CPU default (and the CLI default): four slices per forward pass.
CPU_BATCH = 4
#: Never more than this many slices per pass: beyond it the GPU is saturated and a study's
#: maps at source size (CPU side) only grow.
MAX_AUTO_BATCH = 128
#: Share of the free GPU memory a batch may take (headroom for the allocator's fragmentation,
#: reference rows of few-shot memories and other processes).
FREE_FRACTION = 0.7


def parse_batch_size(value: int | str) -> int | str:
    """``auto`` or a positive integer (given as int or text); one-line error otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    else:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise AdaptClipError(f"--batch-size '{value}': give a positive number of slices or 'auto'") from None
    if number < 1:
        raise AdaptClipError(f"--batch-size {number}: give a positive number of slices or 'auto'")
    return number


def batch_for_memory(free_bytes: int, base_bytes: int, per_slice_bytes: int, fraction: float = FREE_FRACTION,
                     cap: int = MAX_AUTO_BATCH) -> int:
    """Largest batch whose estimated peak (base + n x per slice) fits in ``fraction`` of the free
    memory; at least 1 (a batch of one is what scoring needs anyway), at most ``cap``."""
    if per_slice_bytes <= 0:
        return cap
    budget = free_bytes * fraction - base_bytes
    return int(max(1, min(cap, budget // per_slice_bytes)))


def _probe_cuda(method: "AnomalyMethod") -> tuple[int, int]:
    """(peak bytes of a 1-slice pass, extra peak bytes per added slice) on the method's GPU."""
    import torch

    device = method.device
    peaks = []
    for batch in (1, 2):
        images = torch.zeros(batch, 3, method.image_size, method.image_size, device=device)
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        with torch.no_grad():
            encoded = method.encode(images)
            # a memory of the probe itself stands in for the matched references (same shapes)
            memory = None if method.references == "unused" else method.memory_from_rows([method.memory_rows(encoded)])
            method.predict_encoded(encoded, memory)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - start)
    return peaks[0], max(1, peaks[1] - peaks[0])


def resolve_batch_size(value: int | str, method: "AnomalyMethod") -> int:
    """The batch size to score with: ``value`` itself, or for ``auto`` the device's choice (logged)."""
    parsed = parse_batch_size(value)
    if parsed != AUTO:
        return int(parsed)
    device = getattr(method, "device", None)
    if device is None or getattr(device, "type", "cpu") != "cuda":
        log.info("batch size auto: %d (CPU: larger batches do not pay)", CPU_BATCH)
        return CPU_BATCH
    import torch

    base, per_slice = _probe_cuda(method)
    free, total = torch.cuda.mem_get_info(device)
    chosen = batch_for_memory(free, base, per_slice)
    log.info("batch size auto: %d (%.1f of %.1f GiB free, ~%.0f MiB per slice)", chosen, free / 2**30, total / 2**30,
             per_slice / 2**20)
    return chosen
