"""One slice numbering everywhere: the viewer's 1-based number, with the DICOM InstanceNumber.

A study whose InstanceNumbers are shuffled (so instance != position) is scored once; the viewer's
payload, study.json, slices.csv, the overlay file names, the CLI lines, the findings list and the
signed HTML/PDF report must all name the same image by the same number.
"""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pydicom
import pytest

from adaptclip_med.demo.phantom import make_head_ct_phantom, write_dicom_series
from adaptclip_med.io.loader import load_study
from adaptclip_med.outputs import layout
from adaptclip_med.outputs.slice_numbers import instance_numbers, slice_label
from adaptclip_med.review.export import report_content
from adaptclip_med.outputs.findings import find_findings
from adaptclip_med.review.rendering import Window
from adaptclip_med.review.report import render_html
from adaptclip_med.review.store import Review
from adaptclip_med.review.studies import score_for_review
from adaptclip_med.review.viewer_data import study_payload
from adaptclip_med.volume.compare import score_with_methods
from adaptclip_med.volume.pipeline import make_scorer


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory, tiny_options):
    base = tmp_path_factory.mktemp("numbering")
    hu, _ = make_head_ct_phantom(3, (8, 48, 48), lesions=2)
    write_dicom_series(hu, base / "study", shuffle_seed=5)
    volume, _ = load_study(base / "study")
    options = tiny_options.with_output(threshold=0.0)  # every slice has a finding: the list is never empty
    study = score_for_review(volume, "numbering-1", base / "out", make_scorer(options))
    return base, volume, study, options


def _instance_by_position(folder) -> dict[float, int]:
    found = {}
    for path in folder.iterdir():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found[round(float(ds.ImagePositionPatient[2]), 3)] = int(ds.InstanceNumber)
    return found


def test_instance_numbers_follow_the_geometry_not_the_file_order(shuffled):
    base, volume, study, _ = shuffled
    by_position = _instance_by_position(base / "study")
    affine = volume.reorientation.canonical_affine(volume.source_affine)
    expected = [by_position[round(float((affine @ [z, 0, 0, 1])[2]), 3)] for z in range(volume.array.shape[0])]
    assert instance_numbers(volume) == expected and expected != list(range(1, 9))  # shuffled: not the position
    assert study.instances == expected


def test_every_output_names_a_slice_by_the_viewers_number(shuffled):
    base, volume, study, options = shuffled
    out, instances = base / "out", study.instances
    report = json.loads((out / layout.STUDY_JSON).read_text())
    top = report["top_slices"]
    assert "1-based" in report["slice_numbering"]
    for entry in top:
        assert entry["slice"] == entry["index"] + 1 and entry["instance_number"] == instances[entry["index"]]

    rows = list(csv.DictReader(open(out / layout.SLICES_CSV)))
    assert list(rows[0])[:3] == ["slice", "instance_number", "array_index"]
    for row in rows:
        assert int(row["slice"]) == int(row["array_index"]) + 1
        assert int(row["instance_number"]) == instances[int(row["array_index"])]

    overlays = sorted(p.name for p in out.glob(layout.OVERLAY_GLOB))
    assert overlays == sorted(layout.overlay_name(rank, e["slice"]) for rank, e in enumerate(top, start=1))
    assert {layout.parse_overlay_name(n)[1] for n in overlays} == {e["slice"] for e in top}

    payload = study_payload(study, study.threshold)
    assert payload["instances"] == instances and payload["top_slices"] == [e["index"] for e in top]
    # the viewer's corner text: slice ${z + 1} / n (instance N) -- viewer.js hud()
    z = top[0]["index"]
    viewer_text = f"slice {z + 1} / {study.depth}  (instance {instances[z]})"

    lines = score_with_methods(base / "study", base / "cli", [options])
    assert f"top slices {slice_label(z, instances[z])}" in lines[0]
    assert re.search(rf"\bslice {z + 1} \(instance {instances[z]}\)", lines[0]) and viewer_text.startswith(f"slice {z + 1} ")

    findings = find_findings(study.probability, study.threshold, study.spacing)
    peak = findings[0].peak_slice
    assert f"on slice {peak + 1} (instance {instances[peak]})" in findings[0].describe(instances)

    review = Review("numbering-1", "confirmed", "Dr Test", "2026-01-01T00:00:00+00:00")
    content = report_content(study, review, Window(40, 80), None)
    html = render_html(content)
    assert f"on slice {peak + 1} (instance {instances[peak]})" in html  # findings list of the signed report
    for key in content.key_slices:
        assert f"<figcaption>slice {key.index + 1} (instance {instances[key.index]}), slice score" in html
    assert not re.search(rf"<figcaption>slice {top[0]['index']},", html)  # never the 0-based index
