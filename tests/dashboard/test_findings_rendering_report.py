"""Findings from the mask, slice rendering (window, zoom) and the HTML/PDF report."""

from __future__ import annotations

import numpy as np
import pytest

from adaptclip_med.outputs.findings import find_findings
from adaptclip_med.review.rendering import Window, percentile_window, zoom_box, zoomed
from adaptclip_med.review.report import KeySlice, ReportContent, render_html, write_html_report, write_pdf_report
from adaptclip_med.review.store import FindingNote, Review


def test_findings_are_connected_regions_ranked_by_peak():
    prob = np.zeros((6, 20, 20), dtype=np.float32)
    prob[1:3, 2:5, 2:5] = 0.6  # 18 voxels, slices 1-2
    prob[4, 10:12, 10:12] = 0.9  # 4 voxels, slice 4
    prob[4, 10, 10] = 0.95
    findings = find_findings(prob, 0.5, (2.0, 1.0, 1.0))
    assert [(f.finding_id, f.first_slice, f.last_slice, f.voxels) for f in findings] == [(1, 4, 4, 4), (2, 1, 2, 18)]
    assert findings[0].peak_probability == pytest.approx(0.95) and findings[0].peak_slice == 4
    assert findings[1].volume_ml == pytest.approx(18 * 2.0 / 1000)
    assert "slices 2-3" in findings[1].describe()  # the viewer's 1-based numbers (array indices 1-2)
    assert findings[0].describe([None, None, None, None, 17, None]).endswith("on slice 5 (instance 17), 0.01 ml")
    assert find_findings(prob, 0.99, (1.0, 1.0, 1.0)) == []


def test_window_and_percentile_window():
    hu = np.array([-1000.0, 0.0, 40.0, 80.0, 1000.0])
    assert Window(40, 80).apply(hu).tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])
    auto = percentile_window(np.linspace(0, 100, 1001))
    assert auto.level == pytest.approx(50.0) and auto.width == pytest.approx(99.0)


def test_zoom_keeps_the_crop_inside_the_image_and_fixes_aspect():
    assert zoom_box((100, 200), 2.0) == (25, 50, 50, 100)
    assert zoom_box((100, 200), 4.0, centre=(0.0, 199.0)) == (0, 150, 25, 50)
    rgb = np.zeros((64, 64, 3), dtype=np.uint8)
    assert zoomed(rgb, 1.0, size=128).shape == (128, 128, 3)
    assert zoomed(rgb, 1.0, size=128, spacing_yx=(2.0, 1.0)).shape == (128, 64, 3)  # tall pixels -> tall image


@pytest.fixture()
def content():
    review = Review("abc123", "confirmed", "Dr <A>", "2025-01-01T00:00:00+00:00", "check <b>this</b>", 0.4, 2,
                    (FindingNote(1, "#1: slice 3", "likely bleed"),))
    image = np.full((32, 32, 3), 120, dtype=np.uint8)
    scores = np.array([np.nan, 0.2, 0.5, 0.9, 0.3])
    return ReportContent("abc123", review, 0.9, 0.55, 0.4, "tiny (random:0), zero-shot", ["#1: slice 3, peak 0.90"],
                         scores, [KeySlice(3, 0.9, image, reference=image)])


def test_html_report_is_self_contained_and_escaped(tmp_path, content):
    text = render_html(content)
    assert "Confirmed anomaly" in text and "Dr &lt;A&gt;" in text and "check &lt;b&gt;this&lt;/b&gt;" in text
    assert "likely bleed" in text and "0.400" in text and "not for clinical use" in text
    assert text.count("data:image/png;base64,") == 3  # score curve + slice + matched reference
    path = write_html_report(tmp_path / "report.html", content)
    assert path.read_text() == text


def test_pdf_report_is_a_pdf(tmp_path, content):
    path = write_pdf_report(tmp_path / "report.pdf", content)
    data = path.read_bytes()
    assert data.startswith(b"%PDF") and data.count(b"/Type /Page") >= 2
    assert [p.name for p in tmp_path.iterdir()] == ["report.pdf"]  # no temporary left behind


def test_model_provenance_names_the_adapters_it_recorded():
    from adaptclip_med.review.study_data import adapter_label

    assert adapter_label({"weights": "demo", "weights_provenance": {"source": "packaged demo"},
                          "weights_sha256": "abcdef0123456789"}) == "demo (packaged demo) sha256 abcdef012345"
    assert adapter_label({"weights": "untrained", "weights_provenance": {"source": "untrained"}}) == "untrained"
    assert adapter_label({"adapters": "x.safetensors"}) == "x.safetensors" and adapter_label({}) == "none recorded"
