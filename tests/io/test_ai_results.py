"""IHE AI Results objects: the TID 1500 SR (device and person observers), Contributing Equipment
and its Device UID, Key Object Selection, SEG colour, Parametric Map frame order, and distinct
result series per run.  Every object passes dciodvfy; the SR reads back through highdicom."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from io_helpers import SPACING

import highdicom as hd
from adaptclip_med.io.loader import load_study
from adaptclip_med.outputs.dicom_seg import write_dicom_seg
from adaptclip_med.outputs.dicom_sources import source_aligned_frames
from adaptclip_med.outputs.dicom_sr import (
    DeviceObserver,
    PersonObserver,
    StudyFinding,
    write_measurement_report,
)
from adaptclip_med.outputs.equipment import PROCESSING_ALGORITHM, AlgorithmEquipment, device_uid
from adaptclip_med.outputs.regions import anomaly_regions

from tests.support.dicom_validation import assert_dicom_conformant

SCORING = {"method": "adaptclip", "model": {"method": "adaptclip", "weights_sha256": "ab" * 8},
           "reference_bank": {"name": "ct-head", "key": "k1", "created": "2026-01-01T00:00:00"}, "threshold": 0.5,
           "threshold_source": "default"}


def _two_regions(shape: tuple[int, int, int]) -> np.ndarray:
    """A map with two separate regions: a 3-slice block peaking at 0.95 on slice 3 and a one-slice
    bar at 0.6 on slice 6."""
    probability = np.zeros(shape, np.float32)
    probability[2:5, 10:20, 10:18] = 0.7
    probability[3, 14, 14] = 0.95
    probability[6, 30:33, 30:40] = 0.6
    return probability


def _study(write_series, multiframe=False):
    volume, _ = load_study(write_series("study", shuffle_seed=3, multiframe=multiframe))
    probability = _two_regions(volume.array.shape)
    equipment = AlgorithmEquipment.for_scoring("AdaptCLIP", SCORING)
    return volume, probability, equipment


def _seg_and_sources(volume, probability, equipment, tmp_path):
    seg = write_dicom_seg(probability >= 0.5, volume, tmp_path / "seg.dcm", algorithm_name="AdaptCLIP",
                          equipment=equipment)
    headers, _ = source_aligned_frames(probability, volume, "SR")
    return seg, headers


def _texts(group) -> dict[str, list[str]]:
    """The group's TEXT items by concept name (tracking identifier and algorithm lines left out)."""
    out: dict[str, list[str]] = {}
    for item in group[0].ContentSequence:
        if item.ValueType == "TEXT" and (item.name.scheme_designator == "99ACMED" or item.name.meaning == "Comment"):
            out.setdefault(item.name.meaning, []).append(item.TextValue)
    return out


def _groups_by_id(groups):
    return {g.tracking_identifier: g for g in groups}


