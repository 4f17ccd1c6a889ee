"""Fixtures of the node tests (helpers in node_helpers.py): quiet progress, one thread, and a
collecting Storage SCP as the destination PACS."""

from __future__ import annotations

import pytest
import torch

from node_helpers import CollectingPacs


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("ADAPTCLIP_MED_PROGRESS", "0")
    torch.set_num_threads(1)


@pytest.fixture()
def pacs():
    server = CollectingPacs().start()
    yield server
    server.stop()
