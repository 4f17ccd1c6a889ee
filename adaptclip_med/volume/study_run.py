"""One study run: score a volume, then write every output of the study.  The one composition of
"score, then write" that ``score`` (also per method of ``score --method a,b``), ``batch``, the node,
the API, the demo and the dashboard all go through.

Outputs per study (in ``out_dir``, names in :mod:`adaptclip_med.outputs.layout`): the probability
map and mask (NIfTI) in the SOURCE geometry, for DICOM input a DICOM SEG referencing the source
instances and a TID 1500 SR, optionally a Parametric Map and a Key Object Selection, the per-slice
table, PNG overlays of the top slices, the score plot and ``study.json``, each written by one unit
of :mod:`adaptclip_med.outputs.study_writers`.  ``study.json`` is written LAST, so its presence
means the study is complete (batch runs resume on it).  No output name or field carries a patient
identifier.

The writers get plain data: the volume, the result and ONE :class:`ScoringRecord` built here from
the scorer, never the scorer itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptclip_med.io.volume import Volume
from adaptclip_med.outputs import layout
from adaptclip_med.outputs.scoring_record import ScoringRecord
from adaptclip_med.outputs.study_writers import StudyContext, WrittenFiles, default_writers, write_study
from adaptclip_med.utils.atomic import staged_folder
from adaptclip_med.utils.ownership import mark_owned, require_owned
from adaptclip_med.volume.comparability import StudyComparability
from adaptclip_med.volume.scoring import StudyResult, VolumeScorer


@dataclass
class StudyOutputs:
    """What one study run produced: where, the full in-memory result (it also has the matched
    reference slices of every slice, which the files lack), the files and what was not written."""

    out_dir: Path
    result: StudyResult
    files: dict[str, Path] = field(default_factory=dict)
    other_series: int = 0
    #: outputs that could not be written for this study: {writer name: one-line reason}
    not_written: dict[str, str] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return self.result.score

    @property
    def top_slices(self) -> list[int]:
        return self.result.top_slices

    @property
    def comparability(self) -> StudyComparability | None:
        """The guard's verdict (volume/comparability.py)."""
        return self.result.comparability


def scoring_record(scorer: VolumeScorer) -> ScoringRecord:
    """What the writers need to know about the scoring (method identity, bank, threshold...)."""
    return ScoringRecord.from_description(scorer.describe(), scorer.method.display_name)


def run_study(volume: Volume, scorer: VolumeScorer, out_dir: Path, *, other_series: int = 0,
              extra_report: dict[str, Any] | None = None, parametric_map: bool = False,
              key_objects: bool = False) -> StudyOutputs:
    """Score ``volume`` and write every output into ``out_dir`` (see :func:`write_outputs`).
    ``other_series``: image series of the input not scored (study.json says so); ``extra_report``:
    fields the caller adds to study.json (batch's series choice, the dashboard's study key)."""
    started = time.time()
    result = scorer.score(volume)
    files = write_outputs(volume, result, scoring_record(scorer), Path(out_dir), time.time() - started,
                          other_series=other_series, extra_report=extra_report, parametric_map=parametric_map,
                          key_objects=key_objects)
    return StudyOutputs(Path(out_dir), result, files, other_series, dict(files.not_written))


def score_study(study: Path, out_dir: Path, scorer: VolumeScorer, series_rule: Any = None,
                parametric_map: bool = False, study_index: int | None = None, key_objects: bool = False) -> StudyOutputs:
    """Read a study (DICOM folder/files, NIfTI, 2-D image), then :func:`run_study` it.
    ``study_index``/an int ``series_rule`` choose when the input holds several studies/series."""
    from adaptclip_med.io.loader import load_study

    volume, candidates = load_study(Path(study), series_rule=series_rule, axis=scorer.preprocessing.axis,
                                    study=study_index)
    return run_study(volume, scorer, out_dir, other_series=max(0, len(candidates) - 1), parametric_map=parametric_map,
                     key_objects=key_objects)


def _is_foreign(name: str) -> bool:
    """Anything in a study folder that the study writers did not produce is carried over on rewrite."""
    return not layout.is_study_output(name)


def write_outputs(volume: Volume, result: StudyResult, scoring: ScoringRecord, out_dir: Path, seconds: float, *,
                  other_series: int = 0, extra_report: dict[str, Any] | None = None, parametric_map: bool = False,
                  key_objects: bool = False) -> WrittenFiles:
    """Write every output into a staging folder next to ``out_dir`` and swap it in whole on
    success: a failure leaves the previous complete result of ``out_dir`` untouched, and no file
    of an earlier study (overlays, parametric map) survives beside the new ones.  The outputs are
    the writer units of :mod:`adaptclip_med.outputs.study_writers`, ``study.json`` last; one
    writer failing on the study's data loses only its own output (the returned mapping's
    ``not_written`` names it and why)."""
    out_dir = Path(out_dir)
    require_owned(out_dir, "study output folder")
    with staged_folder(out_dir, keep=_is_foreign) as stage:
        mark_owned(stage)
        context = StudyContext(volume, result, stage, scoring, float(seconds), int(other_series), extra_report)
        files = write_study(context, default_writers(parametric_map=parametric_map, key_objects=key_objects))
    return WrittenFiles({key: out_dir / path.name for key, path in files.items()}, files.not_written)
