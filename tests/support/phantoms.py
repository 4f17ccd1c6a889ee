"""Small synthetic studies built from the demo head-CT phantom (adaptclip_med.demo.phantom), in
the forms the tests and benchmarks feed the package: NIfTI files and in-memory volumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_nifti_study(path: Path, seed: int, lesions: int, shape=(6, 48, 48)) -> tuple[Path, Path]:
    """A small phantom head CT as NIfTI (1.8 x 1.8 x 5 mm) and its lesion mask in the same geometry."""
    import nibabel as nib

    from adaptclip_med.demo.phantom import make_head_ct_phantom

    hu, mask = make_head_ct_phantom(seed, shape, lesions=lesions)
    affine = np.diag([1.8, 1.8, 5.0, 1.0])
    # Phantom arrays are (Z, Y, X); NIfTI stores (X, Y, Z) with the affine above.
    nib.save(nib.Nifti1Image(np.ascontiguousarray(hu.transpose(2, 1, 0)), affine), str(path))
    label = path.with_name(path.name.replace(".nii.gz", "_mask.nii.gz"))
    nib.save(nib.Nifti1Image(np.ascontiguousarray(mask.transpose(2, 1, 0).astype(np.uint8)), affine), str(label))
    return path, label


def phantom_volume(hu: np.ndarray, label: str):
    """A phantom array as an in-memory ``Volume`` (1 mm isotropic CT, slice positions 0..Z-1)."""
    from adaptclip_med.io.volume import Volume

    return Volume(array=hu, spacing=(1.0, 1.0, 1.0), modality="CT", positions=np.arange(hu.shape[0], dtype=np.float64),
                  source_kind="synthetic", source_label=label)
