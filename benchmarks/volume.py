"""Volume-scorer benchmarks: peak memory of a whole study, time per slice against the number of
slices, background-slice skipping, and how much of a batch is spent outside the network (what a
prefetch thread could hide).

All runs use the real :class:`VolumeScorer` and a reference bank in the real on-disk format
(synthetic features at model size, see :func:`benchmarks.workloads.write_synthetic_bank`).  For
the 300-slice ViT-L study the backbone forward can be replaced by a stub returning features of
the right shapes (``stub_backbone``): everything else (bank reads, 1-NN, adapters, fusion, result
volumes) then runs for real in minutes instead of an hour, and the backbone's own activation
peak, measured separately at the same batch size, is added to the figure (both are reported).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adaptclip_med.io.volume import Volume
from adaptclip_med.model.backbone import VisionFeatures
from adaptclip_med.methods.adaptclip.checkpoints import LoadedModel
from adaptclip_med.preprocess import slices_to_model_input
from adaptclip_med.slice_preprocessing import SlicePreprocessing, prepare_volume
from adaptclip_med.volume.bank.reader import ReferenceBank
from adaptclip_med.volume.scoring import VolumeScorer

from benchmarks.measure import PeakMemory, compare, measure
from benchmarks.workloads import BRAIN_WINDOW

AIR_HU = -1000.0


def synthetic_study(slices: int, side: int = 512, air_slices: int = 0, seed: int = 2) -> Volume:
    """A head-CT phantom volume of ``slices`` body slices (+ ``air_slices`` air-only slices at the
    top), built from a 30-slice phantom repeated along z (content does not change the cost)."""
    from adaptclip_med.demo.phantom import make_head_ct_phantom

    base, _ = make_head_ct_phantom(seed, (min(slices, 30), side, side))
    body = np.concatenate([base] * -(-slices // base.shape[0]))[:slices]
    array = np.concatenate([body, np.full((air_slices, side, side), AIR_HU, dtype=np.float32)])
    return Volume(array=array, spacing=(1.0, 0.5, 0.5), modality="CT", positions=np.arange(array.shape[0], dtype=np.float64),
                  source_kind="synthetic", source_label="benchmark study")


class StubBackbone:
    """Stands in for ``model.encode``: random features of the real shapes, no compute."""

    def __init__(self, loaded: LoadedModel) -> None:
        backbone = loaded.model.backbone
        self.grid = loaded.model.config.image_size // backbone.patch_size
        self.dim, self.layers = backbone.embed_dim, len(backbone.tap_layers)

    def __call__(self, images: torch.Tensor) -> VisionFeatures:
        batch, tokens = images.shape[0], self.grid * self.grid + 1
        taps = [torch.randn(batch, tokens, self.dim, device=images.device) for _ in range(self.layers)]
        return VisionFeatures(taps, torch.randn(batch, self.dim, device=images.device), (self.grid, self.grid))


def _scorer(loaded: LoadedModel, bank_path: Path | None, shots: int, batch: int, device: torch.device) -> VolumeScorer:
    bank = ReferenceBank.open(bank_path) if bank_path is not None and shots else None
    from adaptclip_med.methods.adaptclip.method import AdaptCLIPMethod

    return VolumeScorer(AdaptCLIPMethod.from_loaded(loaded, device), bank, SlicePreprocessing(window=BRAIN_WINDOW) if bank is None else None,
                        shots=shots if bank is not None else None, batch_size=batch, device=str(device))


def study_memory(loaded: LoadedModel, bank_path: Path, slices: int, shots: int, batch: int, device: torch.device,
                 stub_backbone: bool) -> dict[str, Any]:
    """Peak memory and time for scoring one ``slices``-slice study with ``shots`` reference scans."""
    volume = synthetic_study(slices)
    scorer = _scorer(loaded, bank_path, shots, batch, device)
    model = loaded.model
    if stub_backbone:
        model.encode = StubBackbone(loaded)
    try:
        with PeakMemory(device) as memory:
            started = time.perf_counter()
            result = scorer.score(volume)
            seconds = time.perf_counter() - started
    finally:
        if stub_backbone:
            del model.encode
    return {"slices": slices, "k": shots, "batch": batch, "stub_backbone": stub_backbone, "seconds": round(seconds, 2),
            "seconds_per_slice": round(seconds / slices, 4), "scored_slices": len(result.scored()),
            "result_volume_mib": round(result.probability.nbytes / 2**20), **memory.to_json()}


def throughput_by_slices(loaded: LoadedModel, bank_path: Path, counts: list[int], shots: int, batch: int,
                         device: torch.device) -> list[dict[str, Any]]:
    """Real scoring time per slice for studies of increasing length (should be flat).

    The one-time text encoding of a model built without a checkpoint (a checkpoint ships the
    static text features) is done first and reported separately, not charged to the first study."""
    model = loaded.model
    started = time.perf_counter()
    with torch.no_grad():
        model.backbone.static_text_features()
        model.textual.text_features(model.backbone)
    rows: list[dict[str, Any]] = [{"one_time_text_features_s": round(time.perf_counter() - started, 2)}]
    for count in counts:
        volume = synthetic_study(count)
        scorer = _scorer(loaded, bank_path, shots, batch, device)
        started = time.perf_counter()
        scorer.score(volume)
        seconds = time.perf_counter() - started
        rows.append({"slices": count, "k": shots, "batch": batch, "seconds": round(seconds, 2),
                     "seconds_per_slice": round(seconds / count, 4)})
    return rows


def background_skipping(loaded: LoadedModel, body: int, air: int, batch: int, device: torch.device,
                        repeats: int = 2) -> dict[str, Any]:
    """Zero-shot scoring of a study with air-only slices, skipping them (default) vs scoring all."""
    volume = synthetic_study(body, air_slices=air)
    scorer = _scorer(loaded, None, 0, batch, device)
    prepared = prepare_volume(volume, scorer.preprocessing)
    forced = type(prepared)(prepared.slices01, np.zeros_like(prepared.background), np.linspace(0, 1, len(prepared.background)))
    pair = compare({"skipping": lambda: scorer.score_prepared(volume, prepared),
                    "scoring_all": lambda: scorer.score_prepared(volume, forced)}, repeats, device)
    skip, score_all = pair["skipping"], pair["scoring_all"]
    return {"body_slices": body, "air_slices": air, "detected_background": int(prepared.background.sum()),
            "skipping": skip, "scoring_all": score_all, "speedup": round(score_all["median_s"] / skip["median_s"], 3)}


def outside_network(loaded: LoadedModel, bank_path: Path, shots: int, batch: int, device: torch.device) -> dict[str, Any]:
    """Per-batch work of the scorer outside the network: making the input tensor and assembling
    each slice's reference memory from the bank (cold: rows read from disk; warm: row cache)."""
    volume = synthetic_study(max(batch, 8))
    scorer = _scorer(loaded, bank_path, shots, batch, device)
    prepared = prepare_volume(volume, scorer.preprocessing)
    size = loaded.model.config.image_size
    to_input = measure(lambda: slices_to_model_input(prepared.slices01[:batch], size), 3, device)
    globals_ = torch.randn(batch, loaded.model.backbone.embed_dim)
    relative = prepared.relative_position[:batch]
    scans = range(scorer.shots)

    def memories():  # what volume/slice_step.py does per batch: match, read the rows, pool them
        return [scorer.method.memory_from_rows(scorer.bank.rows(scorer.bank.match(float(r), g, scorer.match, scans=scans)))
                for r, g in zip(relative, globals_)]

    cold = measure(memories, 1, device)
    warm = measure(memories, 3, device)
    return {"batch": batch, "k": shots, "input_tensor": to_input, "bank_memory_cold": cold, "bank_memory_warm": warm}
