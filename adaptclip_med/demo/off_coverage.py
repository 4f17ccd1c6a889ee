"""A head study that extends beyond a head bank's body-axis coverage, for the comparability guard's
tests and benchmark (benchmarks/comparability.py).

The study is acquired "too low": its first ``below`` slices lie under the head (synthetic trunk
slices from :mod:`adaptclip_med.demo.body` stand in for the neck and shoulders), the rest is the
lower part of a normal phantom head, at the head's own slice spacing.  Same slice count as the
bank's scans, so only the anatomy is shifted: relative position matching would stretch it onto
the bank's scans and match the trunk slices to the skull base.  SYNTHETIC, NO DIAGNOSTIC VALUE.
"""

from __future__ import annotations

import numpy as np

from adaptclip_med.demo.body import make_body_slice
from adaptclip_med.demo.ct_head import make_ct_head

TRUNK_SEED = 9000


def shifted_head_hu(seed: int, slices: int = 16, size: int = 256, below: int = 6) -> np.ndarray:
    """(slices, size, size) HU: ``below`` trunk slices, then the lowest ``slices - below`` slices
    of a normal head (seed ``seed``)."""
    if not 0 < below < slices:
        raise ValueError(f"below={below} must be between 1 and slices-1={slices - 1}")
    head, _ = make_ct_head(seed, slices, size)
    trunk = np.stack([make_body_slice(TRUNK_SEED + seed * 31 + i, size)[0] for i in range(below)])
    return np.concatenate([trunk, head[:slices - below]]).astype(np.float32)
