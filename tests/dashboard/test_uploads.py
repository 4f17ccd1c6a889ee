"""Uploads: size limits, file names reduced to their last part, zip members kept inside."""

from __future__ import annotations

import io
import zipfile

import pytest

from adaptclip_med.errors import InputError
from adaptclip_med.review.uploads import MB, save_uploads


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_files_land_in_a_new_private_folder_with_safe_names(tmp_path):
    folder = save_uploads([("../../etc/evil.dcm", b"a"), ("C:\\x\\scan.nii.gz", b"b"), (".bashrc", b"c")], tmp_path, 1)
    assert folder.parent == tmp_path
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["0000_evil.dcm", "0001_scan.nii.gz", "0002_file0002"]
    assert not (tmp_path.parent / "etc").exists()


def test_total_size_is_limited(tmp_path):
    with pytest.raises(InputError, match="more than the limit of 1 MB"):
        save_uploads([("a.dcm", b"0" * MB), ("b.dcm", b"1")], tmp_path, 1)
    assert list(tmp_path.iterdir()) == []


def test_zip_is_extracted_and_mac_metadata_skipped(tmp_path):
    folder = save_uploads([("study.zip", _zip({"CT/1.dcm": b"1", "CT/2.dcm": b"2", "__MACOSX/CT/._1.dcm": b"m"}))], tmp_path, 1)
    found = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.dcm"))
    assert found == ["0000/CT/1.dcm", "0000/CT/2.dcm"]


@pytest.mark.parametrize("member", ["../escape.dcm", "/abs.dcm", "a/../../escape.dcm"])
def test_zip_members_escaping_the_folder_are_refused(tmp_path, member):
    with pytest.raises(InputError, match="outside its folder"):
        save_uploads([("bad.zip", _zip({member: b"x"}))], tmp_path, 1)
    assert not (tmp_path.parent / "escape.dcm").exists()


def test_zip_bombs_are_refused_before_extraction(tmp_path):
    bomb = _zip({"big.dcm": b"\0" * (9 * MB)})  # compresses to a few KB, expands past 8 x 1 MB
    with pytest.raises(InputError, match="expands to more than"):
        save_uploads([("bomb.zip", bomb)], tmp_path, 1)


def test_damaged_zip_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="damaged or not a zip"):
        save_uploads([("x.zip", b"not a zip")], tmp_path, 1)


def _falsified_sizes() -> bytes:
    """A zip whose central directory and local header claim 10 bytes for a 2 MB member."""
    data = bytearray(_zip({"CT/1.dcm": b"A" * (2 * MB)}))
    real = (2 * MB).to_bytes(4, "little")
    fake = (10).to_bytes(4, "little")
    return bytes(data.replace(real, fake))


def test_zip_with_falsified_sizes_is_a_one_line_rejection(tmp_path):
    (tmp_path / "u").mkdir()
    with pytest.raises(InputError) as caught:
        save_uploads([("study.zip", _falsified_sizes())], tmp_path / "u", 1)
    message = str(caught.value)
    assert message.startswith("upload study.zip: ") and "\n" not in message and "damaged or falsified" in message
    assert list((tmp_path / "u").iterdir()) == []


def test_nul_bytes_in_names_are_one_line_rejections(tmp_path):
    with pytest.raises(InputError, match=r"^upload scan\?\.dcm: the file name contains control characters"):
        save_uploads([("scan\x00.dcm", b"x")], tmp_path, 1)
    assert list(tmp_path.iterdir()) == []


def test_uploads_are_screened_one_reason_per_rejected_file(tmp_path):
    import nibabel as nib
    import numpy as np

    from adaptclip_med.review.uploads import screen_uploads

    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3), np.int16), np.eye(4)), str(good))
    dicom = b"\0" * 128 + b"DICM" + b"\0" * 64
    files = [("/tmp/secret/fake.nii.gz", b"not gzip"), ("notes.txt", b"hello"), ("scan.nii.gz", good.read_bytes()),
             ("IM0001", dicom), ("empty.dcm", b""), ("flat.nii", b"x" * 400)]
    accepted, rejected = screen_uploads(files, 200)
    assert [name for name, _ in accepted] == ["scan.nii.gz", "IM0001"]
    lines = [r.line() for r in rejected]
    assert [r.name for r in rejected] == ["fake.nii.gz", "notes.txt", "empty.dcm", "flat.nii"]  # no server path
    assert "not a gzip-compressed NIfTI" in lines[0] and "'.txt' not accepted" in lines[1]
    assert "empty file" in lines[2] and "not a readable NIfTI" in lines[3]
    assert not any("Error" in line or "/tmp" in line for line in lines)


