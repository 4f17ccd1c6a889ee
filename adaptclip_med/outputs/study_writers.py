"""The study outputs as small writer units over one shared context.

Each writer takes a :class:`StudyContext` (the volume, the scored result, the scoring record of
:mod:`adaptclip_med.outputs.scoring_record` - plain data, never the scorer - and the folder) and
returns the files it wrote as ``{files key: path}`` (empty when the output does not apply, e.g.
DICOM SEG for NIfTI input); running a writer also records them in ``context.files``.
:data:`WRITERS` names every writer; :func:`default_writers` is the ordered selection
``adaptclip-med score``, batch, the dashboard and the bundle write by default, and
:data:`STUDY_REPORT` (``study.json``) always runs LAST, listing the files written before it, so its
presence means the study is complete.  File names come from :mod:`adaptclip_med.outputs.layout`.

For DICOM input the writers produce the IHE AI Results set, all in the source study: SEG, TID 1500
SR (after the SEG it references), optionally the Parametric Map and a Key Object Selection of the
top slices.  Every one lists the algorithm in Contributing Equipment (``context.equipment``) and
numbers/describes its series from the run (``context.run``), so re-scored studies can be told
apart in a viewer's series list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from adaptclip_med.io.volume import Volume
from adaptclip_med.outputs import layout
from adaptclip_med.outputs.equipment import AlgorithmEquipment
from adaptclip_med.outputs.result_series import ResultRun
from adaptclip_med.outputs.scoring_record import ScoredSlice, ScoredStudy, ScoringRecord
from adaptclip_med.version import __version__

log = logging.getLogger(__name__)

NOT_FOR_CLINICAL_USE = "Research software: not a medical device, not for clinical use."
SOFTWARE_NAME = "adaptclip-med"
#: How study.json, slices.csv, overlays, reports and the viewer number slices (outputs/slice_numbers.py).
SLICE_NUMBERING = ("slice: 1-based, as the viewer shows it (slice 1 = the first along the slicing axis); "
                   "instance_number: the DICOM InstanceNumber of that image where it is one; "
                   "index / array_index: the 0-based array index")
#: skip_reason of slices triage left unscored (volume/triage.py; repeated to keep this module light)
TRIAGE_REASON = "not scored (triage)"


@dataclass
class StudyContext:
    """What every writer of one study reads (and ``files``, what the writers so far wrote): plain
    data built once by the study run, never the scorer."""

    volume: Volume
    result: ScoredStudy
    folder: Path
    scoring: ScoringRecord
    seconds: float = 0.0
    other_series: int = 0
    extra_report: dict[str, Any] | None = None
    software_version: str = __version__
    files: dict[str, Path] = field(default_factory=dict)
    #: one-line notes for study.json (e.g. an output that does not apply to this source)
    notes: list[str] = field(default_factory=list)
    #: this run (series numbers and descriptions of the DICOM results)
    run: ResultRun = field(default_factory=ResultRun)
    #: writers that failed on this study's data: {writer name: one-line reason} (study.json lists them)
    not_written: dict[str, str] = field(default_factory=dict)

    @property
    def algorithm_name(self) -> str:
        """The method's display name (DICOM algorithm / model name)."""
        return self.scoring.display_name

    def path(self, name: str) -> Path:
        return self.folder / name

    @cached_property
    def instances(self) -> list[int | None]:
        """The DICOM InstanceNumber of each canonical slice (None where there is none)."""
        from adaptclip_med.outputs.slice_numbers import instance_numbers

        return instance_numbers(self.volume)

    @cached_property
    def equipment(self) -> AlgorithmEquipment:
        """The algorithm as Contributing Equipment / SR observer (Device UID from model + bank)."""
        return AlgorithmEquipment.for_scoring(self.algorithm_name, self.scoring.describe(), self.software_version)

    def series(self, kind: str) -> dict[str, Any]:
        """``series_number`` and ``series_description`` of this run's ``kind`` result (SEG, PMAP,
        SR, KOS)."""
        return {"series_number": self.run.series_number(kind),
                "series_description": self.run.series_description(self.algorithm_name, kind)}

    def note(self, text: str) -> None:
        """Add a study.json note once."""
        if text not in self.notes:
            self.notes.append(text)

    def prepare_folder(self) -> None:
        """Create the folder and drop a stale ``study.json`` (the study is complete only when it is
        rewritten last)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path(layout.STUDY_JSON).unlink(missing_ok=True)


@dataclass(frozen=True)
class StudyWriter:
    """One output: ``name`` (registry / config name) and ``write(context) -> {key: path}``."""

    name: str
    write: Callable[[StudyContext], dict[str, Path]]
    description: str = ""

    def __call__(self, context: StudyContext) -> dict[str, Path]:
        files = self.write(context)
        context.files.update(files)
        return files


# ---------------------------------------------------------------------------------- the writers
def write_probability_nifti(ctx: StudyContext) -> dict[str, Path]:
    from adaptclip_med.outputs.nifti import write_nifti

    return {"probability_nifti": write_nifti(ctx.result.probability, ctx.volume, ctx.path(layout.PROBABILITY_NIFTI),
                                             np.float32)}


def write_mask_nifti(ctx: StudyContext) -> dict[str, Path]:
    from adaptclip_med.outputs.nifti import write_nifti

    return {"mask_nifti": write_nifti(ctx.result.mask.astype(np.uint8), ctx.volume, ctx.path(layout.MASK_NIFTI),
                                      np.uint8)}


def needs_dicom(ctx: StudyContext) -> bool:
    """True for DICOM input; else a study.json note (once) that the DICOM results do not apply."""
    if ctx.volume.source_kind == "dicom":
        return True
    ctx.note(f"DICOM results (SEG, SR, Parametric Map, key objects) not written: the input is {ctx.volume.source_kind}, "
             "not DICOM (they reference the source DICOM images)")
    return False


def write_seg(ctx: StudyContext) -> dict[str, Path]:
    if not needs_dicom(ctx):
        return {}
    from adaptclip_med.outputs.dicom_seg import write_dicom_seg

    return {"dicom_seg": write_dicom_seg(ctx.result.mask, ctx.volume, ctx.path(layout.DICOM_SEG),
                                         algorithm_name=ctx.algorithm_name, software_version=ctx.software_version,
                                         equipment=ctx.equipment, **ctx.series("SEG"))}


def write_pmap(ctx: StudyContext) -> dict[str, Path]:
    if not needs_dicom(ctx):
        return {}
    from adaptclip_med.errors import InputError
    from adaptclip_med.outputs.parametric_map import write_parametric_map

    try:
        return {"parametric_map": write_parametric_map(ctx.result.probability, ctx.volume, ctx.path(layout.PARAMETRIC_MAP),
                                                       algorithm_name=ctx.algorithm_name,
                                                       software_version=ctx.software_version, equipment=ctx.equipment,
                                                       **ctx.series("PMAP"))}
    except InputError as exc:  # e.g. 2-D sources: the IOD needs a frame of reference
        log.warning("%s", exc)
        ctx.note(without_source_label(str(exc), ctx))
        return {}


def comparability_statement(comparability: Any) -> str | None:
    """One line for a study's comparability: the guard's verdict (``StudyComparability.line()``:
    status and reasons), or a string / mapping with a ``status`` handed over in an extra report."""
    if not comparability:
        return None
    if hasattr(comparability, "line"):
        return f"Comparability: {comparability.line()}"
    if isinstance(comparability, str):
        return f"Comparability: {comparability}"
    if isinstance(comparability, dict):
        import json

        shown = [str(comparability[k]) for k in ("status", "summary") if comparability.get(k)]
        return "Comparability: " + ("; ".join(shown) if shown else json.dumps(comparability, sort_keys=True, default=str))
    return f"Comparability: {comparability}"


def sr_notes(ctx: StudyContext) -> list[str]:
    """Statements the algorithm's SR carries as TEXT comments in its study finding group: the
    research disclaimer, a zero-shot note, and the study's comparability when the run has one
    (from the study result or the extra report, where study.json also takes it from)."""
    notes = [NOT_FOR_CLINICAL_USE]
    if ctx.scoring.references_note:
        notes.append(str(ctx.scoring.references_note))
    comparability = getattr(ctx.result, "comparability", None) or (ctx.extra_report or {}).get("comparability")
    statement = comparability_statement(comparability)
    if statement:
        notes.append(statement)
    return notes


def write_sr(ctx: StudyContext) -> dict[str, Path]:
    """The TID 1500 measurement report; it references the SEG, so it needs the SEG writer before it."""
    if not needs_dicom(ctx):
        return {}
    if "dicom_seg" not in ctx.files:
        ctx.note("DICOM SR not written: it references the DICOM SEG, which this run did not write")
        return {}
    import pydicom

    from adaptclip_med.outputs.dicom_sources import derivable_headers, deriving_from
    from adaptclip_med.outputs.dicom_sr import DeviceObserver, StudyFinding, write_measurement_report
    from adaptclip_med.outputs.regions import anomaly_regions, map_peak

    result = ctx.result
    # regions of the mask only: slices the comparability guard set aside carry no finding (as in the SEG)
    counted = np.where(result.mask, result.probability, 0.0).astype(np.float32)
    found = anomaly_regions(counted, result.threshold, ctx.volume)
    segmentation = pydicom.dcmread(ctx.files["dicom_seg"], stop_before_pixels=True)
    with deriving_from(ctx.volume, "DICOM SR"):
        path = write_measurement_report(
            ctx.path(layout.DICOM_SR), source_images=derivable_headers(ctx.volume), segmentation=segmentation,
            observer=DeviceObserver(ctx.equipment), algorithm=ctx.equipment,
            finding=StudyFinding.at_threshold(found.total, result.threshold, result.threshold_source, result.score,
                                              map_peak(counted if result.mask.any() else result.probability, ctx.volume)),
            regions=found.regions, regions_total=found.total, notes=sr_notes(ctx), **ctx.series("SR"))
    if found.total > len(found.regions):
        ctx.note(f"DICOM SR lists the {len(found.regions)} regions with the highest peak of {found.total}")
    return {"dicom_sr": path}


def write_kos(ctx: StudyContext) -> dict[str, Path]:
    """Key Object Selection of the top slices' source images."""
    if not needs_dicom(ctx):
        return {}
    from adaptclip_med.outputs.dicom_sources import deriving_from, slice_images
    from adaptclip_med.outputs.key_objects import write_key_object_selection

    top = list(ctx.result.top_slices)
    images = [image for image in slice_images(ctx.volume, top) if image is not None] if top else []
    if not images:
        ctx.note("key object selection not written: no top slice is one source image (none scored, or scored along "
                 "another axis than acquired)")
        return {}
    from adaptclip_med.outputs.slice_numbers import slice_labels

    description = f"Top {len(top)} slices by {ctx.algorithm_name} anomaly score ({slice_labels(top, ctx.instances)})"
    with deriving_from(ctx.volume, "DICOM key object selection"):
        path = write_key_object_selection(ctx.path(layout.KEY_OBJECTS), images, ctx.equipment,
                                          description=description, **ctx.series("KOS"))
    return {"key_objects": path}


