"""AdaptCLIP in one folder: the network (``network.py``, ``adapters.py``, ``fusion.py``), its weights
(``checkpoints.py``, ``release_import.py``, ``catalog.py``, the demo alias ``demo_weights.py``), its
training (``trainer.py``, ``losses.py``, ``feature_cache.py``, ``training_config.py``) and the method
contract (``method.py``, which registers ``--method adaptclip``).

Imports lazily, so the torch-free ``catalog`` can be read without loading the network.
"""

from typing import Any

__all__ = ["AdaptCLIPMethod"]


def __getattr__(name: str) -> Any:
    if name == "AdaptCLIPMethod":
        from adaptclip_med.methods.adaptclip.method import AdaptCLIPMethod

        return AdaptCLIPMethod
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
