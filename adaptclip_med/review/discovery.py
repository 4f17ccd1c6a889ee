"""What is under the data roots: image series (DICOM, grouped by header UIDs) and NIfTI volumes.

The reference library and the "open a study" list are built from this, on top of the rules and the
one study-key scheme batch scoring uses too (:mod:`adaptclip_med.io.discovery`); the dashboard adds
its per-series listing, label-map and finding hints and patient names.  Only pseudonymous keys,
modality, description and slice counts are shown; the patient's name is read from the headers
only when the dashboard was started with ``--show-patient-names``.  The walk is capped so a huge
archive cannot hang the page.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptclip_med.io.discovery import is_result_file, is_volume_study_file, volume_file_key
from adaptclip_med.io.itk_image import is_detached_itk_data, is_itk_image, itk_header_geometry
from adaptclip_med.io.loader import VOLUME_FILE_SUFFIXES
from adaptclip_med.review.paths import STUDIES_DIR, AllowedRoots
from adaptclip_med.review.store import StudyLocation
from adaptclip_med.utils.keys import check_key
from adaptclip_med.utils.redact import describe_path, pseudonymous_key

if TYPE_CHECKING:
    from adaptclip_med.review.store import ReviewStore

MAX_FILES = 20000


@dataclass(frozen=True)
class Candidate:
    """One loadable volume under the roots."""

    key: str  # series key (DICOM) or file key (NIfTI); pseudonymous
    study_key: str
    kind: str  # "dicom" | "nifti" | "itk" (MetaImage/NRRD file)
    modality: str
    description: str
    num_slices: int
    location: str  # redacted path relative to its root, for orientation only
    patient_name: str | None = None
    paths: tuple[Path, ...] = ()
    series: Any = field(default=None, repr=False, compare=False, hash=False)  # io SeriesInfo (holds headers)

    def source(self) -> StudyLocation:
        """Where ``load_study`` finds exactly this volume: its folder + series key, or the file."""
        if self.kind == "dicom":
            return StudyLocation(_common_folder(list(self.paths)), self.key)
        return StudyLocation(self.paths[0])

    @property
    def study_date(self) -> str:
        """StudyDate from the DICOM headers as YYYY-MM-DD ("" when unknown)."""
        headers = getattr(self.series, "headers", None) or []
        raw = str(headers[0].get("StudyDate", "") or "") if headers else ""
        return f"{raw[:4]}-{raw[4:6]}-{raw[6:8]}" if len(raw) == 8 and raw.isdigit() else ""

    @property
    def label(self) -> str:
        desc = f" '{self.description}'" if self.description else ""
        return f"{self.modality or self.kind.upper()}{desc}, {self.num_slices} slices [{self.key[:8]}]"


@dataclass(frozen=True)
class Discovery:
    candidates: list[Candidate]
    unusable_files: int
    truncated: bool


def discover(roots: AllowedRoots, show_patient_names: bool = False, axis: str = "axial", limit: int = MAX_FILES,
             keys_in_use: frozenset[str] = frozenset()) -> Discovery:
    """Image series and NIfTI files under ``roots`` (DICOM files grouped by their headers).

    ``keys_in_use`` (see :func:`study_keys_in_use`): study keys the dashboard's store and output
    already hold; a volume file filed under its pre-unification key keeps that key, so its
    sign-offs and scored results stay attached (see :func:`study_key_for_file`)."""
    from adaptclip_med.io.dicom_scan import scan_dicom

    files = list(roots.walk_files(limit))
    others = [p for p in files if not p.name.lower().endswith(VOLUME_FILE_SUFFIXES) and not is_result_file(p)
              and not is_detached_itk_data(p)]
    candidates = [_nifti_candidate(p, roots, axis, keys_in_use) for p in files if is_volume_study_file(p)]
    unusable = 0
    for info in scan_dicom(others) if others else []:
        unusable += len(info.skipped)
        if info.kind != "image" or info.is_localizer:
            unusable += len(info.files)
            continue
        name = str(info.headers[0].get("PatientName", "")) if show_patient_names and info.headers else None
        candidates.append(Candidate(info.series_key, info.study_key, "dicom", info.modality, info.description,
                                    info.num_slices, _location(_common_folder(info.files), roots), name,
                                    tuple(info.files), info))
    candidates.sort(key=lambda c: c.kind != "dicom")  # DICOM series first: NIfTI files are often masks or derived
    return Discovery(candidates, unusable, len(files) >= limit)


def load_candidate(candidate: Candidate, axis: str = "axial"):
    """The candidate as a :class:`~adaptclip_med.io.volume.Volume`."""
    if candidate.kind == "dicom":
        from adaptclip_med.io.dicom import load_dicom_series

        return load_dicom_series(candidate.series, axis=axis, label=candidate.label)
    from adaptclip_med.io.loader import load_study

    volume, _ = load_study(candidate.paths[0], axis=axis)
    return volume


def scan_path(candidate: Candidate, all_candidates: list[Candidate], staging: Path) -> Path:
    """A path that ``load_study`` reads as exactly this series (what bank building takes).

    Usually the series' own folder; when other image series share it, a private folder of
    symlinks to just this series' files (inside ``staging``) instead."""
    if candidate.kind in ("nifti", "itk"):
        return candidate.paths[0]
    folder = _common_folder(list(candidate.paths))
    shared = any(other.key != candidate.key and other.kind == "dicom" and
                 any(Path(p).is_relative_to(folder) for p in other.paths) for other in all_candidates)
    if not shared:
        return folder
    target = Path(tempfile.mkdtemp(prefix=f"series-{check_key(candidate.key)[:8]}-", dir=staging))
    for index, path in enumerate(candidate.paths):
        os.symlink(path, target / f"{index:05d}.dcm")
    return target