@pytest.mark.parametrize("multiframe", [False, True])
def test_device_sr_round_trip_recovers_regions_segment_outline_and_observer(write_series, tmp_path, multiframe):
    volume, probability, equipment = _study(write_series, multiframe)
    seg_path, headers = _seg_and_sources(volume, probability, equipment, tmp_path)
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    found = anomaly_regions(probability, 0.5, volume)
    assert [r.finding_id for r in found.regions] == [1, 2] and found.total == 2
    sr_path = write_measurement_report(
        tmp_path / "sr.dcm", source_images=headers, segmentation=seg, observer=DeviceObserver(equipment),
        algorithm=equipment, finding=StudyFinding.at_threshold(found.total, 0.5, "default", 0.81),
        regions=found.regions, series_number=7, series_description="AdaptCLIP anomaly report")
    assert_dicom_conformant(sr_path)
    assert_dicom_conformant(seg_path)

    sr = hd.sr.srread(sr_path)
    assert sr.StudyInstanceUID == headers[0].StudyInstanceUID and sr.CompletionFlag == "COMPLETE"
    voxel_mm3 = float(np.prod(SPACING))
    volumetric = _groups_by_id(sr.content.get_volumetric_roi_measurement_groups())
    planar = _groups_by_id(sr.content.get_planar_roi_measurement_groups())
    assert sorted(volumetric) == sorted(planar) == ["anomaly region 1", "anomaly region 2"]
    for region in found.regions:
        group, outline_group = volumetric[region.label], planar[region.label]
        assert group.tracking_uid == outline_group.tracking_uid  # one finding, two groups
        values = {(m.name.meaning, m.derivation.meaning if m.derivation else None): m.value for m in group.get_measurements()}
        assert values[("Volume", None)] == pytest.approx(region.voxels * voxel_mm3)
        assert values[("Anomaly score", "Maximum")] == pytest.approx(region.peak_score, abs=1e-6)
        assert values[("Anomaly score", "Mean")] == pytest.approx(region.mean_score, abs=1e-6)
        assert values[("Peak slice number", None)] == region.peak_slice + 1  # the viewer's 1-based numbering
        reference = group.referenced_segment[0].ReferencedSOPSequence[0]
        assert reference.ReferencedSOPInstanceUID == seg.SOPInstanceUID and reference.ReferencedSegmentNumber == 1
        roi = outline_group.roi
        assert roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
        points = roi.value
        np.testing.assert_array_equal(points[0], points[-1])  # closed
        image = roi.ContentSequence[0].ReferencedSOPSequence[0]
        assert image.ReferencedSOPInstanceUID == region.peak_image.sop_instance_uid
        if multiframe:
            assert int(image.ReferencedFrameNumber) == region.peak_image.frame_number
    first, second = found.regions
    assert first.voxels == 3 * 10 * 8 and first.peak_score == pytest.approx(0.95) and first.peak_slice == 3
    assert first.outline_area_mm2 == pytest.approx(10 * 8 * SPACING[1] * SPACING[2])
    assert second.voxels == 30 and second.peak_slice == 6 and second.mean_score == pytest.approx(0.6)
    # the outline encloses the region's cross-section on its peak image (pixel coordinates: column, row)
    columns, rows = first.outline[:, 0], first.outline[:, 1]
    assert (columns.min(), columns.max(), rows.min(), rows.max()) == (10.0, 18.0, 10.0, 20.0)

    study = sr.content.get_image_measurement_groups()
    assert [g.tracking_identifier for g in study] == ["study finding"]
    assert [(q.name.meaning, q.value.meaning) for q in study[0].get_qualitative_evaluations()] == [
        ("Anomaly at operating threshold", "Present")]
    numbers = {m.name.meaning: m.value for m in study[0].get_measurements()}
    assert numbers == {"Number of anomaly regions": 2, "Study anomaly score": pytest.approx(0.81),
                       "Operating threshold": 0.5}
    texts = _texts(study[0])
    assert texts["Basis of finding"] == ["2 region(s) with anomaly probability >= operating threshold 0.5 (default)"]
    assert texts["Operating threshold source"] == ["default"]

    (observer,) = sr.content.get_observer_contexts()
    assert observer.observer_type == hd.sr.CodedConcept.from_code(pydicom.sr.codedict.codes.DCM.Device)
    assert observer.observer_identifying_attributes.uid == equipment.device_uid
    algorithm = next(item for item in volumetric["anomaly region 1"][0].ContentSequence
                     if item.name.meaning == "Algorithm Name")
    assert algorithm.TextValue == "AdaptCLIP"
    raw = pydicom.dcmread(sr_path)
    assert raw.VerificationFlag == "UNVERIFIED"
    _assert_algorithm_equipment(raw, equipment)
    _assert_algorithm_equipment(pydicom.dcmread(seg_path, stop_before_pixels=True), equipment)


def _assert_algorithm_equipment(dataset, equipment):
    ours = [item for item in dataset.ContributingEquipmentSequence
            if item.PurposeOfReferenceCodeSequence[0].CodeValue == PROCESSING_ALGORITHM.value]
    assert len(ours) == 1
    item = ours[0]
    assert item.PurposeOfReferenceCodeSequence[0].CodingSchemeDesignator == "99IHE"
    assert item.PurposeOfReferenceCodeSequence[0].CodeMeaning == "Processing Algorithm"
    assert (item.Manufacturer, item.ManufacturerModelName, item.SoftwareVersions, item.DeviceUID) == (
        "adaptclip-med", equipment.name, equipment.version, equipment.device_uid)


def test_person_observer_sr_reads_back_with_the_person_and_only_accepted_regions(write_series, tmp_path):
    volume, probability, equipment = _study(write_series)
    seg_path, headers = _seg_and_sources(volume, probability, equipment, tmp_path)
    found = anomaly_regions(probability, 0.5, volume).accepted([2])
    reader = PersonObserver("Jane Roe", login_name="jroe", organization="Radiology, Hospital A")
    sr_path = write_measurement_report(
        tmp_path / "reviewed.dcm", source_images=headers, segmentation=pydicom.dcmread(seg_path, stop_before_pixels=True),
        observer=reader, algorithm=equipment, regions=found.regions, regions_total=found.total,
        finding=StudyFinding(True, "reader decision: Confirmed anomaly"), notes=["bar-shaped region confirmed"],
        series_number=8, series_description="Reviewed anomaly report")
    assert_dicom_conformant(sr_path)
    sr = hd.sr.srread(sr_path)
    (observer,) = sr.content.get_observer_contexts()
    person = observer.observer_identifying_attributes
    assert isinstance(person, hd.sr.PersonObserverIdentifyingAttributes)
    assert str(person.name) == "Roe^Jane" and person.login_name == "jroe"
    assert sr.VerificationFlag == "VERIFIED" and str(sr.VerifyingObserverSequence[0].VerifyingObserverName) == "Roe^Jane"
    assert [g.tracking_identifier for g in sr.content.get_volumetric_roi_measurement_groups()] == ["anomaly region 2"]
    study = sr.content.get_image_measurement_groups()[0]
    assert _texts(study) == {"Basis of finding": ["reader decision: Confirmed anomaly"],
                             "Comment": ["bar-shaped region confirmed"]}
    _assert_algorithm_equipment(pydicom.dcmread(sr_path), equipment)  # the algorithm still contributed


