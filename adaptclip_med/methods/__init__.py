"""Anomaly-detection methods behind one contract (see ``base.py`` and docs/adding-a-method.md)."""

from adaptclip_med.methods.base import AnomalyMethod, MethodSpec, SlicePrediction
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
