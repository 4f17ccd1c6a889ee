"""How two method identities differ, in words a user can act on.

A method's :meth:`~adaptclip_med.methods.base.AnomalyMethod.identity` is recorded wherever its
outputs are kept (a reference bank's ``bank.json``, study.json).  When a recorded identity is not
the current one, the refusal names each differing field, the recorded and the current value, and
the command-line flag that sets it, e.g. ``image_size 224 (bank) vs 518 (now): pass
--image-size 224``.
"""

from __future__ import annotations

import json
from typing import Any

#: The flag that sets an identity field, for the refusal message.
_FIELD_FLAGS = {"method": "--method", "image_size": "--image-size", "class_name": "--class-name",
                "weights": "--adapters", "backbone.architecture": "--backbone", "backbone.weights": "--backbone-weights",
                "backbone.activation": "--backbone-activation", "precision": "--precision"}


def identity_differences(bank_identity: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between two method identities, most decisive first, e.g.
    ``image_size 224 (bank) vs 518 (now): pass --image-size 224``."""
    ours, theirs = _flatten(json.loads(json.dumps(current, default=str))), _flatten(json.loads(json.dumps(bank_identity, default=str)))
    order = ["method", *[k for k in _FIELD_FLAGS if k != "method"]]
    keys = sorted(set(ours) | set(theirs), key=lambda k: (order.index(k) if k in order else len(order), k))
    lines = []
    for key in keys:
        if key.endswith("provenance") or ".provenance" in key or key.startswith("weights_provenance"):
            continue
        if ours.get(key) != theirs.get(key):
            flag = _FIELD_FLAGS.get(key)
            if flag and theirs.get(key) is not None:
                hint = f": pass {flag} {theirs.get(key)}"
            elif flag:
                hint = f": drop {flag} or build the bank with it"
            else:
                hint = ""
            lines.append(f"{key} {_short(theirs.get(key))} (bank) vs {_short(ours.get(key))} (now){hint}")
    return lines


def _flatten(record: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(record, dict):
        flat: dict[str, Any] = {}
        for key, value in record.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: record}


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