def write_slices_table(ctx: StudyContext) -> dict[str, Path]:
    from adaptclip_med.outputs.slice_numbers import instance_of, slice_number
    from adaptclip_med.outputs.tables import write_slices_csv

    rows = [{"slice": slice_number(s.index), "instance_number": instance_of(ctx.instances, s.index),
             "array_index": s.index, "position_mm": round(s.position_mm, 3), "score": None if s.skipped else round(s.score, 6),
             "skipped": s.skipped, "skip_reason": s.skip_reason or "", **_slice_comparability(s)}
            for s in ctx.result.slices]
    return {"slices_csv": write_slices_csv(ctx.path(layout.SLICES_CSV), rows)}


def _slice_comparability(s: ScoredSlice) -> dict[str, Any]:
    """The guard's columns of slices.csv: ``comparability`` (comparable / outside coverage / out of
    reference distribution; empty for background) and ``reference_distance``."""
    state = getattr(s, "comparability", "")
    if not state:
        state = "" if (s.skip_reason or "").startswith("background") or s.skip_reason == TRIAGE_REASON else "comparable"
    distance = getattr(s, "reference_distance", float("nan"))
    return {"comparability": state, "reference_distance": None if distance != distance else round(float(distance), 6)}


def write_overlays(ctx: StudyContext) -> dict[str, Path]:
    from adaptclip_med.outputs.overlay import save_overlay_png

    result = ctx.result
    from adaptclip_med.outputs.slice_numbers import slice_number

    return {f"overlay_top{rank}": save_overlay_png(ctx.path(layout.overlay_name(rank, slice_number(z))), result.prepared.slices01[z],
                                                   result.probability[z], result.threshold)
            for rank, z in enumerate(result.top_slices, start=1)}


