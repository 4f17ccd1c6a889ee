"""One study in, clinical outputs out: the shared path behind ``score``, the bundle, batch and the
dashboard.

Outputs per study (in ``out_dir``, names in :mod:`adaptclip_med.outputs.layout`): the probability
map and mask (NIfTI) in the SOURCE geometry, for DICOM input a DICOM SEG referencing the source
instances and optionally a Parametric Map, the per-slice table, PNG overlays of the top slices,
the score plot and ``study.json``, each written by one unit of
:mod:`adaptclip_med.outputs.study_writers`.  ``study.json`` is written LAST, so its presence means
the study is complete (batch runs resume on it).  No output name or field carries a patient
identifier.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from adaptclip_med.model.backbone_source import BackboneSpec
from adaptclip_med.outputs import layout
from adaptclip_med.outputs.study_writers import NOT_FOR_CLINICAL_USE  # noqa: F401  (re-exported)
from adaptclip_med.methods import AnomalyMethod, MethodSpec, load_method
from adaptclip_med.volume.preprocessing import SlicePreprocessing, parse_window
from adaptclip_med.volume.reference_bank import ReferenceBank
from adaptclip_med.volume.scoring import DEFAULT_AGGREGATE, StudyResult, VolumeScorer

log = logging.getLogger(__name__)

STUDY_JSON = layout.STUDY_JSON  # re-exported: callers import it from here


@dataclass(frozen=True)
class ScoringOptions:
    """Everything that defines how studies are scored (CLI, bundle, batch and dashboard share it),
    as a flat, JSON-friendly record; grouped by concern through :meth:`method_spec` (which model),
    :meth:`preprocessing` (how slices are made) and the bank/output fields below."""

    # which model (-> MethodSpec)
    method: str = "adaptclip"
    class_name: str | None = None
    backbone: str | None = None
    backbone_weights: str | None = None
    activation: str = "auto"
    adapters: str | None = None
    image_size: int | None = None
    device: str = "cpu"
    offline: bool = False
    cache_dir: str | None = None
    precision: str = "fp32"
    # which references
    bank: str | None = None
    shots: int | None = None
    zero_shot: bool = False
    match: str | None = None
    slices_per_scan: int | None = None
    # how slices are made
    window: str | None = None
    axis: str = "axial"
    batch_size: int = 4
    # what is written
    threshold: float | None = None
    aggregate: str = DEFAULT_AGGREGATE
    parametric_map: bool = False

    def backbone_spec(self) -> BackboneSpec:
        return BackboneSpec(self.backbone or "", self.backbone_weights, self.activation, self.cache_dir, self.offline)

    def method_spec(self) -> MethodSpec:
        return MethodSpec(method=self.method, backbone=self.backbone_spec(), weights=self.adapters,
                          image_size=self.image_size, device=self.device, precision=self.precision,
                          class_name=self.class_name)

    def preprocessing(self) -> SlicePreprocessing:
        return SlicePreprocessing(window=parse_window(self.window), axis=self.axis)


def model_for(options: ScoringOptions) -> AnomalyMethod:
    """The method these options describe, from the shared model cache (models are expensive)."""
    return load_method(options.method_spec())


def open_bank_for(method: AnomalyMethod, bank_path: str | Path) -> ReferenceBank:
    """Open a bank and check it was built by this method with these settings (one-line error
    naming the differing fields otherwise)."""
    return ReferenceBank.open(Path(bank_path), expected_identity=method.identity())


def with_bank_class_name(options: ScoringOptions) -> ScoringOptions:
    """A study scored against a bank uses the bank's class name unless one is given."""
    if options.class_name is not None or not options.bank or options.zero_shot:
        return options
    recorded = ReferenceBank.recorded_identity(Path(options.bank)).get("class_name")
    return replace(options, class_name=recorded) if recorded else options


def make_scorer(options: ScoringOptions, method: AnomalyMethod | None = None) -> VolumeScorer:
    options = with_bank_class_name(options)
    method = method or model_for(options)
    bank = None
    preprocessing = options.preprocessing()
    if options.bank and not options.zero_shot:
        bank = open_bank_for(method, options.bank)
        if options.window is None:
            preprocessing = None  # take the bank's
    return VolumeScorer(method, bank, preprocessing, shots=options.shots, batch_size=options.batch_size,
                        device=options.device, threshold=options.threshold, aggregate=options.aggregate,
                        match=options.match, slices_per_scan=options.slices_per_scan)


@dataclass
class StudyOutputs:
    out_dir: Path
    score: float
    top_slices: list[int]
    files: dict[str, Path] = field(default_factory=dict)
    other_series: int = 0


def score_study(study: Path, out_dir: Path, scorer: VolumeScorer, series_rule: Any = None,
                parametric_map: bool = False) -> StudyOutputs:
    """Read a study (DICOM folder/files, NIfTI, 2-D image), score it and write every output."""
    from adaptclip_med.io.loader import load_study

    volume, candidates = load_study(Path(study), series_rule=series_rule, axis=scorer.preprocessing.axis)
    return score_volume_to_dir(volume, out_dir, scorer, other_series=max(0, len(candidates) - 1), parametric_map=parametric_map)


def score_volume_to_dir(volume, out_dir: Path, scorer: VolumeScorer, other_series: int = 0,
                        extra_report: dict[str, Any] | None = None, parametric_map: bool = False) -> StudyOutputs:
    started = time.time()
    result = scorer.score(volume)
    files = write_study_outputs(volume, result, Path(out_dir), scorer, time.time() - started, other_series, extra_report,
                                parametric_map)
    return StudyOutputs(Path(out_dir), result.score, result.top_slices, files, other_series)


def write_study_outputs(volume, result: StudyResult, out_dir: Path, scorer: VolumeScorer, seconds: float,
                        other_series: int = 0, extra_report: dict[str, Any] | None = None,
                        parametric_map: bool = False) -> dict[str, Path]:
    """Build the list of writers, run each into ``out_dir``, ``study.json`` last (see
    :mod:`adaptclip_med.outputs.study_writers`); returns ``{files key: path}``."""
    from adaptclip_med.outputs.study_writers import StudyContext, default_writers, write_study

    context = StudyContext.for_scorer(volume, result, Path(out_dir), scorer, seconds, other_series, extra_report)
    writers = default_writers(parametric_map=parametric_map)
    return write_study(context, writers)
