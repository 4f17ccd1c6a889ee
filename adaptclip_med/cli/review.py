"""``adaptclip-med review``: checks on the dashboard's sign-off store (``reviews.sqlite``)."""

from __future__ import annotations

from pathlib import Path

import typer

from adaptclip_med.cli import common
from adaptclip_med.errors import InputError

review_app = typer.Typer(help="The dashboard's review record: verify its hash chain.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")


@review_app.command("verify")
@common.user_errors
def verify(
    store: Path = typer.Argument(Path("review_output"), help="The dashboard's --output folder, or its reviews.sqlite file."),
    head: str = typer.Option(None, "--head", help="A chain head quoted in an export (report 'Audit chain head'): also proves no row after it was removed."),
) -> None:
    """Check that no review or audit row was edited, deleted or reordered since it was written.

    Prints the number of rows and the chain head when intact; otherwise names the first broken row
    and exits with code 1."""
    from adaptclip_med.review.store import STORE_FILE, ReviewStore

    path = store / STORE_FILE if store.is_dir() else store
    if not path.is_file():
        raise InputError(f"{path.name}: no review store here (give the dashboard's --output folder)")
    result = ReviewStore(path).verify(head)
    if not result.ok:
        typer.echo(f"{path.name}: TAMPERED: {result.problem}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{path.name}: intact ({result.audit_rows} audit rows, {result.reviews} reviews); chain head {result.head}")
