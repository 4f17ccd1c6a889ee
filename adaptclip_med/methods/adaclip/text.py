"""AdaCLIP's text side: sentences per class name and the prompted text encoder (spec §3.5).

The text features depend on the image (dynamic text prompts), so they are recomputed for every
image; one image's prompts are never broadcast onto another image's sentences (Q13).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F

from adaptclip_med.methods.adaclip.constants import ABNORMAL_STATES, NORMAL_STATES, TEMPLATES
from adaptclip_med.methods.adaclip.vision import half_round


def prepare_name(class_name: str) -> str:
    """The authors only replace '-' by a space (underscores stay; case and whitespace are the
    tokenizer's business), Q8."""
    return class_name.replace("-", " ")


def sentences(class_name: str) -> tuple[list[str], list[str]]:
    """(28 normal, 20 abnormal) sentences, state-major: for state, for template."""
    name = prepare_name(class_name)

    def expand(states: tuple[str, ...]) -> list[str]:
        return [template.format(state.format(name)) for state in states for template in TEMPLATES]

    return expand(NORMAL_STATES), expand(ABNORMAL_STATES)


@lru_cache(maxsize=64)
def _causal_mask(length: int) -> torch.Tensor:
    return torch.full((length, length), float("-inf")).triu_(1)


class TextTower:
    """Runs open_clip's text transformer with AdaCLIP's prompt overwriting."""

    def __init__(self, clip: nn.Module, tokenizer) -> None:
        self.clip = clip
        self.tokenizer = tokenizer
        self.blocks = list(clip.transformer.resblocks)
        self._tokens: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def width(self) -> int:
        return int(self.clip.token_embedding.weight.shape[1])

    def tokens(self, class_name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (28, 77) and (20, 77) for a class name, cached per name."""
        cached = self._tokens.get(class_name)
        if cached is None:
            normal, abnormal = sentences(class_name)
            device = self.clip.token_embedding.weight.device
            cached = (self.tokenizer(normal).to(device), self.tokenizer(abnormal).to(device))
            self._tokens[class_name] = cached
        return cached

    def encode(self, tokens: torch.Tensor, static_prompts: list[torch.Tensor], dynamic: torch.Tensor) -> torch.Tensor:
        """Prompted text features (n, D) of n sentences for ONE image.

        Block 0 sees the plain sentence; before blocks 1..depth-1 positions 1..L (right after SOT)
        are overwritten with half(static_t[i] + dt), no position embedding added (Q4).
        dynamic: (L, D) of one image."""
        clip = self.clip
        length = dynamic.shape[0]
        # The mask is causal, so the feature read at EOT depends only on positions <= EOT: the
        # padding after the longest sentence's EOT is never needed.  Cutting it (77 -> ~15 tokens)
        # makes the per-image text pass ~5x cheaper with the same features (to float rounding).
        keep = max(int(tokens.argmax(dim=-1).max()) + 1, 1 + length)
        tokens = tokens[:, :keep]
        with torch.no_grad():
            x = clip.token_embedding(tokens.long()) + clip.positional_embedding[:keep]
        count, context, width = x.shape
        mask = _causal_mask(context).to(device=x.device, dtype=x.dtype)
        for index, block in enumerate(self.blocks):
            if 1 <= index < len(static_prompts):
                prompt = half_round(static_prompts[index] + dynamic).to(x.dtype)
                x = torch.cat([x[:, :1], prompt.unsqueeze(0).expand(count, length, width), x[:, 1 + length:]], dim=1)
            x = block(x, attn_mask=mask)
        x = clip.ln_final(x)
        x = x[torch.arange(count, device=x.device), tokens.argmax(dim=-1)]
        projection = clip.text_projection
        return projection(x) if isinstance(projection, nn.Linear) else x @ projection

    def class_features(self, class_name: str, static_prompts: list[torch.Tensor], dynamic: torch.Tensor) -> torch.Tensor:
        """T (D, 2) = [normal, abnormal] for one image: per-sentence L2 norm, mean, L2 norm."""
        columns = []
        for tokens in self.tokens(class_name):
            features = F.normalize(self.encode(tokens, static_prompts, dynamic), dim=-1)
            columns.append(F.normalize(features.mean(dim=0), dim=-1))
        return torch.stack(columns, dim=1)