def study_key_for_file(path: Path, keys_in_use: frozenset[str] = frozenset()) -> str:
    """The study key of a volume file in the dashboard: the one scheme of
    :func:`~adaptclip_med.io.discovery.volume_file_key`, located from the file system root (one
    review store spans several data roots and uploads, where relative names would collide).

    Migration: dashboards before the unified scheme filed volume files under
    ``pseudonymous_key("file", absolute path)``; when that key is in ``keys_in_use`` (the store or
    the output folder knows it) it is kept, so existing sign-offs, audit entries and scored
    results stay attached without rewriting the sealed audit ledger."""
    resolved = Path(path).resolve()
    legacy = pseudonymous_key("file", str(resolved))
    if legacy in keys_in_use:
        return legacy
    return volume_file_key(resolved, Path(resolved.anchor))


def study_keys_in_use(store: "ReviewStore", output: Path) -> frozenset[str]:
    """Study keys the dashboard already holds: registered or signed-off studies in the store and
    the studies it scored into ``output`` (``studies/<key>`` or ``studies/<key>--<method>``)."""
    keys = set(store.study_keys())
    folder = Path(output) / STUDIES_DIR
    if folder.is_dir():
        keys.update(entry.name.split("--", 1)[0] for entry in folder.iterdir() if entry.is_dir())
    return frozenset(keys)


def _nifti_candidate(path: Path, roots: AllowedRoots, axis: str, keys_in_use: frozenset[str] = frozenset()) -> Candidate:
    """A NIfTI or MetaImage/NRRD file; slice count from the header alone (the image is read only
    when opened)."""
    from adaptclip_med.io.geometry import plan_reorientation

    itk = is_itk_image(path)
    try:
        affine, shape = itk_header_geometry(path) if itk else _nifti_header(path)
        slices = plan_reorientation(affine, shape[:3], axis).canonical_shape[0] if len(shape) >= 3 else 1
    except Exception:  # an unreadable file still shows up; opening it explains why
        slices = 0
    key = study_key_for_file(path, keys_in_use)
    return Candidate(key, key, "itk" if itk else "nifti", "", "", slices, _location(path, roots), None, (path,))


def _nifti_header(path: Path) -> tuple[Any, tuple[int, ...]]:
    import nibabel as nib

    image = nib.load(str(path))
    return image.affine, tuple(image.shape)


def _location(path: Path, roots: AllowedRoots) -> str:
    for root in roots.roots:
        if path.resolve().is_relative_to(root):
            return describe_path(path, root)
    return describe_path(path.name)


def _common_folder(paths: list[Path]) -> Path:
    return Path(os.path.commonpath([str(Path(p).parent) for p in paths])) if paths else Path(".")


LABEL_NAME_HINTS = ("label", "mask", "seg", "ground_truth", "groundtruth", "_gt", "annotation")
FINDING_HINTS = ("lesion", "tumour", "tumor", "abnormal", "bleed", "haemorrhage", "hemorrhage", "infarct")
_LABEL_CHECK_VOXELS = 64 * 1024 * 1024


def label_map_reason(candidate: Candidate) -> str:
    """Why a NIfTI candidate looks like a label map rather than an image ("" if it does not):
    integer data with few distinct values, or a name that says mask/label/segmentation."""
    if candidate.kind not in ("nifti", "itk"):
        return ""
    import numpy as np

    name = candidate.paths[0].name.lower()
    try:
        dtype, shape, read = _volume_file_data(candidate)
        integer = np.issubdtype(dtype, np.integer)
        if integer and int(np.prod(shape)) <= _LABEL_CHECK_VOXELS:
            values = np.unique(read())
            if values.size <= 16 and values.min() >= 0:
                return f"label map: only {values.size} distinct integer values (a segmentation, not an image)"
    except Exception:  # unreadable files are reported when opened
        return ""
    if any(hint in name for hint in LABEL_NAME_HINTS):
        return "label map: the file name says mask/label/segmentation"
    return ""


def _volume_file_data(candidate: Candidate):
    """(stored dtype, shape, a function reading the voxels) of a NIfTI or MetaImage/NRRD file."""
    import numpy as np

    path = candidate.paths[0]
    if candidate.kind == "itk":
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        integer = reader.GetPixelID() in (sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16,
                                          sitk.sitkUInt32, sitk.sitkInt32, sitk.sitkUInt64, sitk.sitkInt64)
        return (np.dtype(np.int32) if integer else np.dtype(np.float32), tuple(reader.GetSize()),
                lambda: sitk.GetArrayFromImage(reader.Execute()))
    import nibabel as nib

    image = nib.load(str(path))
    return image.get_data_dtype(), tuple(image.shape), lambda: np.asarray(image.dataobj)


def finding_reason(candidate: Candidate, decisions: dict[str, str], above_threshold: set[str]) -> str:
    """Why a series should not be a normal reference ("" if nothing is known against it)."""
    if decisions.get(candidate.study_key) == "confirmed":
        return "signed off as a confirmed anomaly"
    if candidate.study_key in above_threshold:
        return "its anomaly map reaches the threshold (possible finding)"
    description = candidate.description.lower()
    if any(hint in description for hint in FINDING_HINTS):
        return f"series description '{candidate.description}' suggests a finding"
    return ""
