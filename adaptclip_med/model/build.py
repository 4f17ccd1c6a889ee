"""Build a :class:`ClipBackbone` from a :class:`BackboneSpec`: where the weights come from.

The module :mod:`adaptclip_med.model.backbone` only knows how to *run* a CLIP; this builder
decides what to load into it (the ``build_sam`` pattern): an open_clip pretrained tag (hub cache,
else a download), a local weights file (recorded with its SHA-256), a deterministic random
initialisation (``random[:SEED]``) or the formula-built demonstration backbone (``demo``).
Every failure is one line naming what is missing or wrong and how to fix it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
import torch.nn as nn

from adaptclip_med.errors import AdaptClipError, CheckpointMismatchError
from adaptclip_med.model import demo_backbone
from adaptclip_med.model.backbone import ClipBackbone
from adaptclip_med.model.backbone_source import (
    BackboneIdentity,
    BackboneSpec,
    choose_activation,
    is_local_file,
    is_random_weights,
    pretrained_weights_file,
    random_seed,
    read_state_dict,
    resolve_architecture,
    sha256_of_file,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedWeights:
    """What a weights spec resolved to before the model exists.

    state: the state dict to load (None: random or formula weights, nothing to read);
    label: the recordable weights name (``open_clip:TAG``, ``file:NAME``, ``random:SEED``, ``demo:...``);
    sha256: the checksum of a local file (None otherwise);
    openai_hint: whether the file had the original OpenAI layout (decides ``auto`` activation);
    seed: the torch seed set before building (random and demo weights), None for loaded weights;
    demo: whether the vision tower gets the demo formula weights after building.
    """

    state: dict[str, torch.Tensor] | None
    label: str
    sha256: str | None = None
    openai_hint: bool = False
    seed: int | None = None
    demo: bool = False


def resolve_weights(name: str, spec: BackboneSpec) -> ResolvedWeights:
    """Resolve ``spec.weights`` for the open_clip architecture ``name`` (one of four sources)."""
    if demo_backbone.is_demo_weights(spec.weights):
        if name != demo_backbone.DEMO_ARCHITECTURE:
            raise AdaptClipError(f"backbone weights 'demo' exist only for {demo_backbone.DEMO_ARCHITECTURE}, not {name}: "
                                 f"pass --backbone {demo_backbone.DEMO_ARCHITECTURE} or other weights")
        return ResolvedWeights(None, demo_backbone.weights_label(), seed=demo_backbone.TEXT_SEED, demo=True)
    if is_random_weights(spec.weights):
        seed = random_seed(spec.weights)
        return ResolvedWeights(None, f"random:{seed}", seed=seed)
    if is_local_file(spec.weights):
        path = Path(spec.weights).expanduser()
        state, openai_hint = read_state_dict(path)
        return ResolvedWeights(state, f"file:{path.name}", sha256_of_file(path), openai_hint)
    path = pretrained_weights_file(name, spec.weights, spec.cache_dir, spec.offline)
    state, openai_hint = read_state_dict(path)
    return ResolvedWeights(state, f"open_clip:{spec.weights}", None, openai_hint)


def build_backbone(spec: BackboneSpec, tap_layers: tuple[int, ...] | None = None,
                   vv_start_layer: int | None = None) -> ClipBackbone:
    """Build the architecture, load the weights the spec names and wrap it as a frozen backbone.

    ``tap_layers`` / ``vv_start_layer`` default to the backbone's own defaults (a checkpoint
    passes the ones it was trained with)."""
    name, config = resolve_architecture(spec.architecture)
    weights = resolve_weights(name, spec)
    choice = choose_activation(name, config, None if weights.demo else spec.weights, spec.activation,
                               weights.openai_hint)
    activation = choice.activation
    if weights.seed is not None:
        torch.manual_seed(weights.seed)
    with _quiet_open_clip():  # it warns "initialized randomly" although weights are loaded just below
        clip = open_clip.create_model(name, pretrained=None, force_quick_gelu=activation == "quickgelu",
                                      load_weights=False)
    if weights.state is not None:
        _load_clip_state(clip, weights.state, weights.label)
    if weights.demo:
        demo_backbone.set_demo_vision_weights(clip.visual)
    clip = clip.float()
    identity = BackboneIdentity(architecture=name, model_config=config, weights=weights.label,
                                weights_sha256=weights.sha256, activation=activation)
    (log.info if choice.certain else log.warning)("backbone %s: %s because %s", identity.short(), activation,
                                                  choice.reason)
    return ClipBackbone(clip, identity, open_clip.get_tokenizer(name), tap_layers, vv_start_layer)


class _quiet_open_clip:
    """Raise the root logger's level while open_clip builds a model (it logs on the root logger)."""

    def __enter__(self) -> None:
        self._level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)

    def __exit__(self, *exc) -> None:
        logging.getLogger().setLevel(self._level)


def _load_clip_state(clip: nn.Module, state: dict[str, torch.Tensor], label: str) -> None:
    """Load CLIP weights strictly, with a one-line error naming what does not fit."""
    own = clip.state_dict()
    missing = [k for k in own if k not in state and k != "logit_bias"]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if "visual.positional_embedding" in wrong:
        raise CheckpointMismatchError(
            f"backbone weights {label}: position grid {tuple(state['visual.positional_embedding'].shape)} does not match the architecture's "
            f"{tuple(own['visual.positional_embedding'].shape)}: choose the architecture these weights belong to")
    if missing or unexpected or wrong:
        detail = (missing or unexpected or wrong)[:3]
        raise CheckpointMismatchError(
            f"backbone weights {label} do not fit the architecture ({len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(wrong)} wrong-shape keys, e.g. {', '.join(detail)}): choose the architecture these weights belong to")
    if "logit_scale" in state and own["logit_scale"].ndim != state["logit_scale"].ndim:
        state["logit_scale"] = state["logit_scale"].reshape(own["logit_scale"].shape)
    clip.load_state_dict(state, strict=False)
