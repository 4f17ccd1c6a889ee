"""A deterministic intensity method for evaluating triage (benchmarks/triage.py, tests/volume/test_triage.py).

Why it exists: the built-in tiny demo model is random and responds to nothing, so recall and
AUROC measured with it say nothing about triage.  This method does respond to the phantom's
lesions (it compares each pixel's windowed intensity with the matched normal slices of a
reference bank), and it goes through the method contract like any registered method: bank rows,
memories, ``predict_encoded``.  It is registered by the benchmark and the tests only, never by
the package, and it is NOT a detector to use on patients.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from adaptclip_med.methods.base import AnomalyMethod, MethodSpec, SlicePrediction
from adaptclip_med.methods.registry import register_method

NAME = "toy-intensity"
DEFAULT_SIZE = 64
#: The phantom's noise in windowed units (3 HU / an 80 HU window ~ 0.04): deviations are counted in it.
NOISE = 0.05
#: Reference pixels within this many pixels of a query pixel may match it: normal heads differ in
#: size and pose by a pixel or two, which would otherwise light up every edge.
SHIFT = 2


class IntensityDeviation(AnomalyMethod):
    """Per pixel, the smallest |x - r| over the matched normal slices r and over reference pixels
    within ``SHIFT`` pixels (nearest normal intensity, tolerant of small misalignment), in noise
    units, 3x3 box-smoothed and squashed to [0, 1]."""

    name = NAME
    summary = "benchmark toy: intensity deviation from the matched normal slices (not for patients)"
    references = "required"
    trainable = False

    def __init__(self, size: int) -> None:
        self.image_size = size
        self.device = torch.device("cpu")

    @classmethod
    def load(cls, spec: MethodSpec) -> "IntensityDeviation":
        return cls(spec.image_size or DEFAULT_SIZE)

    def identity(self) -> dict[str, Any]:
        return {"method": self.name, "backbone": None, "weights": None, "weights_sha256": None,
                "image_size": self.image_size, "preprocessing": "grey, bilinear resize", "class_name": None,
                "noise": NOISE, "shift": SHIFT}

    def image_input(self, images: Sequence[Any]) -> torch.Tensor:
        arrays = [np.asarray(img.convert("L"), dtype=np.float32) / 255.0 for img in images]
        return self.slice_input(np.stack(arrays))

    def slice_input(self, slices01) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(slices01, dtype=np.float32)).unsqueeze(1)
        return F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, 0]

    def global_embedding(self, encoded: torch.Tensor) -> torch.Tensor:
        return encoded.flatten(1)

    def memory_rows(self, encoded: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pixels": encoded}

    def memory_from_rows(self, rows: Sequence[dict[str, torch.Tensor]]) -> torch.Tensor:
        """(R * shifts, S, S): every matched reference slice at every shift within SHIFT pixels."""
        stack = torch.cat([r["pixels"].float() for r in rows], dim=0)
        size = stack.shape[-1]
        padded = F.pad(stack.unsqueeze(1), (SHIFT,) * 4, mode="replicate").squeeze(1)
        shifted = [padded[:, dy:dy + size, dx:dx + size] for dy in range(2 * SHIFT + 1) for dx in range(2 * SHIFT + 1)]
        return torch.cat(shifted, dim=0)

    def predict_encoded(self, encoded: torch.Tensor, memory: Any = None) -> SlicePrediction:
        if memory is None:
            raise ValueError(f"{NAME} needs references")
        memories = memory if isinstance(memory, list) else [memory] * encoded.shape[0]
        deviation = torch.stack([(query.unsqueeze(0) - refs).abs().amin(dim=0) for query, refs in zip(encoded, memories)])
        z = F.avg_pool2d((deviation / NOISE).unsqueeze(1), 3, stride=1, padding=1, count_include_pad=False).squeeze(1)
        anomaly_map = 1.0 - torch.exp(-(z - 2.0).clamp_min(0.0) / 3.0)
        return SlicePrediction(anomaly_map=anomaly_map, score=anomaly_map.flatten(1).amax(dim=1))


def register() -> type[AnomalyMethod]:
    """Register the toy (idempotent); callers unregister it with ``unregister_method(NAME)``."""
    return register_method(IntensityDeviation)
