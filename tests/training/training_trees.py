"""Synthetic anomaly data written as an MVTec-layout tree (grey noise textures; anomalies are
bright squares with their masks), plus the fixture that keeps training tests quiet and light."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    coarse = rng.normal(110.0, 18.0, (size // 4, size // 4))
    image = np.kron(coarse, np.ones((4, 4))) + rng.normal(0.0, 8.0, (size, size))
    return np.clip(image, 0, 255)


def _square(rng: np.random.Generator, size: int) -> tuple[slice, slice]:
    side = int(rng.integers(size // 5, size // 3))
    top, left = (int(v) for v in rng.integers(0, size - side, 2))
    return slice(top, top + side), slice(left, left + side)


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def write_mvtec_tree(root: Path, seed: int, classes=("tex",), train_normals: int = 6, test_normals: int = 8,
                     test_anomalies: int = 8, size: int = 56) -> Path:
    """``<class>/train/good``, ``<class>/test/{good,bright}``, ``<class>/ground_truth/bright``."""
    rng = np.random.default_rng(seed)
    for name in classes:
        for i in range(train_normals):
            _save(root / name / "train" / "good" / f"{i:03d}.png", _texture(rng, size))
        for i in range(test_normals):
            _save(root / name / "test" / "good" / f"{i:03d}.png", _texture(rng, size))
        for i in range(test_anomalies):
            image, mask = _texture(rng, size), np.zeros((size, size))
            rows, cols = _square(rng, size)
            image[rows, cols] = rng.uniform(215, 250)
            mask[rows, cols] = 255
            _save(root / name / "test" / "bright" / f"{i:03d}.png", image)
            _save(root / name / "ground_truth" / "bright" / f"{i:03d}_mask.png", mask)
    return root

