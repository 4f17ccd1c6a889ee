"""Comprehensive 3D SR with the TID 1500 Measurement Report: the finding, in words a PACS keeps.

One writer serves the algorithm's own report and a reader's reviewed report; they differ only in
their arguments:

- ``observer``: a :class:`DeviceObserver` (the algorithm, an automatic result) or a
  :class:`PersonObserver` (the authenticated reader; with an organisation the document is marked
  VERIFIED by that person);
- ``finding``: the study-level qualitative finding (:class:`StudyFinding`): anomaly present or
  absent, in words why (the operating threshold and where it came from, or the reader's decision);
- ``regions``: the anomaly regions to report (all the algorithm found, or only those a reader
  accepted: :meth:`~adaptclip_med.outputs.regions.RegionSet.accepted`);
- ``notes``: free text (a reader's notes, a comparability statement), each a TEXT item.

Content tree (what a viewer shows):

- Measurement group "study finding" (TID 1501): CODE Anomaly = Present/Absent; TEXT basis; NUM
  study anomaly score, operating threshold, number of regions; TEXT threshold source; TEXT notes.
- Per region, a volumetric group (TID 1411) referencing segment 1 of the SEG: NUM volume (mm3),
  anomaly score maximum and mean, peak slice index (the peak score also references the image it
  lies on); and a planar group (TID 1410) with the SAME tracking identifier and UID holding the
  region's outline as a closed POLYLINE on that image, its area and peak score (OHIF draws SR
  regions only from spatial coordinates; a group can hold either a segment or a region, not both).
- Every group carries the Algorithm Identification (name, version, parameters incl. the method
  identity and bank).

highdicom's ``ReferencedSegment.from_segmentation`` fails on single-segment SEGs (the segment
sits in the shared functional groups), so the reference is built from the SEG's UIDs directly.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from adaptclip_med.outputs.equipment import LOCAL_SCHEME, AlgorithmEquipment, add_contributing_equipment, declare_coding_schemes
from adaptclip_med.outputs.dicom_sources import ImageRef
from adaptclip_med.outputs.regions import AnomalyRegion
from adaptclip_med.outputs.slice_numbers import slice_number
from adaptclip_med.utils.atomic import atomic_write_bytes


def _local(code: str, meaning: str) -> CodedConcept:
    return CodedConcept(value=code, scheme_designator=LOCAL_SCHEME, meaning=meaning)


#: The project's concepts (no standard code names an anomaly probability or its threshold).
ANOMALY = _local("ACM001", "Anomaly at operating threshold")
ANOMALY_SCORE = _local("ACM002", "Anomaly score")
STUDY_SCORE = _local("ACM003", "Study anomaly score")
OPERATING_THRESHOLD = _local("ACM004", "Operating threshold")
THRESHOLD_SOURCE = _local("ACM005", "Operating threshold source")
REGION_COUNT = _local("ACM006", "Number of anomaly regions")
#: the viewer's 1-based slice number (outputs/slice_numbers.py: one numbering in every output)
PEAK_SLICE = _local("ACM007", "Peak slice number")
FINDING_BASIS = _local("ACM008", "Basis of finding")
STUDY_FINDING_ID = "study finding"

NO_UNITS = CodedConcept(value="1", scheme_designator="UCUM", meaning="no units")
SLICE_UNIT = CodedConcept(value="{slice}", scheme_designator="UCUM", meaning="slice")
REGION_UNIT = CodedConcept(value="{regions}", scheme_designator="UCUM", meaning="regions")
MM3 = CodedConcept(value="mm3", scheme_designator="UCUM", meaning="cubic millimeter")
MM2 = CodedConcept(value="mm2", scheme_designator="UCUM", meaning="square millimeter")


# ---------------------------------------------------------------------------------- arguments
@dataclass(frozen=True)
class DeviceObserver:
    """The algorithm reports (automatic result)."""

    equipment: AlgorithmEquipment


@dataclass(frozen=True)
class PersonObserver:
    """A person reports (a reviewed result).  ``name``: as the login shows it ("Jane Roe") or in
    DICOM form ("Roe^Jane"); ``organization``: when given, the document is marked VERIFIED by
    this person for this organisation (a signed review)."""

    name: str
    login_name: str | None = None
    organization: str | None = None

    @property
    def dicom_name(self) -> str:
        """DICOM Person Name: "Jane Roe" -> "Roe^Jane", "jroe" -> "jroe^" (highdicom refuses a
        name without a component separator)."""
        name = " ".join(self.name.split())
        if "^" in name:
            return name
        given, _, family = name.rpartition(" ")
        return f"{family}^{given}" if given else f"{family}^"


Observer = DeviceObserver | PersonObserver


@dataclass(frozen=True)
class StudyFinding:
    """The study-level qualitative finding."""

    present: bool
    basis: str  # why, in one sentence (threshold rule, or the reader's decision)
    threshold: float | None = None
    threshold_source: str | None = None
    score: float | None = None  # the study anomaly score
    #: where the anomaly map peaks, (image, (column, row) pixel): the study group's spatial anchor
    #: (OHIF 3.13's SR viewport breaks on a measurement group without any spatial coordinate)
    peak: tuple[ImageRef, tuple[float, float]] | None = None

    @classmethod
    def at_threshold(cls, regions: int, threshold: float, threshold_source: str, score: float | None,
                     peak: tuple[ImageRef, tuple[float, float]] | None = None) -> "StudyFinding":
        """The algorithm's finding: present iff any voxel reaches the operating threshold (a NaN
        study score, when no slice was scored, is left out: a NUM item cannot hold it)."""
        if regions:
            basis = (f"{regions} region(s) with anomaly probability >= operating threshold {threshold:.4g} "
                     f"({threshold_source})")
        else:
            basis = f"no voxel reaches the operating threshold {threshold:.4g} ({threshold_source})"
        known = score is not None and math.isfinite(float(score))
        return cls(bool(regions), basis, float(threshold), threshold_source, float(score) if known else None, peak)


# ---------------------------------------------------------------------------------- content
def _observation_context(observer: Observer) -> hd.sr.ObservationContext:
    if isinstance(observer, PersonObserver):
        person = hd.sr.PersonObserverIdentifyingAttributes(name=observer.dicom_name, login_name=observer.login_name,
                                                           organization_name=observer.organization)
        return hd.sr.ObservationContext(observer_person_context=hd.sr.ObserverContext(codes.DCM.Person, person))
    equipment = observer.equipment
    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=equipment.device_uid, name=equipment.name,
                                                       manufacturer_name=equipment.manufacturer, model_name=equipment.name)
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(codes.DCM.Device, device))


def algorithm_identification(equipment: AlgorithmEquipment) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(name=equipment.name, version=equipment.version,
                                         parameters=list(equipment.parameters) or None)


def _text(name: CodedConcept, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)


def _image(ref: ImageRef) -> hd.sr.SourceImageForMeasurement:
    return hd.sr.SourceImageForMeasurement(ref.sop_class_uid, ref.sop_instance_uid, ref.referenced_frames)


def _peak_point(peak: tuple[ImageRef, tuple[float, float]] | None) -> list[hd.sr.CoordinatesForMeasurement] | None:
    """A study measurement INFERRED FROM the map's peak: a POINT on its image."""
    if peak is None:
        return None
    image, (column, row) = peak
    frames = [image.frame_number] if image.frame_number is not None else None
    return [hd.sr.CoordinatesForMeasurement(
        graphic_type=hd.sr.GraphicTypeValues.POINT, graphic_data=np.array([[column, row]], dtype=float),
        source_image=hd.sr.SourceImageForRegion(image.sop_class_uid, image.sop_instance_uid, frames))]


