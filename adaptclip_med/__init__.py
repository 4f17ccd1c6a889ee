"""adaptclip-med: CLIP-based zero-/few-shot anomaly detection for radiology.

Public API (imported lazily, so ``import adaptclip_med`` and the CLI's ``--help`` stay fast)::

    import adaptclip_med as acm

    method = acm.load_method("winclip", class_name="brain", backbone="ViT-B-16-plus-240",
                             backbone_weights="laion400m_e31")
    bank = acm.build_bank("ct-head", ["normal1/", "normal2/"], method, window="brain", root="banks/")
    result = acm.score_study("study_dicom/", method, bank=bank, out="results/study1")

See docs/api.md.  Research software: not a medical device, not for clinical use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "available_methods", "build_bank", "load_method", "predict_image", "score_study"]

if TYPE_CHECKING:
    from adaptclip_med.api import build_bank, load_method, predict_image, score_study
    from adaptclip_med.methods.registry import available_methods


def __getattr__(name: str) -> Any:
    if name in ("build_bank", "load_method", "predict_image", "score_study"):
        from adaptclip_med import api

        return getattr(api, name)
    if name == "available_methods":
        from adaptclip_med.methods.registry import available_methods

        return available_methods
    raise AttributeError(f"module 'adaptclip_med' has no attribute {name!r}")
