"""The project's test-bed scripts (``scripts/*.py``: Orthanc, the AI node, OHIF) loaded as modules by
the tests and benchmarks that start those servers (the scripts are not a package: users run them
as ``python scripts/<name>.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a fresh module (each caller gets its own, as running it would)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
