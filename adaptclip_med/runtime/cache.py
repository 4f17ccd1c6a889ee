"""Exported graphs cached on disk, keyed by everything that changes them.

Exporting ViT-L takes tens of seconds and an int8 conversion minutes, so each graph is built
once per (backbone identity and weights fingerprint, tapped layers, value-stream start, image
size, precision, converting runtime, exporter format) and reused by later runs.  Graphs are
written to a temporary name and renamed into place (:func:`~adaptclip_med.utils.atomic.atomic_path`),
so an interrupted export never leaves a half graph that a later run would load; two processes
exporting at once both write complete files and the last rename wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

from adaptclip_med.utils.atomic import atomic_path
from adaptclip_med.utils.home import home

log = logging.getLogger(__name__)

#: Bump when the exported graph's contents change for the same inputs (export code, outputs).
GRAPH_FORMAT = 1


def default_cache_dir() -> Path:
    return home() / "runtime-graphs"


def graph_key(backbone, image_size: int) -> str:
    """Hex key of the fp32 graph of ``backbone`` at ``image_size``."""
    from adaptclip_med.runtime.export import OPSET

    identity = backbone.identity
    payload = {"architecture": identity.architecture, "model_config": identity.model_config, "weights": identity.weights,
               "weights_sha256": identity.weights_sha256, "activation": identity.activation,
               "fingerprint": backbone.fingerprint(), "tap_layers": list(backbone.tap_layers),
               "vv_start_layer": backbone.vv_start_layer, "image_size": image_size, "opset": OPSET, "format": GRAPH_FORMAT}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def graph_path(folder: Path, key: str, precision: str, runtime: str) -> Path:
    """fp32 graphs are shared by every runtime; converted ones belong to the runtime that made them."""
    name = f"{key}-fp32.onnx" if precision == "fp32" else f"{key}-{precision}-{runtime}.onnx"
    return folder / name


def ensure_graph(backbone, image_size: int, precision: str, runtime_cls, folder: Path | None = None) -> Path:
    """The cached graph for this backbone/size/precision, exporting (and converting) it if missing."""
    from adaptclip_med.runtime.export import export_tower

    folder = Path(folder) if folder is not None else default_cache_dir()
    key = graph_key(backbone, image_size)
    fp32 = graph_path(folder, key, "fp32", runtime_cls.name)
    if not fp32.is_file():
        started = time.perf_counter()
        with atomic_path(fp32) as tmp:
            export_tower(backbone, image_size, tmp)
        log.info("exported the vision tower to %s (%.1f s)", fp32.name, time.perf_counter() - started)
    if precision == "fp32":
        return fp32
    target = graph_path(folder, key, precision, runtime_cls.name)
    if not target.is_file():
        started = time.perf_counter()
        with atomic_path(target) as tmp:
            runtime_cls.convert(fp32, precision, tmp)
        log.info("converted the vision tower to %s for %s (%.1f s)", precision, runtime_cls.name, time.perf_counter() - started)
    return target
