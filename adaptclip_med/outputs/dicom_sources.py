"""Aligning a per-voxel result with the DICOM images it was computed from.

highdicom derives SEG/parametric-map frames from ``source_images``: frame ``i`` of the pixel
array must belong to ``source_images[i]`` (single-frame sources) or to frame ``i + 1`` of the one
multi-frame source.  The volume keeps slices sorted along the normal, so a multi-frame source
whose frames were stored in another order is reordered back here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.valuerep import DA, TM

from adaptclip_med.errors import InputError
from adaptclip_med.io.volume import Volume
from adaptclip_med.utils.redact import header_warnings_silenced


def derivable_headers(volume: Volume) -> list[Dataset]:
    """The source headers as highdicom can derive from them (:func:`with_type2_attributes`), in
    source order: the evidence of an SR or KOS."""
    return [with_type2_attributes(h) for h in volume.source_datasets_header or []]


def source_aligned_frames(array_zyx: np.ndarray, volume: Volume, what: str) -> tuple[list[Dataset], np.ndarray]:
    """(source images, array as (frames, rows, columns) in the sources' frame order)."""
    if volume.source_kind != "dicom" or not volume.source_datasets_header:
        raise InputError(f"{volume.source_label}: a DICOM {what} needs a DICOM input "
                         f"(this one is {volume.source_kind})")
    array = np.asarray(array_zyx)
    if array.shape != volume.array.shape:
        raise InputError(f"{volume.source_label}: result of shape {array.shape} does not match the study "
                         f"{volume.array.shape}")
    frames = volume.to_source_array(array)
    headers = derivable_headers(volume)
    frame_numbers = [s.frame_number for s in volume.sources]
    if all(n is None for n in frame_numbers):
        return headers, frames
    if len(headers) != 1:
        raise InputError(f"{volume.source_label}: a DICOM {what} over several multi-frame objects is not supported; "
                         f"write NIfTI instead")
    ordered = np.zeros_like(frames)
    ordered[[int(n) - 1 for n in frame_numbers]] = frames
    return headers, ordered


#: Image storage SOP classes that are single-frame by definition (a reference to them names no frame).
SINGLE_FRAME_CLASSES = frozenset({
    uid.CTImageStorage, uid.MRImageStorage, uid.ComputedRadiographyImageStorage, uid.SecondaryCaptureImageStorage,
    uid.DigitalXRayImageStorageForPresentation, uid.DigitalXRayImageStorageForProcessing,
    uid.DigitalMammographyXRayImageStorageForPresentation, uid.DigitalMammographyXRayImageStorageForProcessing,
    uid.DigitalIntraOralXRayImageStorageForPresentation, uid.DigitalIntraOralXRayImageStorageForProcessing,
    uid.PositronEmissionTomographyImageStorage, uid.UltrasoundImageStorage, uid.VLPhotographicImageStorage,
})


@dataclass(frozen=True)
class ImageRef:
    """One source image (a frame of a multi-frame object when ``frame_number`` is set)."""

    header: Dataset  # the source header (no pixel data)
    frame_number: int | None = None

    @property
    def sop_class_uid(self) -> str:
        return str(self.header.SOPClassUID)

    @property
    def sop_instance_uid(self) -> str:
        return str(self.header.SOPInstanceUID)

    @property
    def referenced_frames(self) -> list[int] | None:
        """Frame numbers to put in a reference: none for single-frame SOP classes, which may not
        carry Referenced Frame Number even when an odd file holds several frames (dciodvfy)."""
        if self.frame_number is None or self.sop_class_uid in SINGLE_FRAME_CLASSES:
            return None
        return [self.frame_number]


def source_image_refs(headers: list[Dataset], frames: int) -> list[ImageRef]:
    """The image of each frame of :func:`source_aligned_frames`' array: one header per frame for
    single-frame series, else frames 1..n of the one multi-frame object."""
    if len(headers) == frames:
        return [ImageRef(h) for h in headers]
    return [ImageRef(headers[0], index + 1) for index in range(frames)]


def slice_images(volume: Volume, slices: list[int]) -> list[ImageRef | None]:
    """The source image each canonical slice index IS (None where the volume was scored along
    another axis than it was acquired, so a slice cuts across many source images)."""
    marker = np.zeros(volume.array.shape, dtype=np.int32)
    for rank, z in enumerate(slices, start=1):
        marker[z] = rank
    headers, frames = source_aligned_frames(marker, volume, "key object selection")
    images = source_image_refs(headers, frames.shape[0])
    found: list[ImageRef | None] = []
    for rank in range(1, len(slices) + 1):
        hits = [f for f in range(frames.shape[0]) if (frames[f] == rank).any()]
        whole = len(hits) == 1 and bool((frames[hits[0]] == rank).all())
        found.append(images[hits[0]] if whole else None)
    return found


#: Type 2 attributes of the Patient and General Study modules that highdicom copies into derived
#: objects.  They must be present but may be empty; anonymised or hand-made sources often drop them
#: entirely, which made writing the SEG fail.
TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "AccessionNumber",
                "ReferringPhysicianName", "StudyDate", "StudyTime")
