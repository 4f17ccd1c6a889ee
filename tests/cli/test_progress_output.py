"""Progress in a log file: one bar, no cursor-up escapes ("[A" fragments in ``batch`` stderr)."""

from __future__ import annotations

import io
import sys

from tqdm.auto import tqdm

from adaptclip_med.utils.progress import progress_bar


def test_a_nested_bar_off_a_terminal_writes_no_cursor_moves(monkeypatch):
    log = io.StringIO()  # not a terminal, like `batch ... 2> batch.log`
    monkeypatch.setattr(sys, "stderr", log)
    monkeypatch.setenv("ADAPTCLIP_MED_PROGRESS", "1")
    with tqdm(total=2, desc="studies", file=log, mininterval=0) as outer:
        for _ in range(2):
            assert list(progress_bar(range(5), desc="scoring slices")) == list(range(5))  # work still done
            outer.update(1)
    text = log.getvalue()
    assert "studies" in text and "2/2" in text  # the outer bar still shows progress
    assert "\x1b[A" not in text and "scoring slices" not in text


def test_a_single_bar_is_shown_in_a_log(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    monkeypatch.setenv("ADAPTCLIP_MED_PROGRESS", "1")
    assert sum(progress_bar(range(3), desc="encoding scan")) == 3
    assert "encoding scan" in log.getvalue() and "\x1b[A" not in log.getvalue()
