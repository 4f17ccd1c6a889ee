"""Torch dataset of query images, masks and same-class normal references.

Images follow spec §1 (PIL -> RGB with grey replicated, bicubic to the square model size, OpenAI
CLIP mean/std) through :mod:`adaptclip_med.preprocess`, so training, evaluation and the predict
command see identical tensors.  Masks are binarised (any non-zero pixel is anomalous) and then
resized either bilinear + threshold 0.5 (the release's training recipe) or nearest (evaluation:
no new mask pixels are invented).

References, three modes:

* ``references`` (fixed, evaluation): the same chosen k images for every query of a class, as
  picked by :func:`adaptclip_med.data.references.choose_references`;
* ``pool`` (random, training): for each item k images drawn from the class's pool excluding the
  query itself, deterministically from (seed, epoch, index) so runs with several DataLoader
  workers are reproducible; call :meth:`AnomalyImageDataset.set_epoch` each epoch;
* neither: zero-shot, ``references`` has shape (0, 3, S, S).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from adaptclip_med.data.samples import AnomalySample
from adaptclip_med.errors import InputError
from adaptclip_med.preprocess import load_rgb_image, pil_to_model_input
from adaptclip_med.utils.redact import redact_component

MaskInterpolation = Literal["nearest", "bilinear"]
_RESAMPLE = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR}


def load_mask(path: Path, size: int, interpolation: MaskInterpolation, expected_size: tuple[int, int]) -> torch.Tensor:
    """(1, size, size) float tensor of 0/1 from a mask file of the same size as its image."""
    try:
        with Image.open(path) as image:
            binary = np.asarray(image.convert("L")) > 0
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"{redact_component(path.name)}: not a readable mask ({exc.__class__.__name__})") from exc
    if binary.shape[::-1] != expected_size:
        raise InputError(f"{redact_component(path.name)}: mask is {binary.shape[1]}x{binary.shape[0]} but its image is "
                         f"{expected_size[0]}x{expected_size[1]}")
    resized = Image.fromarray(binary.astype(np.uint8) * 255).resize((size, size), _RESAMPLE[interpolation])
    return torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0 > 0.5).float().unsqueeze(0)


def draw_references(pool: Sequence[Path], query: Path, class_name: str, k: int, seed: int, epoch: int,
                    index: int) -> list[Path]:
    """k normal images of the query's class, with replacement and never the query itself, drawn
    from (seed, epoch, index) alone so any worker or process draws the same pairs."""
    candidates = [p for p in pool if p != Path(query)]
    if not candidates:
        raise InputError(f"{class_name}: no normal image other than the query to pair it with")
    return random.Random(f"{seed}:{epoch}:{index}").choices(candidates, k=k)


class AnomalyImageDataset(Dataset):
    """Items are dicts: ``image`` (3,S,S), ``mask`` (1,S,S) 0/1, ``has_mask`` (bool: pixel ground
    truth exists), ``label`` (int64), ``class_name``, ``image_path`` (str), ``references`` (k,3,S,S).

    ``k`` and ``seed`` only matter in pool mode (k=1 is the training recipe)."""

    def __init__(self, samples: Sequence[AnomalySample], image_size: int, *,
                 references: Mapping[str, Sequence[Path]] | None = None,
                 pool: Mapping[str, Sequence[Path]] | None = None, k: int = 1, seed: int = 10,
                 mask_interpolation: MaskInterpolation = "nearest") -> None:
        if references is not None and pool is not None:
            raise ValueError("give fixed references or a pool to draw from, not both")
        if mask_interpolation not in _RESAMPLE:
            raise ValueError(f"mask_interpolation must be nearest or bilinear, got {mask_interpolation!r}")
        self.samples = list(samples)
        self.image_size = int(image_size)
        self.mask_interpolation = mask_interpolation
        self._fixed = {name: [Path(p) for p in paths] for name, paths in (references or {}).items()}
        self._pool = {name: sorted(Path(p) for p in paths) for name, paths in (pool or {}).items()}
        self._random = pool is not None
        if self._random and k < 1:
            raise ValueError(f"k must be >= 1 when drawing references from a pool, got {k}")
        self.k = int(k)
        self.seed = int(seed)
        self.epoch = 0
        self._fixed_cache: dict[str, torch.Tensor] = {}
        if references is not None:
            missing = sorted({s.class_name for s in self.samples} - set(self._fixed))
            if missing:
                raise InputError(f"no references chosen for class(es) {', '.join(missing)}")

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Random-reference mode draws new pairs each epoch, reproducibly."""
        self.epoch = int(epoch)

    def _load_image(self, path: Path) -> tuple[torch.Tensor, tuple[int, int]]:
        image = load_rgb_image(path)
        return pil_to_model_input(image, self.image_size), image.size

    def _stack(self, paths: Sequence[Path]) -> torch.Tensor:
        if not paths:
            return torch.empty(0, 3, self.image_size, self.image_size)
        return torch.stack([self._load_image(p)[0] for p in paths])

    def _references(self, index: int, sample: AnomalySample) -> torch.Tensor:
        if self._random:
            return self._stack(draw_references(self._pool.get(sample.class_name, []), sample.image_path,
                                               sample.class_name, self.k, self.seed, self.epoch, index))
        if sample.class_name not in self._fixed_cache:
            self._fixed_cache[sample.class_name] = self._stack(self._fixed.get(sample.class_name, []))
        return self._fixed_cache[sample.class_name]

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        image, source_size = self._load_image(Path(sample.image_path))
        if sample.mask_path is not None:
            mask = load_mask(Path(sample.mask_path), self.image_size, self.mask_interpolation, source_size)
        else:
            mask = torch.zeros(1, self.image_size, self.image_size)
        return {
            "image": image,
            "mask": mask,
            "has_mask": sample.has_pixel_truth,
            "label": torch.tensor(sample.label, dtype=torch.int64),
            "class_name": sample.class_name,
            "image_path": str(sample.image_path),
            "references": self._references(index, sample),
        }
