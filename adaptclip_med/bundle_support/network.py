"""The bundle's ``network_def``: any registered method as a MONAI network.

* ``forward``: MONAI tooling (``verify_net_in_out``, exporters) expects one module that takes the
  ``image`` tensor of ``network_data_format`` and returns ONE tensor, ``pred``: windowed grey
  slices in [0, 1] -> an anomaly map of the same height and width.
* ``score_study``: what the bundle's inferer calls for a whole study.  A study is scored slice
  batch by slice batch with the project's one slice step (encode, match reference slices, predict;
  :mod:`adaptclip_med.volume.slice_step`) by a :class:`~adaptclip_med.volume.scoring.VolumeScorer`
  the network builds (once per setting) around its own method, so bundle outputs equal
  ``adaptclip-med score``.
* weights: the method's trainable tensors (:meth:`AnomalyMethod.weights_module`) are the
  registered submodule ``weights``, so ``network.state_dict()`` / ``load_state_dict`` cover
  exactly them (``weights.<key>``; none for training-free methods) and MONAI's
  ``CheckpointLoader`` can load the ``models/model.pt`` that ``configs/train.json`` publishes.

The wrapped method comes from :func:`adaptclip_med.volume.pipeline.model_for`, the same cached
loader the CLI uses.  Loading a state dict replaces that method's tensors in place, so it also
renames its identity (``weights: model.pt`` and the tensors' SHA-256) and drops the shared model
cache, which no longer matches its spec.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from adaptclip_med.errors import InputError
from adaptclip_med.methods.base import AnomalyMethod, MethodSpec
from adaptclip_med.preprocess import normalise
from adaptclip_med.volume.options import OutputOptions, ReferenceOptions, ScoringOptions, SlicingOptions
from adaptclip_med.volume.pipeline import make_scorer, model_for

#: Prefix of the trainable tensors in ``network.state_dict()`` (and in ``models/model.pt``).
WEIGHTS_PREFIX = "weights"


def network_state_dict(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The method's trainable tensors (keys of its weights module) as the network's state dict."""
    return {f"{WEIGHTS_PREFIX}.{key}": value.detach().cpu().contiguous() for key, value in weights.items()}


def state_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """A content hash of a state dict (keys, dtypes, shapes and values, in key order)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


class AnomalyMapNetwork(nn.Module):
    """(B, 1 or 3, H, W) intensities in [0, 1] -> (B, 1, H, W) float32 anomaly probability, for
    any registered method: the bundle config's ``method_spec`` (:class:`MethodSpec`, built from its
    ``method``, ``backbone``, ``adapters`` ... keys).

    Without ``memory`` the map is zero-shot; with a memory (normal references encoded once by
    ``self.method.encode_normals``) it is few-shot, for methods with a reference branch."""

    def __init__(self, spec: MethodSpec, checkpoint: str | None = None) -> None:
        """``spec``: the method to wrap (validated by its method; weights None = untrained or none).
        ``checkpoint``: the state-dict file a MONAI ``CheckpointLoader`` may load into this network
        later (``models/model.pt``); only named in the method's identity once loaded."""
        super().__init__()
        from adaptclip_med.methods.registry import validate_spec

        self.spec = validate_spec(spec, weights_required=False)
        self.method: AnomalyMethod = model_for(ScoringOptions(model=spec))
        weights = self.method.weights_module()
        if weights is not None:
            self.add_module(WEIGHTS_PREFIX, weights)  # registered: state_dict() = the trainable tensors
        self._scorers: dict[tuple, Any] = {}
        self.loaded_checkpoint: str | None = str(checkpoint) if checkpoint else None
        # The model is shared through the loader's cache and predict() refuses train mode.  MONAI's
        # eval_mode context restores on exit the flag it found, so start in eval mode to stay there.
        self.eval()

    @property
    def image_size(self) -> int:
        return int(self.method.image_size)

    @property
    def has_weights(self) -> bool:
        """Whether the method has trainable tensors (a ``models/model.pt`` to load)."""
        return WEIGHTS_PREFIX in self._modules

    # ------------------------------------------------------------------ weights
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        label = Path(self.loaded_checkpoint).name if self.loaded_checkpoint else "state dict"
        self.method.record_loaded_weights(label, state_sha256(self.state_dict()))
        self._scorers.clear()
        from adaptclip_med.methods.registry import load_method

        load_method.cache_clear()  # the cached instance no longer matches its spec
        return result

    def load_checkpoint(self, path: str | Path, map_location: Any = None, strict: bool = True) -> "AnomalyMapNetwork":
        """What MONAI's ``CheckpointLoader`` does, outside an engine (scripts, tests)."""
        self.loaded_checkpoint = str(path)
        self.load_state_dict(torch.load(path, map_location=map_location, weights_only=True), strict=strict)
        return self

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write ``state_dict()`` (the trainable tensors) as a plain torch file (``models/model.pt``)."""
        from adaptclip_med.utils.atomic import atomic_write_bytes

        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, buffer)
        return atomic_write_bytes(Path(path), buffer.getvalue())

    # ------------------------------------------------------------------ studies
    def scorer(self, references: ReferenceOptions = ReferenceOptions(), slicing: SlicingOptions = SlicingOptions(),
               output: OutputOptions = OutputOptions()):
        """The volume scorer of this network's method for these scoring parts (bank and shots,
        window and axis, threshold and aggregation), built once per setting."""
        key = (references, slicing, output)
        if key not in self._scorers:
            options = ScoringOptions(model=self.spec, references=references, slicing=slicing, output=output)
            self._scorers[key] = make_scorer(options, self.method)
        return self._scorers[key]

    def score_study(self, volume: Any, prepared: Any, references: ReferenceOptions = ReferenceOptions(),
                    slicing: SlicingOptions = SlicingOptions(), output: OutputOptions = OutputOptions()):
        """Score one prepared study (windowed slices, skipped air slices): every body slice goes
        through the project's slice step with this network's method; returns the
        :class:`~adaptclip_med.volume.scoring.StudyResult`."""
        return self.scorer(references, slicing, output).score_prepared(volume, prepared)

    # ------------------------------------------------------------------ slices
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
                x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False,
                                  antialias=True).clamp(0.0, 1.0)
            x = normalise(x).to(self.method.device)
        with torch.no_grad():
            anomaly_map = self.method.predict(x, memory).anomaly_map.unsqueeze(1).float()
        if (height, width) != (size, size):
            anomaly_map = F.interpolate(anomaly_map, size=(height, width), mode="bilinear", align_corners=False)
        return anomaly_map


#: The name the bundle configs used before the method contract.
AdaptCLIPMapNetwork = AnomalyMapNetwork
