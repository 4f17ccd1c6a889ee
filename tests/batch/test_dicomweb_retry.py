"""Retry/backoff behaviour and DICOMweb plumbing without a server (the real PACS is in tests/pacs)."""

from __future__ import annotations

import pytest
import requests

from adaptclip_med.batch import dicomweb
from adaptclip_med.batch.dicomweb import DicomwebSource, PacsError, RetryPolicy
from adaptclip_med.io.discovery import study_key_for_uid

UID = "1.2.826.0.1.3680043.8.498.12345678901234567890"


def failing(times: int, exc: Exception):
    calls = {"n": 0}

    def call():
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc
        return "ok"

    return call, calls


def http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.url = f"http://pacs/dicom-web/studies/{UID}"
    return requests.HTTPError(f"{status} for url {response.url}", response=response)


def test_transient_failures_are_retried_with_exponential_backoff(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(dicomweb.time, "sleep", sleeps.append)
    call, calls = failing(2, requests.ConnectionError(f"refused: http://pacs/dicom-web/studies/{UID}"))
    assert RetryPolicy(attempts=3, backoff_seconds=0.5).run("WADO retrieve", call) == "ok"
    assert calls["n"] == 3 and sleeps == [0.5, 1.0]
    call, calls = failing(1, http_error(503))
    assert RetryPolicy(attempts=2, backoff_seconds=0.1).run("QIDO", call) == "ok"


def test_giving_up_names_the_operation_but_never_the_url(monkeypatch):
    monkeypatch.setattr(dicomweb.time, "sleep", lambda s: None)
    call, calls = failing(10, requests.ConnectionError(f"refused: http://pacs/dicom-web/studies/{UID}"))
    with pytest.raises(PacsError) as info:
        RetryPolicy(attempts=3).run("WADO retrieve of study abc", call)
    assert str(info.value) == "WADO retrieve of study abc failed after 3 attempts (ConnectionError)"
    assert calls["n"] == 3 and UID not in str(info.value)


def test_client_errors_are_not_retried(monkeypatch):
    monkeypatch.setattr(dicomweb.time, "sleep", lambda s: pytest.fail("must not sleep"))
    call, calls = failing(10, http_error(404))
    with pytest.raises(PacsError, match=r"^QIDO study search failed \(HTTP 404\)$"):
        RetryPolicy(attempts=5).run("QIDO study search", call)
    assert calls["n"] == 1


class FakeClient:
    def __init__(self):
        self.retry_disabled = False
        self.filters = None
        self.offsets: list[int | None] = []

    def set_http_retry_params(self, retry: bool) -> None:
        self.retry_disabled = not retry

    def search_for_studies(self, search_filters, offset):
        """A server capping answers at 2 matches and ignoring offsets past the end (like Orthanc)."""
        self.filters = search_filters
        self.offsets.append(offset)
        matches = [{"0020000D": {"vr": "UI", "Value": [uid]}} for uid in (UID, "1.2.3.4", "1.2.3.5")]
        return matches[offset or 0:][:2] or matches[:2]


def test_discovery_pages_through_capped_answers_with_filters_and_pseudonymous_keys():
    client = FakeClient()
    source = DicomwebSource("http://pacs/dicom-web", {"ModalitiesInStudy": "CT"}, client=client)
    found = source.discover()
    assert client.retry_disabled and client.filters == {"ModalitiesInStudy": "CT"}
    assert client.offsets == [None, 2, 3]  # followed the cap, stopped when nothing new came back
    assert [t.key for t in found.studies] == sorted(study_key_for_uid(u) for u in (UID, "1.2.3.4", "1.2.3.5"))
    assert all(UID not in repr(t) for t in found.studies)
