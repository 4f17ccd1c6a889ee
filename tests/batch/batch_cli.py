"""The real ``adaptclip-med`` Typer app with the batch command registered, for subprocess tests
(torchrun, SIGKILL) - works whether or not cli/main.py registers ``batch`` already."""

from __future__ import annotations

from adaptclip_med.cli import batch
from adaptclip_med.cli.main import app

if not any(command.name == "batch" for command in app.registered_commands):
    batch.register(app)

if __name__ == "__main__":
    app()
