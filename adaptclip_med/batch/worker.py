"""Scoring ONE study of a batch: fetch, pick the series, score into staging, publish, (STOW).

Every failure a study can have becomes its journal record with a one-line reason, so the batch
goes on; only a full disk escapes as :class:`DiskFullError`, because every following study would
fail the same way.  Messages name studies by their pseudonymous key, never by path or UID.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from adaptclip_med.batch.discovery import Discovery, StudyFiles, StudyTask
from adaptclip_med.batch.journal import DONE, FAILED, StudyRecord
from adaptclip_med.batch.rules import SeriesRules, no_series_reason, select_series
from adaptclip_med.batch.staging import is_disk_full, publish
from adaptclip_med.errors import AdaptClipError
from adaptclip_med.io.dicom import load_dicom_series
from adaptclip_med.io.dicom_scan import scan_dicom, unreadable_near
from adaptclip_med.io.discovery import study_key_for_uid
from adaptclip_med.outputs import layout
from adaptclip_med.utils.keys import key_path
from adaptclip_med.utils.redact import describe_path, file_key, header_warnings_silenced
from adaptclip_med.volume.options import OutputOptions
from adaptclip_med.volume.scoring import VolumeScorer
from adaptclip_med.volume.study_run import run_study

log = logging.getLogger(__name__)

RESULT_FILES = layout.DICOM_RESULTS  # the DICOM results a PACS can take back


class StudySource(Protocol):
    def discover(self) -> Discovery: ...

    def open_study(self, task: StudyTask, scratch: Path, rules: SeriesRules) -> StudyFiles: ...


@dataclass(frozen=True)
class BatchOptions:
    out_dir: Path
    rules: SeriesRules = SeriesRules()
    stow: bool = False
    retry_failed: bool = True
    scratch_dir: Path | None = None  # parent of the private folders studies are fetched into
    worklist_interval_seconds: float = 30.0


class DiskFullError(AdaptClipError):
    """Writing outputs failed for lack of space; the run stops (every next study would fail too)."""


@dataclass
class _Attempt:
    """What is known about a study so far, so a failure record can still name the series tried."""

    series: str = ""


def _scan_keys(task: StudyTask) -> set[str]:
    """The :func:`scan_dicom` study keys that belong to ``task``: its own key, or the key of its
    Study UID when the source names studies its own way (the node's salted keys)."""
    keys = {task.key, ""}
    if task.study_uid:
        keys.add(study_key_for_uid(task.study_uid))
    return keys


class StudyWorker:
    """Scores one study at a time into staging and publishes it; returns its journal record."""

    def __init__(self, source: StudySource, scorer: VolumeScorer, options: BatchOptions, outputs: OutputOptions,
                 staging: Path) -> None:
        self.source = source
        self.scorer = scorer
        self.options = options
        self.outputs = outputs
        self.staging = staging

    def run(self, task: StudyTask) -> StudyRecord:
        started = time.time()
        staged = key_path(self.staging, task.key)
        scratch = Path(tempfile.mkdtemp(prefix="adaptclip-study-", dir=self.options.scratch_dir))
        attempt = _Attempt()
        try:
            with header_warnings_silenced():
                record = self._score(task, staged, scratch, attempt)
        except Exception as exc:
            if is_disk_full(exc):
                raise DiskFullError(
                    f"disk full while writing the results of study {task.key} under "
                    f"{describe_path(self.options.out_dir)}: free space and run the same command again "
                    f"(finished studies are kept; nothing partial was left)") from exc
            if isinstance(exc, AdaptClipError):
                reason = str(exc)
            else:  # a bug or an input nobody anticipated: keep the batch going, details under --debug
                log.debug("study %s failed", task.key, exc_info=True)
                reason = f"unexpected error while scoring ({type(exc).__name__})"
            record = StudyRecord(task.key, FAILED, series=attempt.series, reason=reason)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)
        return replace(record, seconds=round(time.time() - started, 2))

    def _score(self, task: StudyTask, staged: Path, scratch: Path, attempt: _Attempt) -> StudyRecord:
        rules = self.options.rules
        if task.kind in ("nifti", "itk"):
            return self._score_nifti(task, staged, attempt)
        files = self.source.open_study(task, scratch, rules)
        series = [s for s in scan_dicom(files.paths, root=files.root, label_for=lambda p: file_key(p, files.root))
                  if s.study_key in _scan_keys(task)]
        choice = select_series(series, rules)
        decisions = choice.decisions + files.left
        if choice.chosen is None:
            return StudyRecord(task.key, FAILED, reason=no_series_reason(decisions))
        chosen = choice.chosen
        taken = next(d for d in decisions if d.taken)
        attempt.series = f"{chosen.label} [{taken.reason}]"
        volume = load_dicom_series(chosen, axis=self.scorer.preprocessing.axis, label=f"study {task.key}",
                                   unreadable=unreadable_near(chosen, series))
        report = {"batch": {"study_key": task.key, "rules": rules.describe(),
                            "series_selection": [d.as_dict() for d in decisions],
                            "skipped_files": [{"file": s.label, "reason": s.reason} for s in chosen.skipped]}}
        other = sum(1 for s in series if s.kind == "image") - 1
        outputs = run_study(volume, self.scorer, staged, other_series=other, extra_report=report,
                            parametric_map=self.outputs.parametric_map, key_objects=self.outputs.key_objects)
        final = publish(staged, key_path(self.options.out_dir, task.key))
        notes = "; ".join([*([f"{len(chosen.skipped)} file(s) of the series skipped"] if chosen.skipped else []),
                           *outputs.not_written.values()])
        record = StudyRecord(task.key, DONE, score=float(outputs.score),
                             top_slice=outputs.top_slices[0] if outputs.top_slices else None,
                             series=attempt.series, output=task.key, notes=notes, comparability=_comparability(outputs))
        if self.options.stow:
            results = layout.dicom_results_in(final)
            try:
                self.source.store(task, results)  # type: ignore[attr-defined]  # checked by run_batch
            except AdaptClipError as exc:
                return replace(record, status=FAILED, reason=f"scored, but the results were not stored: {exc}")
        return record

    def _score_nifti(self, task: StudyTask, staged: Path, attempt: _Attempt) -> StudyRecord:
        """A NIfTI/MetaImage/NRRD file is one study of one volume: no series to choose, nothing to
        store back."""
        from adaptclip_med.io.itk_image import load_itk_image
        from adaptclip_med.io.nifti import load_nifti

        attempt.series = "ITK image volume" if task.kind == "itk" else "NIfTI volume"
        read = load_itk_image if task.kind == "itk" else load_nifti
        volume = read(Path(task.files[0]), axis=self.scorer.preprocessing.axis, label=f"study {task.key}")
        report = {"batch": {"study_key": task.key, "source": task.kind, "rules": self.options.rules.describe(),
                            "series_selection": [], "skipped_files": []}}
        outputs = run_study(volume, self.scorer, staged, extra_report=report,
                            parametric_map=self.outputs.parametric_map, key_objects=self.outputs.key_objects)
        publish(staged, key_path(self.options.out_dir, task.key))
        return StudyRecord(task.key, DONE, score=float(outputs.score),
                           top_slice=outputs.top_slices[0] if outputs.top_slices else None,
                           series=attempt.series, output=task.key, comparability=_comparability(outputs))


def _comparability(outputs) -> str:
    """The guard's one line for the worklist (volume/comparability.py)."""
    return outputs.comparability.line() if outputs.comparability is not None else ""


