"""The contract of an inference runtime for the vision tower (one file per runtime implements it).

A runtime runs the exported ONNX graph of the two-stream tower (:mod:`.export`) and hands back the
same :class:`~adaptclip_med.model.backbone.VisionFeatures` the torch forward returns, so nothing
downstream (heads, 1-NN, fusion, banks, volume scorer) knows which runtime ran.  It is attached
to a backbone as ``backbone.vision_runtime``; ``encode_image`` delegates to it.

A new runtime = one module with a subclass of :class:`VisionRuntime` decorated with
:func:`~adaptclip_med.runtime.registry.register_runtime`, plus its import in ``runtime/__init__``.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.model.backbone import VisionFeatures


class MissingRuntimeError(AdaptClipError):
    """The runtime's Python package is not installed (one line naming the pip extra)."""


class VisionRuntime(ABC):
    """A compiled vision tower: (B, 3, S, S) fp32 CPU images -> taps + global token."""

    #: ``--runtime NAME``
    name: ClassVar[str]
    #: the importable module that must be installed
    module: ClassVar[str]
    #: the pip extra of adaptclip-med that installs it
    pip_extra: ClassVar[str]
    #: precisions this runtime implements; fp32 always means "exact within fp32 rounding"
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)

    def __init__(self, graph: Path, precision: str, image_size: int, tap_count: int, grid: tuple[int, int],
                 threads: int) -> None:
        self.graph = graph
        self.precision = precision
        self.image_size = image_size
        self.tap_count = tap_count
        self.grid = grid
        self.threads = threads

    # ------------------------------------------------------------------ installation
    @classmethod
    def installed(cls) -> bool:
        return importlib.util.find_spec(cls.module) is not None

    @classmethod
    def require_installed(cls) -> None:
        if not cls.installed():
            raise MissingRuntimeError(
                f"runtime '{cls.name}' needs the Python package '{cls.module}': pip install 'adaptclip-med[{cls.pip_extra}]'")

    # ------------------------------------------------------------------ graphs
    @classmethod
    def convert(cls, fp32_graph: Path, precision: str, target: Path) -> None:
        """Write the ``precision`` graph derived from the fp32 one to ``target`` (a temporary path
        the cache renames into place).  Only called for precisions other than fp32."""
        raise AdaptClipError(f"runtime '{cls.name}' has no {precision} conversion")

    # ------------------------------------------------------------------ inference
    def accepts(self, images: torch.Tensor) -> bool:
        """Whether this compiled graph fits the call (CPU tensors at the exported size); any
        other call runs the exact torch forward instead."""
        return images.device.type == "cpu" and tuple(images.shape[-2:]) == (self.image_size, self.image_size)

    @abstractmethod
    def run(self, images: np.ndarray) -> list[np.ndarray]:
        """The graph's outputs in export order: taps..., global token."""

    def __call__(self, images: torch.Tensor) -> VisionFeatures:
        array = np.ascontiguousarray(images.detach().to(torch.float32).numpy())
        outputs = [torch.from_numpy(np.asarray(o, dtype=np.float32)) for o in self.run(array)]
        return VisionFeatures(taps=outputs[:self.tap_count], global_token=outputs[self.tap_count], grid=self.grid)

    def describe(self) -> str:
        return f"{self.name} {self.precision}"
