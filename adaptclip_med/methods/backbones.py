"""Backbone choice shared by the methods: the user's spec, or the method's default backbone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.model.backbone_source import BackboneSpec

if TYPE_CHECKING:
    from adaptclip_med.methods.base import AnomalyMethod, MethodSpec


def backbone_spec_or_default(method: "type[AnomalyMethod]", spec: "MethodSpec") -> BackboneSpec:
    """``spec.backbone`` with a missing architecture or weights filled from the method's default
    (e.g. WinCLIP's ViT-B-16-plus-240 / laion400m_e31, AdaptCLIP's ViT-L-14-336 / openai).

    An empty architecture means "the method's default"; weights None with the default
    architecture mean its default tag.  Weights None for any other architecture is refused rather
    than silently giving a random backbone."""
    default_arch, default_weights = method.default_backbone
    given = spec.backbone or BackboneSpec("", None)
    architecture = given.architecture or default_arch
    weights = given.weights
    if weights is None:
        if architecture != default_arch:
            raise AdaptClipError(
                f"backbone '{architecture}' needs --backbone-weights (an open_clip tag, a local file or random[:SEED]); "
                f"{method.name}'s default is {default_arch} with '{default_weights}'")
        weights = default_weights
    return BackboneSpec(architecture, weights, given.activation, given.cache_dir, given.offline)