def study_group(finding: StudyFinding, regions_total: int, algorithm: AlgorithmEquipment,
                notes: Sequence[str]) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501 group of the study-level finding (and the notes)."""
    anchor = _peak_point(finding.peak)  # on the study score, or the region count when there is no score
    measurements = [hd.sr.Measurement(REGION_COUNT, regions_total, REGION_UNIT,
                                      referenced_coordinates=anchor if finding.score is None else None)]
    if finding.score is not None:
        measurements.append(hd.sr.Measurement(STUDY_SCORE, float(finding.score), NO_UNITS, referenced_coordinates=anchor))
    if finding.threshold is not None:
        measurements.append(hd.sr.Measurement(OPERATING_THRESHOLD, float(finding.threshold), NO_UNITS))
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=STUDY_FINDING_ID),
        algorithm_id=algorithm_identification(algorithm), measurements=measurements,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(ANOMALY, codes.SCT.Present if finding.present
                                                             else codes.SCT.Absent)])
    texts = [_text(FINDING_BASIS, finding.basis)]
    if finding.threshold_source:
        texts.append(_text(THRESHOLD_SOURCE, finding.threshold_source))
    texts.extend(_text(codes.DCM.Comment, note) for note in notes if note.strip())
    group[0].ContentSequence.extend(texts)
    return group


def region_groups(region: AnomalyRegion, segmentation: Dataset, segment_number: int, algorithm: AlgorithmEquipment,
                  ) -> tuple[hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations,
                             hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations]:
    """The volumetric group (SEG segment, volume, scores) and the planar group (outline) of one
    region, sharing one tracking identifier and UID."""
    tracking = hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=region.label)
    algorithm_id = algorithm_identification(algorithm)
    peak_on = [_image(region.peak_image)]
    segment = hd.sr.ReferencedSegment(
        sop_class_uid=str(segmentation.SOPClassUID), sop_instance_uid=str(segmentation.SOPInstanceUID),
        segment_number=segment_number,
        source_series=hd.sr.SourceSeriesForSegmentation(str(region.peak_image.header.SeriesInstanceUID)))
    volumetric = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, referenced_segment=segment, finding_type=codes.SCT.MorphologicallyAbnormalStructure,
        algorithm_id=algorithm_id, measurements=[
            hd.sr.Measurement(codes.SCT.Volume, region.volume_mm3, MM3),
            hd.sr.Measurement(ANOMALY_SCORE, region.peak_score, NO_UNITS, derivation=codes.SCT.Maximum,
                              referenced_images=peak_on),
            hd.sr.Measurement(ANOMALY_SCORE, region.mean_score, NO_UNITS, derivation=codes.SCT.Mean),
            hd.sr.Measurement(PEAK_SLICE, slice_number(region.peak_slice), SLICE_UNIT, referenced_images=peak_on),
        ])
    outline = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=region.outline.astype(float),
                                source_image=hd.sr.SourceImageForRegion(region.peak_image.sop_class_uid,
                                                                        region.peak_image.sop_instance_uid,
                                                                        region.peak_image.referenced_frames))
    planar = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, referenced_region=outline, finding_type=codes.SCT.MorphologicallyAbnormalStructure,
        algorithm_id=algorithm_id, measurements=[
            hd.sr.Measurement(codes.SCT.Area, region.outline_area_mm2, MM2),
            hd.sr.Measurement(ANOMALY_SCORE, region.peak_score, NO_UNITS, derivation=codes.SCT.Maximum),
        ])
    return volumetric, planar


# ---------------------------------------------------------------------------------- document
def in_image_library(image: ImageRef) -> bool:
    """highdicom's Image Library entries describe single-frame images (pixel spacing, position and
    orientation read from the top level); frames of an enhanced multi-frame object are left out
    of it (they are still referenced by every group and listed in the evidence)."""
    return image.frame_number is None and "PerFrameFunctionalGroupsSequence" not in image.header


def build_measurement_report(*, source_images: Sequence[Dataset], segmentation: Dataset | None, observer: Observer,
                             algorithm: AlgorithmEquipment, finding: StudyFinding, regions: Sequence[AnomalyRegion],
                             regions_total: int | None = None, notes: Sequence[str] = (), series_number: int,
                             series_description: str, segment_number: int = 1,
                             reader_measurements: Sequence = ()) -> hd.sr.Comprehensive3DSR:
    """The SR dataset (see the module docstring).  ``source_images``: the scored series' headers
    (the evidence, same study); ``segmentation``: the SEG the regions are segment
    ``segment_number`` of (header only is enough; required when ``regions`` is not empty);
    ``regions_total``: how many regions there were before any cap or selection (default:
    ``len(regions)``); ``reader_measurements``: the reader's distances and ROIs placed on source
    images (:mod:`adaptclip_med.outputs.reader_measurements`), one TID 1410 group each.  The
    algorithm is in Contributing Equipment whoever the observer is."""
    if regions and segmentation is None:
        raise ValueError("an SR with regions needs the SEG they are segments of")
    groups: list = [study_group(finding, len(regions) if regions_total is None else regions_total, algorithm, notes)]
    for region in regions:
        groups.extend(region_groups(region, segmentation, segment_number, algorithm))
    from adaptclip_med.outputs.reader_measurements import planar_group

    groups.extend(planar_group(m) for m in reader_measurements)
    library = {r.peak_image.sop_instance_uid: r.peak_image.header for r in regions if in_image_library(r.peak_image)}
    library.update({m.image.sop_instance_uid: m.image.header for m in reader_measurements if in_image_library(m.image)})
    report = hd.sr.MeasurementReport(observation_context=_observation_context(observer),
                                     procedure_reported=codes.SCT.ImagingProcedure, imaging_measurements=groups,
                                     referenced_images=list(library.values()) or None)
    verifier = observer if isinstance(observer, PersonObserver) and observer.organization else None
    evidence = [*source_images, *([segmentation] if segmentation is not None else [])]
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report, series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=algorithm.manufacturer, is_complete=True,
        is_verified=verifier is not None, verifying_observer_name=verifier.dicom_name if verifier else None,
        verifying_organization=verifier.organization if verifier else None, series_description=series_description)
    add_contributing_equipment(sr, algorithm)
    declare_coding_schemes(sr)
    return sr


def write_measurement_report(path: str | Path, **arguments) -> Path:
    """Build the SR (:func:`build_measurement_report`'s keyword arguments) and write it atomically."""
    sr = build_measurement_report(**arguments)
    buffer = io.BytesIO()
    sr.save_as(buffer)
    return atomic_write_bytes(Path(path), buffer.getvalue())
