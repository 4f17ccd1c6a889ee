"""WinCLIP as a registered method (numbers in ``model.py``, windows in ``windows.py``, text in ``prompts.py``).

Imports lazily, like every method folder (the registry imports ``method.py``)."""

from typing import Any

__all__ = ["WinCLIPMethod"]


def __getattr__(name: str) -> Any:
    if name == "WinCLIPMethod":
        from adaptclip_med.methods.winclip.method import WinCLIPMethod

        return WinCLIPMethod
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
