"""Per-slice distribution check: is a query slice, as a whole, like its matched normal slices?

The statistic (``reference distance``) is computed from the method's own features
(:meth:`~adaptclip_med.methods.base.AnomalyMethod.comparison_features`, e.g. AdaptCLIP's tapped
patch tokens): for every query patch, the cosine distance to its nearest patch among the matched
normal slices; the slice's distance is the 75th percentile of those patch distances.

Why that statistic: anomalies are LOCAL, and the method scores them by exactly these patch
distances (its maximum).  A lesion moves a few patches; a slice from another body region, another
modality or another protocol moves most of them.  A high percentile that still ignores the top
quarter of the patches therefore stays inside the normal range for lesion slices (measured:
benchmarks/comparability.py) and leaves it for a whole-slice mismatch.  The 50th percentile was
rejected: air patches match air in any bank, so a body slice with a lot of air around it looked
normal.  Methods without local features use their global embedding (one "patch").

Calibration (at bank build time, from the stored rows only, no re-encoding): every stored slice
of every normal scan is compared with the position-matched slices of the OTHER scans
(leave-one-scan-out, the same matching the scorer uses); the bound is ``BOUND_MARGIN`` times the
largest distance seen.  With k scans the calibration uses k-1 references per slice, so its
distances are already slightly pessimistic; the margin covers patients unlike any of the k.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from adaptclip_med.methods.base import AnomalyMethod

if TYPE_CHECKING:
    from adaptclip_med.volume.bank.reader import MatchPolicy, ReferenceBank

STATISTIC = "75th percentile over query patches of the cosine distance to the nearest patch of the matched normal slices"
PATCH_QUANTILE = 0.75
BOUND_MARGIN = 1.5
#: Query patches used per slice (evenly strided): the percentile is stable well below the full
#: token count, and this keeps the check at a small fraction of the method's own matching cost.
MAX_QUERY_PATCHES = 256
#: Stored slices per normal scan used by the leave-one-scan-out calibration (evenly spaced).
CALIBRATION_ROWS_PER_SCAN = 48
VERSION = 1


def features_of(method: AnomalyMethod, rows: dict[str, torch.Tensor], global_embedding: torch.Tensor | None) -> torch.Tensor | None:
    """(B, N, D) L2-normalised comparison features: the method's local features, else its
    global embedding as one token; None when the method has neither."""
    local = method.comparison_features(rows) if rows else None
    if local is not None:
        return F.normalize(local.float(), dim=-1)
    if global_embedding is not None:
        return F.normalize(global_embedding.float(), dim=-1).unsqueeze(1)
    return None


def reference_distance(query: torch.Tensor, references: Sequence[torch.Tensor]) -> float:
    """The statistic for ONE slice: ``query`` (N, D), ``references`` a list of (M_i, D) (the
    matched normal slices), all L2-normalised."""
    query = query.reshape(-1, query.shape[-1])
    if query.shape[0] > MAX_QUERY_PATCHES:
        query = query[torch.linspace(0, query.shape[0] - 1, MAX_QUERY_PATCHES).round().long()]
    pool = torch.cat([r.reshape(-1, r.shape[-1]).to(query.device) for r in references]).to(query.dtype)
    nearest = (query @ pool.T).max(dim=1).values
    return float(torch.quantile((1.0 - nearest).clamp_min(0.0), PATCH_QUANTILE))


def _row_features(method: AnomalyMethod, bank: "ReferenceBank", scan: int, row: int) -> torch.Tensor | None:
    stored = bank.rows([(scan, row)])[0]
    features = features_of(method, stored, bank.global_row(scan, row))
    return None if features is None else features[0]


def matched_features(method: AnomalyMethod, bank: "ReferenceBank", matches: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """Comparison features of the matched bank slices (empty when the bank has none)."""
    found = [_row_features(method, bank, scan, row) for scan, row in matches]
    return [f for f in found if f is not None]


def calibrate_distribution(bank: "ReferenceBank", method: AnomalyMethod, policy: "MatchPolicy",
                           rows_per_scan: int = CALIBRATION_ROWS_PER_SCAN) -> dict[str, Any] | None:
    """Leave-one-scan-out distances of the bank's own slices and the bound derived from them
    (stored in ``bank.json`` as ``comparability.distribution``); None with fewer than 2 scans or
    without features.  Each slice is compared with the ``policy.per_scan`` position-matched
    slices of every other scan."""
    if len(bank.scans) < 2:
        return None
    values: list[float] = []
    for held_out, scan in enumerate(bank.scans):
        others = [i for i in range(len(bank.scans)) if i != held_out]
        picks = np.unique(np.linspace(0, scan.rows.size - 1, min(rows_per_scan, scan.rows.size)).round().astype(int))
        for row in picks:
            query = _row_features(method, bank, held_out, int(row))
            if query is None:
                return None
            matches = bank.match(float(scan.relative_position[row]), bank.global_row(held_out, int(row)),
                                 dataclasses.replace(policy, strategy="position"), scans=others)
            references = matched_features(method, bank, matches)
            if references:
                values.append(reference_distance(query, references))
    if not values:
        return None
    array = np.asarray(values)
    return {"version": VERSION, "statistic": STATISTIC, "method": "leave-one-scan-out", "slices": int(array.size),
            "max": float(array.max()), "p99": float(np.quantile(array, 0.99)), "median": float(np.median(array)),
            "margin": BOUND_MARGIN, "bound": float(BOUND_MARGIN * array.max())}


def query_distances(method: AnomalyMethod, encoded: Any, bank: "ReferenceBank", matches: Sequence[Sequence[tuple[int, int]]]) -> list[float]:
    """The statistic for each slice of an encoded batch against its matched bank slices (nan where
    there is nothing to compare)."""
    rows = method.memory_rows(encoded) if method.references != "unused" else {}
    features = features_of(method, rows, method.global_embedding(encoded))
    distances = []
    for j, matched in enumerate(matches):
        references = matched_features(method, bank, matched) if features is not None else []
        distances.append(reference_distance(features[j], references) if references else float("nan"))
    return distances
