"""ONNX Runtime (CPU execution provider) for the vision tower: fp32, and int8 weights.

fp32: ORT's full graph optimisation (operator fusion, constant folding) on the exported graph;
outputs equal torch's to fp32 rounding (measured max |diff| ~3e-6 on ViT features, see
docs/performance.md).

int8 (the opt-in fast mode): dynamic quantisation of the weight matmuls only (in-projection,
out-projections, MLP; the attention's activation x activation matmuls stay fp32), weights int8
per output channel, activations quantised per call.  ``reduce_range`` (7-bit weights) is on
because AVX2 CPUs without VNNI compute u8 x s8 products with ``vpmaddubsw``, whose int16
pair sums saturate with full-range weights: measured 18 % relative feature error without it,
2 % with it (ViT-B-16, random weights).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from adaptclip_med.runtime.base import VisionRuntime
from adaptclip_med.runtime.export import INPUT_NAME
from adaptclip_med.runtime.registry import register_runtime


def weight_matmuls(graph_path: Path) -> list[str]:
    """Names of the MatMul/Gemm nodes whose second input is a stored weight."""
    import onnx

    graph = onnx.load(str(graph_path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    return [node.name for node in graph.node if node.op_type in ("MatMul", "Gemm") and node.input[1] in initializers]


@register_runtime
class OnnxRuntime(VisionRuntime):
    name = "onnxruntime"
    module = "onnxruntime"
    pip_extra = "onnxruntime"
    precisions = ("fp32", "int8")

    def __init__(self, graph: Path, precision: str, image_size: int, tap_count: int, grid: tuple[int, int],
                 threads: int) -> None:
        super().__init__(graph, precision, image_size, tap_count, grid, threads)
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # ORT warns about unused initializers after fusion
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    @classmethod
    def convert(cls, fp32_graph: Path, precision: str, target: Path) -> None:
        if precision != "int8":
            super().convert(fp32_graph, precision, target)
        from onnxruntime.quantization import QuantType, quantize_dynamic

        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser logs an INFO line per tensor (and a pre-processing hint) on the root logger
        try:
            quantize_dynamic(str(fp32_graph), str(target), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                             nodes_to_quantize=weight_matmuls(fp32_graph))
        finally:
            root.setLevel(level)

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {INPUT_NAME: images})