def test_nothing_found_gives_an_absent_finding_without_region_groups(write_series, tmp_path):
    volume, _, equipment = _study(write_series)
    empty = np.zeros(volume.array.shape, np.float32)
    found = anomaly_regions(empty, 0.5, volume)
    headers, _ = source_aligned_frames(empty, volume, "SR")
    sr_path = write_measurement_report(tmp_path / "sr.dcm", source_images=headers, segmentation=None,
                                       observer=DeviceObserver(equipment), algorithm=equipment, regions=found.regions,
                                       finding=StudyFinding.at_threshold(0, 0.5, "default", 0.1),
                                       series_number=7, series_description="none")
    assert_dicom_conformant(sr_path)
    sr = hd.sr.srread(sr_path)
    assert not sr.content.get_volumetric_roi_measurement_groups() and not sr.content.get_planar_roi_measurement_groups()
    (study,) = sr.content.get_image_measurement_groups()
    assert study.get_qualitative_evaluations()[0].value.meaning == "Absent"
    assert StudyFinding.at_threshold(0, 0.5, "default", float("nan")).score is None  # nothing scored: no NUM


def test_device_uid_follows_model_and_bank_identity():
    model, bank = SCORING["model"], SCORING["reference_bank"]
    same = AlgorithmEquipment.for_scoring("AdaptCLIP", dict(SCORING))
    assert same.device_uid == AlgorithmEquipment.for_scoring("AdaptCLIP", SCORING).device_uid == device_uid(model, bank)
    assert device_uid(model, {**bank, "created": "2026-02-02T00:00:00"}) != same.device_uid  # bank rebuilt
    assert device_uid(model, {**bank, "name": "ct-chest"}) != same.device_uid
    assert device_uid({**model, "weights_sha256": "cd" * 8}, bank) != same.device_uid  # other weights
    assert device_uid(model, None) != same.device_uid  # zero-shot, no bank
    assert same.device_uid.startswith("2.25.") and len(same.device_uid) <= 64
    # scoring details other than the identities (threshold) do not change the device
    assert AlgorithmEquipment.for_scoring("AdaptCLIP", {**SCORING, "threshold": 0.3}).device_uid == same.device_uid


TWO_D = ["examples_palette.dcm", "SC_rgb_rle_2frame.dcm", "JPEG2000.dcm", "image_dfl.dcm"]  # US, SC 2 frames, NM, OT


@pytest.mark.parametrize("name", TWO_D)
def test_sr_and_key_objects_of_2d_sources_are_conformant(tmp_path, name):
    import shutil

    from pydicom.data import get_testdata_file

    from adaptclip_med.outputs.dicom_sources import derivable_headers, slice_images
    from adaptclip_med.outputs.key_objects import write_key_object_selection

    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(get_testdata_file(name), source)
    volume, _ = load_study(source)
    probability = np.zeros(volume.array.shape, np.float32)
    probability[-1, 2:5, 2:5] = 0.9
    equipment = AlgorithmEquipment.unidentified("AdaptCLIP")
    seg = write_dicom_seg(probability >= 0.5, volume, tmp_path / "seg.dcm", algorithm_name="AdaptCLIP")
    found = anomaly_regions(probability, 0.5, volume)
    sr = write_measurement_report(tmp_path / "sr.dcm", source_images=derivable_headers(volume),
                                  segmentation=pydicom.dcmread(seg, stop_before_pixels=True),
                                  observer=DeviceObserver(equipment), algorithm=equipment,
                                  finding=StudyFinding.at_threshold(found.total, 0.5, "default", 0.9),
                                  regions=found.regions, series_number=1, series_description="sr")
    images = slice_images(volume, [volume.array.shape[0] - 1])
    kos = write_key_object_selection(tmp_path / "kos.dcm", images, equipment, series_number=2,
                                     series_description="kos", description="top slice")
    for path in (sr, kos):
        assert_dicom_conformant(path)
    (group,) = hd.sr.srread(sr).content.get_planar_roi_measurement_groups()
    assert group.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == images[0].sop_instance_uid


