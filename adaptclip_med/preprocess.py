"""Turning pictures into CLIP input tensors (spec §1: bicubic resize to the square model size,
RGB with grey replicated, OpenAI CLIP mean/std).

2-D files go through PIL's bicubic resize, which is what the release (torchvision on PIL images)
does.  Windowed medical slices are float arrays in [0, 1]; they are resized with torch's bicubic
(antialiased) so CT precision is not quantised to 8 bits first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from adaptclip_med.errors import InputError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def load_rgb_image(path: Path) -> Image.Image:
    """Open a PNG/JPEG/TIFF as RGB (grey replicated to 3 channels); one-line error otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path.name}: file not found")
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                array = np.asarray(image, dtype=np.float32)
                lo, hi = float(array.min()), float(array.max())
                array = (array - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(array)
                image = Image.fromarray(array.astype(np.uint8))
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"{path.name}: not a readable image ({exc.__class__.__name__})") from exc


def normalise(tensor: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) in [0, 1] -> CLIP-normalised."""
    mean = torch.tensor(CLIP_MEAN, dtype=tensor.dtype, device=tensor.device).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=tensor.dtype, device=tensor.device).view(3, 1, 1)
    return (tensor - mean) / std


def pil_to_model_input(image: Image.Image, size: int) -> torch.Tensor:
    """PIL RGB -> (3, size, size) float tensor: bicubic resize, [0,1], CLIP normalisation."""
    if image.size != (size, size):
        image = image.resize((size, size), Image.BICUBIC)
    array = np.asarray(image, dtype=np.float32) / 255.0
    return normalise(torch.from_numpy(array).permute(2, 0, 1).contiguous())


def load_model_inputs(paths: Sequence[Path], size: int) -> torch.Tensor:
    """(N, 3, size, size) model inputs of image files (training and evaluation load the same way)."""
    return torch.stack([pil_to_model_input(load_rgb_image(p), size) for p in paths])


def slices_to_model_input(slices01: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W) windowed slices in [0, 1] -> (B, 3, size, size) CLIP input."""
    tensor = torch.as_tensor(np.asarray(slices01, dtype=np.float32) if isinstance(slices01, np.ndarray) else slices01).float()
    tensor = tensor.unsqueeze(1)
    if tuple(tensor.shape[-2:]) != (size, size):
        tensor = F.interpolate(tensor, size=(size, size), mode="bicubic", align_corners=False, antialias=True).clamp_(0.0, 1.0)
    return normalise(tensor.expand(-1, 3, -1, -1))
