"""Evaluation metrics for the bundle's ``evaluate.json``: how well study scores, slice scores and
voxel maps separate abnormal from normal on a labelled set of studies.

Three views of the same predictions, all computed by the project's streaming
:class:`~adaptclip_med.evaluation.metrics.MetricAccumulator` (so numbers match the 2-D benchmark
definitions):

* ``study_*``: study score vs "the study has any lesion voxel" (I-AUROC, I-AP, I-F1max);
* ``slice_I-*``: slice score vs "the slice has a lesion voxel";
* ``slice_P-*``: voxel-level P-AUROC, P-AUPR, P-F1max and P-AUPRO, accumulated slice by slice
  (PRO regions are the 2-D connected components of each slice's mask).

Studies without a ``label`` are normal studies (all-normal ground truth).  Air-only slices that
were skipped are left out unless they hold lesion voxels, which then count as misses (score 0,
map 0): skipping must never hide a lesion, and trivially normal air must not inflate AUROC.
Metrics undefined for the data seen (e.g. study AUROC with only abnormal studies) are NaN.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from ignite.metrics import Metric

from adaptclip_med.errors import InputError
from adaptclip_med.evaluation.metrics import DEFAULT_BINS, IMAGE_METRICS, PIXEL_METRICS, MetricAccumulator
from adaptclip_med.io.volume import Volume
from adaptclip_med.outputs.layout import BUNDLE_METRICS_JSON
from adaptclip_med.transforms import VOLUME_POSTFIX
from adaptclip_med.utils.atomic import atomic_write_text

#: Affine agreement required between a label and its study (mm).
GEOMETRY_TOLERANCE_MM = 1e-3
METRIC_NAMES = ([f"study_{name}" for name in IMAGE_METRICS] + [f"slice_{name}" for name in IMAGE_METRICS]
                + [f"slice_{name}" for name in PIXEL_METRICS])


def truth_in_study_geometry(study: Volume, label: Volume | None) -> np.ndarray | None:
    """The label as a bool (Z, Y, X) array aligned with the study's slices, or None (normal study).

    Both were reoriented to canonical slices from their own affines, so they align exactly when
    the label was written in the study's geometry (as the outputs and the demo ground truth are)."""
    if label is None:
        return None
    if label.array.shape != study.array.shape or not np.allclose(label.canonical_affine, study.canonical_affine,
                                                                   atol=GEOMETRY_TOLERANCE_MM):
        raise InputError(f"{label.source_label}: the label does not share the geometry of study {study.source_label} "
                         f"(shape {label.array.shape} vs {study.array.shape} or a different affine)")
    return label.array > 0.5


def _field(prediction: Any, name: str) -> Any:
    return prediction[name] if isinstance(prediction, dict) else getattr(prediction, name)


class AnomalyMetrics(Metric):
    """Ignite metric over the evaluator's decollated output: one dictionary per study, whose
    ``image`` is the study's input dictionary and ``pred`` its prediction dictionary (``volume``,
    ``result``); results are flattened into ``engine.state.metrics`` under :data:`METRIC_NAMES`,
    in percent."""

    required_output_keys = None  # the decollated list of per-study dictionaries, as is

    def __init__(self, label_key: str = "label", bins: int = DEFAULT_BINS) -> None:
        self.label_key = label_key
        self.bins = int(bins)
        super().__init__(skip_unrolling=True, metrics_result_mode="flatten")

    def reset(self) -> None:
        self._studies = MetricAccumulator(bins=self.bins)
        self._slices = MetricAccumulator(bins=self.bins)

    def update(self, output: list[dict[str, Any]] | tuple[list[dict[str, Any]], list[Any]]) -> None:
        """``output``: the decollated rows (``{"image": study dict, "pred": prediction}`` per study)
        or, equivalently, the pair (study dicts, predictions)."""
        pairs = zip(*output, strict=True) if isinstance(output, tuple) else ((r["image"], r["pred"]) for r in output)
        for item, prediction in pairs:
            result, study = _field(prediction, "result"), _field(prediction, "volume")
            truth = truth_in_study_geometry(study, item.get(f"{self.label_key}_{VOLUME_POSTFIX}"))
            self._studies.update(_evaluated_score(result), int(truth is not None and bool(truth.any())))
            for z, info in enumerate(result.slices):
                slice_truth = truth[z] if truth is not None else None
                positive = slice_truth is not None and bool(slice_truth.any())
                if info.skipped and not positive:
                    continue
                score = 0.0 if info.skipped else info.score
                self._slices.update(score, int(positive), result.probability[z], slice_truth)

    def compute(self) -> dict[str, float]:
        values = {f"study_{k}": v for k, v in self._studies.compute().items() if k in IMAGE_METRICS}
        values.update({f"slice_{k}": v for k, v in self._slices.compute().items()})
        return {name: float(values.get(name, float("nan"))) for name in METRIC_NAMES}


class MetricsReport:
    """Ignite handler writing ``engine.state.metrics`` to ``output_dir/metrics.json`` (atomic)
    when the evaluation completes, with the number of studies it covers."""

    def __init__(self, output_dir: str | Path, name: str = BUNDLE_METRICS_JSON) -> None:
        self.path = Path(output_dir) / name

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        metrics = {name: (None if not np.isfinite(value) else round(float(value), 4))
                   for name, value in sorted(engine.state.metrics.items()) if np.isscalar(value)}
        payload = {"metrics_percent": metrics, "studies": int(engine.state.iteration),
                   "note": "NaN/None = undefined for this set (e.g. no normal or no abnormal study)"}
        atomic_write_text(self.path, json.dumps(payload, indent=1, sort_keys=True))


def _evaluated_score(result: Any) -> float:
    """The study score to evaluate: a not-comparable study has none (volume/comparability.py), so
    evaluation uses the aggregate over all its scored slices (what it would have been)."""
    if result.score == result.score:
        return float(result.score)
    verdict = getattr(result, "comparability", None)
    fallback = getattr(verdict, "score_all_slices", None)
    return float(fallback) if fallback is not None else 0.0
