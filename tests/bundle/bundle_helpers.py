"""Helpers shared by the MONAI bundle tests: where the bundle is, tiny offline settings, running
``python -m monai.bundle`` in a subprocess, and small synthetic studies.  (A uniquely named module
rather than ``conftest`` so imports cannot pick up another folder's conftest.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "adaptclip_med"
CONFIGS = BUNDLE / "configs"
#: Small enough to keep every bundle run to seconds on two CPU cores.
IMAGE_SIZE = 56
TINY = {"backbone": "adaptclip-tiny-vit", "backbone_weights": "random:0", "adapters": None, "offline": True,
        "image_size": IMAGE_SIZE}


def tiny_spec():
    """The method spec the bundle config builds from :data:`TINY` (``configs/inference.json``'s ``method_spec``)."""
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.model.backbone_source import BackboneSpec

    return MethodSpec(backbone=BackboneSpec("adaptclip-tiny-vit", "random:0", offline=True), image_size=IMAGE_SIZE)


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


def write_nifti_study(path: Path, seed: int, lesions: int, shape=(6, 48, 48)) -> tuple[Path, Path]:
    """A small phantom head CT as NIfTI (1.8 x 1.8 x 5 mm) and its lesion mask in the same geometry."""
    from adaptclip_med.demo.phantom import make_head_ct_phantom

    hu, mask = make_head_ct_phantom(seed, shape, lesions=lesions)
    affine = np.diag([1.8, 1.8, 5.0, 1.0])
    # Phantom arrays are (Z, Y, X); NIfTI stores (X, Y, Z) with the affine above.
    nib.save(nib.Nifti1Image(np.ascontiguousarray(hu.transpose(2, 1, 0)), affine), str(path))
    label = path.with_name(path.name.replace(".nii.gz", "_mask.nii.gz"))
    nib.save(nib.Nifti1Image(np.ascontiguousarray(mask.transpose(2, 1, 0).astype(np.uint8)), affine), str(label))
    return path, label
