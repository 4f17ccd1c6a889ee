"""Export the frozen two-stream vision tower to an ONNX graph (what every non-torch runtime runs).

Only the vision tower is exported: it is >95 % of a slice's cost; the heads (text adapters, 1-NN
search, PQA, fusion) are cheap, depend on the reference memory and stay in torch.  The graph has
a dynamic batch axis and a FIXED image size: the position embedding (resized for the grid) is
baked in as a constant, so a different size is a different graph (the cache key has the size).
Outputs are the tapped layers' projected value-stream tokens, then the global token, exactly what
:meth:`~adaptclip_med.model.backbone.ClipBackbone.encode_image_torch` returns.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
import torch.nn as nn

log = logging.getLogger(__name__)

#: ONNX opset of the exported graphs (ORT 1.2x and OpenVINO 2026 both read it).
OPSET = 17
INPUT_NAME = "images"


def output_names(tap_count: int) -> list[str]:
    return [f"tap{i}" for i in range(tap_count)] + ["global"]


class ExportedTower(nn.Module):
    """images (B, 3, S, S) -> (*taps, global_token) with the position embedding as a buffer."""

    def __init__(self, backbone, image_size: int) -> None:
        super().__init__()
        self.backbone = backbone
        grid = (image_size // backbone.patch_size,) * 2
        self.register_buffer("position", backbone.positional_embedding(grid, torch.float32, torch.device("cpu")).clone())

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.backbone.encode_image_torch(images, self.position)
        return (*features.taps, features.global_token)


def export_tower(backbone, image_size: int, path: Path) -> None:
    """Write the fp32 ONNX graph of ``backbone``'s vision tower at ``image_size`` to ``path``.

    Uses torch's TorchScript-based exporter: it traces the eager forward once (a ViT-L export
    takes well under a minute) and needs no extra packages; the weights stay fp32 (a bf16-converted
    backbone is refused by the caller)."""
    tower = ExportedTower(backbone, image_size).eval()
    example = torch.zeros(1, 3, image_size, image_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape constants (the size is fixed by design)
        torch.onnx.export(tower, (example,), str(path), dynamo=False, opset_version=OPSET, input_names=[INPUT_NAME],
                          output_names=output_names(len(backbone.tap_layers)),
                          dynamic_axes={INPUT_NAME: {0: "batch"}}, do_constant_folding=True)
