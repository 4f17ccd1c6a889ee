"""The SQLite sign-off store: decisions persist, every change is audited, the schema migrates."""

from __future__ import annotations

import sqlite3

import pytest

from adaptclip_med.errors import AdaptClipError, InputError
from adaptclip_med.review.access import READ, SIGN_OFF, Identity
from adaptclip_med.review.store import MIGRATIONS, UNREAD, FindingNote, ReviewStore, StudyLocation, migrate


def person(name: str, *permissions: str) -> Identity:
    """A reviewer as the login would establish them (may sign off unless told otherwise)."""
    return Identity("https://idp.test", name.lower().replace(" ", "-"), name, "",
                    frozenset(permissions or (READ, SIGN_OFF)))


def test_sign_off_persists_across_store_instances(tmp_path):
    store = ReviewStore.in_folder(tmp_path)
    assert store.status("k1") == UNREAD
    store.sign_off("k1", "confirmed", person("Dr A"), "left frontal", [FindingNote(1, "#1: slice 4", "bleed?")], 0.42)
    again = ReviewStore.in_folder(tmp_path)
    review = again.review("k1")
    assert review is not None
    assert (review.decision, review.reviewer, review.threshold_override, review.revision) == ("confirmed", "Dr A", 0.42, 1)
    assert review.findings == (FindingNote(1, "#1: slice 4", "bleed?"),)
    assert review.reviewed_at.endswith("+00:00")
    assert again.statuses() == {"k1": "confirmed"}


def test_amendment_keeps_the_previous_state_in_the_audit_trail(tmp_path):
    store = ReviewStore.in_folder(tmp_path)
    store.sign_off("k1", "confirmed", person("Dr A"), findings=[FindingNote(1, "#1", "x")])
    store.sign_off("k1", "false_positive", person("Dr B"), "artefact")
    store.record_event("k1", person("Dr B"), "export", {"files": ["report.html"]})
    review = store.review("k1")
    assert review.decision == "false_positive" and review.revision == 2 and review.findings == ()
    trail = store.audit_trail("k1")
    assert [e.action for e in trail] == ["sign_off", "amend", "export"]
    assert trail[0].before is None and trail[0].after["decision"] == "confirmed"
    assert trail[1].before["decision"] == "confirmed" and trail[1].after["reviewer"] == "Dr B"
    assert trail[2].after == {"files": ["report.html"]}


@pytest.mark.parametrize("decision, reviewer, override, message", [
    ("maybe", person("Dr A"), None, "decision"), ("normal", person("Dr Reader", READ), None, "may not sign off"),
    ("normal", None, None, "not logged in"), ("normal", person("Dr A"), 1.5, "between 0 and 1")])
def test_invalid_sign_offs_are_refused_without_trace(tmp_path, decision, reviewer, override, message):
    store = ReviewStore.in_folder(tmp_path)
    with pytest.raises(InputError, match=message):
        store.sign_off("k1", decision, reviewer, threshold_override=override)
    assert store.review("k1") is None and store.audit_trail() == []


def test_study_locations_are_remembered(tmp_path):
    store = ReviewStore.in_folder(tmp_path)
    store.register_study("k1", "dashboard", StudyLocation(tmp_path / "src", "series1", tmp_path / "out"))
    store.register_study("k1", "dashboard", StudyLocation(None, None, tmp_path / "out2"))  # keeps the known source
    location = store.study_location("k1")
    assert (location.source, location.series_key, location.output_dir) == (tmp_path / "src", "series1", tmp_path / "out2")
    assert store.study_location("unknown") == StudyLocation()
    assert store.registered_studies() == [("k1", tmp_path / "out2")]


def test_migrations_upgrade_an_older_file_step_by_step(tmp_path):
    connection = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    extra = "CREATE TABLE extra (id INTEGER PRIMARY KEY); INSERT INTO extra (id) VALUES (7)"
    migrate(connection, MIGRATIONS)
    connection.execute("INSERT INTO reviews (study_key, decision, notes, threshold_override, reviewer, reviewed_at, revision) "
                       "VALUES ('k', 'normal', '', NULL, 'Dr A', 't', 1)")
    assert migrate(connection, (*MIGRATIONS, extra)) == len(MIGRATIONS) + 1
    assert connection.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1
    assert connection.execute("SELECT id FROM extra").fetchall() == [(7,)]
    assert connection.execute("SELECT decision FROM reviews").fetchall() == [("normal",)]


def test_a_failing_migration_leaves_the_previous_version(tmp_path):
    connection = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    broken = "CREATE TABLE half (id INTEGER); INSERT INTO nowhere VALUES (1)"
    with pytest.raises(sqlite3.OperationalError):
        migrate(connection, (*MIGRATIONS, broken))
    assert connection.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert connection.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchall() == []


def test_a_file_from_a_newer_version_is_refused(tmp_path):
    connection = sqlite3.connect(tmp_path / "reviews.sqlite")
    connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    connection.close()
    with pytest.raises(AdaptClipError, match="newer adaptclip-med"):
        ReviewStore.in_folder(tmp_path)


def test_a_sign_off_on_an_outdated_revision_is_refused(tmp_path):
    from adaptclip_med.review.store import StaleRevisionError

    store = ReviewStore.in_folder(tmp_path)
    store.sign_off("k1", "confirmed", person("Dr A"), expected_revision=0)
    other = ReviewStore.in_folder(tmp_path)  # a second reviewer, who opened the study before Dr A signed
    with pytest.raises(StaleRevisionError, match="signed off meanwhile \\(revision 1 by Dr A"):
        other.sign_off("k1", "normal", person("Dr B"), expected_revision=0)
    assert store.review("k1").decision == "confirmed" and len(store.audit_trail("k1")) == 1
    assert other.sign_off("k1", "normal", person("Dr B"), expected_revision=1).revision == 2


def test_a_rejected_finding_is_kept_audited_and_sealed(tmp_path):
    store = ReviewStore.in_folder(tmp_path)
    findings = [FindingNote(1, "#1: slice 4", "bleed"), FindingNote(2, "#2: slice 9", "beam hardening", "rejected")]
    store.sign_off("k1", "confirmed", person("Dr A"), findings=findings)
    review = ReviewStore.in_folder(tmp_path).review("k1")
    assert [f.verdict for f in review.findings] == ["accepted", "rejected"] and review.accepted_ids() == {1}
    after = store.audit_trail("k1")[-1].after
    assert after["rejected_findings"] == [2] and after["findings"][1]["verdict"] == "rejected"
    assert store.verify().ok
    with sqlite3.connect(tmp_path / "reviews.sqlite") as connection:  # quietly "accept" the rejected finding
        connection.execute("UPDATE findings SET verdict = 'accepted' WHERE finding_id = 2")
    assert not store.verify().ok  # the review row's hash covers the verdict
    with pytest.raises(InputError, match="verdict"):
        store.sign_off("k2", "confirmed", person("Dr A"), findings=[FindingNote(1, "#1", "", "maybe")])
    assert ReviewStore.in_folder(tmp_path).review("k2") is None
