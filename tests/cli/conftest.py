"""CLI tests: each test leaves the root logger as it found it."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """The CLI's logging.basicConfig binds a handler to CliRunner's stream, closed after the call:
    leave the root logger as it was so later tests do not log into a closed file."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    root.handlers.clear()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
