"""OpenVINO (CPU plugin) for the vision tower, fp32.

The plugin is pinned to f32 inference precision: by default OpenVINO runs fp32 graphs in bf16 on
CPUs with AMX / AVX512-BF16, which would silently break the exact mode there.  int8 is not
offered: NNCF's int8 weight compression (weights decompressed to fp32 per call) was slower than
fp32 on the compute-bound tower, and NNCF's static int8 (calibrated) was 5x less accurate than
ONNX Runtime's int8 on the same inputs (docs/performance.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from adaptclip_med.runtime.base import VisionRuntime
from adaptclip_med.runtime.export import INPUT_NAME
from adaptclip_med.runtime.registry import register_runtime


@register_runtime
class OpenVinoRuntime(VisionRuntime):
    name = "openvino"
    module = "openvino"
    pip_extra = "openvino"
    precisions = ("fp32",)

    def __init__(self, graph: Path, precision: str, image_size: int, tap_count: int, grid: tuple[int, int],
                 threads: int) -> None:
        super().__init__(graph, precision, image_size, tap_count, grid, threads)
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
        self.compiled = core.compile_model(core.read_model(str(graph)), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        results = self.request.infer({INPUT_NAME: images})
        return [np.array(results[output]) for output in self.compiled.outputs]