def write_score_plot(ctx: StudyContext) -> dict[str, Path]:
    from adaptclip_med.outputs.plots import save_score_plot
    from adaptclip_med.outputs.slice_numbers import instance_of, slice_label

    slices = ctx.result.slices
    scores = np.array([np.nan if s.skipped else s.score for s in slices])
    return {"score_plot": save_score_plot(ctx.path(layout.SCORE_PLOT), np.array([s.position_mm for s in slices]), scores,
                                          np.array([s.skipped for s in slices]), ctx.result.top_slices,
                                          labels=[slice_label(z, instance_of(ctx.instances, z)) for z in ctx.result.top_slices],
                                          title="slice anomaly scores (research use only)")}


def slice_counts(result: ScoredStudy) -> dict[str, int]:
    """Slices by outcome; ``skipped`` = background + not scored by triage (both have no map)."""
    total, scored = len(result.slices), len(result.scored())
    not_scored = sum(1 for s in result.slices if s.skipped and s.skip_reason == TRIAGE_REASON)
    outside = sum(1 for s in result.slices if s.skipped and getattr(s, "comparability", "") == "outside coverage")
    out_of_distribution = sum(1 for s in result.slices if getattr(s, "comparability", "") == "out of reference distribution")
    return {"total": total, "scored": scored, "skipped": total - scored,
            "background": total - scored - not_scored - outside, "not_scored_triage": not_scored,
            "not_comparable_outside_coverage": outside, "out_of_reference_distribution": out_of_distribution}