def test_metaimage_and_nrrd_uploads_are_screened(tmp_path):
    import numpy as np
    import SimpleITK as sitk

    from adaptclip_med.review.discovery import discover, load_candidate
    from adaptclip_med.review.paths import AllowedRoots
    from adaptclip_med.review.uploads import screen_uploads

    image = sitk.GetImageFromArray(np.arange(3 * 8 * 8, dtype=np.int16).reshape(3, 8, 8))
    for name in ("scan.mha", "scan.nrrd", "split.mhd"):
        sitk.WriteImage(image, str(tmp_path / name))
    files = [("scan.mha", (tmp_path / "scan.mha").read_bytes()), ("scan.nrrd", (tmp_path / "scan.nrrd").read_bytes()),
             ("split.mhd", (tmp_path / "split.mhd").read_bytes()), ("fake.mha", b"hello, not an image"),
             ("fake.nrrd", b"NRRD0004\ntype: short\ndimension: 3\ndata file: elsewhere.raw\n\n")]
    accepted, rejected = screen_uploads(files, limit_mb=10)
    assert [name for name, _ in accepted] == ["scan.mha", "scan.nrrd"]
    lines = {r.name: r.line() for r in rejected}
    assert "single-file form" in lines["split.mhd"] and "not a MetaImage" in lines["fake.mha"]
    assert "separate data file" in lines["fake.nrrd"]
    folder = save_uploads(accepted, tmp_path, 10)
    found = discover(AllowedRoots([folder]))
    assert sorted(c.kind for c in found.candidates) == ["itk", "itk"] and all(c.num_slices == 3 for c in found.candidates)
    assert load_candidate(found.candidates[0]).array.shape == (3, 8, 8)


def test_a_nifti_bomb_is_refused_before_it_is_expanded(tmp_path):
    """A 2 MB .nii.gz that expanded to 4 GB once grew the server by 4 GB.  Now: a header declaring more
    than the limit is refused after expanding a few hundred bytes; a small header followed by a flood
    of zeros is expanded no further than the header's size."""
    import gzip
    import tracemalloc

    import nibabel as nib
    import numpy as np

    from adaptclip_med.review.uploads import ZIP_EXPANSION_LIMIT, screen_uploads

    def nifti_gz(shape, tail: int) -> bytes:
        image = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
        image.header.set_data_shape(shape)
        header = image.header.binaryblock + b"\0" * 4  # + extension flag: data at offset 352
        return gzip.compress(header + b"\0" * tail, compresslevel=9)

    huge = nifti_gz((2048, 2048, 1024), 64 * 1024 * 1024)  # declares 4 GB, holds 64 MB of zeros, ~65 kB on disk
    flood = nifti_gz((4, 4, 4), 64 * 1024 * 1024)  # declares 64 bytes, expands to 64 MB
    assert len(huge) < 200_000 and len(flood) < 200_000
    tracemalloc.start()
    accepted, rejected = screen_uploads([("huge.nii.gz", huge), ("flood.nii.gz", flood)], limit_mb=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert accepted == [] and [r.name for r in rejected] == ["huge.nii.gz", "flood.nii.gz"]
    assert "declares 4096 MB of image data" in rejected[0].reason and f"{ZIP_EXPANSION_LIMIT} MB limit" in rejected[0].reason
    assert "expands to more than its header declares" in rejected[1].reason
    assert peak < 8 * 1024 * 1024  # neither was expanded: megabytes, not the 64 MB they hold


def test_expired_session_upload_folders_are_swept(tmp_path):
    from adaptclip_med.review.uploads import new_session_folder, sweep_expired

    old = new_session_folder(tmp_path)
    (tmp_path / "unrelated").mkdir()
    created = int(old.name.split("session-")[1].split("-")[0])
    assert sweep_expired(60, tmp_path, now=created + 30 * 60) == []  # young: kept
    assert sweep_expired(60, tmp_path, now=created + 61 * 60) == [tmp_path / old.name.split("/")[-1]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unrelated"]
    old.cleanup()  # already gone: no error


def test_header_text_is_shown_as_text_not_markdown():
    from adaptclip_med.dashboard.plain import md_text

    crafted = "![Normal](http://evil.example/badge.png) :green-badge[Normal] <img src=x>\nline"
    escaped = md_text(crafted)
    assert "\n" not in escaped and "![" not in escaped and "](" not in escaped and "\\:green\\-badge\\[" in escaped
    assert escaped.replace("\\", "") == crafted.replace("\n", " ")  # nothing lost but the line break
