"""adaptclip-med: CLIP-based zero-/few-shot anomaly detection for radiology.

Public API (imported lazily, so ``import adaptclip_med`` and the CLI's ``--help`` stay fast)::

    import adaptclip_med as acm

    method = acm.load_method(acm.MethodSpec("winclip", class_name="brain",
                                            backbone=acm.BackboneSpec("ViT-B-16-plus-240", "laion400m_e31")))
    bank = acm.build_bank("ct-head", ["normal1/", "normal2/"], method, window="brain", root="banks/")
    result = acm.score_study("study_dicom/", method, bank=bank, out="results/study1")

See docs/api.md.  Research software: not a medical device, not for clinical use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adaptclip_med.version import __version__

__all__ = ["__version__", "BackboneSpec", "MethodSpec", "available_methods", "build_bank", "load_method", "predict_image",
           "score_study"]

if TYPE_CHECKING:
    from adaptclip_med.api import build_bank, load_method, predict_image, score_study
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.methods.registry import available_methods
    from adaptclip_med.model.backbone_source import BackboneSpec


def __getattr__(name: str) -> Any:
    if name in ("build_bank", "load_method", "predict_image", "score_study"):
        from adaptclip_med import api

        return getattr(api, name)
    if name == "available_methods":
        from adaptclip_med.methods.registry import available_methods

        return available_methods
    if name == "MethodSpec":
        from adaptclip_med.methods.base import MethodSpec

        return MethodSpec
    if name == "BackboneSpec":
        from adaptclip_med.model.backbone_source import BackboneSpec

        return BackboneSpec
    raise AttributeError(f"module 'adaptclip_med' has no attribute {name!r}")
