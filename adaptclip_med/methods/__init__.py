"""Anomaly-detection methods behind one contract (see ``base.py`` and docs/adding-a-method.md).

Names are imported lazily: ``weights status`` reads each method's torch-free ``catalog`` module
without loading the contract (which needs torch)."""

from typing import Any

from adaptclip_med.methods.registry import (
    DEFAULT_METHOD,
    available_methods,
    get_method,
    load_method,
    parse_methods,
    register_method,
    validate_spec,
)

__all__ = ["AnomalyMethod", "MethodSpec", "SlicePrediction", "DEFAULT_METHOD", "available_methods", "get_method",
           "load_method", "parse_methods", "register_method", "validate_spec"]


def __getattr__(name: str) -> Any:
    if name in ("AnomalyMethod", "MethodSpec", "SlicePrediction"):
        from adaptclip_med.methods import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
