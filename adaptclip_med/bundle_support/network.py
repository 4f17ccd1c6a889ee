"""The bundle's ``network_def``: any registered method as a plain image-to-map module.

MONAI tooling (``verify_net_in_out``, engines, exporters) expects one module that takes the
``image`` tensor of ``network_data_format`` and returns ONE tensor, ``pred``.  AdaptCLIP natively
returns a map, a score and branch outputs, and wants CLIP-normalised RGB at its own square size.
This wrapper does that conversion so the bundle can advertise windowed grey slices in [0, 1] and
an anomaly map of the same height and width, with scores left to the volume scorer.

The wrapped method comes from :func:`adaptclip_med.volume.pipeline.model_for`, the same cached
loader the CLI uses, so the bundle and ``adaptclip-med score`` cannot drift apart.  Volume
inference does not call :meth:`forward` slice by slice: the inferer hands ``method`` to the
project's :class:`~adaptclip_med.volume.scoring.VolumeScorer`, which also matches every slice with
its reference slices for few-shot scoring.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from adaptclip_med.errors import InputError
from adaptclip_med.methods.base import AnomalyMethod
from adaptclip_med.preprocess import normalise
from adaptclip_med.volume.pipeline import ScoringOptions, model_for


class AnomalyMapNetwork(nn.Module):
    """(B, 1 or 3, H, W) intensities in [0, 1] -> (B, 1, H, W) float32 anomaly probability, for
    any registered method (``method`` in the bundle config).

    Without ``memory`` the map is zero-shot; with a memory (normal references encoded once by
    ``self.method.encode_normals``) it is few-shot, for methods with a reference branch."""

    def __init__(self, method: str = "adaptclip", backbone: str | None = None, backbone_weights: str | None = None,
                 adapters: str | None = None, activation: str = "auto", image_size: int | None = None,
                 offline: bool = False, cache_dir: str | None = None, device: str | torch.device = "cpu",
                 precision: str = "fp32", class_name: str | None = None) -> None:
        super().__init__()
        self.options = ScoringOptions(method=method, class_name=class_name, backbone=backbone, backbone_weights=backbone_weights,
                                      activation=activation, adapters=str(adapters) if adapters else None,
                                      image_size=image_size, device=str(device), offline=offline, cache_dir=cache_dir,
                                      precision=precision)
        self.method: AnomalyMethod = model_for(self.options)
        # The model is shared through the loader's cache and predict() refuses train mode.  MONAI's
        # eval_mode context restores on exit the flag it found, so start in eval mode to stay there.
        self.eval()

    @property
    def image_size(self) -> int:
        return int(self.method.image_size)

    def forward(self, image: torch.Tensor, memory=None) -> torch.Tensor:
        if image.ndim != 4 or image.shape[1] not in (1, 3):
            raise InputError(f"network input must be (B, 1 or 3, H, W), got {tuple(image.shape)}")
        height, width = image.shape[-2:]
        size = self.image_size
        if image.shape[1] == 1:  # grey slices: exactly the scorer's conversion
            x = self.method.slice_input(image[:, 0])
        else:
            x = image.float()
            if (height, width) != (size, size):
                x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True).clamp(0.0, 1.0)
            x = normalise(x).to(self.method.device)
        with torch.no_grad():
            anomaly_map = self.method.predict(x, memory).anomaly_map.unsqueeze(1).float()
        if (height, width) != (size, size):
            anomaly_map = F.interpolate(anomaly_map, size=(height, width), mode="bilinear", align_corners=False)
        return anomaly_map


#: The name the bundle configs used before the method contract.
AdaptCLIPMapNetwork = AnomalyMapNetwork
