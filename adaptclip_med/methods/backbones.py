"""Backbone choice shared by the methods: the user's spec, or the method's default backbone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptclip_med.model.backbone_source import BackboneSpec

if TYPE_CHECKING:
    from adaptclip_med.methods.base import AnomalyMethod, MethodSpec


def backbone_spec_or_default(method: "type[AnomalyMethod]", spec: "MethodSpec") -> BackboneSpec:
    """``spec.backbone`` with a missing architecture or weights filled from the method's default
    (e.g. WinCLIP's ViT-B-16-plus-240 / laion400m_e31, AdaptCLIP's ViT-L-14-336 / openai).

    An empty architecture means "the method's default"; weights None mean the method's default
    open_clip tag (the loader then says plainly if that tag does not exist for the architecture)."""
    default_arch, default_weights = method.default_backbone
    given = spec.backbone or BackboneSpec("", None)
    architecture = given.architecture or default_arch
    weights = default_weights if given.weights is None else given.weights
    return BackboneSpec(architecture, weights, given.activation, given.cache_dir, given.offline)