@pytest.mark.parametrize("multiframe", [False, True])
def test_parametric_map_frames_ascend_and_keep_their_source_images(write_series, tmp_path, multiframe):
    from adaptclip_med.outputs.frame_order import slice_distances
    from adaptclip_med.outputs.parametric_map import write_parametric_map

    volume, _ = load_study(write_series("study", shuffle_seed=3, multiframe=multiframe))
    depth = volume.array.shape[0]
    probability = np.broadcast_to((np.arange(depth, dtype=np.float32) / depth)[:, None, None], volume.array.shape)
    path = write_parametric_map(probability, volume, tmp_path / "pm.dcm",
                                equipment=AlgorithmEquipment.for_scoring("AdaptCLIP", SCORING))
    assert_dicom_conformant(path)
    pmap = pydicom.dcmread(path)
    distances = slice_distances(pmap)
    assert np.all(np.diff(distances) > 0)
    # frame i shows the canonical slice at that position, and references the source image there
    position_of = {round(float(p), 3): z for z, p in enumerate(volume.positions)}
    sources = {(s.sop_instance_uid, s.frame_number): z for z, s in enumerate(volume.sources)}
    canonical_of_source = _canonical_index_of_sources(volume)
    for index, group in enumerate(pmap.PerFrameFunctionalGroupsSequence):
        z = position_of[round(float(distances[index]), 3)]
        assert float(pmap.pixel_array[index].mean()) == pytest.approx(z / depth)
        reference = group.DerivationImageSequence[0].SourceImageSequence[0]
        frame = int(reference.ReferencedFrameNumber) if "ReferencedFrameNumber" in reference else None
        assert canonical_of_source[sources[(reference.ReferencedSOPInstanceUID, frame)]] == z
    dimension = [int(g.FrameContentSequence[0].DimensionIndexValues) for g in pmap.PerFrameFunctionalGroupsSequence]
    assert dimension == list(range(1, depth + 1))
    _assert_algorithm_equipment(pmap, AlgorithmEquipment.for_scoring("AdaptCLIP", SCORING))


def _canonical_index_of_sources(volume) -> dict[int, int]:
    """source-order slice k -> canonical slice index (the volume is a permutation of the source)."""
    marker = np.broadcast_to(np.arange(volume.array.shape[0])[:, None, None], volume.array.shape)
    source = volume.to_source_array(marker)
    return {k: int(source[k].flat[0]) for k in range(source.shape[0])}


def test_runs_get_distinct_series_numbers_and_descriptions_even_seconds_apart():
    from adaptclip_med.outputs.result_series import KIND_DIGITS, ResultRun

    start = 1_780_000_000.0
    runs = [ResultRun(start), ResultRun(start + 1), ResultRun(start + 30)]  # two within one 10-s step
    numbers = [run.series_number(kind) for run in runs for kind in KIND_DIGITS]
    assert len(set(numbers)) == len(numbers) and all(0 < n < 2**31 - 1 for n in numbers)
    assert runs[0].series_number("SEG") < runs[1].series_number("SEG") < runs[2].series_number("SEG")
    descriptions = [run.series_description("AdaptCLIP", "SEG") for run in runs]
    assert len(set(descriptions)) == 3 and all(d.startswith("AdaptCLIP anomaly SEG (research) ") for d in descriptions)
    assert descriptions[0].endswith("Z") and len(ResultRun(start + 60).series_description("x" * 80, "SR")) == 64


def test_findings_match_scipy_measurements_on_a_noisy_map():
    """labelled_findings measures each component inside its bounding box; the figures must equal
    scipy's whole-map measurements (which sort the whole map and were too slow for a CT)."""
    from scipy import ndimage

    from adaptclip_med.outputs.findings import labelled_findings

    probability = np.random.default_rng(4).random((6, 40, 40)).astype(np.float32)
    found = labelled_findings(probability, 0.8, (2.0, 1.0, 1.0), limit=1000)
    labels, count = ndimage.label(probability >= 0.8, structure=np.ones((3, 3, 3), bool))
    index = np.arange(1, count + 1)
    peaks = ndimage.maximum(probability, labels, index)
    order = np.argsort(-np.asarray(peaks), kind="stable")
    positions = ndimage.maximum_position(probability, labels, index)
    sizes = ndimage.sum(probability >= 0.8, labels, index)
    assert found.total == count == len(found.findings) > 20
    for finding, i in zip(found.findings, order):
        assert finding.peak_probability == pytest.approx(float(peaks[i]))
        assert finding.peak_slice == positions[i][0] and finding.voxels == int(sizes[i])
        assert (found.labels == finding.finding_id).sum() == finding.voxels
