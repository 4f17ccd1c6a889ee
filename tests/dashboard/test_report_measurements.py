"""The signed HTML and PDF report list the reader's measurements (kind, value with unit, the
viewer's 1-based slice number, ROI mean / SD / area), recomputed from the volume as kept with the
sign-off."""

from __future__ import annotations

import re
import zlib

from adaptclip_med.io.loader import load_study
from adaptclip_med.review.export import export_review
from adaptclip_med.review.measurements import measure
from adaptclip_med.review.rendering import Window
from adaptclip_med.review.store import Review
from adaptclip_med.review.studies import score_for_review
from adaptclip_med.review.viewer_data import canonical_affine
from adaptclip_med.volume.pipeline import make_scorer


def pdf_text(data: bytes) -> str:
    """The text a reader sees in a matplotlib PDF: the literal strings of every text object's
    Tj / TJ operators (kerning numbers dropped), one text object per line."""
    lines = []
    for stream in re.finditer(rb"stream\r?\n(.*?)endstream", data, re.S):
        try:
            content = zlib.decompress(stream.group(1))
        except zlib.error:
            continue
        for text_object in re.finditer(rb"BT(.*?)ET", content, re.S):
            strings = re.findall(rb"\((?:\\.|[^\\)])*\)", text_object.group(1))
            raw = b"".join(s[1:-1] for s in strings)
            raw = re.sub(rb"\\([0-7]{1,3})", lambda m: bytes([int(m.group(1), 8)]), raw)
            lines.append(re.sub(rb"\\(.)", rb"\1", raw).decode("latin-1"))
    return "\n".join(lines)


def test_signed_report_lists_the_measurements_in_html_and_pdf(demo_data, tiny_options, tmp_path):
    volume, _ = load_study(demo_data.study_dir)
    study = score_for_review(volume, "meas-1", tmp_path / "out", make_scorer(tiny_options))
    kept = measure(volume.array, canonical_affine(study), [
        {"kind": "distance", "z": 4, "points": [[10, 10], [10, 40]]},
        {"kind": "ellipse", "z": 9, "points": [[20, 20], [40, 50]]}])
    review = Review("meas-1", "confirmed", "Dr A", "2026-01-01T00:00:00+00:00",
                    measurements=tuple(m.as_dict() for m in kept))
    files = export_review(study, review, tmp_path / "export", Window(40, 80)).files
    distance, roi = kept
    unit = " HU" if volume.modality == "CT" else ""
    expected = [f"{distance.length_mm:.1f} mm", f"{roi.mean:.1f}{unit}", f"{roi.sd:.1f}{unit}", f"{roi.area_mm2:.1f} mm²"]
    html = files["report_html"].read_text()
    assert "<h2>Measurements</h2>" in html
    rows = re.findall(r"<tr><td>(M\d)</td><td>([^<]*)</td><td>([^<]*)</td>((?:<td>[^<]*</td>)*)</tr>", html)
    assert [(n, kind, where) for n, kind, where, _ in rows] == [("M1", "distance", "slice 5 (instance 5)"),
                                                              ("M2", "ellipse ROI", "slice 10 (instance 10)")]
    assert re.findall(r"<td>([^<]*)</td>", rows[0][3]) == [expected[0], "-", "-", "-"]
    assert re.findall(r"<td>([^<]*)</td>", rows[1][3]) == ["-", *expected[1:]]
    text = pdf_text(files["report_pdf"].read_bytes())
    assert "Measurements:" in text
    line_1 = next(line for line in text.splitlines() if line.strip().startswith("M1"))
    line_2 = next(line for line in text.splitlines() if line.strip().startswith("M2"))
    assert "distance" in line_1 and "slice 5 (instance 5)" in line_1 and expected[0] in line_1
    assert "ellipse ROI" in line_2 and "slice 10 (instance 10)" in line_2 and all(v in line_2 for v in expected[1:])


def test_report_without_measurements_says_so(demo_data, tiny_options, tmp_path):
    volume, _ = load_study(demo_data.study_dir)
    study = score_for_review(volume, "meas-2", tmp_path / "out", make_scorer(tiny_options))
    review = Review("meas-2", "normal", "Dr A", "2026-01-01T00:00:00+00:00")
    files = export_review(study, review, tmp_path / "export", Window(40, 80)).files
    assert "No measurements." in files["report_html"].read_text()
    assert "Measurements: none" in pdf_text(files["report_pdf"].read_bytes())
