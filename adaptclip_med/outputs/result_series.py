"""Series numbers and descriptions of the DICOM results of one scoring run.

Re-scoring a study adds new result series next to the old ones in the PACS; with a fixed number
and description (as before: SEG 9901) a reader could not tell the runs apart in a viewer's series
list.  Each run therefore numbers its series from the time it started (10-second steps since
2025-01-01 UTC, times ten, plus one digit per object kind: later runs sort after earlier ones and
the number stays an IS value for decades) and names the method, the object and the run's UTC time
in the description ("AdaptCLIP anomaly SEG (research) 2026-12-06 02:40:12Z").
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

#: Start of the run numbering (2025-01-01T00:00:00Z) and its step in seconds.
_EPOCH = 1735689600
_STEP_S = 10
#: One digit per result object kind (the last digit of the series number).
KIND_DIGITS = {"SEG": 1, "PMAP": 2, "SR": 3, "KOS": 4, "REVIEWED_SEG": 5, "REVIEWED_SR": 6}
#: What each kind is called in the series description.
KIND_NAMES = {"SEG": "anomaly SEG", "PMAP": "anomaly map", "SR": "anomaly report", "KOS": "key slices",
              "REVIEWED_SEG": "reviewed SEG", "REVIEWED_SR": "reviewed report"}


_issued = {"step": 0}
_lock = threading.Lock()


def _next_step(started: float) -> int:
    """The run's 10-second step, made unique within this process (``score --method A,B`` scores
    one study twice within seconds): a step already issued is bumped to the next free one."""
    with _lock:
        step = max(max(0, int(started) - _EPOCH) // _STEP_S, _issued["step"] + 1)
        _issued["step"] = step
    return step


@dataclass(frozen=True)
class ResultRun:
    """One scoring run of one study (default: now)."""

    started: float = field(default_factory=time.time)  # UNIX seconds, UTC
    step: int = -1  # the run's number; -1: from ``started`` (unique within the process)

    def __post_init__(self) -> None:
        if self.step < 0:
            object.__setattr__(self, "step", _next_step(self.started))

    @property
    def label(self) -> str:
        """The run's UTC start time; a run whose step was bumped shows its step's start instead,
        so two runs never share a label either (their steps differ, each label lies in its step)."""
        return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(max(self.started, _EPOCH + self.step * _STEP_S)))

    def series_number(self, kind: str) -> int:
        """Distinct for each kind and for runs started 10 s or more apart; increases with time."""
        return self.step * 10 + KIND_DIGITS[kind]

    def series_description(self, method: str, kind: str) -> str:
        """"<method> <object> (research) <run time>" within the 64 characters of a LO value."""
        suffix = f" {KIND_NAMES[kind]} (research) {self.label}"
        return method[:64 - len(suffix)] + suffix