def comparability_report(result: ScoredStudy) -> dict[str, Any] | None:
    """``study.json``'s ``comparability``: the guard's verdict (volume/comparability.py)."""
    verdict = getattr(result, "comparability", None)
    return None if verdict is None else verdict.describe()


def study_report(ctx: StudyContext) -> dict[str, Any]:
    """The ``study.json`` payload (files: those written so far)."""
    from adaptclip_med.outputs.slice_numbers import instance_of, slice_number
    from adaptclip_med.outputs.thresholds import FLAG_RULE, result_flag, thresholds_report

    result, volume = ctx.result, ctx.volume
    flag, peak = result_flag(result)
    report = {
        "score": result.score, "aggregate": result.aggregate,
        "slice_numbering": SLICE_NUMBERING,
        "top_slices": [{"slice": slice_number(z), "instance_number": instance_of(ctx.instances, z), "index": z,
                        "position_mm": result.slices[z].position_mm, "score": result.slices[z].score,
                        "matched_reference_slices": result.slices[z].matched} for z in result.top_slices],
        "threshold": result.threshold, "threshold_source": result.threshold_source,
        "thresholds": thresholds_report(result.threshold, result.threshold_source, ctx.scoring.calibration),
        "study_flag": {"flag": flag, "operating_threshold": result.threshold,
                       "map_peak": peak, "rule": FLAG_RULE},
        "slices": slice_counts(result),
        "mask_voxels": int(result.mask.sum()), "source": {"kind": volume.source_kind, "modality": volume.modality,
                                                          "shape_zyx": list(result.probability.shape),
                                                          "spacing_mm": [float(s) for s in volume.spacing],
                                                          "other_image_series_in_input": ctx.other_series},
        "scoring": ctx.scoring.describe(), "software": {"name": SOFTWARE_NAME, "version": ctx.software_version},
        "dicom_results": dicom_results_report(ctx),
        "comparability": comparability_report(result),
        "seconds": round(ctx.seconds, 2), "files": {k: p.name for k, p in ctx.files.items()},
        "disclaimer": NOT_FOR_CLINICAL_USE,
    }
    triage = getattr(result, "triage", None)
    if triage is not None:
        report["triage"] = {**triage, "unscored_slices": [s.index for s in result.slices if s.skip_reason == TRIAGE_REASON],
                            "unscored_maps": "left empty (probability 0, no mask); not interpolated",
                            "study_score_from": "scored slices only"}
    physical_grid = getattr(result, "physical_grid", None)
    if physical_grid is not None:
        report["physical_grid"] = physical_grid
    if ctx.notes:
        report["notes"] = list(ctx.notes)
    if ctx.not_written:
        report["not_written"] = dict(ctx.not_written)
    if ctx.extra_report:
        report.update(ctx.extra_report)
    return report


