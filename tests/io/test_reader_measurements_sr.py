"""The reader's measurements in the reviewed SR (issue 25 item 6): a distance as a TID 1410 group
with a POLYLINE of its two ends and a Length, an ellipse ROI as an ELLIPSE with Mean / SD (HU) and
Area, each on the source image of its slice at the right pixels; dciodvfy-clean, read back with
highdicom."""

from __future__ import annotations

import numpy as np
import pytest

import highdicom as hd
from adaptclip_med.io.loader import load_study
from adaptclip_med.outputs.dicom_sources import source_aligned_frames, source_image_refs
from adaptclip_med.outputs.dicom_sr import PersonObserver, StudyFinding, write_measurement_report
from adaptclip_med.outputs.equipment import AlgorithmEquipment
from adaptclip_med.outputs.reader_measurements import place
from adaptclip_med.review.measurements import measure

from tests.support.dicom_validation import assert_dicom_conformant

SCORING = {"method": "adaptclip", "model": {"method": "adaptclip", "weights_sha256": "cd" * 8}, "threshold": 0.5,
           "threshold_source": "default"}


def _source_pixel(volume, z: int, y: int, x: int):
    """Where canonical voxel (z, y, x) lands: (source image, column + 0.5, row + 0.5), found by
    pushing a marker through the writers' own frame mapping."""
    marker = np.zeros(volume.array.shape, np.int32)
    marker[z, y, x] = 1
    headers, frames = source_aligned_frames(marker, volume, "SR")
    frame, row, column = (int(v[0]) for v in np.nonzero(frames))
    return source_image_refs(headers, frames.shape[0])[frame], column + 0.5, row + 0.5


@pytest.mark.parametrize("multiframe", [False, True])
def test_distance_and_ellipse_are_planar_groups_on_their_source_images(write_series, tmp_path, multiframe):
    volume, _ = load_study(write_series("study", shuffle_seed=3, multiframe=multiframe))
    affine = volume.reorientation.canonical_affine(volume.source_affine)
    z = volume.array.shape[0] // 2
    kept = [m.as_dict() for m in measure(volume.array, affine, [
        {"kind": "distance", "z": z, "points": [[10, 12], [30, 40]]},
        {"kind": "ellipse", "z": z, "points": [[20, 20], [36, 44]]}])]
    placed, skipped = place(volume, affine, kept, volume.modality)
    assert skipped == [] and [p.graphic_type for p in placed] == ["POLYLINE", "ELLIPSE"]
    image, column, row = _source_pixel(volume, z, 10, 12)
    assert (placed[0].image.sop_instance_uid, placed[0].image.frame_number) == (image.sop_instance_uid, image.frame_number)
    assert placed[0].graphic_data[0] == pytest.approx([column, row])
    _, column, row = _source_pixel(volume, z, 30, 40)
    assert placed[0].graphic_data[1] == pytest.approx([column, row])

    equipment = AlgorithmEquipment.for_scoring("AdaptCLIP", SCORING)
    headers, _ = source_aligned_frames(volume.array, volume, "SR")
    path = write_measurement_report(
        tmp_path / "reviewed.dcm", source_images=headers, segmentation=None,
        observer=PersonObserver("Jane Roe", login_name="jroe", organization="Radiology"), algorithm=equipment,
        finding=StudyFinding(False, "reader decision: Normal"), regions=[], reader_measurements=placed,
        series_number=9, series_description="Reviewed anomaly report")
    assert_dicom_conformant(path)
    sr = hd.sr.srread(path)
    groups = {g.tracking_identifier: g for g in sr.content.get_planar_roi_measurement_groups()}
    assert set(groups) == {"reader measurement M1", "reader measurement M2"}
    line, roi = groups["reader measurement M1"], groups["reader measurement M2"]
    assert line.roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
    assert np.allclose(line.roi.value, placed[0].graphic_data, atol=1e-3)
    on = line.roi.ContentSequence[0].ReferencedSOPSequence[0]
    assert on.ReferencedSOPInstanceUID == placed[0].image.sop_instance_uid
    (length,) = line.get_measurements()
    assert length.name.meaning == "Length" and length.value == pytest.approx(kept[0]["length_mm"])
    assert length.unit.value == "mm"
    assert roi.roi.graphic_type == hd.sr.GraphicTypeValues.ELLIPSE and len(roi.roi.value) == 4
    values = {m.name.meaning: (m.value, m.unit.value) for m in roi.get_measurements()}
    assert values["Mean"] == (pytest.approx(kept[1]["mean"]), "[hnsf'U]")
    assert values["Standard Deviation"][0] == pytest.approx(kept[1]["sd"])
    assert values["Area"] == (pytest.approx(kept[1]["area_mm2"]), "mm2")
    assert -1100 < kept[1]["mean"] < 3100 and kept[0]["length_mm"] > 0
