"""Which runtime and precision run the vision tower, and attaching it to a built model.

Rules (docs/performance.md, "Runtimes"):

* ``torch`` (default): the model's own forward, ``--precision fp32|bf16|auto`` as before.
* ``onnxruntime`` / ``openvino``: the exported tower in that runtime, CPU only; ``fp32`` is exact
  to fp32 rounding, ``int8`` (onnxruntime) is the opt-in fast mode with a measured tolerance.
* ``auto``: torch's own ``auto`` precision on CPUs with native bf16; elsewhere the runtime
  measured fastest at fp32 on this kind of CPU (:data:`~.measured.FP32_WINNERS`), falling back to
  torch where nothing was measured or the package is missing.  ``--precision int8`` with ``auto``
  uses :data:`~.measured.INT8_RUNTIME`.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.model.precision import PRECISIONS as TORCH_PRECISIONS
from adaptclip_med.runtime import measured
from adaptclip_med.runtime.registry import AUTO, TORCH, get_runtime, runtime_names

log = logging.getLogger(__name__)

#: Runtime implementations, imported on first use (adding a runtime = its module + one line here).
BACKEND_MODULES = ("adaptclip_med.runtime.onnxruntime_backend", "adaptclip_med.runtime.openvino_backend")
#: torch's precisions (model/precision.py) plus int8, which only an inference runtime runs.
PRECISIONS = (*TORCH_PRECISIONS, "int8")


def load_backends() -> None:
    for module in BACKEND_MODULES:
        importlib.import_module(module)


@dataclass(frozen=True)
class RuntimeChoice:
    runtime: str
    precision: str
    reason: str


def _flags(flags: frozenset[str] | None) -> frozenset[str]:
    from adaptclip_med.model.precision import cpu_flags

    return cpu_flags() if flags is None else flags


def resolve_runtime(runtime: str | None, precision: str, device: torch.device, flags: frozenset[str] | None = None) -> RuntimeChoice:
    """(runtime, precision, reason) for a request; one-line errors for combinations that do not exist.
    ``runtime`` None (not given) is torch, except that ``--precision int8`` alone selects the int8
    runtime.  For torch the precision may stay ``auto`` (resolved by
    :func:`~adaptclip_med.model.precision.apply_precision`)."""
    from adaptclip_med.model.precision import native_bf16

    load_backends()
    if runtime is None:
        runtime = AUTO if precision == "int8" else TORCH
    if runtime not in runtime_names():
        raise AdaptClipError(f"runtime '{runtime}' is not one of {', '.join(runtime_names())}")
    if precision not in PRECISIONS:
        raise AdaptClipError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    if runtime == TORCH:
        if precision == "int8":
            raise AdaptClipError("precision int8 runs in an inference runtime, not torch: add --runtime onnxruntime (or --runtime auto)")
        return RuntimeChoice(TORCH, precision, "requested")
    if runtime != AUTO:
        cls = get_runtime(runtime)
        if device.type != "cpu":
            raise AdaptClipError(f"runtime '{runtime}' runs on the CPU only: use --runtime torch with --device {device.type}")
        chosen = "fp32" if precision == "auto" else precision
        if chosen not in cls.precisions:
            raise AdaptClipError(f"runtime '{runtime}' runs in {', '.join(cls.precisions)} only (asked for {precision})")
        return RuntimeChoice(runtime, chosen, "requested")
    # auto
    if precision == "int8":
        if device.type != "cpu":
            raise AdaptClipError(f"precision int8 runs on the CPU only (device {device.type}): use fp32, bf16 or auto")
        return RuntimeChoice(measured.INT8_RUNTIME, "int8", "auto: the int8 runtime")
    if device.type != "cpu":
        return RuntimeChoice(TORCH, precision, f"auto: {device.type} device")
    if precision in ("bf16", "fp16"):
        return RuntimeChoice(TORCH, precision, f"auto: {precision} runs in torch")
    cpu = _flags(flags)
    if precision == "auto" and native_bf16(device, cpu)[0]:
        return RuntimeChoice(TORCH, "auto", "auto: CPU has native bf16")
    kind = measured.cpu_kind(cpu)
    winner = measured.FP32_WINNERS.get(kind)
    if winner is None:
        return RuntimeChoice(TORCH, "fp32", f"auto: no runtime measured faster than torch fp32 on {kind} CPUs")
    cls = get_runtime(winner)
    if not cls.installed():
        return RuntimeChoice(TORCH, "fp32", f"auto: {winner} was measured faster on {kind} CPUs but is not installed "
                                            f"(pip install 'adaptclip-med[{cls.pip_extra}]')")
    return RuntimeChoice(winner, "fp32", f"auto: {winner} measured fastest at fp32 on {kind} CPUs")


def require_torch_runtime(method: str, runtime: str | None) -> None:
    """For methods whose towers are not exported (AdaCLIP, WinCLIP): only torch (or auto) applies."""
    if runtime not in (None, TORCH, AUTO):
        raise AdaptClipError(f"method '{method}' runs in torch only: --runtime {runtime} does not apply (drop it)")


def configure_vision(model, runtime: str | None = None, precision: str = "fp32", cache_dir: Path | None = None,
                     flags: frozenset[str] | None = None) -> RuntimeChoice:
    """Make ``model`` (an :class:`~adaptclip_med.methods.adaptclip.network.AdaptCLIP`) run its vision tower
    as asked; returns what was chosen (precision resolved) and logs it in one line."""
    from adaptclip_med.model.precision import apply_precision, current_precision

    device = next(model.parameters()).device
    choice = resolve_runtime(runtime, precision, device, flags)
    backbone = model.backbone
    if choice.runtime == TORCH:
        backbone.vision_runtime = None
        chosen = apply_precision(model, choice.precision)
        return RuntimeChoice(TORCH, chosen, choice.reason)
    if current_precision(model) != "fp32":
        raise AdaptClipError("the backbone was converted to bf16: a runtime exports the fp32 tower, build the model again")
    from adaptclip_med.runtime.cache import ensure_graph

    cls = get_runtime(choice.runtime)
    cls.require_installed()
    size = int(model.config.image_size)
    graph = ensure_graph(backbone, size, choice.precision, cls, cache_dir)
    grid = (size // backbone.patch_size,) * 2
    backbone.vision_runtime = cls(graph, choice.precision, size, len(backbone.tap_layers), grid, torch.get_num_threads())
    log.info("inference runtime %s, precision %s (%s)", choice.runtime, choice.precision, choice.reason)
    if choice.precision == "int8":
        log.warning(measured.INT8_WARNING)
    return choice
