"""``--batch-size auto`` (volume/batch_size.py): parsing, the memory arithmetic and the CPU choice.
The CUDA probe itself runs in tests/gpu/test_cuda_path.py (only where a GPU is present)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.volume.batch_size import (
    AUTO,
    CPU_BATCH,
    MAX_AUTO_BATCH,
    batch_for_memory,
    parse_batch_size,
    resolve_batch_size,
)

GIB = 2**30


@pytest.mark.parametrize("value, expected", [("auto", AUTO), ("AUTO", AUTO), (" 8 ", 8), (16, 16), ("1", 1)])
def test_parse_batch_size(value, expected):
    assert parse_batch_size(value) == expected


@pytest.mark.parametrize("value", ["0", -2, "many", "4.5", True])
def test_bad_batch_sizes_are_one_line_errors(value):
    with pytest.raises(AdaptClipError, match="--batch-size .*positive number of slices or 'auto'"):
        parse_batch_size(value)


def test_batch_for_memory_fits_the_free_share():
    # 100 GiB free, 70 % usable, 2 GiB for the first slice, 0.5 GiB per extra slice -> (70 - 2) / 0.5
    assert batch_for_memory(100 * GIB, 2 * GIB, GIB // 2) == 128 == MAX_AUTO_BATCH
    assert batch_for_memory(20 * GIB, 2 * GIB, GIB // 2) == 24
    assert batch_for_memory(20 * GIB, 2 * GIB, GIB // 2, cap=16) == 16
    assert batch_for_memory(GIB, 2 * GIB, GIB // 2) == 1  # never below one slice
    assert batch_for_memory(GIB, 0, 0) == MAX_AUTO_BATCH


def test_auto_keeps_the_cpu_default_and_numbers_pass_through(caplog):
    method = SimpleNamespace(device=torch.device("cpu"))
    with caplog.at_level(logging.INFO, logger="adaptclip_med.volume.batch_size"):
        assert resolve_batch_size("auto", method) == CPU_BATCH
    assert "batch size auto: 4 (CPU" in caplog.text
    assert resolve_batch_size(12, method) == 12
    assert resolve_batch_size("3", method) == 3
