"""Study context (patient, ID, accession, date, series) for a logged-in reader only; never in file names."""

from __future__ import annotations

from adaptclip_med.io.loader import load_study
from adaptclip_med.review.access import LOCAL, OIDC, READ, SIGN_OFF, Identity
from adaptclip_med.review.export import export_review
from adaptclip_med.review.rendering import Window
from adaptclip_med.review.store import Review
from adaptclip_med.review.studies import score_for_review
from adaptclip_med.review.study_context import may_see_context, patient_context
from adaptclip_med.volume.pipeline import make_scorer


def _who(mode: str) -> Identity:
    return Identity("https://idp.test" if mode == OIDC else "local", "dr-a", "Dr A", "", frozenset({READ, SIGN_OFF}), mode=mode)


def test_context_is_for_a_logged_in_user_only():
    assert may_see_context(_who(OIDC)) and not may_see_context(_who(LOCAL)) and not may_see_context(None)
    assert may_see_context(_who(LOCAL), show_patient_names=True)  # local mode: only with --show-patient-names


def test_corner_text_and_signed_report_name_the_patient_but_no_file_does(demo_data, tiny_options, tmp_path):
    volume, _ = load_study(demo_data.study_dir)
    found = patient_context(volume)
    assert found.name == "PHANTOM, DEMO" and found.patient_id == "PHANTOM-0001" and found.lines()[0] == "PHANTOM, DEMO  ID PHANTOM-0001"
    assert found.series == "PHANTOM HEAD (LESIONS)" and any(line.endswith("PHANTOM HEAD (LESIONS)") for line in found.lines())
    study = score_for_review(volume, "ctx-1", tmp_path / "out", make_scorer(tiny_options))
    review = Review("ctx-1", "normal", "Dr A", "2026-01-01T00:00:00+00:00")
    shown = export_review(study, review, tmp_path / "export", Window(40, 80), with_context=True)
    html = shown.files["report_html"].read_text()
    assert "PHANTOM, DEMO" in html and "PHANTOM-0001" in html and "Patient ID" in html
    names = [p.name for p in (tmp_path / "export").rglob("*")]
    assert not any("PHANTOM" in n for n in names)  # never in a file name
    hidden = export_review(study, review, tmp_path / "export2", Window(40, 80))
    assert "PHANTOM-0001" not in hidden.files["report_html"].read_text()
