"""The one encode -> match -> predict step shared by study scoring and bank calibration.

A batch of windowed slices is encoded once; each slice's image embedding (when the method has
one) and relative body position choose its reference slices in the bank; the method pools the
matched slices' stored rows into that slice's memory and predicts.  Methods without a reference
branch skip matching and predict from the query alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from adaptclip_med.methods.base import AnomalyMethod, SlicePrediction

if TYPE_CHECKING:
    from adaptclip_med.volume.reference_bank import ReferenceBank

Matches = list[list[tuple[int, int]]]


def predict_slices(method: AnomalyMethod, slices01: np.ndarray, relative_position: np.ndarray,
                   bank: "ReferenceBank | None", scans: Sequence[int]) -> tuple[SlicePrediction, Matches]:
    """Predict a batch of slices (B, H, W) in [0, 1]; returns the prediction at model size and,
    per slice, the matched (bank scan, stored row) pairs (empty when zero-shot)."""
    encoded = method.encode(method.slice_input(slices01))
    if bank is None or not scans or method.references == "unused":
        return method.predict_encoded(encoded, None), [[] for _ in range(len(slices01))]
    embedding = method.global_embedding(encoded)
    matches: Matches = []
    for j, rel in enumerate(relative_position):
        matches.append(bank.match(float(rel), None if embedding is None else embedding[j], scans=list(scans)))
    memories = [method.memory_from_rows(bank.rows(m)) for m in matches]
    return method.predict_encoded(encoded, memories), matches
