"""Uploaded studies written to a private folder, because the readers need file paths.

The browser sends bytes and a client-chosen file name; neither is trusted.  Names are reduced to
their last component, zip members that would escape the folder (absolute paths, ``..``) are
refused, and sizes are capped before and after decompression so a zip bomb cannot fill the disk.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from adaptclip_med.errors import InputError
from adaptclip_med.utils.atomic import atomic_write_bytes

MB = 1024 * 1024
#: Decompressed zip contents may be this many times the upload limit (DICOM compresses ~2-4x).
ZIP_EXPANSION_LIMIT = 8


def save_uploads(files: list[tuple[str, bytes]], parent: Path, limit_mb: int) -> Path:
    """Write (name, bytes) pairs into a new folder under ``parent``; ``.zip`` files are extracted."""
    total = sum(len(data) for _, data in files)
    if total > limit_mb * MB:
        raise InputError(f"upload: {total / MB:.1f} MB is more than the limit of {limit_mb} MB")
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=parent))
    for index, (name, data) in enumerate(files):
        safe = _safe_name(name, index)
        if safe.lower().endswith(".zip"):
            _extract(data, folder / f"{index:04d}", limit_mb * MB * ZIP_EXPANSION_LIMIT)
        else:
            atomic_write_bytes(folder / f"{index:04d}_{safe}", data)
    return folder


def _safe_name(name: str, index: int) -> str:
    leaf = PurePosixPath(str(name).replace("\\", "/")).name.strip()
    return leaf if leaf and not leaf.startswith(".") else f"file{index:04d}"


def _extract(data: bytes, target: Path, limit: int) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise InputError("upload: a .zip file is damaged or not a zip archive") from exc
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if sum(m.file_size for m in members) > limit:
            raise InputError(f"upload: the zip expands to more than {limit // MB} MB")
        for member in members:
            parts = PurePosixPath(member.filename.replace("\\", "/")).parts
            if member.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise InputError("upload: the zip contains paths leading outside its folder")
            if any(part.startswith(".") or part == "__MACOSX" for part in parts):
                continue
            destination = target.joinpath(*parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(destination, archive.read(member))
