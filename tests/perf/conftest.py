"""One torch thread for the perf tests: the tiny model's ops are far too small to share, and the
machine's other cores belong to concurrent test runs (OpenMP barriers stall under contention)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
