"""``adaptclip-med weights``: what is cached or missing, fetch (online), import a release."""

from __future__ import annotations

from pathlib import Path

import typer

from adaptclip_med.cli import common
from adaptclip_med.methods.registry import DEFAULT_METHOD

#: Every method's weights are declared by the method (``AnomalyMethod.weights_catalog``,
#: ``methods/NAME/catalog.py``); this module names none.


def _backbone_for(method: str, backbone: str | None, weights: str | None) -> tuple[str, str]:
    """The backbone a method uses unless told otherwise (its default architecture and tag)."""
    from adaptclip_med.methods.registry import get_method

    default_arch, default_weights = get_method(method).default_backbone
    return backbone or default_arch, weights or default_weights


weights_app = typer.Typer(help="Backbone and adapter weights: status, fetch, import.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")


@weights_app.command("status")
@common.user_errors
def status(cache_dir: str = common.CacheDirOpt) -> None:
    """Show which known backbone weights and each method's trained weights are present locally."""
    from adaptclip_med.methods.registry import weights_catalogs
    from adaptclip_med.model.weights_store import backbone_status
    from adaptclip_med.utils.home import home

    rows = backbone_status(cache_dir)
    hints: list[str] = []
    for catalog in weights_catalogs().values():
        own = catalog.status(cache_dir)
        rows += own
        hint = catalog.missing_hint(own) if any(not r.present for r in own) else None
        if hint:
            hints.append(hint)
    for row in rows:
        state = f"present  {row.path}" if row.present else "MISSING"
        typer.echo(f"{row.kind:9s} {row.name:70s} {state}")
    if any(not r.present for r in rows):
        typer.echo("\nTo get missing weights (needs internet): 'adaptclip-med weights fetch --method NAME' fetches a method's "
                   "CLIP backbone (all a training-free method needs).")
    for hint in hints:
        typer.echo(hint)
    typer.echo(f"project data folder: {home()}")


@weights_app.command("fetch")
@common.user_errors
def fetch(
    backbone: str = common.BackboneOpt,
    backbone_weights: str = common.BackboneWeightsOpt,
    release: str = typer.Option(None, "--release", help="Also fetch the method's released weights by name (adaptclip: mvtec or visa)."),
    method: str = typer.Option(DEFAULT_METHOD, "--method", help="Whose weights: the method's CLIP backbone, plus its released weights with --release (a method without a stable download URL prints how to obtain them)."),
    cache_dir: str = common.CacheDirOpt,
) -> None:
    """Download backbone weights (open_clip tag; default: the method's backbone) and optionally a released adapter checkpoint."""
    from adaptclip_med.methods.registry import get_method

    cls = get_method(method)
    backbone, backbone_weights = _backbone_for(method, backbone, backbone_weights)
    cls.weights_catalog.fetch(method, backbone, backbone_weights, release, cache_dir, typer.echo)


@weights_app.command("import")
@common.user_errors
def import_(
    source: Path = typer.Argument(..., help="A released checkpoint in the layout of --method's authors (e.g. AdaptCLIP's epoch_15.pth)."),
    out: Path = typer.Option(None, "--out", help="Destination .safetensors (default: project data folder)."),
    backbone: str = common.BackboneOpt,
    backbone_weights: str = common.BackboneWeightsOpt,
    backbone_activation: str = common.ActivationOpt,
    offline: bool = common.OfflineOpt,
    cache_dir: str = common.CacheDirOpt,
    method: str = typer.Option(DEFAULT_METHOD, "--method", help="Whose release layout SOURCE is in (a trainable method)."),
) -> None:
    """Convert a released checkpoint into the project format (checksum verified for the releases)."""
    from adaptclip_med.methods.registry import get_method

    if not source.is_file():
        from adaptclip_med.errors import MissingWeightsError
        from adaptclip_med.utils.redact import describe_path

        raise MissingWeightsError(f"{describe_path(source)}: no such file; give the path of a released checkpoint "
                                  "('adaptclip-med weights status' says how to obtain one)")
    cls = get_method(method)
    backbone, backbone_weights = _backbone_for(method, backbone, backbone_weights)
    spec = common.backbone_spec(backbone, backbone_weights, backbone_activation, offline, cache_dir)
    typer.echo(cls.weights_catalog.import_release(method, source, out, spec))
