"""Where the project keeps its own data (a light module: the CLI reads it before any model code)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Project data folder (converted checkpoints, reference banks): $ADAPTCLIP_MED_HOME or ~/.cache/adaptclip-med."""
    return Path(os.environ.get("ADAPTCLIP_MED_HOME", Path.home() / ".cache" / "adaptclip-med"))
