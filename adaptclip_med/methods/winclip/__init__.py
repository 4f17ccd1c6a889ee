"""WinCLIP as a registered method (numbers in ``model.py``, windows in ``windows.py``, text in ``prompts.py``)."""

from adaptclip_med.methods.winclip.method import WinCLIPMethod

__all__ = ["WinCLIPMethod"]
