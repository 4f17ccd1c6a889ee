"""AdaCLIP as a registered method (``--method adaclip``); see ``method.py``.

Imports lazily, so the torch-free ``catalog`` can be read without loading the network.
"""

from typing import Any

__all__ = ["AdaCLIPMethod", "RELEASES", "import_release"]


def __getattr__(name: str) -> Any:
    if name == "AdaCLIPMethod":
        from adaptclip_med.methods.adaclip.method import AdaCLIPMethod

        return AdaCLIPMethod
    if name in ("RELEASES", "import_release"):
        from adaptclip_med.methods.adaclip import weights

        return getattr(weights, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
