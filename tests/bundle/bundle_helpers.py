"""Helpers shared by the MONAI bundle tests: where the bundle is, tiny offline settings, running
``python -m monai.bundle`` in a subprocess (phantom studies: tests/support/phantoms.py).  (A
uniquely named module rather than ``conftest`` so imports cannot pick up another folder's
conftest.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.tiny_models import TINY_MODEL, TINY_SIZE

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "adaptclip_med"
CONFIGS = BUNDLE / "configs"
#: Small enough to keep every bundle run to seconds on two CPU cores.
IMAGE_SIZE = TINY_SIZE
TINY = dict(TINY_MODEL)



def config(*names: str) -> list[str]:
    return [str(CONFIGS / f"{name}.json") for name in names]


def cli_args(**overrides) -> list[str]:
    """``--key value`` pairs for ``python -m monai.bundle`` (Fire parses the values)."""
    args = []
    for key, value in overrides.items():
        args += [f"--{key}", "None" if value is None else str(value)]
    return args


def subprocess_env() -> dict[str, str]:
    """The subprocess imports THIS checkout's package (it runs in the bundle folder, where an
    installed copy elsewhere would otherwise win)."""
    path = os.pathsep.join(p for p in (str(BUNDLE.parents[1]), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, ADAPTCLIP_MED_PROGRESS="0", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore",
                PYTHONPATH=path)


def run_bundle(args: list[str], cwd: Path = BUNDLE, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "monai.bundle", *args], cwd=cwd, env=subprocess_env(),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result
