"""``python -m monai.bundle run`` on the demo study, and the evaluation config on the same data."""

from __future__ import annotations

import json

import pydicom
from bundle_helpers import IMAGE_SIZE, TINY, cli_args, config, run_bundle


def test_cli_run_with_the_demo_override_writes_outputs_and_logs_no_identifiers(demo_dir, tmp_path):
    out = tmp_path / "results"
    result = run_bundle(["run", "--config_file", str(config("inference", "demo")),
                         *cli_args(demo_dir=demo_dir, image_size=IMAGE_SIZE, output_dir=out)])
    rows = json.loads((out / "summary.json").read_text())["studies"]
    assert {row["study"]: row["status"] for row in rows} == {"demo-study-with-lesions": "done", "demo-normal-study": "done"}
    assert all(row["mode"] == "3-shot" for row in rows)
    lesions = out / "demo-study-with-lesions"
    for name in ("anomaly_probability.nii.gz", "anomaly_mask.nii.gz", "anomaly_seg.dcm", "anomaly_sr.dcm", "slices.csv",
                 "study.json"):
        assert (lesions / name).is_file(), name
    report = json.loads((lesions / "study.json").read_text())
    assert report["scoring"]["reference_bank"]["calibration"] is not None  # threshold calibrated on the demo bank
    source = pydicom.dcmread(next((demo_dir / "data" / "study").glob("*.dcm")), stop_before_pixels=True)
    sr = pydicom.dcmread(lesions / "anomaly_sr.dcm", stop_before_pixels=True)  # the bundle's SaveDicomSrd
    assert sr.StudyInstanceUID == source.StudyInstanceUID and report["files"]["dicom_sr"] == "anomaly_sr.dcm"
    log = result.stdout + result.stderr
    for identifier in (source.StudyInstanceUID, source.SeriesInstanceUID, source.SOPInstanceUID, str(source.PatientName)):
        assert identifier not in log


def test_evaluate_config_reports_study_slice_and_voxel_metrics(demo_dir, tmp_path):
    from monai.bundle import ConfigWorkflow

    flow = ConfigWorkflow(config_file=config("inference", "evaluate", "demo"), workflow_type="infer", logging_file=False,
                          demo_dir=str(demo_dir), output_dir=str(tmp_path), image_size=TINY["image_size"])
    flow.initialize()
    assert flow.check_properties() == []
    flow.run()
    report = json.loads((tmp_path / "metrics.json").read_text())
    metrics = report["metrics_percent"]
    assert report["studies"] == 2
    # One abnormal and one normal study: every metric is defined.
    for name in ("study_I-AUROC", "slice_I-AUROC", "slice_I-AP", "slice_P-AUROC", "slice_P-AUPR", "slice_P-AUPRO"):
        assert metrics[name] is not None and 0.0 <= metrics[name] <= 100.0, name
    assert flow.evaluator.state.metrics["study_I-AUROC"] == metrics["study_I-AUROC"]
