"""A scored DICOM study gets the IHE AI Results set in its own study (SEG, SR, Parametric Map,
key objects), each valid, listed in study.json, with the algorithm in Contributing Equipment;
re-scoring gives distinct series; NIfTI input gets none of them, with a note."""

from __future__ import annotations

import json

import highdicom as hd
import numpy as np
import pydicom
import pytest
from tests.support.dicom_validation import assert_dicom_conformant

OBJECTS = {"dicom_seg": "anomaly_seg.dcm", "parametric_map": "anomaly_pmap.dcm", "dicom_sr": "anomaly_sr.dcm",
           "key_objects": "anomaly_kos.dcm"}


@pytest.fixture()
def scorer(tiny_loaded, tiny_options):
    from adaptclip_med.volume.pipeline import make_scorer

    return make_scorer(tiny_options.with_output(threshold=0.3), tiny_loaded)


def _sources(folder):
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.iterdir()) if p.suffix == ".dcm"]


def test_scored_dicom_study_gets_every_result_object_in_its_study(demo_data, scorer, tmp_path):
    from adaptclip_med.outputs.dicom_seg import SEGMENT_RGB
    from adaptclip_med.outputs.frame_order import slice_distances
    from adaptclip_med.volume.study_run import score_study

    first = score_study(demo_data.study_dir, tmp_path / "run1", scorer, parametric_map=True, key_objects=True)
    second = score_study(demo_data.study_dir, tmp_path / "run2", scorer, parametric_map=True, key_objects=True)
    sources = _sources(demo_data.study_dir)
    study_uid = sources[0].StudyInstanceUID
    by_uid = {s.SOPInstanceUID: s for s in sources}
    report = json.loads((tmp_path / "run1" / "study.json").read_text())
    assert {key: report["files"][key] for key in OBJECTS} == OBJECTS
    device_uid = report["dicom_results"]["device_uid"]
    numbers = []
    for key, name in OBJECTS.items():
        path = first.files[key]
        assert path.name == name
        assert_dicom_conformant(path)
        dataset = pydicom.dcmread(path)
        assert dataset.StudyInstanceUID == study_uid
        ours = [e for e in dataset.ContributingEquipmentSequence if e.PurposeOfReferenceCodeSequence[0].CodeValue == "Newcode1"]
        assert len(ours) == 1 and ours[0].DeviceUID == device_uid and ours[0].ManufacturerModelName == "AdaptCLIP"
        again = pydicom.dcmread(second.files[key], stop_before_pixels=True)
        assert again.SeriesNumber != dataset.SeriesNumber and again.SeriesDescription != dataset.SeriesDescription
        assert dataset.SeriesDescription.startswith("AdaptCLIP ")
        assert report["dicom_results"]["series"][key] == {"series_number": dataset.SeriesNumber,
                                                          "series_description": dataset.SeriesDescription}
        numbers += [dataset.SeriesNumber, again.SeriesNumber]
    assert len(set(numbers)) == len(numbers)  # every result series of both runs has its own number

    seg = hd.seg.segread(first.files["dicom_seg"])
    colour = seg.get_segment_description(1).RecommendedDisplayCIELabValue
    assert hd.color.CIELabColor.from_dicom_value(colour).to_rgb() == pytest.approx(SEGMENT_RGB, abs=1)

    pmap = pydicom.dcmread(first.files["parametric_map"])
    distances = slice_distances(pmap)
    assert np.all(np.diff(distances) > 0)  # ascending slice position: OHIF stacks frames in file order
    for group in pmap.PerFrameFunctionalGroupsSequence:  # each frame still on its own source image
        source = by_uid[group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]
        np.testing.assert_allclose(group.PlanePositionSequence[0].ImagePositionPatient, source.ImagePositionPatient)

    sr = hd.sr.srread(first.files["dicom_sr"])
    groups = sr.content.get_volumetric_roi_measurement_groups()
    (study,) = sr.content.get_image_measurement_groups()
    regions = {m.name.meaning: m.value for m in study.get_measurements()}["Number of anomaly regions"]
    assert (len(groups) > 0) == (report["mask_voxels"] > 0) and len(groups) == min(regions, 8)
    qualitative = study.get_qualitative_evaluations()[0]
    assert qualitative.value.meaning == ("Present" if report["mask_voxels"] else "Absent")
    for group in groups:
        assert group.referenced_segment[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID

    kos = pydicom.dcmread(first.files["key_objects"])
    referenced = {item.ReferencedSOPInstanceUID for series in kos.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
                  for item in series.ReferencedSOPSequence}
    top_positions = sorted(round(s["position_mm"], 3) for s in report["top_slices"])
    assert sorted(round(_along_normal(by_uid[uid]), 3) for uid in referenced) == top_positions


def _along_normal(header) -> float:
    orientation = np.asarray(header.ImageOrientationPatient, dtype=float)
    return float(np.dot(np.asarray(header.ImagePositionPatient, dtype=float), np.cross(orientation[:3], orientation[3:])))


def test_sr_records_the_threshold_its_source_and_the_comparability(demo_data, scorer, tmp_path):
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.outputs.study_writers import NOT_FOR_CLINICAL_USE
    from adaptclip_med.volume.study_run import run_study

    volume, _ = load_study(demo_data.study_dir)
    out = run_study(volume, scorer, tmp_path / "out")
    assert "dicom_sr" in out.files and "key_objects" not in out.files and "parametric_map" not in out.files
    sr = hd.sr.srread(out.files["dicom_sr"])
    study = sr.content.get_image_measurement_groups()[0]
    values = {m.name.meaning: m.value for m in study.get_measurements()}
    assert values["Operating threshold"] == pytest.approx(0.3)
    texts: dict[str, list[str]] = {}
    for item in study[0].ContentSequence:
        if item.ValueType == "TEXT":
            texts.setdefault(item.name.meaning, []).append(item.TextValue)
    assert texts["Operating threshold source"] == ["user"] and "0.3 (user)" in texts["Basis of finding"][0]
    # the guard's verdict, as the worklist and study.json say it (no bank here: not assessed, with the reason)
    assert texts["Comment"] == [NOT_FOR_CLINICAL_USE, f"Comparability: {out.comparability.line()}"]
    assert texts["Comment"][1].startswith("Comparability: not assessed: no reference bank")


def test_nifti_input_gets_no_dicom_results_and_a_note(demo_data, scorer, tmp_path):
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.outputs.nifti import write_nifti
    from adaptclip_med.volume.study_run import score_study

    volume, _ = load_study(demo_data.study_dir)
    nifti = tmp_path / "study.nii.gz"
    write_nifti(volume.array, volume, nifti, np.float32)
    out = score_study(nifti, tmp_path / "out", scorer, parametric_map=True, key_objects=True)
    report = json.loads((tmp_path / "out" / "study.json").read_text())
    assert not set(OBJECTS) & set(out.files) and not list((tmp_path / "out").glob("*.dcm"))
    assert [n for n in report["notes"] if "not DICOM" in n] and report.get("dicom_results") is None


def test_device_uid_of_real_scorers_follows_the_bank(bank, tiny_loaded, tiny_options, tmp_path):
    """The Device UID comes from the scorer's description: the bank's identity (incl. its creation
    time, so a rebuilt bank differs) is in it; the same scorer settings give the same UID."""
    import shutil

    from adaptclip_med.outputs.equipment import AlgorithmEquipment
    from adaptclip_med.volume.pipeline import make_scorer

    with_bank = make_scorer(tiny_options.with_references(bank=str(bank), shots=2), tiny_loaded).describe()
    assert with_bank["reference_bank"]["created"]
    again = make_scorer(tiny_options.with_references(bank=str(bank), shots=2), tiny_loaded).describe()
    zero_shot = make_scorer(tiny_options, tiny_loaded).describe()
    rebuilt = tmp_path / "rebuilt"
    shutil.copytree(bank, rebuilt)
    meta = json.loads((rebuilt / "bank.json").read_text())
    meta["created"] = "2030-01-01T00:00:00+0000"
    (rebuilt / "bank.json").write_text(json.dumps(meta))
    other = make_scorer(tiny_options.with_references(bank=str(rebuilt), shots=2), tiny_loaded).describe()
    uid = lambda scoring: AlgorithmEquipment.for_scoring("AdaptCLIP", scoring).device_uid  # noqa: E731
    assert uid(with_bank) == uid(again)
    assert len({uid(with_bank), uid(zero_shot), uid(other)}) == 3
