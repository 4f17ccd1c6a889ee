"""AdaCLIP's training objective (spec §4, Q17), per image as in the batch-size-1 official code.

* focal loss on **probabilities** (not logits): gamma 2, one-hot targets clamped to
  [1e-5, 1 - 1e-5], pt = sum(target * prob) + 1e-5, mean of -(1 - pt)^2 log pt;
* Dice with smoothing 1, computed per image **row** (the authors squeeze the batch-1 mask to
  (S, S), so the Dice's "batch" axis is the row) and averaged;
* total = image focal + sum over taps of (focal + Dice(abn, mask) + Dice(normal, 1 - mask)).

For B > 1 each image's terms are computed as for a batch of one and averaged over the batch.
"""

from __future__ import annotations

import torch

from adaptclip_med.methods.adaclip.constants import DICE_SMOOTH, FOCAL_GAMMA, FOCAL_SMOOTH


def focal_loss(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """probs (M, C) probabilities, target (M,) class indices -> mean focal loss."""
    classes = probs.shape[1]
    one_hot = torch.zeros_like(probs).scatter_(1, target.long().view(-1, 1), 1.0)
    one_hot = one_hot.clamp(FOCAL_SMOOTH / (classes - 1), 1.0 - FOCAL_SMOOTH)
    pt = (one_hot * probs).sum(dim=1) + FOCAL_SMOOTH
    return (-(1.0 - pt).pow(FOCAL_GAMMA) * pt.log()).mean()


def row_dice_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One image's (S, S) prediction and target: Dice per row, averaged (the batch-1 squeeze)."""
    intersection = (prediction * target).sum(dim=1)
    dice = (2.0 * intersection + DICE_SMOOTH) / (prediction.sum(dim=1) + target.sum(dim=1) + DICE_SMOOTH)
    return 1.0 - dice.mean()


def pixel_probs(prob_map: torch.Tensor) -> torch.Tensor:
    """(2, H, W) -> (H*W, 2), pixels row-major."""
    return prob_map.reshape(prob_map.shape[0], -1).transpose(0, 1)


def adaclip_loss(tap_maps: list[torch.Tensor], image_probs: torch.Tensor, masks: torch.Tensor,
                 labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """tap_maps: per tap (B, 2, S, S) softmax maps; image_probs (B, 2); masks (B, S, S); labels (B,)."""
    batch = image_probs.shape[0]
    gt = (masks > 0.5).float()
    terms: dict[str, list[torch.Tensor]] = {"image_focal": [], "pixel_focal": [], "dice_abnormal": [], "dice_normal": []}
    for b in range(batch):
        terms["image_focal"].append(focal_loss(image_probs[b:b + 1], labels[b:b + 1]))
        focal = dice_abn = dice_norm = image_probs.new_zeros(())
        for tap in tap_maps:
            focal = focal + focal_loss(pixel_probs(tap[b]), gt[b].reshape(-1))
            dice_abn = dice_abn + row_dice_loss(tap[b, 1], gt[b])
            dice_norm = dice_norm + row_dice_loss(tap[b, 0], 1.0 - gt[b])
        terms["pixel_focal"].append(focal)
        terms["dice_abnormal"].append(dice_abn)
        terms["dice_normal"].append(dice_norm)
    result = {name: torch.stack(values).mean() for name, values in terms.items()}
    result["total"] = result["image_focal"] + result["pixel_focal"] + result["dice_abnormal"] + result["dice_normal"]
    return result
