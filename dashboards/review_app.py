"""adaptclip-med review dashboard (Streamlit entry point).

Start it with ``adaptclip-med dashboard --data-root DIR`` (which passes the configuration and the
right Streamlit flags); the pages live in ``review_ui/`` next to this file and the logic they call
in :mod:`adaptclip_med.review`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Streamlit puts the script's folder on sys.path, AppTest does not always: make review_ui importable.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from review_ui.app import main  # noqa: E402

main()