def dicom_results_report(ctx: StudyContext) -> dict[str, Any] | None:
    """What study.json says about the DICOM results written so far: the run, the device UID and
    each object's series number and description (None when none was written)."""
    kinds = {"dicom_seg": "SEG", "parametric_map": "PMAP", "dicom_sr": "SR", "key_objects": "KOS"}
    written = {key: ctx.series(kind) for key, kind in kinds.items() if key in ctx.files}
    if not written:
        return None
    return {"run": ctx.run.label, "device_uid": ctx.equipment.device_uid, "series": written}


def write_study_report(ctx: StudyContext) -> dict[str, Path]:
    from adaptclip_med.outputs.tables import write_study_json

    return {"study_json": write_study_json(ctx.path(layout.STUDY_JSON), study_report(ctx))}


# ---------------------------------------------------------------------------------- registry
PROBABILITY_NIFTI = StudyWriter("probability_nifti", write_probability_nifti, layout.PROBABILITY_NIFTI)
MASK_NIFTI = StudyWriter("mask_nifti", write_mask_nifti, layout.MASK_NIFTI)
DICOM_SEG = StudyWriter("dicom_seg", write_seg, f"{layout.DICOM_SEG} (DICOM input only)")
PARAMETRIC_MAP = StudyWriter("parametric_map", write_pmap, f"{layout.PARAMETRIC_MAP} (DICOM input only, on request)")
DICOM_SR = StudyWriter("dicom_sr", write_sr, f"{layout.DICOM_SR} (DICOM input only, after the SEG)")
KEY_OBJECTS = StudyWriter("key_objects", write_kos, f"{layout.KEY_OBJECTS} (DICOM input only, on request)")
SLICES_CSV = StudyWriter("slices_csv", write_slices_table, layout.SLICES_CSV)
OVERLAYS = StudyWriter("overlays", write_overlays, layout.OVERLAY_PATTERN)
SCORE_PLOT = StudyWriter("score_plot", write_score_plot, layout.SCORE_PLOT)
STUDY_REPORT = StudyWriter("study_json", write_study_report, f"{layout.STUDY_JSON} (always last)")

