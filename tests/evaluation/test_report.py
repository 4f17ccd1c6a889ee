"""Report tables, CSVs and plots."""

from __future__ import annotations

import csv

import pytest
from PIL import Image

from adaptclip_med.evaluation.metrics import MetricAccumulator
from adaptclip_med.evaluation.report import write_report
from adaptclip_med.evaluation.summary import MEAN_ROW, summarise

PROTOCOL = {
    "auxiliary_data": "MVTec AD test split (release recipe)",
    "checkpoint": "epoch 15 (fixed, not selected on test data)",
    "seeds": [10, 20, 30],
    "map_size": 256,
    "bins": 10000,
}


def make_results():
    """Class a has pixel metrics, class b is image-level only."""
    results = {(0, 10, "a"): {"I-AUROC": 80.0, "P-AUROC": 70.0}, (0, 10, "b"): {"I-AUROC": 60.0}}
    for seed, a, b in [(10, 90.0, 70.0), (20, 92.0, 74.0), (30, 94.0, 78.0)]:
        results[(1, seed, "a")] = {"I-AUROC": a, "P-AUROC": a - 10}
        results[(1, seed, "b")] = {"I-AUROC": b}
    return results


def test_summary_means_classes_per_seed_then_over_seeds():
    summary = summarise(make_results())
    one_shot = summary[1]
    assert (one_shot["a"]["I-AUROC"].mean, one_shot["a"]["I-AUROC"].std) == pytest.approx((92.0, 2.0))
    # per-seed class means 80, 83, 86 -> 83 ± 3
    assert (one_shot[MEAN_ROW]["I-AUROC"].mean, one_shot[MEAN_ROW]["I-AUROC"].std) == pytest.approx((83.0, 3.0))
    assert one_shot[MEAN_ROW]["P-AUROC"].mean == pytest.approx(82.0)  # only class a has it
    assert "P-AUROC" not in one_shot["b"]
    assert summary[0][MEAN_ROW]["I-AUROC"].std is None and summary[0][MEAN_ROW]["I-AUROC"].format() == "70.0"


def test_write_report_files(tmp_path):
    accumulator = MetricAccumulator()
    for score, label in [(0.9, 1), (0.7, 0), (0.6, 1), (0.2, 0)]:
        accumulator.update(score, label)
    curves = {(1, 10, "a"): accumulator.image_curves(), (1, 20, "a"): accumulator.image_curves()}
    written = write_report(tmp_path / "out", make_results(), PROTOCOL, curves)
    names = sorted(p.relative_to(tmp_path / "out").as_posix() for p in written)
    assert names == ["plots/image_pr_1shot.png", "plots/image_roc_1shot.png", "plots/per_class_i-auroc.png",
                     "plots/per_class_p-auroc.png", "report.md", "results.csv", "summary.csv"]
    assert not [p for p in (tmp_path / "out").rglob(".*")]  # no temporary files left behind

    report = (tmp_path / "out" / "report.md").read_text()
    assert "- **auxiliary_data**: MVTec AD test split (release recipe)" in report
    assert "- **seeds**: 10, 20, 30" in report and "- **bins**: 10000" in report
    assert "| 1 | 3 | 83.0 ± 3.0 | 82.0 ± 2.0 |" in report
    assert "| b | 74.0 ± 4.0 | – |" in report
    assert "![image_roc_1shot.png](plots/image_roc_1shot.png)" in report

    with open(tmp_path / "out" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8 and rows[0] == {"shots": "0", "seed": "10", "class": "a", "I-AUROC": "80.0000",
                                          "P-AUROC": "70.0000"}
    with open(tmp_path / "out" / "summary.csv", newline="") as handle:
        summary_rows = {(r["shots"], r["class"]): r for r in csv.DictReader(handle)}
    assert summary_rows[("1", MEAN_ROW)]["I-AUROC std"] == "3.0000"
    assert summary_rows[("0", "b")]["P-AUROC mean"] == ""

    for path in written:
        if path.suffix == ".png":
            with Image.open(path) as image:
                assert image.format == "PNG" and image.width > 200


def test_protocol_must_state_the_hazards(tmp_path):
    with pytest.raises(ValueError, match="checkpoint, map_size"):
        write_report(tmp_path, make_results(), {"auxiliary_data": "x", "seeds": [10], "bins": 10000})
    assert list(tmp_path.iterdir()) == []
