"""The layers in pyproject's ``[tool.importlinter]`` hold, with no exceptions, and have teeth.

``.ci/run`` runs ``lint-imports`` before the tests; this file runs the same command so that the
README's test command alone also catches an import that climbs a layer, and shows on a copy of
the package that the contracts really fail when one is broken (a contract that never fails
checks nothing).  docs/architecture.md draws the layers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
LINT_IMPORTS = shutil.which("lint-imports")


def _importlinter() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package under ``root`` (its own pyproject), without a cache."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


def test_contracts_list_no_exceptions():
    contracts = _importlinter()["contracts"]
    assert {c["id"] for c in contracts} >= {"layers", "methods-independent", "demo-callers-only", "no-cycles"}
    assert not [c["id"] for c in contracts if c.get("ignore_imports")], "a contract lists exceptions"
    layers = next(c for c in contracts if c["id"] == "layers")
    assert layers["exhaustive"] is True  # a new top-level module must be given its layer


def test_version_has_one_home():
    """pyproject reads the version from adaptclip_med/version.py; the package front re-exports it."""
    import adaptclip_med
    from adaptclip_med.version import __version__

    project = tomllib.loads(PYPROJECT.read_text())
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "adaptclip_med.version.__version__"}
    assert adaptclip_med.__version__ == __version__


@pytest.mark.skipif(LINT_IMPORTS is None, reason="import-linter is in the dev extra (pip install -e '.[dev]')")
def test_the_package_keeps_its_layers():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.skipif(LINT_IMPORTS is None, reason="import-linter is in the dev extra (pip install -e '.[dev]')")
def test_a_climbing_import_breaks_the_contracts(tmp_path):
    """Outputs importing the scorer, one method importing another, the core importing the demo, a
    new top-level module without a layer and a cycle inside a package each break a contract."""
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "adaptclip_med", copy / "adaptclip_med",
                    ignore=shutil.ignore_patterns("__pycache__", "*.safetensors", "frontend"))
    shutil.copy(PYPROJECT, copy / "pyproject.toml")
    package = copy / "adaptclip_med"
    with (package / "outputs" / "layout.py").open("a") as f:
        f.write("\nfrom adaptclip_med.volume import scoring  # noqa: E402,F401\n")
    with (package / "methods" / "winclip" / "prompts.py").open("a") as f:
        f.write("\nfrom adaptclip_med.methods.adaclip import text  # noqa: E402,F401\n")
    with (package / "volume" / "triage.py").open("a") as f:
        f.write("\nfrom adaptclip_med.demo import phantom  # noqa: E402,F401\n")
    (package / "unplaced.py").write_text('"""A module nobody gave a layer."""\n')
    with (package / "outputs" / "layout.py").open("a") as f:  # study_writers imports layout: a cycle
        f.write("from adaptclip_med.outputs import study_writers  # noqa: E402,F401\n")

    result = _lint(copy)
    out = result.stdout
    assert result.returncode != 0, out[-4000:]
    assert "adaptclip_med.outputs.layout -> adaptclip_med.volume.scoring" in out
    assert "adaptclip_med.methods.winclip.prompts -> adaptclip_med.methods.adaclip.text" in out
    assert "adaptclip_med.volume.triage -> adaptclip_med.demo.phantom" in out
    assert "adaptclip_med.unplaced" in out  # the exhaustive layers contract names the new module
    assert "No cycles are allowed in adaptclip_med.outputs" in out
    assert sys.modules.get("adaptclip_med.unplaced") is None  # the copy never touched this process
