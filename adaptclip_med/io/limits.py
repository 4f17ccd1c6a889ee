"""How large an image this program agrees to decode, shared by every reader.

A corrupt or hostile header can claim any size (a 5 KB DICOM claiming 10^8 frames, a NIfTI header
claiming 32767^3 voxels).  Readers compare the claim with this cap and with the file's own size
*before* allocating, so such a file costs one line in the error list, not a hung or killed run.
"""

from __future__ import annotations

#: Largest image decoded (as float32): a header claiming more is refused before allocating.
MAX_DECODED_BYTES = 4 * 1024**3


def decoded_size_problem(shape: tuple[int, ...], what: str, itemsize: int = 4) -> str | None:
    """Why an image of ``shape`` (as ``what``, e.g. 'pixels') must not be decoded, or None."""
    count = 1
    for n in shape:
        count *= int(n)
    decoded = count * itemsize
    if decoded <= MAX_DECODED_BYTES:
        return None
    size = decoded / 1024**4
    text = f"{size:.0f} TiB" if size >= 1 else f"{decoded / 1024**3:.0f} GiB"
    return (f"the header claims {'x'.join(str(int(n)) for n in shape)} {what} ({text} decoded), more than the "
            f"{MAX_DECODED_BYTES // 1024**3} GiB limit; the header is corrupt or the image too large")
