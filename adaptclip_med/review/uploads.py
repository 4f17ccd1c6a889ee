"""Uploaded studies written to a private folder, because the readers need file paths.

The browser sends bytes and a client-chosen file name; neither is trusted.  Names are reduced to
their last component, zip members that would escape the folder (absolute paths, ``..``) are
refused, and sizes are capped before and after decompression so a zip bomb cannot fill the disk
(or a small ``.nii.gz`` the memory: it is expanded in bounded steps and refused past the limit).

Each browser session gets its own folder (mode 0700) under one per-user parent; it is deleted when
the session's state goes and, whatever happens to the session, by :func:`sweep_expired` once it
is older than the configured lifetime.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from adaptclip_med.errors import InputError
from adaptclip_med.utils.atomic import atomic_write_bytes
from adaptclip_med.utils.redact import describe_path

MB = 1024 * 1024
#: Decompressed zip contents may be this many times the upload limit (DICOM compresses ~2-4x).
ZIP_EXPANSION_LIMIT = 8


def save_uploads(files: list[tuple[str, bytes]], parent: Path, limit_mb: int) -> Path:
    """Write (name, bytes) pairs into a new folder under ``parent``; ``.zip`` files are extracted.
    Every refusal is one :class:`InputError` line naming the upload and the reason; nothing of a
    refused upload is kept."""
    total = sum(len(data) for _, data in files)
    if total > limit_mb * MB:
        raise InputError(f"upload: {total / MB:.1f} MB is more than the limit of {limit_mb} MB")
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=parent))
    try:
        for index, (name, data) in enumerate(files):
            label = _printable(name, index)
            if _has_control(str(name)):
                raise InputError(f"upload {label}: the file name contains control characters (e.g. a NUL byte)")
            safe = _safe_name(name, index)
            if safe.lower().endswith(".zip"):
                _extract(data, folder / f"{index:04d}", limit_mb * MB * ZIP_EXPANSION_LIMIT, label)
            else:
                atomic_write_bytes(folder / f"{index:04d}_{safe}", data)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _has_control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def _printable(name: str, index: int) -> str:
    """The upload's last name component, control characters shown as '?', for messages."""
    leaf = PurePosixPath(str(name).replace("\\", "/")).name.strip()
    text = "".join("?" if ord(ch) < 32 or ord(ch) == 127 else ch for ch in leaf)[:80]
    return describe_path(text) if text else f"#{index + 1}"


def _safe_name(name: str, index: int) -> str:
    leaf = PurePosixPath(str(name).replace("\\", "/")).name.strip()
    return leaf if leaf and not leaf.startswith(".") else f"file{index:04d}"


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, budget: int) -> bytes:
    """A member's bytes, reading no more than ``budget`` whatever its header claims."""
    chunks, size = [], 0
    with archive.open(member) as handle:
        while chunk := handle.read(1 << 20):
            size += len(chunk)
            if size > budget:
                raise _TooLarge
            chunks.append(chunk)
    return b"".join(chunks)


class _TooLarge(Exception):
    pass


