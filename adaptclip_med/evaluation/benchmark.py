"""Run a model over a dataset's test split for several shot counts and seeds, feeding the
streaming metric accumulators.

Protocol (evaluation.md): for k >= 1 each seed picks k normal references per class WITH
replacement from the class's normal pool (:func:`adaptclip_med.data.references.choose_references`);
zero-shot runs once with seed 10.  Maps are compared at the model input size, or at
``map_size`` (bilinear for maps, nearest for masks: the BMAD convention is 256).

Loop order is class -> batch of queries -> run (k, seed): every query image is encoded by the
backbone ONCE and scored against every run's reference memory (encoded once per class and
run), so ten runs cost little more than one.  Maps never accumulate: each is binned into its
run's histograms and dropped, except a few examples kept for overlays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from adaptclip_med.data.references import ReferenceChoice, choose_references
from adaptclip_med.data.samples import AnomalySample, DatasetIndex
from adaptclip_med.data.torch_dataset import load_mask
from adaptclip_med.errors import InputError
from adaptclip_med.evaluation.metrics import DEFAULT_BINS, ClassMetrics, ImageCurves
from adaptclip_med.evaluation.summary import ResultKey
from adaptclip_med.methods.base import AnomalyMethod
from adaptclip_med.preprocess import CLIP_MEAN, CLIP_STD, load_rgb_image
from adaptclip_med.utils.progress import progress_bar
from adaptclip_med.utils.redact import redact_component

ZERO_SHOT_SEED = 10
#: Named map-size presets: BMAD's medical benchmarks compare maps resized to 256 (masks nearest).
MAP_SIZE_PRESETS = {"bmad": 256}
#: Declared value ranges of the pixel histograms.  Zero-shot maps average softmax probabilities
#: (within [0, 1]); few-shot maps are a harmonic mean of such a mean with a 1-NN cosine distance
#: (within [0, 2]), which stays below 2.
ZERO_SHOT_RANGE = (0.0, 1.0)
FEW_SHOT_RANGE = (0.0, 2.0)

Run = tuple[int, int]  # (shots, seed)


@dataclass(frozen=True)
class BenchmarkConfig:
    shots: tuple[int, ...] = (0, 1, 2, 4)
    seeds: tuple[int, ...] = (10, 20, 30)
    map_size: int | None = None
    batch_size: int = 8
    split: str = "test"
    classes: tuple[str, ...] | None = None
    bins: int = DEFAULT_BINS
    examples_per_class: int = 2

    def runs(self, uses_references: bool = True) -> list[Run]:
        """(0, 10) for zero-shot, then every (k, seed) for k >= 1 (zero-shot only for a method
        without a reference branch: its few-shot rows would repeat the zero-shot ones)."""
        if not self.shots or any(k < 0 for k in self.shots):
            raise InputError(f"shot counts must be >= 0, got {list(self.shots)}")
        if any(k > 0 for k in self.shots) and not self.seeds:
            raise InputError("few-shot evaluation needs at least one seed")
        runs = [(0, ZERO_SHOT_SEED)] if 0 in self.shots or not uses_references else []
        if not uses_references:
            return runs
        return runs + [(k, seed) for k in sorted(set(self.shots)) if k > 0 for seed in sorted(set(self.seeds))]


@dataclass
class Example:
    """One query kept for an overlay: RGB, map and mask at the map size (mask None = unknown)."""

    run: Run
    class_name: str
    number: int
    rgb: np.ndarray
    anomaly_map: np.ndarray
    mask: np.ndarray | None
    score: float


@dataclass
class BenchmarkResult:
    results: dict[ResultKey, dict[str, float]]
    curves: dict[ResultKey, ImageCurves]
    references: dict[Run, dict[str, ReferenceChoice]]
    examples: list[Example] = field(default_factory=list)
    images_per_class: dict[str, int] = field(default_factory=dict)
    map_size: int = 0


def _evaluation_mask(sample: AnomalySample, size: int) -> np.ndarray | None:
    """Mask at the map size, resized nearest; None when the file has none (normal images are then
    all-normal, anomalous ones image-level only: the accumulator knows the difference)."""
    if sample.mask_path is None:
        return None
    with Image.open(sample.image_path) as image:
        source_size = image.size
    return load_mask(Path(sample.mask_path), size, "nearest", source_size)[0].numpy()


def _display_rgb(image: torch.Tensor, size: int) -> np.ndarray:
    """Undo the CLIP normalisation of one (3, S, S) input and resize to the map size."""
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    rgb = (image.detach().cpu() * std + mean).clamp(0, 1)
    if rgb.shape[-1] != size:
        rgb = F.interpolate(rgb[None], size=(size, size), mode="bilinear", align_corners=False)[0].clamp(0, 1)
    return (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _showcase_run(runs: list[Run]) -> Run:
    """Examples come from the most-shot run with the lowest seed."""
    top = max(k for k, _ in runs)
    return min((r for r in runs if r[0] == top), key=lambda r: r[1])


class Benchmark:
    """Evaluates one method on one dataset index under one :class:`BenchmarkConfig`."""

    def __init__(self, method: AnomalyMethod, index: DatasetIndex, config: BenchmarkConfig) -> None:
        self.method = method
        self.index = index
        self.config = config
        self.size = method.image_size
        self.map_size = config.map_size or self.size
        self.runs = config.runs(method.references != "unused")
        self.showcase = _showcase_run(self.runs)
        self.metrics = {run: ClassMetrics(config.bins, FEW_SHOT_RANGE if run[0] else ZERO_SHOT_RANGE)
                        for run in self.runs}

    def classes(self) -> list[str]:
        present = sorted({s.class_name for s in self.index.select(split=self.config.split)})
        if not present:
            raise InputError(f"{redact_component(self.index.root.name)}: no images in the {self.config.split} split")
        if self.config.classes is None:
            return present
        unknown = sorted(set(self.config.classes) - set(present))
        if unknown:
            raise InputError(f"{redact_component(self.index.root.name)}: no {self.config.split} images for class(es) {', '.join(unknown)}")
        return sorted(self.config.classes)

    def _inputs(self, paths) -> torch.Tensor:
        return self.method.image_input([load_rgb_image(p) for p in paths])

    def _memories(self, class_name: str, references: dict[Run, dict[str, ReferenceChoice]]) -> dict[Run, object]:
        memories: dict[Run, object] = {}
        for run in self.runs:
            paths = references[run][class_name].paths
            memories[run] = self.method.encode_normals(self._inputs(paths)) if paths else None
        return memories

    def _maps_at_map_size(self, maps: torch.Tensor) -> torch.Tensor:
        if maps.shape[-1] == self.map_size:
            return maps
        return F.interpolate(maps[:, None], size=(self.map_size, self.map_size), mode="bilinear", align_corners=False)[:, 0]

    @torch.no_grad()
    def run(self) -> BenchmarkResult:
        classes = self.classes()
        references = {run: choose_references(self.index, run[0], run[1], classes) for run in self.runs}
        examples: list[Example] = []
        counts: dict[str, int] = {}
        for class_name in classes:
            samples = self.index.select(split=self.config.split, class_name=class_name)
            counts[class_name] = len(samples)
            memories = self._memories(class_name, references)
            kept = 0
            batches = [samples[i:i + self.config.batch_size] for i in range(0, len(samples), self.config.batch_size)]
            for batch in progress_bar(batches, desc=f"evaluating {class_name}", unit="batch"):
                images = self._inputs([s.image_path for s in batch])
                features = self.method.encode(images)
                masks = [_evaluation_mask(s, self.map_size) for s in batch]
                for run in self.runs:
                    prediction = self.method.predict_encoded(features, memories[run])
                    maps = self._maps_at_map_size(prediction.anomaly_map).float().cpu().numpy()
                    scores = prediction.score.float().cpu().numpy()
                    for i, sample in enumerate(batch):
                        self.metrics[run].update(class_name, float(scores[i]), sample.label, maps[i], masks[i])
                        if run == self.showcase and sample.label == 1 and kept < self.config.examples_per_class:
                            kept += 1
                            examples.append(Example(run, class_name, kept, _display_rgb(images[i], self.map_size),
                                                    maps[i].copy(), masks[i], float(scores[i])))
        results: dict[ResultKey, dict[str, float]] = {}
        curves: dict[ResultKey, ImageCurves] = {}
        for (shots, seed), metrics in self.metrics.items():
            for class_name, values in metrics.compute().items():
                results[(shots, seed, class_name)] = values
            for class_name, curve in metrics.image_curves().items():
                curves[(shots, seed, class_name)] = curve
        return BenchmarkResult(results, curves, references, examples, counts, self.map_size)


def run_benchmark(method: AnomalyMethod, index: DatasetIndex, config: BenchmarkConfig) -> BenchmarkResult:
    """Convenience wrapper: build a :class:`Benchmark` and run it."""
    return Benchmark(method, index, config).run()
