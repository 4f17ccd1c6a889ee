"""Exports of a signed-off study: the reviewed mask (NIfTI, DICOM SEG), the reviewed SR (the
reader's decision, the reader as observer) and the HTML/PDF report.

The reviewed mask is the anomaly map thresholded at the reviewer's threshold (the override saved
with the decision, else the model's), so what was signed off is exactly what is exported.  Files
go to ``<output>/reviewed/<study key>/``; the key is pseudonymous, so no file name carries a
patient identifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from adaptclip_med.version import __version__
from adaptclip_med.outputs import layout
from adaptclip_med.outputs.result_series import ResultRun
from adaptclip_med.outputs.findings import find_findings
from adaptclip_med.outputs.slice_numbers import instance_of, slice_label
from adaptclip_med.review.references import matched_slice
from adaptclip_med.review.rendering import Window, grey_rgb, overlay_slice
from adaptclip_med.review.report import KeySlice, ReportContent, write_html_report, write_pdf_report
from adaptclip_med.review.store import Review
from adaptclip_med.outputs.layout import PROBABILITY_NIFTI
from adaptclip_med.review.study_data import ReviewStudy
from adaptclip_med.utils.atomic import atomic_path
from adaptclip_med.utils.keys import key_path
from adaptclip_med.volume.bank.reader import ReferenceBank

REVIEWED_DIR = "reviewed"
KEY_SLICES = 4
REPORT_IMAGE_SIZE = 256


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    files: dict[str, Path]
    notes: list[str]  # what could not be exported and why
    revision: int = 1  # the review revision these files show


def reviewed_threshold(study: ReviewStudy, review: Review) -> float:
    return study.threshold if review.threshold_override is None else float(review.threshold_override)


def export_folder(output: Path, study_key: str) -> Path:
    return key_path(Path(output) / REVIEWED_DIR, study_key)


def export_name(study_key: str, revision: int, name: str) -> str:
    """File names carry the pseudonymous study key and the review revision: ``<key>_r2_report.html``."""
    return f"{study_key}_r{int(revision)}_{name}"


def reviewed_mask(study: ReviewStudy, threshold: float, accepted: set[int] | None) -> np.ndarray:
    """The map at the reviewed threshold, restricted to the findings the reader accepted
    (``accepted``: finding ids as the findings list numbers them; None: every region)."""
    if accepted is None:
        return study.probability >= threshold
    from adaptclip_med.outputs.findings import labelled_findings

    labels = labelled_findings(study.probability, threshold, study.spacing).labels
    return np.isin(labels, sorted(accepted)) & (labels > 0)


def export_masks(study: ReviewStudy, threshold: float, folder: Path, revision: int = 1,
                 run: ResultRun | None = None, accepted: set[int] | None = None) -> tuple[dict[str, Path], list[str]]:
    """Reviewed mask as NIfTI (always) and DICOM SEG (DICOM source images only); ``run`` numbers the
    SEG's series (one per export, distinct from the algorithm's series); ``accepted``: the finding
    ids the reader accepted (the rejected ones are left out), None for the whole mask."""
    run = run or ResultRun()
    name = lambda leaf: export_name(study.study_key, revision, leaf)  # noqa: E731
    files: dict[str, Path] = {}
    notes: list[str] = []
    mask = reviewed_mask(study, threshold, accepted)
    if accepted is not None and study.volume is None:
        notes.append("Without the source images the reviewed NIfTI mask holds every region at the threshold")
    if study.volume is not None:
        from adaptclip_med.outputs.nifti import write_nifti

        files["mask_nifti"] = write_nifti(mask.astype(np.uint8), study.volume, folder / name(layout.REVIEWED_MASK_NIFTI), np.uint8)
    else:
        files["mask_nifti"] = _mask_from_probability_file(study.output_dir / PROBABILITY_NIFTI, threshold,
                                                          folder / name(layout.REVIEWED_MASK_NIFTI))
    if study.volume is not None and study.volume.source_kind == "dicom":
        from adaptclip_med.outputs.dicom_seg import write_dicom_seg

        files["dicom_seg"] = write_dicom_seg(mask, study.volume, folder / name(layout.REVIEWED_SEG), algorithm_name="AdaptCLIP",
                                             software_version=__version__, series_number=run.series_number("REVIEWED_SEG"),
                                             series_description=run.series_description("AdaptCLIP", "REVIEWED_SEG"))
    else:
        notes.append("DICOM SEG needs the source DICOM series (not available for this study)")
    return files, notes


def _mask_from_probability_file(probability_file: Path, threshold: float, target: Path) -> Path:
    """Without the source images the stored map's own geometry (= the source geometry) is used."""
    import nibabel as nib

    image = nib.load(str(probability_file))
    mask = (np.asarray(image.dataobj) >= threshold).astype(np.uint8)
    out = nib.Nifti1Image(mask, image.affine, image.header)
    out.set_data_dtype(np.uint8)
    with atomic_path(target) as tmp:
        nib.save(out, str(tmp))
    return target


