"""Who and what the open study is, for the reader: patient name, ID, accession, date, series.

A radiologist checks the patient before reading; the viewer's corner text, the worklist and the
signed report show it, but only to a user the login established (an identity provider or an
authenticating proxy; in local mode only with ``--show-patient-names``).  It is read from the
source headers on demand and never written to a log, a file name or an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adaptclip_med.review.access import LOCAL


@dataclass(frozen=True)
class PatientContext:
    name: str = ""
    patient_id: str = ""
    accession: str = ""
    study_date: str = ""
    series: str = ""

    def lines(self) -> list[str]:
        """Corner-text lines (empty fields left out)."""
        first = "  ".join(p for p in (self.name, f"ID {self.patient_id}" if self.patient_id else "") if p)
        second = "  ".join(p for p in (f"Acc {self.accession}" if self.accession else "", self.study_date) if p)
        return [line for line in (first, second, self.series) if line]

    def facts(self) -> list[tuple[str, str]]:
        """(label, value) rows for the signed report."""
        rows = [("Patient", self.name), ("Patient ID", self.patient_id), ("Accession number", self.accession),
                ("Study date", self.study_date), ("Series", self.series)]
        return [(k, v) for k, v in rows if v]


def may_see_context(who: Any, show_patient_names: bool = False) -> bool:
    """Patient context is for a user the login established; in local mode (nobody logged in) only
    when the dashboard was started with ``--show-patient-names``."""
    if who is None:
        return False
    return getattr(who, "mode", LOCAL) != LOCAL or bool(show_patient_names)


def patient_context(volume: Any) -> PatientContext | None:
    """The context from the study's first source header (None without DICOM headers)."""
    headers = getattr(volume, "source_datasets_header", None) or []
    if not headers:
        return None
    header = headers[0]
    text = lambda name: str(header.get(name, "") or "").strip()  # noqa: E731
    return PatientContext(name=_person_name(text("PatientName")), patient_id=text("PatientID"),
                          accession=text("AccessionNumber"), study_date=_date(text("StudyDate")),
                          series=text("SeriesDescription"))


def _person_name(value: str) -> str:
    """DICOM PN ``FAMILY^GIVEN^MIDDLE`` as ``FAMILY, GIVEN MIDDLE``."""
    parts = [p.strip() for p in value.split("=")[0].split("^")]
    family, rest = (parts[0] if parts else ""), " ".join(p for p in parts[1:3] if p)
    return f"{family}, {rest}" if family and rest else family or rest


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value
