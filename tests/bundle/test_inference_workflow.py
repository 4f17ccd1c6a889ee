"""``configs/inference.json`` as MONAI's ConfigWorkflow runs it, on small synthetic studies."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from bundle_helpers import TINY, config

from tests.support.phantoms import write_nifti_study
from tests.support.tiny_models import tiny_spec

from adaptclip_med.demo.phantom import make_head_ct_phantom, write_dicom_series


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """A folder of two studies as users export them: a NIfTI file and a DICOM series folder."""
    root = tmp_path_factory.mktemp("studies")
    write_nifti_study(root / "head_nifti.nii.gz", seed=3, lesions=2)
    (root / "head_nifti_mask.nii.gz").unlink()
    hu, _ = make_head_ct_phantom(4, (5, 48, 48), lesions=1)
    write_dicom_series(hu, root / "1.2.840.99999.1.2.3.4", patient_name="DOE^JANE")  # a UID-named export folder
    return root


def workflow(dataset_dir, output_dir, **overrides):
    from monai.bundle import ConfigWorkflow

    settings = {**TINY, "window": "brain", "zero_shot": True, "dataset_dir": str(dataset_dir),
                "output_dir": str(output_dir), **overrides}
    return ConfigWorkflow(config_file=config("inference"), workflow_type="infer", logging_file=False, **settings)


def test_properties_and_run_write_every_output_per_study(studies, tmp_path):
    flow = workflow(studies, tmp_path / "out")
    flow.initialize()
    assert flow.check_properties() == []
    flow.run()
    flow.finalize()

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())["studies"]
    assert [row["status"] for row in summary] == ["done", "done"]
    assert [row["score"] for row in summary] == sorted((row["score"] for row in summary), reverse=True)
    folders = sorted(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    assert len(folders) == 2
    for folder in folders:
        # Output names are pseudonymous keys: neither the UID folder name nor any patient name leaks.
        assert folder.name.startswith("study-") and "1.2.840" not in folder.name
        report = json.loads((folder / "study.json").read_text())
        assert report["scoring"]["shots"] == 0 and report["bundle_study"] == folder.name
        probability = nib.load(str(folder / "anomaly_probability.nii.gz"))
        assert sorted(probability.shape) in ([5, 48, 48], [6, 48, 48]) and np.all(np.asarray(probability.dataobj) <= 1.0)
    kinds = {json.loads((f / "study.json").read_text())["source"]["kind"]: f for f in folders}
    assert set(kinds) == {"dicom", "nifti"}
    assert (kinds["dicom"] / "anomaly_seg.dcm").is_file() and not (kinds["nifti"] / "anomaly_seg.dcm").exists()
    nifti_in = nib.load(str(studies / "head_nifti.nii.gz"))
    nifti_out = nib.load(str(kinds["nifti"] / "anomaly_mask.nii.gz"))
    assert nifti_out.shape == nifti_in.shape and np.allclose(nifti_out.affine, nifti_in.affine)


def test_bundle_scores_equal_the_cli_pipeline(studies, tmp_path):
    from adaptclip_med.volume.options import ReferenceOptions, ScoringOptions, SlicingOptions
    from adaptclip_med.volume.pipeline import make_scorer
    from adaptclip_med.volume.study_run import score_study

    flow = workflow(studies, tmp_path / "bundle")
    flow.initialize()
    flow.run()
    flow.finalize()
    bundle = {row["study"]: row["score"] for row in json.loads((tmp_path / "bundle" / "summary.json").read_text())["studies"]}
    from adaptclip_med.bundle_support import discover_studies

    options = ScoringOptions(model=tiny_spec(), references=ReferenceOptions(zero_shot=True),
                             slicing=SlicingOptions(window="brain"))
    scorer = make_scorer(options)
    for item in discover_studies(studies):
        cli = score_study(item["image"], tmp_path / "cli" / item["study"], scorer)
        assert bundle[item["study"]] == pytest.approx(cli.score, abs=1e-6)
        np.testing.assert_allclose(
            np.asarray(nib.load(str(tmp_path / "bundle" / item["study"] / "anomaly_probability.nii.gz")).dataobj),
            np.asarray(nib.load(str(cli.files["probability_nifti"])).dataobj), atol=1e-6)
