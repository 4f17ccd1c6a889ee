"""Fixtures of the node tests (helpers in node_helpers.py): a collecting Storage SCP as the
destination PACS."""

from __future__ import annotations

import pytest

from node_helpers import CollectingPacs


@pytest.fixture()
def pacs():
    server = CollectingPacs().start()
    yield server
    server.stop()