#: Dates and times highdicom parses from the source.  Old files carry non-conformant values (e.g.
#: ACR-NEMA style '14:04:38'), on which highdicom raises; they are repaired or emptied.
DATE_TIME_COPIED = {"PatientBirthDate": DA, "StudyDate": DA, "StudyTime": TM, "SeriesDate": DA, "SeriesTime": TM,
                    "ContentDate": DA, "ContentTime": TM}


#: The DICOM value formats themselves (pydicom also accepts ACR-NEMA 'YYYY.MM.DD' and 'HH:MM:SS').
_STRICT = {DA: re.compile(r"\d{8}"), TM: re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")}


def _conformant(value: str, kind: type) -> str | None:
    """``value`` if it is in the DICOM format of ``kind`` (DA or TM), else the same without
    separators ('1997.04.24' -> '19970424', '14:04:38' -> '140438') if that is, else None."""
    separators = value.replace(":", "").replace("-", "") if kind is TM else re.sub(r"[.:/-]", "", value)
    for candidate in (value, separators):
        if not _STRICT[kind].fullmatch(candidate):
            continue
        try:
            kind(candidate)
            return candidate
        except ValueError:
            continue
    return None


def with_type2_attributes(header: Dataset) -> Dataset:
    """``header`` itself when highdicom can derive from it as is, else a copy with the missing
    Type 2 attributes added empty and non-conformant dates/times repaired or emptied (a deep copy:
    pydicom's shallow copy shares the element dictionary with the source; the headers carry no
    pixel data, so copying is cheap)."""
    missing = [keyword for keyword in TYPE2_COPIED if keyword not in header]
    repairs = {} if "Modality" in header else {"Modality": "OT"}  # Type 1, absent from some old secondary captures
    for keyword, kind in DATE_TIME_COPIED.items():
        raw = header.get(keyword)
        text = "" if raw is None else str(raw).strip()
        if text and _conformant(text, kind) != text:
            repairs[keyword] = _conformant(text, kind)
    if not missing and not repairs:
        return header
    patched = copy.deepcopy(header)
    for keyword in missing:
        setattr(patched, keyword, None)
    for keyword, value in repairs.items():
        setattr(patched, keyword, value)
    return patched


@contextmanager
def deriving_from(volume: Volume, what: str) -> Iterator[None]:
    """Around building a highdicom object from ``volume``'s headers: highdicom warns quoting
    header values (patient names) and raises on values it cannot use; neither may reach the user
    with identifiers in it, so warnings are silenced and errors become one line naming the study."""
    try:
        with header_warnings_silenced():
            yield
    except ValueError as exc:
        raise InputError(f"{volume.source_label}: {what} not written: a source header value does not conform to "
                         f"its DICOM type ({exc.__class__.__name__})") from None
    except AttributeError as exc:  # the message names the attribute, never a value
        raise InputError(f"{volume.source_label}: {what} not written: the source headers lack an attribute it "
                         f"needs ({exc})") from None


def has_plane_positions(header: Dataset) -> bool:
    """A frame of reference AND plane positions (NM/US may carry the UID without positions).  2-D
    sources without them: no Parametric Map, SEG frames never omitted (highdicom cannot index
    omitted frames of such sources)."""
    if "FrameOfReferenceUID" not in header:
        return False
    if "ImagePositionPatient" in header:
        return True
    groups = [*header.get("SharedFunctionalGroupsSequence", [])[:1], *header.get("PerFrameFunctionalGroupsSequence", [])[:1]]
    return any("PlanePositionSequence" in group for group in groups)


def require_frame_of_reference(volume: Volume, what: str) -> None:
    """A Parametric Map must carry a frame of reference and plane positions (PS3.3 A.75): 2-D
    sources (US, SC, NM, DX... without one) cannot have a conformant map."""
    header = volume.source_datasets_header[0] if volume.source_datasets_header else None
    if header is None or not has_plane_positions(header):
        raise InputError(f"{volume.source_label}: {what} not written: the source images have no frame of reference "
                         f"(2-D images); the NIfTI map and the SEG hold the result")


def conform_derived(derived: Dataset, volume: Volume, *, laterality: bool = False) -> Dataset:
    """Conditional attributes highdicom leaves out, added as the IOD requires (dciodvfy checks them):
    Patient Orientation (Type 2C, General Image) for sources without a frame of reference,
    Slice Thickness (Type 1C, Pixel Measures) where the pixel measures lack it, and, with
    ``laterality``, Laterality (Type 2C, General Series; copied or empty)."""
    header = volume.source_datasets_header[0]
    if laterality and "Laterality" not in derived:
        derived.Laterality = header.get("Laterality") or None
    if not has_plane_positions(derived) and "PatientOrientation" not in derived:
        derived.PatientOrientation = header.get("PatientOrientation") or None
    shared = derived.get("SharedFunctionalGroupsSequence")
    measures = shared[0].get("PixelMeasuresSequence") if shared else None
    if measures and "SliceThickness" not in measures[0]:
        thickness = header.get("SliceThickness")
        measures[0].SliceThickness = thickness if thickness not in (None, "") else float(volume.spacing[0])
    return derived
