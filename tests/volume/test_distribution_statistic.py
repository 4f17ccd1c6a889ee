"""The distribution check's statistic ignores a local change (a lesion) and sees a whole-slice one."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from adaptclip_med.volume.distribution_check import MAX_QUERY_PATCHES, PATCH_QUANTILE, reference_distance


def _patches(count: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(count, 32, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_local_change_stays_at_zero_and_a_whole_slice_change_does_not():
    normal = _patches(400, 0)
    references = [normal[:200], normal[200:]]  # the matched normal slices hold every query patch
    assert reference_distance(normal, references) < 1e-6
    lesion = normal.clone()
    lesion[:int(0.2 * 400)] = _patches(80, 1)  # a fifth of the slice unlike anything normal
    assert reference_distance(lesion, references) < 1e-6  # below the quantile's reach: lesions stay in
    foreign = normal.clone()
    foreign[:int(0.6 * 400)] = _patches(240, 2)  # most of the slice changed: another region / modality
    assert reference_distance(foreign, references) > 0.3
    assert PATCH_QUANTILE == 0.75


def test_query_patches_are_subsampled_and_devices_meet():
    query = _patches(4 * MAX_QUERY_PATCHES, 3)
    assert reference_distance(query, [query.double()]) < 1e-6  # dtype (and device) follow the query
