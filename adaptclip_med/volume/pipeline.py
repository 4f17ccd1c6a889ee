"""One study in, clinical outputs out: the shared path behind ``score``, the bundle, batch and the
dashboard.

Outputs per study (in ``out_dir``): ``anomaly_probability.nii.gz`` and ``anomaly_mask.nii.gz`` in
the SOURCE geometry, for DICOM input ``anomaly_seg.dcm`` (DICOM SEG referencing the source
instances) and optionally ``anomaly_pmap.dcm`` (Parametric Map), ``slices.csv``, PNG overlays of
the top slices, ``score_plot.png`` and ``study.json``.  ``study.json`` is written LAST, so its
presence means the study is complete (batch runs resume on it).  No output name or field carries
a patient identifier.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from adaptclip_med import __version__
from adaptclip_med.methods import AnomalyMethod, load_method
from adaptclip_med.volume.options import ScoringOptions
from adaptclip_med.volume.reference_bank import ReferenceBank
from adaptclip_med.volume.scoring import DEFAULT_AGGREGATE, StudyResult, VolumeScorer

log = logging.getLogger(__name__)

STUDY_JSON = "study.json"
NOT_FOR_CLINICAL_USE = "Research software: not a medical device, not for clinical use."


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
                parametric_map: bool = False, study_index: int | None = None) -> StudyOutputs:
    """Read a study (DICOM folder/files, NIfTI, 2-D image), score it and write every output.
    ``study_index``/an int ``series_rule`` choose when the input holds several studies/series."""
    from adaptclip_med.io.loader import load_study

    volume, candidates = load_study(Path(study), series_rule=series_rule, axis=scorer.preprocessing.axis,
                                    study=study_index)
    return score_volume_to_dir(volume, out_dir, scorer, other_series=max(0, len(candidates) - 1), parametric_map=parametric_map)


def score_volume_to_dir(volume, out_dir: Path, scorer: VolumeScorer, other_series: int = 0,
                        extra_report: dict[str, Any] | None = None, parametric_map: bool = False) -> StudyOutputs:
    started = time.time()
    result = scorer.score(volume)
    files = write_study_outputs(volume, result, Path(out_dir), scorer, time.time() - started, other_series, extra_report,
                                parametric_map)
    return StudyOutputs(Path(out_dir), result.score, result.top_slices, files, other_series)


#: Names this module writes into a study folder; anything else found there is carried over on rewrite.
_OUTPUT_NAME = re.compile(r"anomaly_.*|slices\.csv|overlay_top\d+_slice\d+\.png|score_plot\.png|study\.json|\.tmp-.*")


def _is_foreign(name: str) -> bool:
    return _OUTPUT_NAME.fullmatch(name) is None


def write_study_outputs(volume, result: StudyResult, out_dir: Path, scorer: VolumeScorer, seconds: float,
                        other_series: int = 0, extra_report: dict[str, Any] | None = None,
                        parametric_map: bool = False) -> dict[str, Path]:
    """Write every output into a staging folder next to ``out_dir`` and swap it in whole on
    success: a failure leaves the previous complete result of ``out_dir`` untouched, and no file
    of an earlier study (overlays, parametric map) survives beside the new ones."""
    from adaptclip_med.utils.atomic import staged_folder

    out_dir = Path(out_dir)
    with staged_folder(out_dir, keep=_is_foreign) as stage:
        files = _write_outputs(volume, result, stage, scorer, seconds, other_series, extra_report, parametric_map)
    return {key: out_dir / path.name for key, path in files.items()}


def _write_outputs(volume, result: StudyResult, out_dir: Path, scorer: VolumeScorer, seconds: float,
                   other_series: int, extra_report: dict[str, Any] | None, parametric_map: bool) -> dict[str, Path]:
    from adaptclip_med.outputs.dicom_seg import write_dicom_seg
    from adaptclip_med.outputs.nifti import write_nifti
    from adaptclip_med.outputs.overlay import save_overlay_png
    from adaptclip_med.outputs.parametric_map import write_parametric_map
    from adaptclip_med.outputs.plots import save_score_plot
    from adaptclip_med.outputs.tables import write_slices_csv, write_study_json

    from adaptclip_med.errors import InputError

    files: dict[str, Path] = {}
    notes: list[str] = []
    files["probability_nifti"] = write_nifti(result.probability, volume, out_dir / "anomaly_probability.nii.gz", np.float32)
    files["mask_nifti"] = write_nifti(result.mask.astype(np.uint8), volume, out_dir / "anomaly_mask.nii.gz", np.uint8)
    if volume.source_kind == "dicom":
        files["dicom_seg"] = write_dicom_seg(result.mask, volume, out_dir / "anomaly_seg.dcm", algorithm_name=scorer.method.display_name,
                                             software_version=__version__,
                                             series_description=f"{scorer.method.display_name} anomaly mask (research)")
        if parametric_map:
            try:
                files["parametric_map"] = write_parametric_map(result.probability, volume, out_dir / "anomaly_pmap.dcm",
                                                                algorithm_name=scorer.method.display_name,
                                                                software_version=__version__)
            except InputError as exc:  # e.g. 2-D sources: the IOD needs a frame of reference
                log.warning("%s", exc)
                notes.append(str(exc))
    rows = [{"index": s.index, "position_mm": round(s.position_mm, 3), "score": None if s.skipped else round(s.score, 6),
             "skipped": s.skipped, "skip_reason": s.skip_reason or ""} for s in result.slices]
    files["slices_csv"] = write_slices_csv(out_dir / "slices.csv", rows)
    overlays = []
    for rank, z in enumerate(result.top_slices, start=1):
        overlays.append(save_overlay_png(out_dir / f"overlay_top{rank}_slice{z:04d}.png", result.prepared.slices01[z],
                                         result.probability[z], result.threshold))
    files.update({f"overlay_top{i}": p for i, p in enumerate(overlays, start=1)})
    scores = np.array([np.nan if s.skipped else s.score for s in result.slices])
    files["score_plot"] = save_score_plot(out_dir / "score_plot.png", np.array([s.position_mm for s in result.slices]),
                                          scores, np.array([s.skipped for s in result.slices]), result.top_slices,
                                          title="slice anomaly scores (research use only)")
    report = {
        "score": result.score, "aggregate": result.aggregate,
        "top_slices": [{"index": z, "position_mm": result.slices[z].position_mm, "score": result.slices[z].score,
                        "matched_reference_slices": result.slices[z].matched} for z in result.top_slices],
        "threshold": result.threshold, "threshold_source": result.threshold_source,
        "slices": {"total": len(result.slices), "scored": len(result.scored()),
                   "skipped": len(result.slices) - len(result.scored())},
        "mask_voxels": int(result.mask.sum()), "source": {"kind": volume.source_kind, "modality": volume.modality,
                                                          "shape_zyx": list(result.probability.shape),
                                                          "spacing_mm": [float(s) for s in volume.spacing],
                                                          "other_image_series_in_input": other_series},
        "scoring": scorer.describe(), "software": {"name": "adaptclip-med", "version": __version__},
        "seconds": round(seconds, 2), "files": {k: p.name for k, p in files.items()}, "disclaimer": NOT_FOR_CLINICAL_USE,
    }
    if notes:
        report["notes"] = notes
    if extra_report:
        report.update(extra_report)
    files["study_json"] = write_study_json(out_dir / STUDY_JSON, report)
    return files
