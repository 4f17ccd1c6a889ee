"""dciodvfy (Debian dicom3tools) on a written DICOM object: shared by every test that writes one."""

from __future__ import annotations

from pathlib import Path


def assert_dicom_conformant(path: Path) -> None:
    """Run dciodvfy (Debian package dicom3tools) on a written DICOM file; fail on any "Error" line."""
    import shutil
    import subprocess

    import pytest

    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy not installed (apt-get install dicom3tools): DICOM conformance not checked")
    run = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=120)
    errors = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]
    assert not errors, f"dciodvfy on {Path(path).name}: " + "; ".join(errors)
