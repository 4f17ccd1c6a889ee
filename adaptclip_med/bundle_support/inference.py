"""The MONAI engine pieces of bundle inference: batches of studies in, written study outputs out.

A study is not a tensor batch: it has a geometry, DICOM headers, skipped air slices and, for
few-shot scoring, a reference memory per slice.  So the bundle's evaluator iterates over studies
(one per step) and delegates the slice work to the project's own code:

* ``collate_studies`` / ``prepare_study_batch`` keep the dictionaries produced by
  ``LoadStudyd`` + ``WindowIntensityd`` intact (default collation cannot stack ``Volume`` objects);
* :class:`StudyInferer` runs :class:`~adaptclip_med.volume.scoring.VolumeScorer` on the windowed
  slices with the network's model, so outputs match ``adaptclip-med score`` exactly;
* :class:`WriteStudyOutputsd` (postprocessing) writes every output through
  :func:`~adaptclip_med.volume.pipeline.write_study_outputs`, ``study.json`` last.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.inferers import Inferer
from monai.transforms import MapTransform

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.io.volume import Volume
from adaptclip_med.transforms import VOLUME_POSTFIX
from adaptclip_med.volume.pipeline import StudyOutputs, make_scorer, write_study_outputs
from adaptclip_med.volume.preprocessing import PreparedVolume, prepare_volume
from adaptclip_med.volume.reference_bank import ReferenceBank
from adaptclip_med.volume.scoring import DEFAULT_AGGREGATE, StudyResult, VolumeScorer

log = logging.getLogger(__name__)


def study_window(window: str | None, reference_bank: str | None = None, zero_shot: bool = False) -> str | None:
    """The window every study is read with: the one asked for, else the reference bank's (the
    1-NN comparison is only meaningful when query and references are windowed alike), else None
    (per-volume percentiles)."""
    if window or not reference_bank or zero_shot:
        return window or None
    stored = ReferenceBank.open(Path(reference_bank)).preprocessing().window
    if stored is None or isinstance(stored, str):
        return stored
    level, width = stored
    return f"{level:g},{width:g}"


def collate_studies(batch: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep a batch as the list of study dictionaries (each holds a ``Volume`` object)."""
    return list(batch)


def prepare_study_batch(batchdata: list[dict[str, Any]], device: str | torch.device | None = None,
                        non_blocking: bool = False, **kwargs: Any) -> tuple[list[dict[str, Any]], list[Any]]:
    """``(inputs, targets)`` for the evaluator: the study dictionaries and their labels (None when
    a study has no ground truth).  Nothing moves to the device here: the scorer batches slices."""
    return batchdata, [item.get("label") for item in batchdata]


@dataclass
class StudyPrediction:
    """One scored study, with what writing its outputs needs."""

    study: str
    volume: Volume
    result: StudyResult
    scorer: VolumeScorer
    seconds: float
    outputs: StudyOutputs | None = None


def prepared_slices(volume: Volume, windowed: Any) -> PreparedVolume:
    """The scorer's view of a study from the transforms' windowed slices.  Air-only slices are
    detected on the physical values with the function
    :func:`~adaptclip_med.volume.preprocessing.prepare_volume` uses, so the bundle skips the same
    slices as the CLI."""
    values = windowed.detach().cpu().numpy() if isinstance(windowed, torch.Tensor) else windowed
    slices01 = np.asarray(values, dtype=np.float32)
    if slices01.shape != volume.array.shape:
        raise AdaptClipError(f"{volume.source_label}: windowed image {slices01.shape} does not match the study "
                             f"{volume.array.shape}; keep LoadStudyd and WindowIntensityd without spatial transforms between")
    return prepare_volume(volume, None, slices01=slices01)


class StudyInferer(Inferer):
    """Scores each study of a batch with the network's model (zero-shot, or few-shot against a
    reference bank).  The scorer is built once per network and reused for every study."""

    def __init__(self, reference_bank: str | None = None, zero_shot: bool = False, shots: int | None = None,
                 window: str | None = None, axis: str = "axial", threshold: float | None = None,
                 aggregate: str = DEFAULT_AGGREGATE, match: str | None = None, slices_per_scan: int | None = None,
                 slice_batch_size: int = 4, image_key: str = "image") -> None:
        self.settings = {"bank": str(reference_bank) if reference_bank else None, "zero_shot": bool(zero_shot),
                         "shots": shots, "window": window, "axis": axis, "threshold": threshold, "aggregate": aggregate,
                         "match": match, "slices_per_scan": slices_per_scan, "batch_size": int(slice_batch_size)}
        self.image_key = image_key
        self._scorer: VolumeScorer | None = None
        self._network_id: int | None = None

    def scorer_for(self, network: Any) -> VolumeScorer:
        if self._scorer is None or self._network_id != id(network):
            options = replace(network.options, **self.settings)
            self._scorer = make_scorer(options, network.method)
            self._network_id = id(network)
        return self._scorer

    def __call__(self, inputs: list[dict[str, Any]], network: Any, *args: Any, **kwargs: Any) -> list[StudyPrediction]:
        scorer = self.scorer_for(network)
        predictions = []
        for item in inputs:
            volume = item[f"{self.image_key}_{VOLUME_POSTFIX}"]
            started = time.time()
            result = scorer.score_prepared(volume, prepared_slices(volume, item[self.image_key]))
            predictions.append(StudyPrediction(str(item["study"]), volume, result, scorer, time.time() - started))
            log.info("%s: study score %.4f (%s)", item["study"], result.score,
                     f"{scorer.shots}-shot" if scorer.shots else "zero-shot")
        return predictions


class WriteStudyOutputsd(MapTransform):
    """Postprocessing: write each prediction's outputs to ``output_dir/<study>`` (NIfTI map and
    mask in source geometry, DICOM SEG for DICOM input, slices.csv, overlays, study.json last)."""

    def __init__(self, keys: KeysCollection, output_dir: str | Path, parametric_map: bool = False,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.parametric_map = parametric_map

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            for prediction in d[key]:
                out_dir = self.output_dir / prediction.study
                files = write_study_outputs(prediction.volume, prediction.result, out_dir, prediction.scorer,
                                            prediction.seconds, extra_report={"bundle_study": prediction.study},
                                            parametric_map=self.parametric_map)
                prediction.outputs = StudyOutputs(out_dir, prediction.result.score, prediction.result.top_slices, files)
        return d
