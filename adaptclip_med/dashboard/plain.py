"""Text from image headers shown as text: Streamlit renders markdown in captions, titles, messages
and image captions, so a crafted DICOM Series Description such as ``![Normal](http://x/badge.png)``
would fetch an outside image and draw a fake badge.  Every header-derived string that goes into a
markdown-rendering element passes through :func:`md_text` first."""

from __future__ import annotations

import re

#: Every ASCII punctuation character may be backslash-escaped in CommonMark; Streamlit's own
#: directives (``:red[...]``, ``:material/x:``) start with ':' and are escaped too.
_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$=&\"'^])")
MAX_CHARS = 200


def md_text(value: object, limit: int = MAX_CHARS) -> str:
    """``value`` as literal text inside markdown: control characters and line breaks become spaces,
    markup characters are escaped, long values are cut."""
    text = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in str(value))
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return _SPECIAL.sub(r"\\\1", text)
