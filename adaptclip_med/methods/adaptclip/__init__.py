"""AdaptCLIP as a registered method (network code in ``adaptclip_med/model``)."""

from adaptclip_med.methods.adaptclip.method import AdaptCLIPMethod

__all__ = ["AdaptCLIPMethod"]