def report_content(study: ReviewStudy, review: Review, window: Window, bank: ReferenceBank | None,
                   alpha: float = 0.45) -> ReportContent:
    """What the report shows: facts, findings at the reviewed threshold, key slices with overlays."""
    threshold = reviewed_threshold(study, review)
    findings = find_findings(study.probability, threshold, study.spacing)
    keys = list(dict.fromkeys([f.peak_slice for f in findings] + study.top_slices))[:KEY_SLICES]
    key_slices = []
    for z in keys:
        base = window.apply(study.volume.array[z]) if study.volume is not None else np.zeros(study.probability.shape[1:], np.float32)
        image = np.asarray(Image.fromarray(overlay_slice(base, study.probability[z], threshold, alpha))
                           .resize((REPORT_IMAGE_SIZE, REPORT_IMAGE_SIZE)))
        match = matched_slice(bank, study, z) if bank is not None else None
        key_slices.append(KeySlice(z, float(study.slice_scores[z]), image, slice_label(z, instance_of(study.instances, z)),
                                   grey_rgb(match.thumbnail, REPORT_IMAGE_SIZE) if match is not None else None))
    return ReportContent(study.study_key, review, study.score, study.threshold, threshold, study.model_summary(),
                         [f.describe(study.instances) for f in findings], study.slice_scores, key_slices,
                         study.comparability, value_unit=_value_unit(study), instances=tuple(study.instances))


def _value_unit(study: ReviewStudy) -> str:
    """HU for CT (the volume is in the modality's units), no unit for other signals."""
    return "HU" if str(getattr(study.volume, "modality", "")) == "CT" else ""


def export_review(study: ReviewStudy, review: Review, output: Path, window: Window,
                  bank: ReferenceBank | None = None, with_context: bool = False) -> ExportResult:
    """Write masks and both reports for a signed-off study.  ``with_context``: the reports name the
    patient (for a user the login established; file names never do)."""
    folder = export_folder(output, study.study_key)
    run = ResultRun()
    files, notes = export_masks(study, reviewed_threshold(study, review), folder, review.revision, run,
                                accepted=review.accepted_ids())
    if "dicom_seg" in files:
        from adaptclip_med.review.reviewed_sr import write_reviewed_sr

        files["reviewed_sr"] = write_reviewed_sr(study, review, reviewed_threshold(study, review), files["dicom_seg"],
                                                 folder / export_name(study.study_key, review.revision, layout.REVIEWED_SR),
                                                 run)
    else:
        notes.append("Reviewed DICOM SR needs the source DICOM series (not available for this study)")
    content = report_content(study, review, window, bank)
    if with_context:
        from dataclasses import replace as _replace

        from adaptclip_med.review.study_context import patient_context

        found = patient_context(study.volume)
        content = _replace(content, context=tuple(found.facts()) if found is not None else ())
    files["report_html"] = write_html_report(folder / export_name(study.study_key, review.revision, layout.REVIEW_REPORT_HTML), content)
    files["report_pdf"] = write_pdf_report(folder / export_name(study.study_key, review.revision, layout.REVIEW_REPORT_PDF), content)
    return ExportResult(folder, files, notes, review.revision)