def _extract(data: bytes, target: Path, limit: int, label: str = "zip") -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise InputError(f"upload {label}: the .zip file is damaged or not a zip archive") from exc
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if sum(m.file_size for m in members) > limit:
            raise InputError(f"upload {label}: the zip expands to more than {limit // MB} MB")
        budget = limit
        for member in members:
            if _has_control(member.filename):
                raise InputError(f"upload {label}: the zip holds a file name with control characters (e.g. a NUL byte)")
            parts = PurePosixPath(member.filename.replace("\\", "/")).parts
            if member.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise InputError(f"upload {label}: the zip contains paths leading outside its folder")
            if any(part.startswith(".") or part == "__MACOSX" for part in parts):
                continue
            try:
                content = _read_member(archive, member, budget)
            except _TooLarge:
                raise InputError(f"upload {label}: the zip expands to more than {limit // MB} MB") from None
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError,
                    RuntimeError, OSError) as exc:  # falsified sizes, bad CRC, unsupported or encrypted members
                raise InputError(f"upload {label}: the zip is damaged or falsified ({type(exc).__name__})") from None
            budget -= len(content)
            destination = target.joinpath(*parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(destination, content)


#: What the upload accepts: DICOM files (with or without a suffix), zips of them, NIfTI volumes.
ACCEPTED_SUFFIXES = (".dcm", ".dicom", ".ima", ".zip", ".nii", ".nii.gz", ".mha", ".nrrd")
UPLOAD_TYPES = ["dcm", "dicom", "ima", "zip", "nii", "gz", "mha", "nrrd"]  # st.file_uploader(type=...); extension-less DICOM via screening


@dataclass(frozen=True)
class Rejected:
    name: str  # the browser's file name, reduced to its last part (never a server path)
    reason: str

    def line(self) -> str:
        return f"{self.name}: {self.reason}"


def screen_uploads(files: list[tuple[str, bytes]], limit_mb: int) -> tuple[list[tuple[str, bytes]], list[Rejected]]:
    """Split uploads into plausible image files and rejected ones, each with a one-line reason.

    Checks content, not only names: a NIfTI must have a readable header and 3-D image data, a DICOM
    file the ``DICM`` marker (or a parseable dataset), a zip a valid directory.  A ``.nii.gz`` that
    would expand past ``limit_mb`` x :data:`ZIP_EXPANSION_LIMIT` is refused before it is expanded."""
    accepted: list[tuple[str, bytes]] = []
    rejected: list[Rejected] = []
    for index, (name, data) in enumerate(files):
        leaf = _safe_name(name, index)
        reason = _problem(leaf.lower(), data, limit_mb * MB * ZIP_EXPANSION_LIMIT)
        if reason is None:
            accepted.append((name, data))
        else:
            rejected.append(Rejected(leaf, reason))
    return accepted, rejected


def _problem(lower: str, data: bytes, expanded_limit: int) -> str | None:
    if not data:
        return "empty file"
    if lower.endswith((".nii", ".nii.gz")):
        return _nifti_problem(data, lower.endswith(".gz"), expanded_limit)
    if lower.endswith((".mha", ".mhd", ".nrrd", ".nhdr")):
        return _itk_problem(lower, data)
    if lower.endswith(".zip"):
        return None if zipfile.is_zipfile(io.BytesIO(data)) else "not a zip archive (damaged or another format)"
    if lower.endswith(".gz"):
        return "compressed file that is not a NIfTI (.nii.gz) volume"
    suffix = PurePosixPath(lower).suffix
    if suffix and suffix not in ACCEPTED_SUFFIXES:
        return f"file type '{suffix}' not accepted (DICOM, a .zip of DICOM files, NIfTI .nii/.nii.gz, MetaImage .mha or NRRD .nrrd)"
    if len(data) > 132 and data[128:132] == b"DICM":
        return None
    try:
        import pydicom

        dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=False)
        return None if "SOPClassUID" in dataset else "not a DICOM image file"
    except Exception:  # any parse failure means "not DICOM": the reason shown is the same
        return "not a DICOM file (no DICOM header)"


def _itk_problem(lower: str, data: bytes) -> str | None:
    """A MetaImage/NRRD upload must be the single-file form with its header where it belongs;
    the full read (and its one-line reason when damaged) happens when the upload is opened."""
    if lower.endswith((".mhd", ".nhdr")):
        return "detached header without its data file: upload the single-file form (.mha or .nrrd)"
    head = data[:4096]
    if lower.endswith(".nrrd"):
        if not head.startswith(b"NRRD"):
            return "not an NRRD file (no NRRD magic line)"
        if b"\ndata file:" in head.lower() or b"\ndatafile:" in head.lower():
            return "NRRD header pointing at a separate data file: upload a single-file .nrrd"
        return None
    text = head.lower()
    if b"ndims" not in text or b"elementdatafile" not in text:
        return "not a MetaImage file (no NDims / ElementDataFile header)"
    if b"elementdatafile = local" not in text.replace(b"\t", b" ") and b"elementdatafile=local" not in text:
        return "MetaImage header pointing at a separate data file: upload the single-file .mha form"
    return None


class _Expands(Exception):
    pass


def gunzip_bounded(data: bytes, limit: int, step: int = 1 << 20) -> bytes:
    """Decompress gzip ``data`` (one or more members) in steps of at most ``step`` bytes of output,
    stopping as soon as the output passes ``limit``: a decompression bomb costs ``limit`` bytes of
    memory, not the 4 GB it would expand to."""
    out: list[bytes] = []
    size, rest = 0, data
    while rest:
        engine = zlib.decompressobj(wbits=31)
        pending = rest
        while True:
            chunk = engine.decompress(pending, step)
            size += len(chunk)
            if size > limit:
                raise _Expands
            out.append(chunk)
            if engine.eof:
                break
            pending = engine.unconsumed_tail
            if not pending and not chunk:
                raise EOFError("truncated gzip stream")
        rest = engine.unused_data
    return b"".join(out)