#: Every writer by name, in the order they run.
WRITERS: dict[str, StudyWriter] = {w.name: w for w in (PROBABILITY_NIFTI, MASK_NIFTI, DICOM_SEG, PARAMETRIC_MAP,
                                                        DICOM_SR, KEY_OBJECTS, SLICES_CSV, OVERLAYS, SCORE_PLOT,
                                                        STUDY_REPORT)}
#: Written by default (the Parametric Map and the key objects only on request; study.json always, last).
DEFAULT_WRITER_NAMES = ("probability_nifti", "mask_nifti", "dicom_seg", "dicom_sr", "slices_csv", "overlays",
                        "score_plot")


def default_writers(parametric_map: bool = False, key_objects: bool = False) -> tuple[StudyWriter, ...]:
    """The default writers in order, without ``study.json`` (which :func:`write_study` adds last)."""
    requested = {"parametric_map": parametric_map, "key_objects": key_objects}
    names = [n for n in WRITERS if n in DEFAULT_WRITER_NAMES or requested.get(n)]
    return tuple(WRITERS[n] for n in names)


def writers_named(names: Iterable[str]) -> tuple[StudyWriter, ...]:
    unknown = [n for n in names if n not in WRITERS]
    if unknown:
        from adaptclip_med.errors import AdaptClipError

        raise AdaptClipError(f"unknown study output(s) {', '.join(unknown)} (known: {', '.join(WRITERS)})")
    return tuple(WRITERS[n] for n in names)


class WrittenFiles(dict):
    """``{files key: path}`` of one study, plus ``not_written``: the writers that failed and why."""

    def __init__(self, files: dict[str, Path], not_written: dict[str, str]) -> None:
        super().__init__(files)
        self.not_written = dict(not_written)


def without_source_label(text: str, ctx: StudyContext) -> str:
    """``text`` without the leading ``<study input path>: ``: study.json must not carry the input's
    path (folder names often hold patient names), and it is about that study anyway."""
    label = str(getattr(ctx.volume, "source_label", "") or "")
    prefix = f"{label}: "
    return text[len(prefix):] if label and text.startswith(prefix) else text


def _failure_reason(writer: StudyWriter, exc: Exception, ctx: StudyContext) -> str:
    """One line for a writer that failed.  Our own errors are already one safe line (the input path
    is dropped); a library's message may quote header values, so only its type is kept."""
    from adaptclip_med.errors import AdaptClipError

    if isinstance(exc, AdaptClipError):
        return without_source_label(str(exc), ctx)
    return f"{writer.name} not written ({type(exc).__name__}; --debug shows details)"


def run_isolated(writer: StudyWriter, context: StudyContext) -> None:
    """Run one writer; a failure on this study's data (a header value the SEG writer refuses, a
    source without a frame of reference) loses that output only: it is logged, recorded in
    ``context.not_written`` and the other writers still run.  A failure of the output folder
    itself (``OSError``: disk full, permissions) would hit every writer alike and is raised."""
    try:
        writer(context)
    except OSError:
        raise
    except Exception as exc:
        log.debug("writer %s failed", writer.name, exc_info=True)
        reason = _failure_reason(writer, exc, context)
        context.not_written[writer.name] = reason
        log.warning("%s (every other output is written)", reason)


def write_study(context: StudyContext, writers: Sequence[StudyWriter]) -> WrittenFiles:
    """Run each writer into ``context.folder`` (each isolated: see :func:`run_isolated`), then
    ``study.json`` last; returns every file written and the writers that failed."""
    context.prepare_folder()
    for writer in writers:
        if writer is not STUDY_REPORT:
            run_isolated(writer, context)
    STUDY_REPORT(context)
    return WrittenFiles(context.files, context.not_written)
