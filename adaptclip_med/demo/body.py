"""The AUXILIARY training data of the demo model: synthetic abdominal CT slices, not heads.

The paper trains its adapters on one domain and tests on another (MVTec -> VisA, industrial ->
medical); the demo model does the same in miniature: it learns on an abdomen-like phantom (body
wall, fat, liver, spleen, kidneys, aorta, spine) with liver, spleen and kidney lesions of a
different family (cyst-like, enhancing, and subtle ones, sizes 4-14 mm) and is then shown head
CTs it never saw.  Slices are written as an MVTec-style folder (``<class>/train/good``,
``<class>/test/{good,lesion}``, ``<class>/ground_truth/lesion/*_mask.png``) that
``adaptclip-med train`` reads as it is, windowed with the demo window (level 40, width 80) so the
network sees grey levels on the same scale as the demo head study.
SYNTHETIC TRAINING DATA, NO DIAGNOSTIC VALUE.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from adaptclip_med.intensity import apply_window
from adaptclip_med.utils.atomic import atomic_write_bytes

CLASS_NAME = "synthetic_abdomen"
WINDOW = (40.0, 80.0)
#: organ name -> HU (textbook-like unenhanced values)
ORGAN_HU = {"fat": -100.0, "wall": 50.0, "liver": 58.0, "spleen": 48.0, "kidney": 32.0, "aorta": 42.0,
            "bowel": 22.0, "bone": 700.0}


def _ellipse(u: np.ndarray, v: np.ndarray, cu: float, cv: float, ru: float, rv: float) -> np.ndarray:
    return ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1.0


def make_body_slice(seed: int, size: int = 256, lesions: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One abdomen-like slice in HU (float32 (size, size)) and its lesion mask (uint8)."""
    rng = np.random.default_rng(seed)
    fine = 2 * size
    coords = np.linspace(-1.0, 1.0, fine, dtype=np.float32)
    y, x = coords[:, None], coords[None, :]
    angle = np.radians(rng.uniform(-3.0, 3.0))
    cy, cx = rng.uniform(-0.02, 0.02, size=2)
    u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    v = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
    s = 1.0 + rng.uniform(-0.04, 0.04)
    hu = np.full((fine, fine), -1000.0, dtype=np.float32)
    body = _ellipse(u, v, 0, 0.02, 0.92 * s, 0.72 * s)
    hu[body] = ORGAN_HU["fat"]
    hu[body & ~_ellipse(u, v, 0, 0.02, 0.84 * s, 0.64 * s)] = ORGAN_HU["fat"] + 20
    cavity = _ellipse(u, v, 0, 0.04, 0.76 * s, 0.56 * s)
    wall = _ellipse(u, v, 0, 0.04, 0.80 * s, 0.60 * s) & ~cavity
    hu[wall] = ORGAN_HU["wall"]
    hu[cavity] = ORGAN_HU["fat"] + 10
    jitter = lambda: rng.uniform(-0.02, 0.02)  # noqa: E731 - organ placement noise
    liver = cavity & _ellipse(u, v, -0.38 + jitter(), -0.05 + jitter(), 0.36 * s, 0.40 * s)
    spleen = cavity & _ellipse(u, v, 0.52 + jitter(), 0.05 + jitter(), 0.16 * s, 0.24 * s)
    kidneys = cavity & (_ellipse(u, v, -0.30, 0.32 + jitter(), 0.10 * s, 0.14 * s)
                        | _ellipse(u, v, 0.30, 0.32 + jitter(), 0.10 * s, 0.14 * s))
    bowel = cavity & _ellipse(u, v, 0.12 + jitter(), -0.18 + jitter(), 0.24 * s, 0.18 * s)
    aorta = _ellipse(u, v, 0.06, 0.30, 0.045, 0.045)
    spine = _ellipse(u, v, 0.0, 0.50 * s, 0.11, 0.09)
    for mask, organ in ((bowel, "bowel"), (liver, "liver"), (spleen, "spleen"), (kidneys, "kidney"), (aorta, "aorta")):
        hu[mask] = ORGAN_HU[organ]
    hu[spine] = ORGAN_HU["bone"]
    hu[spine & _ellipse(u, v, 0.0, 0.50 * s, 0.07, 0.055)] = 250.0
    labels = np.zeros((fine, fine), dtype=bool)
    organs = [liver, liver, spleen, kidneys]
    for _ in range(lesions):
        organ = organs[rng.integers(len(organs))]
        core = np.argwhere(ndimage.binary_erosion(organ, iterations=fine // 40))
        if core.size == 0:
            continue
        py, px = core[rng.integers(len(core))]
        radius = rng.uniform(4.0, 14.0) / 0.8 * 2  # mm at 0.8 mm pixels, in fine pixels
        yy, xx = np.ogrid[:fine, :fine]
        blob = ((yy - py) / radius) ** 2 + ((xx - px) / (radius * rng.uniform(0.7, 1.0))) ** 2 <= 1.0
        blob &= organ
        kind = rng.random()
        value = rng.uniform(0.0, 18.0) if kind < 0.4 else rng.uniform(70.0, 95.0) if kind < 0.75 else None
        base = float(np.median(hu[blob])) if blob.any() else 0.0
        hu[blob] = value if value is not None else base + rng.choice([-1.0, 1.0]) * rng.uniform(12.0, 22.0)
        labels |= blob
    hu += 2.0 * ndimage.zoom(rng.uniform(-1, 1, (6, 6)), fine / 6, order=3)[:fine, :fine] * body
    coarse = hu.reshape(size, 2, size, 2).mean(axis=(1, 3))
    noise = ndimage.gaussian_filter(rng.normal(0.0, 1.0, coarse.shape), 0.7)
    coarse += noise * (3.5 / max(float(noise.std()), 1e-6))
    mask = labels.reshape(size, 2, size, 2).mean(axis=(1, 3)) >= 0.5
    return coarse.astype(np.float32), mask.astype(np.uint8)


def _png(array01: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(array01, 0, 1) * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class TrainingSetSize:
    """Counts of the auxiliary set: normal pool (pairing), normal queries, lesion queries."""

    pool: int = 8
    normal: int = 8
    lesion: int = 32


def write_training_set(out_dir: str | Path, seed: int = 5000, size: int = 256,
                       counts: TrainingSetSize = TrainingSetSize()) -> Path:
    """The auxiliary MVTec-style folder; returns the dataset root.  Seeds ``seed``.. are used,
    disjoint from the demo's head seeds (0.. and 1000..)."""
    root = Path(out_dir)
    cls = root / CLASS_NAME
    next_seed = seed
    for folder, count, lesions in (("train/good", counts.pool, 0), ("test/good", counts.normal, 0),
                                   ("test/lesion", counts.lesion, 1)):
        for index in range(count):
            hu, mask = make_body_slice(next_seed, size, lesions=lesions + (index % 3 == 0) * lesions)
            next_seed += 1
            name = f"{index:03d}"
            atomic_write_bytes(cls / folder / f"{name}.png", _png(apply_window(hu, *WINDOW)))
            if lesions:
                atomic_write_bytes(cls / "ground_truth" / "lesion" / f"{name}_mask.png", _png(mask.astype(np.float32)))
    return root
