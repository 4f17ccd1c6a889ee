"""What the benchmarks run on: random-weight models at the paper's sizes, phantom slices, and
synthetic reference banks at model size.

Speed and memory do not depend on weight values, so backbones use ``random:0`` weights (no
download) and untrained adapters.  Inputs are slices of the synthetic head-CT phantom rather than
noise so that background detection and windowing behave as on a scan.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from adaptclip_med.methods.adaptclip.network import AdaptCLIP
from adaptclip_med.model.backbone_source import BackboneSpec
from adaptclip_med.methods.adaptclip.checkpoints import LoadedModel, build_model
from adaptclip_med.preprocess import slices_to_model_input
from adaptclip_med.slice_preprocessing import SlicePreprocessing
from adaptclip_med.volume.bank.format import BANK_FORMAT, BANK_VERSION, THUMBNAIL_SIZE, bank_key

#: Default benchmark configurations: the paper's backbone and the smaller one the authors also used.
WORKLOADS = ("ViT-L-14-336@518", "ViT-B-16-plus-240@512")
BRAIN_WINDOW = (40.0, 80.0)


@dataclass(frozen=True)
class Workload:
    architecture: str
    image_size: int

    @classmethod
    def parse(cls, text: str) -> "Workload":
        """'ViT-L-14-336@518' -> architecture and input size."""
        architecture, _, size = text.partition("@")
        return cls(architecture, int(size) if size else 518)

    @property
    def name(self) -> str:
        return f"{self.architecture}@{self.image_size}"


def build_loaded(workload: Workload, device: torch.device) -> LoadedModel:
    """Random-weight backbone (seed 0) + untrained adapters, in eval mode on ``device``."""
    return build_model(BackboneSpec(workload.architecture, "random:0"), None, workload.image_size, device)


def phantom_slices(count: int, side: int = 256, seed: int = 0, lesions: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` brain-windowed phantom slices in [0, 1] (count, side, side) and their lesion masks."""
    from adaptclip_med.demo.phantom import make_head_ct_phantom
    from adaptclip_med.intensity import apply_window

    hu, mask = make_head_ct_phantom(seed, (count, side, side), lesions=lesions)
    return np.asarray(apply_window(hu, *BRAIN_WINDOW), dtype=np.float32), mask


def phantom_images(count: int, size: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """(count, 3, size, size) CLIP input from phantom slices (through the real preprocessing)."""
    slices, _ = phantom_slices(count, seed=seed)
    return slices_to_model_input(slices, size).to(device)


def _random_patches(rows: int, patches: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """L2-normalised random patch features stored as float16, like a bank layer."""
    out = torch.empty(rows, patches, dim, dtype=torch.float16)
    for start in range(0, rows, 16):
        chunk = torch.randn(min(16, rows - start), patches, dim, generator=generator)
        out[start:start + chunk.shape[0]] = F.normalize(chunk, dim=-1).half()
    return out


def write_synthetic_bank(folder: Path, loaded: LoadedModel, scans: int, rows: int, name: str = "synthetic") -> Path:
    """A reference bank in the real on-disk format, with random features at the model's size.

    Encoding k real 300-slice scans with ViT-L takes hours on a small CPU; the scorer's speed and
    memory depend only on the shapes, so random normalised features stand in for them."""
    from adaptclip_med.methods.adaptclip.method import AdaptCLIPMethod

    method = AdaptCLIPMethod.from_loaded(loaded)
    model: AdaptCLIP = loaded.model
    grid = model.config.image_size // model.backbone.patch_size
    dim, layers = model.backbone.embed_dim, len(model.backbone.tap_layers)
    preprocessing = SlicePreprocessing(window=BRAIN_WINDOW)
    root = folder / name
    root.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    entries = []
    for scan in range(scans):
        tensors = {f"layer{i}": _random_patches(rows, grid * grid, dim, generator) for i in range(layers)}
        tensors["global"] = F.normalize(torch.randn(rows, dim, generator=generator), dim=-1)
        tensors["thumbs"] = torch.zeros(rows, THUMBNAIL_SIZE, THUMBNAIL_SIZE, dtype=torch.uint8)
        tensors["rows"] = torch.arange(rows, dtype=torch.int64)
        tensors["relative_position"] = torch.linspace(0, 1, rows, dtype=torch.float64)
        file = f"scan_{scan:02d}.safetensors"
        save_file(tensors, str(root / file))
        del tensors
        entries.append({"label": f"synthetic-{scan}", "file": file, "num_slices": rows, "body_slices": rows,
                        "modality": "CT", "spacing_mm": [1.0, 0.5, 0.5]})
    meta = {"format": BANK_FORMAT, "format_version": BANK_VERSION, "name": name,
            "key": bank_key(method, preprocessing), "model": method.identity(), "preprocessing": preprocessing.describe(),
            "scans": entries, "software_version": "benchmark", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "calibration": None}
    (root / "bank.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
    return root


def labelled_phantom_set(volumes: int, per_volume: int, side: int = 128, seed: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small labelled set from ``volumes`` phantom head CTs with 2-3 lesions each: per volume the
    ``per_volume // 2`` slices with the most lesion pixels and as many lesion-free body slices.
    Returns brain-windowed slices (n, side, side) in [0, 1], masks (n, side, side) and slice labels (n,)."""
    from adaptclip_med.demo.phantom import make_head_ct_phantom
    from adaptclip_med.intensity import apply_window

    slices, masks = [], []
    for index in range(volumes):
        hu, mask = make_head_ct_phantom(seed + index, (24, side, side), lesions=2 + index % 2)
        area = mask.reshape(mask.shape[0], -1).sum(axis=1).astype(np.int64)
        lesion = [int(z) for z in np.argsort(-area)[:per_volume // 2] if area[z] > 0]
        normal = [z for z in range(6, 18) if area[z] == 0][:per_volume - len(lesion)]
        for z in lesion + normal:
            slices.append(np.asarray(apply_window(hu[z], *BRAIN_WINDOW), dtype=np.float32))
            masks.append(mask[z])
    masks_array = np.stack(masks)
    return np.stack(slices), masks_array, (masks_array.reshape(len(masks), -1).max(axis=1) > 0).astype(np.uint8)
