"""``adaptclip-med`` command line: one sub-command module per job, registered here."""

from __future__ import annotations

import typer

from adaptclip_med.version import __version__
from adaptclip_med.cli import (batch, common, dashboard, demo, evaluate, help_style, node, predict, references, review, score,
                               train, weights)

help_style.apply()

app = typer.Typer(
    name="adaptclip-med",
    help="AdaptCLIP zero-/few-shot anomaly detection for radiology. Research software: NOT for clinical use.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"max_content_width": help_style.HELP_WIDTH},
)


def _print_version(value: bool) -> None:
    """Eager: runs while the options are parsed, before Click asks for the missing command."""
    if value:
        typer.echo(f"adaptclip-med {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
          version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True,
                                       callback=_print_version)) -> None:
    common.STATE["debug"] = debug
    common.configure_logging(debug)


predict.register(app)
weights.register(app)
references.register(app)
score.register(app)
demo.register(app)
train.register(app)
evaluate.register(app)
batch.register(app)
dashboard.register(app)
node.register(app)
review.register(app)

if __name__ == "__main__":  # pragma: no cover
    app()
