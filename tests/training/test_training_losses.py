"""Training losses against small hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from adaptclip_med.methods.adaptclip.network import BranchOutputs
from adaptclip_med.methods.adaptclip.adapters import PromptQueryLayerOutput
from adaptclip_med.methods.adaptclip.losses import (
    adaptclip_losses,
    branch_loss,
    dice_loss,
    focal_loss,
    image_cross_entropy,
)


def _two_class(p_anomaly: torch.Tensor) -> torch.Tensor:
    return torch.stack([1 - p_anomaly, p_anomaly], dim=1)


def test_dice_by_hand():
    prob = torch.tensor([[[0.5, 1.0], [0.0, 0.5]]])
    mask = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    # intersection 1.5, sums 2 + 2 -> 1 - (3 + 1) / (4 + 1) = 0.2
    assert dice_loss(prob, mask).item() == pytest.approx(0.2)
    # an all-normal image with zero prediction costs nothing; a second image averages in
    empty = torch.zeros(1, 2, 2)
    assert dice_loss(empty, empty).item() == pytest.approx(0.0)
    both = dice_loss(torch.cat([prob, empty]), torch.cat([mask, empty]))
    assert both.item() == pytest.approx(0.1)
    # weights drop the second image
    assert dice_loss(torch.cat([prob, empty]), torch.cat([mask, empty]), torch.tensor([1.0, 0.0])).item() == pytest.approx(0.2)


def test_focal_by_hand():
    p = torch.tensor([[[0.9, 0.2]]])  # anomaly probabilities, 1x1x2
    mask = torch.tensor([[[1.0, 0.0]]])
    # pixel 1: target anomaly, p_t = 0.9; pixel 2: target normal, p_t = 0.8
    want = (-(0.1 ** 2) * math.log(0.9) - (0.2 ** 2) * math.log(0.8)) / 2
    assert focal_loss(_two_class(p), mask).item() == pytest.approx(want, rel=1e-6)
    # a saturated wrong prediction stays finite
    assert math.isfinite(focal_loss(_two_class(torch.zeros(1, 1, 1)), torch.ones(1, 1, 1)).item())


def test_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0]])
    labels = torch.tensor([1, 0])
    want = (-math.log(0.75) - math.log(0.5)) / 2
    assert image_cross_entropy(logits, labels).item() == pytest.approx(want, rel=1e-6)


def test_branch_loss_is_the_sum_and_skips_unknown_masks():
    logits = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    prob = _two_class(torch.tensor([[[0.7, 0.1]], [[0.3, 0.4]]]))
    labels = torch.tensor([1, 1])
    masks = torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]]])
    known = torch.tensor([True, False])
    want = (image_cross_entropy(logits, labels) + focal_loss(prob[:1], masks[:1])
            + dice_loss(prob[:1, 1], masks[:1]) + dice_loss(prob[:1, 0], 1 - masks[:1]))
    assert branch_loss(logits, prob, labels, masks, known).item() == pytest.approx(want.item(), rel=1e-6)
    none_known = branch_loss(logits, prob, labels, masks, torch.tensor([False, False]))
    assert none_known.item() == pytest.approx(image_cross_entropy(logits, labels).item())


def test_total_sums_the_selected_branches():
    generator = torch.Generator().manual_seed(0)

    def branch():
        return torch.randn(2, 2, generator=generator), _two_class(torch.rand(2, 3, 3, generator=generator))

    (ta_l, ta_m), (va_l, va_m) = branch(), branch()
    layers = [PromptQueryLayerOutput(*branch(), distance_map=torch.rand(2, 1, 3, 3)) for _ in range(4)]
    outputs = BranchOutputs(ta_l, ta_m, va_l, va_m, layers)
    labels = torch.tensor([0, 1])
    masks = (torch.rand(2, 3, 3, generator=generator) > 0.5).float()
    known = torch.tensor([True, True])
    terms = adaptclip_losses(outputs, labels, masks, known)
    assert set(terms) == {"ta", "va", "pq1", "pq2", "pq3", "pq4", "total"}
    assert terms["total"].item() == pytest.approx(sum(terms[k].item() for k in terms if k != "total"), rel=1e-6)
    only_pq = adaptclip_losses(outputs, labels, masks, known, frozenset({"pq"}))
    assert only_pq["total"].item() == pytest.approx(sum(terms[f"pq{i}"].item() for i in range(1, 5)), rel=1e-6)
