"""The one encode -> match -> predict step shared by study scoring and bank calibration.

A batch of windowed slices is encoded once; each slice's image embedding (when the method has
one) and relative body position choose its reference slices in the bank; the method pools the
matched slices' stored rows into that slice's memory and predicts.  Methods without a reference
branch skip matching and predict from the query alone.  How slices are matched (the
:class:`~adaptclip_med.volume.bank.reader.MatchPolicy`) is the caller's, passed on every call.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence

import numpy as np

from adaptclip_med.methods.base import AnomalyMethod, SlicePrediction

if TYPE_CHECKING:
    from adaptclip_med.volume.bank.reader import MatchPolicy, ReferenceBank

Matches = list[list[tuple[int, int]]]


def predict_slices(method: AnomalyMethod, slices01: np.ndarray, relative_position: np.ndarray,
                   bank: "ReferenceBank | None", scans: Sequence[int],
                   policy: "MatchPolicy") -> tuple[SlicePrediction, Matches]:
    """Predict a batch of slices (B, H, W) in [0, 1]; returns the prediction at model size and,
    per slice, the matched (bank scan, stored row) pairs (empty when zero-shot)."""
    prediction, matches, _ = predict_and_measure(method, slices01, relative_position, bank, scans, policy, measure=False)
    return prediction, matches


def predict_and_measure(method: AnomalyMethod, slices01: np.ndarray, relative_position: np.ndarray,
                        bank: "ReferenceBank | None", scans: Sequence[int], policy: "MatchPolicy",
                        measure: bool = True) -> tuple[SlicePrediction, Matches, list[float]]:
    """:func:`predict_slices` plus, with ``measure`` and a bank, each slice's reference distance
    (``volume/distribution_check.py``) against the slices it was matched with (for a method that
    compares with no reference, the position-matched slices of every bank scan, ``policy.per_scan``
    from each); nan otherwise."""
    encoded = method.encode(method.slice_input(slices01))
    embedding = method.global_embedding(encoded)
    uses_references = bank is not None and bool(scans) and method.references != "unused"
    matches: Matches = [[] for _ in range(len(slices01))]
    if uses_references:
        matches = [bank.match(float(rel), None if embedding is None else embedding[j], policy, scans=list(scans))
                   for j, rel in enumerate(relative_position)]
    distances = [float("nan")] * len(slices01)
    if measure and bank is not None:
        from adaptclip_med.volume.distribution_check import query_distances

        by_position = dataclasses.replace(policy, strategy="position")
        compared = matches if uses_references else [
            bank.match(float(rel), None if embedding is None else embedding[j], by_position)
            for j, rel in enumerate(relative_position)]
        distances = query_distances(method, encoded, bank, compared)
    if not uses_references:
        return method.predict_encoded(encoded, None), matches, distances
    memories = [method.memory_from_rows(bank.rows(m)) for m in matches]
    return method.predict_encoded(encoded, memories), matches, distances
