"""AdaptCLIP's training losses (spec §6): for every branch that predicts an image label and a
pixel map, cross-entropy + focal + two Dice terms, all weighted 1.

Branches: the textual adapter (TA), the visual adapter (VA) and each of the prompt-query layers
(PQ1..PQ4).  The training-free 1-NN distance maps carry no parameters and get no loss.

Pixel losses only make sense where the ground truth is known: normal images have an all-zero
mask, anomalous images with a mask use it, and anomalous images WITHOUT a mask (image-level
datasets) contribute only the image cross-entropy.  ``pixel_known`` carries that per sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from adaptclip_med.methods.adaptclip.network import BranchOutputs

FOCAL_GAMMA = 2.0
#: Floor on the target-class probability inside log() so a saturated softmax (p = 0) gives a
#: large but finite loss instead of inf.
FOCAL_EPS = 1e-6
DICE_SMOOTH = 1.0


def dice_loss(prob: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per image 1 - (2*sum(p*g) + 1) / (sum(p) + sum(g) + 1), then the (weighted) batch mean.

    prob, target: (B, H, W); weights: (B,) 0/1 selecting the images that count (None = all).
    """
    dims = tuple(range(1, prob.ndim))
    intersection = (prob * target).sum(dim=dims)
    total = prob.sum(dim=dims) + target.sum(dim=dims)
    per_image = 1.0 - (2.0 * intersection + DICE_SMOOTH) / (total + DICE_SMOOTH)
    return _weighted_mean(per_image, weights)


def focal_loss(prob_map: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None = None,
               gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """Focal loss on softmax PROBABILITIES (the maps are already softmaxed before upsampling).

    Exact definition: with p_t = prob_map[:, 1] where mask = 1 and prob_map[:, 0] where mask = 0,
    clamped below at 1e-6, each pixel costs -(1 - p_t)^gamma * log(p_t); the loss is the mean
    over the pixels of each image, then the (weighted) mean over images.  No alpha balancing.

    prob_map: (B, 2, H, W) normal/anomaly probabilities; mask: (B, H, W) in {0, 1}.
    """
    p_anomaly = prob_map[:, 1]
    p_target = torch.where(mask > 0.5, p_anomaly, prob_map[:, 0]).clamp_min(FOCAL_EPS)
    per_pixel = -((1.0 - p_target) ** gamma) * torch.log(p_target)
    per_image = per_pixel.flatten(1).mean(dim=1)
    return _weighted_mean(per_image, weights)


def image_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (B, 2) logits against 0/1 labels, batch mean."""
    return F.cross_entropy(logits, labels.long())


def branch_loss(logits: torch.Tensor, prob_map: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor,
                pixel_known: torch.Tensor) -> torch.Tensor:
    """CE + focal + Dice(anomaly prob, mask) + Dice(normal prob, 1 - mask) for one branch."""
    loss = image_cross_entropy(logits, labels)
    if bool(pixel_known.any()):
        loss = loss + focal_loss(prob_map, masks, pixel_known)
        loss = loss + dice_loss(prob_map[:, 1], masks, pixel_known)
        loss = loss + dice_loss(prob_map[:, 0], 1.0 - masks, pixel_known)
    return loss


def adaptclip_losses(outputs: BranchOutputs, labels: torch.Tensor, masks: torch.Tensor,
                     pixel_known: torch.Tensor, branches: frozenset[str] | None = None) -> dict[str, torch.Tensor]:
    """Loss per branch ('ta', 'va', 'pq1'..'pq4') plus their sum under 'total'.

    labels: (B,) 0/1; masks: (B, H, W) binary at the map size; pixel_known: (B,) bool.
    ``branches`` restricts the sum to the adapters being trained (None = every branch present).
    """
    terms: dict[str, torch.Tensor] = {
        "ta": branch_loss(outputs.ta_logits, outputs.ta_map, labels, masks, pixel_known),
        "va": branch_loss(outputs.va_logits, outputs.va_map, labels, masks, pixel_known),
    }
    for index, layer in enumerate(outputs.pq_layers, start=1):
        terms[f"pq{index}"] = branch_loss(layer.logits, layer.prob_map, labels, masks, pixel_known)
    selected = [value for name, value in terms.items() if branches is None or name.rstrip("0123456789") in branches]
    if not selected:
        raise ValueError("no branch selected for the loss")
    terms["total"] = torch.stack(selected).sum()
    return terms


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean()
    weights = weights.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)
