"""Method registry: names -> method classes, and the one factory every surface uses.

A method registers itself with :func:`register_method` when its ``method`` module is imported;
the built-in methods are imported lazily on first lookup so ``--help`` stays fast and a broken
optional method cannot break the others.  A built-in method is one folder ``methods/NAME/`` with
``method.py`` (registers the class) and, if it has weights of its own, ``catalog.py`` (torch-free,
read by :func:`weights_catalogs`).
"""

from __future__ import annotations

import importlib
import logging
from functools import lru_cache
from typing import TYPE_CHECKING

from adaptclip_med.errors import AdaptClipError

if TYPE_CHECKING:
    from adaptclip_med.methods.base import AnomalyMethod, MethodSpec
    from adaptclip_med.methods.catalog import WeightsCatalog

log = logging.getLogger(__name__)

DEFAULT_METHOD = "adaptclip"
#: Built-in methods and the folder (package) of each; its ``method`` module registers it (imported on first use).
BUILTIN_METHODS: dict[str, str] = {
    "adaptclip": "adaptclip_med.methods.adaptclip",
    "adaclip": "adaptclip_med.methods.adaclip",
    "winclip": "adaptclip_med.methods.winclip",
}

_REGISTRY: dict[str, type["AnomalyMethod"]] = {}


def register_method(cls: type["AnomalyMethod"]) -> type["AnomalyMethod"]:
    """Class decorator: make ``cls`` available as ``--method cls.name``.  Re-registering a name
    replaces the earlier class (tests define toy methods)."""
    name = getattr(cls, "name", None)
    if not name or not isinstance(name, str):
        raise TypeError(f"{cls.__name__} needs a class attribute 'name'")
    _REGISTRY[name] = cls
    load_method.cache_clear()
    return cls


def unregister_method(name: str) -> None:
    _REGISTRY.pop(name, None)
    load_method.cache_clear()


def _import_builtin(name: str) -> None:
    module = BUILTIN_METHODS.get(name)
    if module and name not in _REGISTRY:
        importlib.import_module(f"{module}.method")


def available_methods() -> list[str]:
    """Registered method names (built-ins first, then any registered at run time)."""
    for name in BUILTIN_METHODS:
        try:
            _import_builtin(name)
        except ImportError as exc:  # a missing optional dependency must not hide the others
            log.debug("method %s unavailable: %s", name, exc)
    return list(dict.fromkeys([*[n for n in BUILTIN_METHODS if n in _REGISTRY], *_REGISTRY]))


def weights_catalogs() -> dict[str, "WeightsCatalog"]:
    """Every method's weights catalog (``weights status`` / ``fetch`` / ``import``), without importing
    torch: a registered class gives its ``weights_catalog``; a built-in not yet imported gives the
    ``CATALOG`` of its folder's ``catalog`` module (a built-in without one has no weights of its own)."""
    from importlib.util import find_spec

    from adaptclip_med.methods.catalog import WeightsCatalog

    catalogs: dict[str, WeightsCatalog] = {}
    for name, package in BUILTIN_METHODS.items():
        if name in _REGISTRY:
            catalogs[name] = _REGISTRY[name].weights_catalog
        elif find_spec(f"{package}.catalog") is not None:
            catalogs[name] = importlib.import_module(f"{package}.catalog").CATALOG
        else:
            catalogs[name] = WeightsCatalog()
    for name, cls in _REGISTRY.items():
        catalogs.setdefault(name, cls.weights_catalog)
    return catalogs


def get_method(name: str) -> type["AnomalyMethod"]:
    """The class registered as ``name``; one-line error listing the choices otherwise."""
    _import_builtin(name)
    if name not in _REGISTRY:
        raise AdaptClipError(f"unknown method '{name}': choose one of {', '.join(available_methods())}")
    return _REGISTRY[name]


def parse_methods(value: str | None) -> list[str]:
    """``--method a,b`` -> ['a', 'b'] (validated, order kept, duplicates dropped)."""
    names = [n.strip() for n in (value or DEFAULT_METHOD).split(",") if n.strip()]
    if not names:
        names = [DEFAULT_METHOD]
    for name in names:
        get_method(name)
    return list(dict.fromkeys(names))


def validate_spec(spec: "MethodSpec", *, weights_required: bool = True, untrained: bool = False) -> "MethodSpec":
    """Check ``spec`` against its method (:meth:`AnomalyMethod.validate`: one-line error naming the
    flag); returns it, so surfaces validate where they build."""
    get_method(spec.method).validate(spec, weights_required=weights_required, untrained=untrained)
    return spec


@lru_cache(maxsize=3)
def load_method(spec: "MethodSpec") -> "AnomalyMethod":
    """Build (and cache the last few) methods: the one model factory of the CLI, bundle, batch,
    dashboard, training and evaluation.  Specs are frozen dataclasses, so equal requests share one
    model."""
    return get_method(spec.method).load(spec)
