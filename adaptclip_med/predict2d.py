"""Score one 2-D image against 0..k normal reference images (the ``predict`` command's logic)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from adaptclip_med.errors import InputError
from adaptclip_med.methods.base import AnomalyMethod, SlicePrediction
from adaptclip_med.preprocess import load_rgb_image


@dataclass
class ImagePrediction:
    anomaly_map: np.ndarray  # (S, S) float32, the method's final map at the model input size
    score: float
    query_rgb: np.ndarray  # (S, S, 3) uint8, the query as the network saw it (before normalisation)
    prediction: SlicePrediction


_GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})


def _kind(image: Image.Image, path: Path) -> tuple[tuple[int, int], str]:
    """(size, "grey" | "colour") of the file as stored, before RGB conversion."""
    with Image.open(path) as raw:
        return image.size, "grey" if raw.mode in _GREY_MODES else "colour"


def check_references_match(query: Path, references: list[Path], query_image: Image.Image,
                           reference_images: list[Image.Image]) -> None:
    """References must be the same kind of picture as the query (size and grey/colour): a mismatch
    usually means a wrong file was picked, and the 1-NN comparison would be meaningless."""
    size, kind = _kind(query_image, query)
    for path, image in zip(references, reference_images):
        ref_size, ref_kind = _kind(image, path)
        if ref_size != size or ref_kind != kind:
            raise InputError(
                f"{path.name}: reference is {ref_size[0]}x{ref_size[1]} {ref_kind} but the query is {size[0]}x{size[1]} {kind}; "
                "use normal references of the same size and kind as the query")


def predict_image(method: AnomalyMethod, query: Path, references: list[Path]) -> ImagePrediction:
    """Score one image with 0..k normal references, preprocessed exactly as the method's
    reference implementation preprocesses image files."""
    if references and method.references == "unused":
        raise InputError(f"method '{method.name}' is zero-shot and does not use reference images: drop -r/--reference")
    if not references and method.references == "required":
        raise InputError(f"method '{method.name}' needs at least one normal reference image (-r FILE)")
    query_image = load_rgb_image(query)
    reference_images = [load_rgb_image(p) for p in references]
    check_references_match(query, references, query_image, reference_images)
    with torch.no_grad():
        memory = method.encode_normals(method.image_input(reference_images)) if reference_images else None
        prediction = method.predict(method.image_input([query_image]), memory)
    return ImagePrediction(
        anomaly_map=prediction.anomaly_map[0].float().cpu().numpy().astype(np.float32),
        score=float(prediction.score[0]),
        query_rgb=method.display_image(query_image),
        prediction=prediction,
    )


def save_result_npz(path: Path, result: ImagePrediction) -> Path:
    """RESULT.npz with ``anomaly_map`` (float32 S x S) and ``score`` (float32 scalar), atomically."""
    from adaptclip_med.utils.atomic import atomic_write_bytes

    buffer = io.BytesIO()
    np.savez(buffer, anomaly_map=result.anomaly_map.astype(np.float32), score=np.float32(result.score))
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def save_overlay(path: Path, result: ImagePrediction, alpha: float = 0.5) -> Path:
    """The query with the anomaly map blended in colour (jet), written atomically as PNG."""
    import matplotlib

    from adaptclip_med.utils.atomic import atomic_write_bytes

    heat = matplotlib.colormaps["jet"](np.clip(result.anomaly_map, 0.0, 1.0))[..., :3]
    blended = (1 - alpha) * result.query_rgb.astype(np.float32) / 255.0 + alpha * heat
    buffer = io.BytesIO()
    Image.fromarray(np.clip(blended * 255.0, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)
