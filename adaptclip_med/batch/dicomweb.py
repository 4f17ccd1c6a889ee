"""Studies from a PACS over DICOMweb: QIDO to find them, WADO to fetch them, STOW to return SEGs.

Retrieved instances go to a private temporary folder (mode 0700, removed after the study) and
then follow exactly the same path as files from a folder tree.  Series whose modality can never
be scored (SEG, SR, presentation states...) are not downloaded at all; this also keeps our own
stored SEG objects out of later runs.

Networks and PACS fail; every request runs under a :class:`RetryPolicy` (exponential backoff on
connection errors, timeouts, 429 and 5xx).  When the attempts are used up the study fails with
a one-line reason and the batch moves on.  Messages never quote a request URL: DICOMweb URLs
contain Study/Series/SOP Instance UIDs.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, TypeVar

import pydicom
import requests

from adaptclip_med.batch.discovery import Discovery, StudyFiles, StudyTask
from adaptclip_med.batch.rules import SeriesDecision, SeriesRules
from adaptclip_med.errors import AdaptClipError
from adaptclip_med.io.discovery import study_key_for_uid

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Modalities whose objects hold no image to score; not worth a download.
NON_IMAGE_MODALITIES = frozenset({"SEG", "SR", "PR", "KO", "REG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "ECG",
                                  "DOC", "FID", "RWV", "PLAN", "AU", "HD"})
_STUDY_UID, _SERIES_UID, _MODALITY, _SERIES_NUMBER, _DESCRIPTION = "0020000D", "0020000E", "00080060", "00200011", "0008103E"


class PacsError(AdaptClipError):
    """The PACS did not answer (or refused) after all retries."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff_seconds: float = 1.0

    def run(self, what: str, call: Callable[[], T]) -> T:
        """``call()`` with retries on transient failures; PacsError naming ``what`` when it gives up."""
        for attempt in range(1, max(1, self.attempts) + 1):
            try:
                return call()
            except Exception as exc:
                transient = _is_transient(exc)
                if not transient or attempt >= self.attempts:
                    tries = f" after {attempt} attempts" if attempt > 1 else ""
                    raise PacsError(f"{what} failed{tries} ({_describe(exc)})") from exc
                delay = self.backoff_seconds * 2 ** (attempt - 1)
                log.warning("%s failed (%s); retry %d/%d in %.1f s", what, _describe(exc), attempt, self.attempts - 1, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)):
        return True
    status = _status(exc)
    return status is not None and (status >= 500 or status in (408, 429))


def _describe(exc: BaseException) -> str:
    """Exception type and HTTP status only: the message of a requests error quotes the URL."""
    status = _status(exc)
    return f"HTTP {status}" if status is not None else type(exc).__name__


def _value(item: dict[str, Any], tag: str, default: str = "") -> str:
    values = item.get(tag, {}).get("Value") or [default]
    return str(values[0])


def _series_order(item: dict[str, Any]) -> tuple[int, str]:
    try:
        number = int(_value(item, _SERIES_NUMBER, "0"))
    except ValueError:
        number = 0
    return number, _value(item, _SERIES_UID)


class DicomwebSource:
    """A DICOMweb endpoint with QIDO study filters (e.g. ``{"ModalitiesInStudy": "CT"}``)."""

    def __init__(self, url: str, filters: dict[str, str] | None = None, retry: RetryPolicy = RetryPolicy(),
                 timeout: float = 60.0, client: Any = None) -> None:
        from dicomweb_client.api import DICOMwebClient

        # the client logs request URLs and instance UIDs; our own messages say what failed
        logging.getLogger("dicomweb_client").setLevel(logging.CRITICAL)
        self.filters = dict(filters or {})
        self.retry = retry
        self.client = client if client is not None else DICOMwebClient(url, timeout=timeout)
        self.client.set_http_retry_params(retry=False)  # one retry policy, ours, for every failure kind

    def discover(self) -> Discovery:
        found = self._query_all("QIDO study search", self.client.search_for_studies, _STUDY_UID,
                                search_filters=self.filters)
        uids = sorted({_value(item, _STUDY_UID) for item in found} - {""})
        studies = sorted((StudyTask(study_key_for_uid(uid), study_uid=uid) for uid in uids), key=lambda t: t.key)
        return Discovery(studies)

    def _query_all(self, what: str, search: Callable[..., list[dict[str, Any]]], uid_tag: str,
                   **query: Any) -> list[dict[str, Any]]:
        """Every match of a QIDO query, following server-side result limits.

        Servers may cap a response and expect the client to ask again from an offset; some (Orthanc
        with attribute filters) ignore the offset and send the same matches again, which makes
        the client library's own paging loop forever.  So: ask again from the offset while the
        answer brings matches not seen yet."""
        results: list[dict[str, Any]] = []
        seen: set[str] = set()
        while True:
            page = self.retry.run(what, lambda: search(offset=len(results) or None, **query))
            fresh = [item for item in page if _value(item, uid_tag) not in seen]
            if not fresh:
                return results
            seen.update(_value(item, uid_tag) for item in fresh)
            results.extend(fresh)

    def open_study(self, task: StudyTask, folder: Path, rules: SeriesRules) -> StudyFiles:
        """Download the study's candidate series into the private ``folder``; series that cannot be
        scored stay on the PACS, with their decision recorded."""
        assert task.study_uid is not None
        series = self._query_all(f"QIDO series search of study {task.key}", self.client.search_for_series, _SERIES_UID,
                                 study_instance_uid=task.study_uid)
        left: list[SeriesDecision] = []
        for number, item in enumerate(sorted(series, key=_series_order), start=1):
            modality = _value(item, _MODALITY).upper()
            label = f"{modality or 'unknown'} series #{_value(item, _SERIES_NUMBER, '?')} '{_value(item, _DESCRIPTION)}'"
            if modality in NON_IMAGE_MODALITIES:
                left.append(SeriesDecision(label, False, f"modality {modality} holds no image (not retrieved)"))
                continue
            if rules.modalities and modality not in rules.modalities:
                allowed = "/".join(rules.modalities)
                left.append(SeriesDecision(label, False, f"modality {modality} not in {allowed} (not retrieved)"))
                continue
            fetch = partial(self._save_series, task.study_uid, _value(item, _SERIES_UID), folder / f"series{number:03d}")
            self.retry.run(f"WADO retrieve of study {task.key}", fetch)
        return StudyFiles([folder], folder, left)

    def _save_series(self, study_uid: str | None, series_uid: str, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)  # a retry starts the series afresh
        folder.mkdir(parents=True)
        for index, dataset in enumerate(self.client.iter_series(study_uid, series_uid)):
            dataset.save_as(folder / f"{index:06d}.dcm", enforce_file_format=True)

    def store(self, task: StudyTask, files: list[Path]) -> None:
        """STOW the result objects into the study they belong to."""
        datasets = [pydicom.dcmread(path) for path in files]
        response = self.retry.run(f"STOW of the results of study {task.key}",
                                  lambda: self.client.store_instances(datasets, study_instance_uid=task.study_uid))
        refused = len(getattr(response, "FailedSOPSequence", []) or [])
        if refused:
            raise PacsError(f"STOW of the results of study {task.key}: the PACS refused {refused} of "
                            f"{len(datasets)} object(s)")
