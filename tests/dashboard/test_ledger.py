"""The review record is tamper-evident: ``adaptclip-med review verify`` names the first edited,
deleted or reordered row of a store written through the store the app uses; the file is 0600."""

from __future__ import annotations

import shutil
import sqlite3
import stat

import pytest
from typer.testing import CliRunner

from adaptclip_med.cli.main import app
from adaptclip_med.review.access import READ, SIGN_OFF, Identity
from adaptclip_med.review.store import MIGRATIONS, STORE_FILE, FindingNote, ReviewStore, migrate

RADIOLOGIST = Identity("https://idp.test", "sub-123", "Dr Chain", "chain@hospital.test", frozenset({READ, SIGN_OFF}))


@pytest.fixture()
def written(tmp_path):
    """A store with two studies, an amendment and exports (6 audit rows), as the app writes them."""
    folder = tmp_path / "out"
    store = ReviewStore.in_folder(folder)
    store.sign_off("study-a", "confirmed", RADIOLOGIST, "left", [FindingNote(1, "#1: slice 4", "bleed")])
    store.record_event("study-a", RADIOLOGIST, "export", {"revision": 1})
    store.sign_off("study-b", "normal", RADIOLOGIST)
    store.sign_off("study-a", "false_positive", RADIOLOGIST, "artefact", expected_revision=1)
    store.record_event("study-b", RADIOLOGIST, "export", {"revision": 1})
    store.record_event("study-a", RADIOLOGIST, "export", {"revision": 2})
    return folder


def _verify(folder, *extra):
    return CliRunner().invoke(app, ["review", "verify", str(folder), *extra])


def _tamper(folder, *statements):
    connection = sqlite3.connect(folder / STORE_FILE, isolation_level=None)
    for statement in statements:
        connection.execute(statement)
    connection.close()


def test_an_intact_store_verifies_and_prints_its_chain_head(written):
    result = _verify(written)
    head = ReviewStore.in_folder(written).chain_head()
    assert result.exit_code == 0, result.output
    assert "intact (6 audit rows, 2 reviews)" in result.output and head in result.output
    trail = ReviewStore.in_folder(written).audit_trail()
    assert {e.reviewer_id for e in trail} == {"https://idp.test#sub-123"}
    assert trail[0].reviewer == "Dr Chain <chain@hospital.test>"


def test_the_store_is_readable_by_its_owner_only(written):
    for path in written.glob(STORE_FILE + "*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


@pytest.mark.parametrize("statements, message", [
    (["UPDATE audit SET after = replace(after, 'confirmed', 'normal') WHERE id = 1"], "audit row 1 was edited"),
    (["UPDATE audit SET reviewer = 'Dr Else' WHERE id = 3"], "audit row 3 was edited"),
    (["DELETE FROM audit WHERE id = 2"], "an audit row before row 3 was deleted (after audit row 1)"),
    # swap rows 2 and 3 (contents keep their hashes, the order changes)
    (["UPDATE audit SET id = -2 WHERE id = 2", "UPDATE audit SET id = 2 WHERE id = 3", "UPDATE audit SET id = 3 WHERE id = -2"],
     "audit row 2 is out of order"),
    (["UPDATE reviews SET decision = 'normal' WHERE study_key = 'study-a'"], "review of study study-a was edited"),
    (["DELETE FROM reviews WHERE study_key = 'study-b'"], "review of study study-b was deleted"),
    (["DELETE FROM audit WHERE id >= 4"], "review of study study-a has no matching sign-off"),
])
def test_verify_names_the_first_edited_deleted_or_reordered_row(written, tmp_path, statements, message):
    copy = tmp_path / "copy"
    shutil.copytree(written, copy)
    _tamper(copy, *statements)
    result = _verify(copy)
    assert result.exit_code == 1
    assert "TAMPERED: " in result.output and message in result.output


def test_an_edited_finding_note_is_caught(tmp_path):
    store = ReviewStore.in_folder(tmp_path)
    store.sign_off("k", "confirmed", RADIOLOGIST, findings=[FindingNote(1, "#1", "bleed")])
    _tamper(tmp_path, "UPDATE findings SET note = 'calcification' WHERE study_key = 'k'")
    assert "review of study k was edited" in _verify(tmp_path).output


def test_a_truncated_tail_is_caught_against_an_exported_head(written):
    exported = ReviewStore.in_folder(written).chain_head()
    _tamper(written, "DELETE FROM audit WHERE id = 6")  # the newest row: nothing points at it
    assert _verify(written).exit_code == 0
    result = _verify(written, "--head", exported)
    assert result.exit_code == 1 and "is not in the audit trail" in result.output


def test_rows_written_before_the_chain_are_sealed_by_the_migration(tmp_path):
    connection = sqlite3.connect(tmp_path / STORE_FILE, isolation_level=None)
    migrate(connection, MIGRATIONS[:1])  # a store of the previous release
    connection.execute("INSERT INTO reviews (study_key, decision, notes, threshold_override, reviewer, reviewed_at, revision) "
                       "VALUES ('k', 'normal', '', NULL, 'Dr Old', '2026-01-01T00:00:00+00:00', 1)")
    connection.execute("INSERT INTO audit (at, reviewer, study_key, action, before, after) VALUES "
                       "('2026-01-01T00:00:00+00:00', 'Dr Old', 'k', 'sign_off', NULL, '{\"revision\": 1}')")
    connection.close()
    store = ReviewStore.in_folder(tmp_path)
    assert store.verify().ok and store.review("k").reviewer == "Dr Old"
    _tamper(tmp_path, "UPDATE reviews SET reviewer = 'Dr New'")
    assert "review of study k was edited" in _verify(tmp_path).output


def test_verify_of_a_folder_without_a_store_is_one_line(tmp_path):
    result = _verify(tmp_path)
    assert result.exit_code != 0 and "no review store here" in result.output and "Traceback" not in result.output


def test_measurements_are_kept_with_the_sign_off_and_an_edited_one_is_caught(tmp_path):
    """Issue 25 item 6: the reader's measurements (recomputed from geometry) are stored with the
    review, listed in the audit row, covered by the row hash; an edited length fails verify."""
    import json

    import numpy as np

    from adaptclip_med.review.measurements import measure

    volume = np.zeros((3, 16, 16))
    volume[1, 4:12, 4:12] = 55.0
    affine = np.diag([5.0, 0.5, 2.0, 1.0])
    kept = [m.as_dict() for m in measure(volume, affine, [
        {"kind": "distance", "z": 1, "points": [[2, 2], [2, 7]]},
        {"kind": "ellipse", "z": 1, "points": [[5, 5], [10, 10]]}])]
    store = ReviewStore.in_folder(tmp_path)
    store.sign_off("k", "confirmed", RADIOLOGIST, measurements=kept)
    review = store.review("k")
    assert list(review.measurements) == kept and review.measurements[0]["length_mm"] == 10.0
    assert review.measurements[1]["mean"] == 55.0
    assert store.audit_trail("k")[-1].after["measurements"] == kept
    assert store.verify().ok
    store.sign_off("plain", "normal", RADIOLOGIST)  # no measurements: hashed as before they existed
    assert store.verify().ok and store.review("plain").measurements == ()

    edited = json.dumps([{**kept[0], "length_mm": 12.0}, kept[1]], sort_keys=True, separators=(",", ":"))
    _tamper(tmp_path, f"UPDATE reviews SET measurements = '{edited}' WHERE study_key = 'k'")
    result = _verify(tmp_path)
    assert result.exit_code == 1 and "review of study k was edited" in result.output and "measurements" in result.output
