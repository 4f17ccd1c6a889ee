"""One study in, clinical outputs out: the shared path behind ``score``, the bundle, batch and the
dashboard.

Outputs per study (in ``out_dir``, names in :mod:`adaptclip_med.outputs.layout`): the probability
map and mask (NIfTI) in the SOURCE geometry, for DICOM input a DICOM SEG referencing the source
instances and a TID 1500 SR, optionally a Parametric Map and a Key Object Selection, the per-slice table, PNG overlays of the top slices,
the score plot and ``study.json``, each written by one unit of
:mod:`adaptclip_med.outputs.study_writers`.  ``study.json`` is written LAST, so its presence means
the study is complete (batch runs resume on it).  No output name or field carries a patient
identifier.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptclip_med.methods.base import AnomalyMethod
from adaptclip_med.methods.registry import load_method
from adaptclip_med.outputs import layout
from adaptclip_med.volume.batch_size import resolve_batch_size
from adaptclip_med.volume.comparability import StudyComparability
from adaptclip_med.volume.options import ScoringOptions
from adaptclip_med.volume.reference_bank import ReferenceBank
from adaptclip_med.volume.scoring import StudyResult, VolumeScorer
from adaptclip_med.volume.triage import TriagePlan

log = logging.getLogger(__name__)

STUDY_JSON = layout.STUDY_JSON  # re-exported: callers import it from here


def model_for(options: ScoringOptions) -> AnomalyMethod:
    """The method these options describe, from the shared model cache (models are expensive)."""
    return load_method(options.method_spec())


def open_bank_for(method: AnomalyMethod, bank_path: str | Path) -> ReferenceBank:
    """Open a bank and check it was built by this method with these settings (one-line error
    naming the differing fields otherwise)."""
    return ReferenceBank.open(Path(bank_path), expected_identity=method.identity())


def with_bank_class_name(options: ScoringOptions) -> ScoringOptions:
    """A study scored against a bank uses the bank's class name unless one is given."""
    if options.model.class_name is not None or not options.references.uses_bank:
        return options
    recorded = ReferenceBank.recorded_identity(Path(options.references.bank)).get("class_name")
    return options.with_(class_name=recorded) if recorded else options


def make_scorer(options: ScoringOptions, method: AnomalyMethod | None = None) -> VolumeScorer:
    """The volume scorer for these options (``method``: an already loaded model to reuse)."""
    options = with_bank_class_name(options)
    method = method or model_for(options)
    references, slicing, output = options.references, options.slicing, options.output
    bank = None
    preprocessing = slicing.preprocessing()
    if references.uses_bank:
        bank = open_bank_for(method, references.bank)
        if slicing.window is None:
            preprocessing = None  # take the bank's
    return VolumeScorer(method, bank, preprocessing, shots=references.shots,
                        batch_size=resolve_batch_size(slicing.batch_size, method),
                        device=options.model.device, threshold=output.threshold, aggregate=output.aggregate,
                        match=references.match, slices_per_scan=references.slices_per_scan,
                        triage=TriagePlan(slicing.triage) if slicing.triage else None,
                        allow_other_modality=references.allow_other_modality)


@dataclass
class StudyOutputs:
    out_dir: Path
    score: float
    top_slices: list[int]
    files: dict[str, Path] = field(default_factory=dict)
    other_series: int = 0
    #: outputs that could not be written for this study: {writer name: one-line reason}
    not_written: dict[str, str] = field(default_factory=dict)
    #: the guard's verdict (volume/comparability.py); None only for callers that build this by hand
    comparability: StudyComparability | None = None


def score_study(study: Path, out_dir: Path, scorer: VolumeScorer, series_rule: Any = None,
                parametric_map: bool = False, study_index: int | None = None, key_objects: bool = False) -> StudyOutputs:
    """Read a study (DICOM folder/files, NIfTI, 2-D image), score it and write every output.
    ``study_index``/an int ``series_rule`` choose when the input holds several studies/series."""
    from adaptclip_med.io.loader import load_study

    volume, candidates = load_study(Path(study), series_rule=series_rule, axis=scorer.preprocessing.axis,
                                    study=study_index)
    return score_volume_to_dir(volume, out_dir, scorer, other_series=max(0, len(candidates) - 1), parametric_map=parametric_map,
                               key_objects=key_objects)


def score_volume_to_dir(volume, out_dir: Path, scorer: VolumeScorer, other_series: int = 0,
                        extra_report: dict[str, Any] | None = None, parametric_map: bool = False,
                        key_objects: bool = False) -> StudyOutputs:
    started = time.time()
    result = scorer.score(volume)
    files = write_study_outputs(volume, result, Path(out_dir), scorer, time.time() - started, other_series, extra_report,
                                parametric_map, key_objects)
    return StudyOutputs(Path(out_dir), result.score, result.top_slices, files, other_series,
                        dict(getattr(files, "not_written", {})), result.comparability)


def _is_foreign(name: str) -> bool:
    """Anything in a study folder that the study writers did not produce is carried over on rewrite."""
    return not layout.is_study_output(name)


def write_study_outputs(volume, result: StudyResult, out_dir: Path, scorer: VolumeScorer, seconds: float,
                        other_series: int = 0, extra_report: dict[str, Any] | None = None,
                        parametric_map: bool = False, key_objects: bool = False) -> dict[str, Path]:
    """Write every output into a staging folder next to ``out_dir`` and swap it in whole on
    success: a failure leaves the previous complete result of ``out_dir`` untouched, and no file
    of an earlier study (overlays, parametric map) survives beside the new ones.  The outputs are
    the writer units of :mod:`adaptclip_med.outputs.study_writers`, ``study.json`` last; one
    writer failing on the study's data loses only its own output (the returned mapping's
    ``not_written`` names it and why)."""
    from adaptclip_med.outputs.study_writers import StudyContext, WrittenFiles, default_writers, write_study
    from adaptclip_med.utils.atomic import staged_folder
    from adaptclip_med.utils.ownership import mark_owned, require_owned

    out_dir = Path(out_dir)
    require_owned(out_dir, "study output folder")
    with staged_folder(out_dir, keep=_is_foreign) as stage:
        mark_owned(stage)
        context = StudyContext.for_scorer(volume, result, stage, scorer, seconds, other_series, extra_report)
        files = write_study(context, default_writers(parametric_map=parametric_map, key_objects=key_objects))
    return WrittenFiles({key: out_dir / path.name for key, path in files.items()}, files.not_written)
