"""WinCLIP's compositional prompt ensemble (spec §3).

The state phrases and the 21 sentence templates are the same lists AdaptCLIP's static text uses
(``adaptclip_med.model.prompts``, duplicated "jpeg corrupted" template included), so they are
imported rather than copied: one list, one place to get the order right.  What differs is the class
word, which WinCLIP takes from the user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from adaptclip_med.model.prompts import ABNORMAL_STATES, NORMAL_STATES, state_sentences

if TYPE_CHECKING:
    from adaptclip_med.model.backbone import ClipBackbone

__all__ = ["ensemble_sentences", "ensemble_text_embeddings"]


def ensemble_sentences(class_name: str) -> tuple[list[str], list[str]]:
    """(147 normal, 84 anomalous) sentences for ``class_name``: state outer loop, template inner
    loop, the duplicated template counted twice (it weights the mean, so dropping it changes the
    numbers)."""
    return state_sentences(NORMAL_STATES, class_name), state_sentences(ABNORMAL_STATES, class_name)


@torch.no_grad()
def ensemble_text_embeddings(backbone: "ClipBackbone", class_name: str) -> torch.Tensor:
    """(2, D) [normal, anomalous] text embeddings: the plain CLIP text path (EOT token, ln_final,
    projection) per sentence, then the arithmetic mean of the *unnormalised* sentence embeddings.
    Normalising before averaging would give different numbers (spec quirk 4); the cosine used for
    scoring normalises the means anyway."""
    normal, anomalous = ensemble_sentences(class_name)
    return torch.stack([backbone.encode_text(normal).mean(dim=0), backbone.encode_text(anomalous).mean(dim=0)])
