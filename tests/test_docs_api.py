"""docs/api.md's offline example runs as written (the documented public API is real)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_offline_example_runs(capsys, monkeypatch):
    monkeypatch.setenv("ADAPTCLIP_MED_PROGRESS", "0")
    text = DOC.read_text()
    section = text[text.index("## Runnable offline example"):text.index("## With real weights")]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, str(DOC), "exec"), {})
    printed = capsys.readouterr().out
    assert "adaptclip" in printed and "study score" in printed and "study.json" in printed
