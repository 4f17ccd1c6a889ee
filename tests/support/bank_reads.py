"""Counting the reads of reference banks' ``bank.json`` (the one-read-per-run tests)."""

from __future__ import annotations

import pathlib

import pytest


def count_bank_reads(patch: pytest.MonkeyPatch) -> list[str]:
    """From now on (while ``patch`` holds), the folder name of every ``bank.json`` read, once per read."""
    reads: list[str] = []
    original = pathlib.Path.read_text

    def counting(self, *args, **kwargs):
        if self.name == "bank.json":
            reads.append(self.parent.name)
        return original(self, *args, **kwargs)

    patch.setattr(pathlib.Path, "read_text", counting)
    return reads
