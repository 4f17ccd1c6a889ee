"""Bundle postprocessing: one MONAI dictionary transform per study output.

Each transform runs ONE writer unit of :mod:`adaptclip_med.outputs.study_writers` on the decollated
``pred`` dictionary of a study (``study``, ``volume``, ``result``, ``scorer``, ``seconds``) into
``output_dir/<study>``, and records what it wrote in ``pred["files"]``.  A config lists the
transforms it wants; :class:`SaveStudyJsond` must come LAST (``study.json`` lists the files written
before it and marks the study complete).  The first transform of a study creates its folder and
removes a stale ``study.json``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from monai.config import KeysCollection
from monai.transforms import MapTransform

from adaptclip_med.outputs import study_writers as sw
from adaptclip_med.volume.study_run import StudyOutputs, scoring_record

CONTEXT_KEY = "context"


def study_context(pred: dict[str, Any], output_dir: Path) -> sw.StudyContext:
    """The writers' shared context of one study prediction (created, and its folder prepared, once)."""
    context = pred.get(CONTEXT_KEY)
    if context is None:
        context = sw.StudyContext(pred["volume"], pred["result"], Path(output_dir) / str(pred["study"]),
                                  scoring_record(pred["scorer"]), float(pred.get("seconds", 0.0)),
                                  extra_report={"bundle_study": str(pred["study"])})
        context.prepare_folder()
        pred[CONTEXT_KEY] = context
        pred["files"] = context.files
    return context


class SaveStudyOutputd(MapTransform):
    """Run :attr:`writers` on each prediction under ``keys`` (``pred``)."""

    writers: ClassVar[tuple[sw.StudyWriter, ...]] = ()

    def __init__(self, keys: KeysCollection = "pred", output_dir: str | Path = "eval",
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            context = study_context(d[key], self.output_dir)
            for writer in self.writers:  # each isolated: one failing output never loses the others
                writer(context) if writer is sw.STUDY_REPORT else sw.run_isolated(writer, context)
        return d


class SaveProbabilityNiftid(SaveStudyOutputd):
    """``anomaly_probability.nii.gz`` (float32, source geometry)."""
    writers = (sw.PROBABILITY_NIFTI,)


class SaveMaskNiftid(SaveStudyOutputd):
    """``anomaly_mask.nii.gz`` (uint8, source geometry)."""
    writers = (sw.MASK_NIFTI,)


class SaveDicomSegd(SaveStudyOutputd):
    """``anomaly_seg.dcm`` (DICOM input only; nothing for NIfTI or image input)."""
    writers = (sw.DICOM_SEG,)


class SaveParametricMapd(SaveStudyOutputd):
    """``anomaly_pmap.dcm`` (DICOM input only)."""
    writers = (sw.PARAMETRIC_MAP,)


class SaveDicomSrd(SaveStudyOutputd):
    """``anomaly_sr.dcm``: TID 1500 measurement report (DICOM input only; after :class:`SaveDicomSegd`)."""
    writers = (sw.DICOM_SR,)


class SaveKeyObjectsd(SaveStudyOutputd):
    """``anomaly_kos.dcm``: Key Object Selection of the top slices (DICOM input only)."""
    writers = (sw.KEY_OBJECTS,)


class SaveSlicesCsvd(SaveStudyOutputd):
    """``slices.csv``."""
    writers = (sw.SLICES_CSV,)


class SaveOverlaysd(SaveStudyOutputd):
    """``overlay_top{rank}_slice{z:04d}.png`` for the top slices."""
    writers = (sw.OVERLAYS,)


class SaveScorePlotd(SaveStudyOutputd):
    """``score_plot.png``."""
    writers = (sw.SCORE_PLOT,)


class SaveStudyJsond(SaveStudyOutputd):
    """``study.json``, LAST: lists the files written before it; its presence marks the study done."""
    writers = (sw.STUDY_REPORT,)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = super().__call__(data)
        for key in self.key_iterator(d):
            pred = d[key]
            pred["outputs"] = StudyOutputs(self.output_dir / str(pred["study"]), pred["result"], dict(pred["files"]),
                                           not_written=dict(pred[CONTEXT_KEY].not_written))
        return d


class WriteStudyOutputsd(SaveStudyOutputd):
    """Every default output in one transform (what ``adaptclip-med score`` writes), ``study.json`` last."""

    def __init__(self, keys: KeysCollection = "pred", output_dir: str | Path = "eval", parametric_map: bool = False,
                 allow_missing_keys: bool = False, key_objects: bool = False) -> None:
        super().__init__(keys, output_dir, allow_missing_keys)
        self.writers = (*sw.default_writers(parametric_map=parametric_map, key_objects=key_objects),  # type: ignore[misc]
                        sw.STUDY_REPORT)


#: Config name -> transform, in the order the default config lists them.
OUTPUT_TRANSFORMS = {"probability_nifti": SaveProbabilityNiftid, "mask_nifti": SaveMaskNiftid,
                     "dicom_seg": SaveDicomSegd, "parametric_map": SaveParametricMapd, "dicom_sr": SaveDicomSrd,
                     "key_objects": SaveKeyObjectsd, "slices_csv": SaveSlicesCsvd,
                     "overlays": SaveOverlaysd, "score_plot": SaveScorePlotd, "study_json": SaveStudyJsond}
