"""``adaptclip-med weights``: what is cached or missing, fetch (online), import a release."""

from __future__ import annotations

from pathlib import Path

import typer

from adaptclip_med.cli import common

weights_app = typer.Typer(help="Backbone and adapter weights: status, fetch, import.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")


@weights_app.command("status")
@common.user_errors
def status(cache_dir: str = common.CacheDirOpt) -> None:
    """Show which known backbone weights and adapter checkpoints are present locally."""
    from adaptclip_med.model.weights_store import backbone_status, home, release_status

    rows = backbone_status(cache_dir) + release_status(cache_dir)
    for row in rows:
        state = f"present  {row.path}" if row.present else "MISSING"
        typer.echo(f"{row.kind:9s} {row.name:70s} {state}")
    missing = [r for r in rows if not r.present]
    if missing:
        typer.echo("\nTo get missing weights (needs internet): adaptclip-med weights fetch --backbone ViT-L-14-336 "
                   "--backbone-weights openai --release mvtec; then convert the release with "
                   "'adaptclip-med weights import PATH/epoch_15.pth' (PATH as printed by fetch).")
    typer.echo(f"project data folder: {home()}")


@weights_app.command("fetch")
@common.user_errors
def fetch(
    backbone: str = common.BackboneOpt,
    backbone_weights: str = common.BackboneWeightsOpt,
    release: str = typer.Option(None, "--release", help="Also fetch a released adapter checkpoint: mvtec or visa."),
    cache_dir: str = common.CacheDirOpt,
) -> None:
    """Download backbone weights (open_clip tag) and optionally a released adapter checkpoint."""
    from adaptclip_med.model.weights_store import fetch_backbone, fetch_release

    typer.echo(f"backbone {backbone}/{backbone_weights}: {fetch_backbone(backbone, backbone_weights, cache_dir)}")
    if release:
        typer.echo(f"release {release}: {fetch_release(release, cache_dir)} (sha256 verified)")


@weights_app.command("import")
@common.user_errors
def import_(
    source: Path = typer.Argument(..., help="Released AdaptCLIP .pth (epoch_15.pth)."),
    out: Path = typer.Option(None, "--out", help="Destination .safetensors (default: project data folder)."),
    backbone: str = common.BackboneOpt,
    backbone_weights: str = common.BackboneWeightsOpt,
    backbone_activation: str = common.ActivationOpt,
    offline: bool = common.OfflineOpt,
    cache_dir: str = common.CacheDirOpt,
) -> None:
    """Convert a released checkpoint into the project format (checksum verified for the releases)."""
    from adaptclip_med.model.checkpoints import import_release
    from adaptclip_med.model.weights_store import home

    if not source.is_file():
        from adaptclip_med.errors import MissingWeightsError
        from adaptclip_med.utils.redact import describe_path

        raise MissingWeightsError(f"{describe_path(source)}: no such file; download the released checkpoint "
                                  "(adaptclip-med weights fetch --release mvtec) or give the path of epoch_15.pth")
    destination = out or home() / "adapters" / f"{source.parent.name or source.stem}.safetensors"
    spec = common.backbone_spec(backbone, backbone_weights, backbone_activation, offline, cache_dir)
    typer.echo(f"imported -> {import_release(spec, source, destination)}")
