"""Runtime name -> class.  Runtimes register themselves; ``torch`` is the built-in default and
is not a registered class (it is the model's own forward)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from adaptclip_med.errors import AdaptClipError

if TYPE_CHECKING:
    from adaptclip_med.runtime.base import VisionRuntime

R = TypeVar("R", bound="type[VisionRuntime]")
TORCH = "torch"
AUTO = "auto"
_RUNTIMES: dict[str, "type[VisionRuntime]"] = {}


def register_runtime(cls: R) -> R:
    _RUNTIMES[cls.name] = cls
    return cls


def runtime_names() -> tuple[str, ...]:
    """Every accepted ``--runtime`` value."""
    return (TORCH, *_RUNTIMES, AUTO)


def get_runtime(name: str) -> "type[VisionRuntime]":
    try:
        return _RUNTIMES[name]
    except KeyError:
        raise AdaptClipError(f"runtime '{name}' is not one of {', '.join(runtime_names())}") from None
