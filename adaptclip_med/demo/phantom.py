"""A synthetic head CT with known lesions, written as real DICOM, so the whole pipeline can be
demonstrated and tested without patient data or downloads.

The anatomy is deliberately simple but CT-like in Hounsfield units: air, scalp, a dense skull
ring with a diploe, grey/white matter with gyri-like boundaries, lateral ventricles whose size
changes along z, and mild noise.  Lesions are ellipsoids inside the parenchyma, either hyperdense
(acute bleed-like, +35..60 HU) or hypodense (infarct-like, -12..-20 HU), with an exact mask.
Array convention matches :class:`~adaptclip_med.io.volume.Volume`: (Z, Y, X), slices inferior ->
superior, row 0 anterior, column 0 patient right.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)
from scipy import ndimage

from adaptclip_med.utils.atomic import atomic_write_bytes

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
_SOP_CLASSES = {"CT": CTImageStorage, "MR": MRImageStorage}


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int, int], cells: tuple[int, int, int]) -> np.ndarray:
    """Smooth random field in [-1, 1]: cubic upsampling of a coarse random grid."""
    coarse = rng.uniform(-1.0, 1.0, size=cells)
    zoom = [s / c for s, c in zip(shape, cells, strict=True)]
    field = ndimage.zoom(coarse, zoom, order=3, mode="nearest")[: shape[0], : shape[1], : shape[2]]
    return np.clip(field, -1.0, 1.0)


def _head_anatomy(rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """HU volume without lesions, and the parenchyma mask (brain minus ventricles)."""
    z_n, y_n, x_n = shape
    # position in an ellipsoidal head, from the skull base to near the vertex: every slice holds
    # some head, so callers control air-only slices themselves
    height = np.linspace(-0.45, 0.85, z_n)[:, None, None]
    yy = np.linspace(-1.0, 1.0, y_n)[None, :, None]
    xx = np.linspace(-1.0, 1.0, x_n)[None, None, :]
    scale = np.sqrt(np.clip(1.0 - np.where(height > 0, height, 0.6 * height) ** 2, 0.05, 1.0))
    semi_y = 0.86 * (1 + rng.uniform(-0.04, 0.04)) * scale
    semi_x = 0.70 * (1 + rng.uniform(-0.04, 0.04)) * scale
    angle = np.radians(rng.uniform(-4.0, 4.0))
    cy, cx = rng.uniform(-0.02, 0.02, size=2)
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    radius = np.sqrt((u / semi_x) ** 2 + (v / semi_y) ** 2)

    hu = np.full(shape, -1000.0, dtype=np.float64)
    hu[radius <= 1.0] = 25.0  # scalp and soft tissue
    skull = (radius > 0.87) & (radius <= 0.95)
    tables = np.abs(radius - 0.91) / 0.04  # 0 at the diploe centre, 1 at the tables
    hu[skull] = (650.0 + 600.0 * tables)[skull]
    brain = radius <= 0.87
    gyri = 0.06 * _smooth_field(rng, shape, (max(z_n // 3, 2), 10, 10))
    white = brain & (radius / 0.87 < 0.70 + gyri)
    hu[brain] = 38.0  # grey matter
    hu[white] = 27.0
    vent_size = (1.0 + rng.uniform(-0.15, 0.15)) * np.clip(1.0 - ((height - 0.3) / 0.32) ** 2, 0.0, None)
    ventricles = np.zeros(shape, dtype=bool)
    for side in (-1.0, 1.0):
        du = (u - side * 0.12 * semi_x / 0.70) / np.maximum(0.075 * vent_size, 1e-6)
        dv = (v + 0.05) / np.maximum(0.30 * vent_size, 1e-6)
        ventricles |= (du**2 + dv**2 <= 1.0) & (vent_size > 0.05)
    ventricles &= brain
    hu[ventricles] = 5.0
    hu += 4.0 * _smooth_field(rng, shape, (max(z_n // 4, 2), 6, 6)) * brain  # slow parenchymal variation
    hu += rng.normal(0.0, 3.0, size=shape)
    return hu.astype(np.float32), brain & ~ventricles


#: Lesion semi-axes: along z in slices, in-plane as a fraction of the image height.
LESION_RZ = (1.2, 2.5)
LESION_RXY = (0.035, 0.075)


def _add_lesions(rng: np.random.Generator, hu: np.ndarray, parenchyma: np.ndarray, count: int,
                 rz_range: tuple[float, float] = LESION_RZ, rxy_range: tuple[float, float] = LESION_RXY) -> np.ndarray:
    z_n, y_n, _ = hu.shape
    mask = np.zeros(hu.shape, dtype=bool)
    core = ndimage.binary_erosion(parenchyma, iterations=max(2, y_n // 32))
    candidates = np.argwhere(core)
    if count and candidates.size == 0:
        raise ValueError("the phantom is too small to hold lesions")
    zz, yy, xx = np.ogrid[:z_n, :y_n, : hu.shape[2]]
    added = 0
    for _ in range(count * 50):
        if added == count:
            break
        cz, cy, cx = candidates[rng.integers(len(candidates))]
        ry, rx = rng.uniform(*rxy_range, size=2) * y_n
        rz = rng.uniform(*rz_range)
        blob = ((zz - cz) / rz) ** 2 + ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        blob &= parenchyma & ~mask
        if blob.sum() < 12:
            continue
        delta = rng.uniform(35.0, 60.0) if rng.random() < 0.6 else -rng.uniform(12.0, 20.0)
        hu[blob] += np.float32(delta)
        mask |= blob
        added += 1
    if added < count:
        raise ValueError(f"could only place {added} of {count} lesions")
    return mask


def make_head_ct_phantom(seed: int, shape: tuple[int, int, int] = (24, 128, 128),
                         lesions: int = 0, lesion_rz: tuple[float, float] = LESION_RZ,
                         lesion_rxy: tuple[float, float] = LESION_RXY) -> tuple[np.ndarray, np.ndarray]:
    """A head-like CT in HU (float32, (Z, Y, X)) and its lesion mask (uint8, 1 = lesion).

    Different seeds give slightly different heads (size, pose, ventricles, gyri, noise).
    ``lesion_rz`` / ``lesion_rxy``: ranges of the lesion semi-axes (slices; fraction of Y), so
    benchmarks can ask for small or large lesions (e.g. triage against lesion thickness)."""
    if len(shape) != 3 or min(shape) < 1 or shape[1] < 32 or shape[2] < 32:
        raise ValueError(f"phantom shape {shape} must be (Z, Y, X) with Y, X >= 32")
    rng = np.random.default_rng(seed)
    hu, parenchyma = _head_anatomy(rng, tuple(int(s) for s in shape))  # type: ignore[arg-type]
    mask = _add_lesions(rng, hu, parenchyma, lesions, lesion_rz, lesion_rxy)
    return hu, mask.astype(np.uint8)


def _stored_values(hu: np.ndarray, slope: float, intercept: float) -> tuple[np.ndarray, int]:
    stored = np.round((np.asarray(hu, dtype=np.float64) - intercept) / slope)
    if stored.min() >= 0 and stored.max() <= np.iinfo(np.uint16).max:
        return stored.astype(np.uint16), 0
    if stored.min() >= np.iinfo(np.int16).min and stored.max() <= np.iinfo(np.int16).max:
        return stored.astype(np.int16), 1
    raise ValueError("values do not fit 16-bit storage with this rescale; change slope/intercept")


@dataclass
class _SeriesIds:
    study: str
    series: str
    frame_of_reference: str


def _base_dataset(sop_class: str, modality: str, ids: _SeriesIds, *, patient_name: str, patient_id: str,
                  series_description: str, study_description: str, series_number: int,
                  image_type: Sequence[str]) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    now = datetime(2024, 1, 1, 12, 0, 0)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = ids.study, ids.series
    ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = ids.frame_of_reference, ""
    ds.PatientName, ds.PatientID = patient_name, patient_id
    ds.PatientBirthDate, ds.PatientSex, ds.PatientAge = "19700101", "O", "054Y"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ds.AcquisitionTime = now.strftime("%H%M%S")
    ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "", "", "1"
    ds.StudyDescription, ds.SeriesDescription = study_description, series_description
    ds.Modality, ds.SeriesNumber, ds.AcquisitionNumber = modality, series_number, 1
    ds.Manufacturer, ds.ManufacturerModelName = "adaptclip-med", "synthetic phantom"
    ds.BodyPartExamined, ds.PatientPosition = "HEAD", "HFS"
    ds.ImageType = list(image_type)
    ds.BurnedInAnnotation, ds.LossyImageCompression = "NO", "00"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    if modality == "CT":
        ds.KVP = "120"
    return ds


def _save(ds: FileDataset, path: Path) -> Path:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return atomic_write_bytes(path, buffer.getvalue())


def write_dicom_series(hu: np.ndarray, out_dir: str | Path, *, spacing: tuple[float, float, float] = (5.0, 1.8, 1.8),
                       modality: str = "CT", series_description: str = "PHANTOM HEAD",
                       patient_name: str = "PHANTOM^DEMO", patient_id: str = "PHANTOM-0001",
                       study_description: str = "SYNTHETIC HEAD CT", study_uid: str | None = None,
                       series_uid: str | None = None, frame_of_reference_uid: str | None = None,
                       series_number: int = 1, orientation: Sequence[float] = AXIAL,
                       origin: Sequence[float] | None = None, rescale_slope: float = 1.0,
                       rescale_intercept: float = -1024.0, image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
                       shuffle_seed: int | None = None, file_prefix: str = "slice",
                       multiframe: bool = False) -> list[Path]:
    """Write a (Z, Y, X) volume as a DICOM series and return the file paths.

    Slice ``k`` lies at ``origin + k * spacing_z * normal`` (normal = row x column cosines), so a
    reader sorting along the normal recovers the array.  ``shuffle_seed`` shuffles the file names
    AND InstanceNumbers (or the frame order of a multi-frame object) so only the geometry tells the
    order.  ``multiframe`` writes one Enhanced CT object with per-frame functional groups.  File
    names never contain UIDs.  Values are stored as 16-bit integers through the rescale.
    """
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError("hu must be a (Z, Y, X) array")
    out_dir = Path(out_dir)
    z_n, rows, cols = hu.shape
    dz, dy, dx = (float(s) for s in spacing)
    cosines = np.asarray(orientation, dtype=np.float64)
    row_dir, col_dir = cosines[:3], cosines[3:]
    normal = np.cross(row_dir, col_dir)
    if origin is None:
        origin = -((cols - 1) * dx * row_dir + (rows - 1) * dy * col_dir + (z_n - 1) * dz * normal) / 2.0
    positions = [np.asarray(origin, dtype=np.float64) + k * dz * normal for k in range(z_n)]
    stored, representation = _stored_values(hu, rescale_slope, rescale_intercept)
    ids = _SeriesIds(study_uid or generate_uid(), series_uid or generate_uid(),
                     frame_of_reference_uid or generate_uid())
    order = np.arange(z_n)
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(z_n)
    common = dict(patient_name=patient_name, patient_id=patient_id, series_description=series_description,
                  study_description=study_description, series_number=series_number)
    if multiframe:
        return [_write_enhanced(stored, representation, positions, order, cosines, (dz, dy, dx), rescale_slope,
                                rescale_intercept, ids, out_dir / f"{file_prefix}_multiframe.dcm", common)]
    sop_class = _SOP_CLASSES.get(modality, SecondaryCaptureImageStorage)
    paths = []
    for file_index, k in enumerate(order):
        ds = _base_dataset(sop_class, modality, ids, image_type=image_type, **common)
        ds.InstanceNumber = file_index + 1 if shuffle_seed is not None else int(k) + 1
        ds.ImagePositionPatient = [round(float(v), 6) for v in positions[k]]
        ds.ImageOrientationPatient = [round(float(v), 8) for v in cosines]
        ds.SliceLocation = round(float(np.dot(positions[k], normal)), 6)
        ds.PixelSpacing = [dy, dx]
        ds.SliceThickness = dz
        ds.Rows, ds.Columns = rows, cols
        ds.PixelRepresentation = representation
        ds.RescaleIntercept, ds.RescaleSlope = rescale_intercept, rescale_slope
        if modality == "CT":
            ds.RescaleType = "HU"
            ds.WindowCenter, ds.WindowWidth = 40, 80
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        paths.append(_save(ds, out_dir / f"{file_prefix}_{file_index + 1:04d}.dcm"))
    return paths


def _write_enhanced(stored: np.ndarray, representation: int, positions: list[np.ndarray], order: np.ndarray,
                    cosines: np.ndarray, spacing: tuple[float, float, float], slope: float, intercept: float,
                    ids: _SeriesIds, path: Path, common: dict) -> Path:
    """One Enhanced CT Image object whose frames follow ``order``."""
    dz, dy, dx = spacing
    frame_kind = ("ORIGINAL", "PRIMARY", "VOLUME", "NONE")
    ds = _base_dataset(EnhancedCTImageStorage, "CT", ids, image_type=frame_kind, **common)
    ds.InstanceNumber = 1
    ds.NumberOfFrames = len(order)
    ds.Rows, ds.Columns = stored.shape[1], stored.shape[2]
    ds.PixelRepresentation = representation
    ds.ContentQualification = "RESEARCH"
    ds.PresentationLUTShape = "IDENTITY"
    ds.VolumetricProperties, ds.VolumeBasedCalculationTechnique = "VOLUME", "NONE"
    dimension_uid = generate_uid()
    organization = Dataset()
    organization.DimensionOrganizationUID = dimension_uid
    ds.DimensionOrganizationSequence = DicomSequence([organization])
    dimension = Dataset()
    dimension.DimensionOrganizationUID = dimension_uid
    dimension.DimensionIndexPointer = 0x00200032  # ImagePositionPatient
    dimension.FunctionalGroupPointer = 0x00209113  # PlanePositionSequence
    ds.DimensionIndexSequence = DicomSequence([dimension])
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing, measures.SliceThickness = [dy, dx], dz
    plane_orientation = Dataset()
    plane_orientation.ImageOrientationPatient = [round(float(v), 8) for v in cosines]
    transform = Dataset()
    transform.RescaleIntercept, transform.RescaleSlope, transform.RescaleType = intercept, slope, "HU"
    frame_type = Dataset()
    frame_type.FrameType = list(frame_kind)
    frame_type.PixelPresentation, frame_type.VolumetricProperties = "MONOCHROME", "VOLUME"
    frame_type.VolumeBasedCalculationTechnique = "NONE"
    shared.PixelMeasuresSequence = DicomSequence([measures])
    shared.PlaneOrientationSequence = DicomSequence([plane_orientation])
    shared.PixelValueTransformationSequence = DicomSequence([transform])
    shared.CTImageFrameTypeSequence = DicomSequence([frame_type])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    for k in order:
        group = Dataset()
        plane = Dataset()
        plane.ImagePositionPatient = [round(float(v), 6) for v in positions[k]]
        content = Dataset()
        content.DimensionIndexValues = [int(k) + 1]
        group.PlanePositionSequence = DicomSequence([plane])
        group.FrameContentSequence = DicomSequence([content])
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.PixelData = np.ascontiguousarray(stored[order]).tobytes()
    return _save(ds, path)


@dataclass
class DemoPaths:
    """Where :func:`make_demo_dataset` put things."""

    study_dir: Path
    reference_dirs: list[Path]
    ground_truth_nifti: Path


def make_demo_dataset(out_dir: str | Path, seed: int = 0, n_references: int = 2,
                      shape: tuple[int, int, int] = (24, 128, 128)) -> DemoPaths:
    """One abnormal head CT study (2-3 lesions) and ``n_references`` normal ones, as DICOM series,
    plus the lesion mask as NIfTI in the study's geometry."""
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.outputs.nifti import write_nifti

    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    hu, mask = make_head_ct_phantom(seed, shape, lesions=int(rng.integers(2, 4)))
    study_dir = out_dir / "study"
    write_dicom_series(hu, study_dir, series_description="PHANTOM HEAD (LESIONS)")
    references = []
    for index in range(n_references):
        ref_hu, _ = make_head_ct_phantom(seed + 1000 + index, shape, lesions=0)
        ref_dir = out_dir / "references" / f"normal_{index + 1:02d}"
        write_dicom_series(ref_hu, ref_dir, series_description="PHANTOM HEAD (NORMAL)",
                           patient_name=f"PHANTOM^REFERENCE{index + 1}", patient_id=f"PHANTOM-REF-{index + 1:04d}")
        references.append(ref_dir)
    volume, _ = load_study(study_dir)
    truth = write_nifti(mask, volume, out_dir / "ground_truth_mask.nii.gz", dtype=np.uint8)
    return DemoPaths(study_dir=study_dir, reference_dirs=references, ground_truth_nifti=truth)