NIFTI_HEADER_BYTES = 544  # a NIfTI-2 header (540 bytes) and its extension flag; NIfTI-1 needs 348
TRAILING_SLACK = 64 * 1024  # bytes a NIfTI file may hold after its image data


def gunzip_prefix(data: bytes, size: int) -> bytes:
    """The first ``size`` decompressed bytes of gzip ``data`` (nothing more is expanded)."""
    return zlib.decompressobj(wbits=31).decompress(data, size)


def declared_nifti_bytes(head: bytes) -> int | None:
    """Image data offset + voxels x bytes per voxel, as a NIfTI-1/2 header declares them; None when
    ``head`` does not start with a NIfTI header."""
    import nibabel as nib
    import numpy as np

    for klass, magics in ((nib.Nifti1Header, (b"n+1", b"ni1")), (nib.Nifti2Header, (b"n+2", b"ni2"))):
        try:
            header = klass.from_fileobj(io.BytesIO(head), check=False)
            if bytes(header["magic"]).rstrip(b"\0") not in magics:
                continue
            voxels = int(np.prod([int(n) for n in header.get_data_shape()], dtype=np.int64))
            return int(header.get_data_offset()) + voxels * header.get_data_dtype().itemsize
        except Exception:  # nibabel raises several types for bytes that are no such header
            continue
    return None


def _nifti_problem(data: bytes, compressed: bool, expanded_limit: int) -> str | None:
    """Why an uploaded NIfTI cannot be used, or None.  A ``.nii.gz`` is judged by its header first
    (a few hundred bytes): one declaring more image data than the limit is refused before anything
    else is expanded, and the rest is expanded no further than the header's size."""
    import nibabel as nib

    raw = data
    if compressed:
        try:
            head = gunzip_prefix(data, NIFTI_HEADER_BYTES)
        except (OSError, EOFError, zlib.error):
            return "not a gzip-compressed NIfTI file (damaged or another format)"
        declared = declared_nifti_bytes(head)
        if declared is None:
            return "not a readable NIfTI file (no valid header)"
        if declared > expanded_limit:
            return (f"its header declares {declared / MB:.0f} MB of image data, more than the {expanded_limit // MB} MB "
                    "limit (refused before expanding it)")
        try:
            raw = gunzip_bounded(data, declared + TRAILING_SLACK)
        except _Expands:
            return "expands to more than its header declares (refused; damaged or crafted file)"
        except (OSError, EOFError, zlib.error):
            return "not a gzip-compressed NIfTI file (damaged or another format)"
    try:
        image = nib.Nifti1Image.from_bytes(raw)
    except Exception:  # nibabel raises several types for non-NIfTI bytes
        try:
            image = nib.Nifti2Image.from_bytes(raw)
        except Exception:
            return "not a readable NIfTI file (no valid header or truncated data)"
    if len(image.shape) < 3 or min(image.shape[:3]) < 1:
        return f"NIfTI of shape {tuple(image.shape)} is not a 3-D volume"
    return None


#: Session upload folders are named ``session-<created epoch>-<random>`` under this per-user parent.
SESSION_PREFIX = "session-"


def uploads_parent() -> Path:
    """One folder per OS user for every session's uploads, readable by that user only."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    parent = Path(tempfile.gettempdir()) / f"adaptclip-review-uploads-{uid}"
    parent.mkdir(mode=0o700, exist_ok=True)
    parent.chmod(0o700)
    return parent


def new_session_folder(parent: Path | None = None) -> tempfile.TemporaryDirectory:
    """A session's private upload folder (0700; removed when the returned object is dropped)."""
    return tempfile.TemporaryDirectory(prefix=f"{SESSION_PREFIX}{int(time.time())}-", dir=parent or uploads_parent())


def folder_age_s(folder: Path, now: float | None = None) -> float | None:
    """Seconds since a session folder was made (from its name); None for other names."""
    parts = folder.name.split("-")
    if not folder.name.startswith(SESSION_PREFIX) or len(parts) < 3 or not parts[1].isdigit():
        return None
    return (time.time() if now is None else now) - int(parts[1])


def sweep_expired(ttl_minutes: int, parent: Path | None = None, now: float | None = None) -> list[Path]:
    """Delete session upload folders older than ``ttl_minutes`` (sessions that ended without their
    state being collected, or that simply lasted too long); returns what was removed."""
    parent = parent or uploads_parent()
    removed = []
    for folder in parent.iterdir():
        age = folder_age_s(folder, now)
        if age is not None and age > ttl_minutes * 60:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
