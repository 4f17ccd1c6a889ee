"""``adaptclip-med node``: the DICOM AI node next to a PACS (run, status, example-config)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from adaptclip_med.cli import common

node_app = typer.Typer(
    help="DICOM AI node: receive studies from a PACS by C-STORE, score each complete study once, store the results "
         "(SEG, Parametric Map, SR, KO) back into the same study. See docs/deploy-pacs.md. NOT for clinical use.",
    no_args_is_help=True)

ConfigOpt = typer.Option(..., "--config", "-c", help="Node configuration (.toml or .yaml); write a commented one with 'node example-config'.")


def register(app: typer.Typer) -> None:
    app.add_typer(node_app, name="node")


@node_app.command("run")
@common.user_errors
def run(config: Path = ConfigOpt,
        ae_title: str = typer.Option(None, "--ae-title", help="Our AE title (overrides \\[node].ae_title)."),
        port: int = typer.Option(None, "--port", help="Port to listen on (overrides \\[node].port; 0: any free port)."),
        bind: str = typer.Option(None, "--bind", help="Address to listen on (overrides \\[node].bind), e.g. 0.0.0.0."),
        state_dir: Path = typer.Option(None, "--state-dir", help="Spool, results and queue database (overrides \\[node].state_dir).")) -> None:
    r"""Run the node until SIGTERM / Ctrl-C.

    Only calling AE titles + hosts listed under \[\[allow]] may associate. A study is complete when nothing arrived
    for it for \[node].quiet_seconds; it is then scored once (same path as 'batch', settings from \[scoring]) and
    every DICOM result object is sent by C-STORE to \[destination], with retries. SEG/SR/KO/Parametric Maps and
    modalities other than \[node].modalities are acknowledged and never scored. A restart (even after SIGKILL)
    loses no received instance; a study is scored once and its results are stored once.
    Exit codes: 0 stopped; 2 bad configuration; 3 weights missing.
    """
    from adaptclip_med.node.config import load_config
    from adaptclip_med.node.service import NodeService

    settings = load_config(config).with_overrides(ae_title=ae_title, port=port, bind=bind, state_dir=state_dir)
    NodeService(settings).run()


@node_app.command("status")
@common.user_errors
def status(config: Path = typer.Option(None, "--config", "-c", help="Node configuration (its \\[node].state_dir is read)."),
           state_dir: Path = typer.Option(None, "--state-dir", help="The node's state folder (instead of --config)."),
           as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Show received / queued / scoring / scored / sending / sent / failed studies, by pseudonymous key."""
    from adaptclip_med.node.config import load_config
    from adaptclip_med.node.status import format_status, read_status

    if (config is None) == (state_dir is None):
        raise typer.BadParameter("give either --config or --state-dir")
    folder = state_dir if state_dir is not None else load_config(config).state_dir
    found = read_status(folder)
    typer.echo(json.dumps(found, indent=1) if as_json else format_status(found))


@node_app.command("example-config")
@common.user_errors
def example_config(path: Path = typer.Argument(..., help="Where to write the commented example (.toml); never overwritten.")) -> None:
    """Write a commented example node configuration to edit."""
    from adaptclip_med.node.config import write_example_config

    typer.echo(f"wrote {write_example_config(path)}")
