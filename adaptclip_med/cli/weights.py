"""``adaptclip-med weights``: what is cached or missing, fetch (online), import a release."""

from __future__ import annotations

from pathlib import Path

import typer

from adaptclip_med.cli import common

_WEIGHT_METHODS = ("adaptclip", "adaclip")


def _check_method(method: str) -> None:
    from adaptclip_med.errors import AdaptClipError

    if method not in _WEIGHT_METHODS:
        raise AdaptClipError(f"--method {method}: weights are managed for {', '.join(_WEIGHT_METHODS)}")

weights_app = typer.Typer(help="Backbone and adapter weights: status, fetch, import.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")


@weights_app.command("status")
@common.user_errors
def status(cache_dir: str = common.CacheDirOpt) -> None:
    """Show which known backbone weights and adapter checkpoints are present locally."""
    from adaptclip_med.model.weights_store import adaclip_instructions, adaclip_status, backbone_status, home, release_status

    rows = backbone_status(cache_dir) + release_status(cache_dir) + adaclip_status()
    for row in rows:
        state = f"present  {row.path}" if row.present else "MISSING"
        typer.echo(f"{row.kind:9s} {row.name:70s} {state}")
    missing = [r for r in rows if not r.present]
    if missing:
        typer.echo("\nTo get missing weights (needs internet): adaptclip-med weights fetch --backbone ViT-L-14-336 "
                   "--backbone-weights openai --release mvtec; then adaptclip-med weights import.")
    if any(r.kind == "adaclip" and not r.present for r in rows):
        typer.echo(adaclip_instructions())
    typer.echo(f"project data folder: {home()}")


@weights_app.command("fetch")
@common.user_errors
def fetch(
    backbone: str = common.BackboneOpt,
    backbone_weights: str = common.BackboneWeightsOpt,
    release: str = typer.Option(None, "--release", help="Also fetch a released adapter checkpoint: mvtec or visa."),
    method: str = typer.Option("adaptclip", "--method", help="adaptclip, or adaclip (prints how to obtain its weights: no stable download URL)."),
    cache_dir: str = common.CacheDirOpt,
) -> None:
    """Download backbone weights (open_clip tag) and optionally a released adapter checkpoint."""
    from adaptclip_med.model.weights_store import adaclip_instructions, fetch_backbone, fetch_release

    _check_method(method)
    if method == "adaclip":
        typer.echo(adaclip_instructions())
        return

    typer.echo(f"backbone {backbone}/{backbone_weights}: {fetch_backbone(backbone, backbone_weights, cache_dir)}")
    if release:
        typer.echo(f"release {release}: {fetch_release(release, cache_dir)} (sha256 verified)")


@weights_app.command("import")
@common.user_errors
def import_(
    source: Path = typer.Argument(..., help="Released AdaptCLIP .pth (epoch_15.pth) or AdaCLIP .pth (with --method adaclip)."),
    out: Path = typer.Option(None, "--out", help="Destination .safetensors (default: project data folder)."),
    backbone: str = common.BackboneOpt,
    backbone_weights: str = common.BackboneWeightsOpt,
    backbone_activation: str = common.ActivationOpt,
    offline: bool = common.OfflineOpt,
    cache_dir: str = common.CacheDirOpt,
    method: str = typer.Option("adaptclip", "--method", help="adaptclip or adaclip: whose release layout SOURCE is in."),
) -> None:
    """Convert a released checkpoint into the project format (checksum verified for the releases)."""
    from adaptclip_med.model.checkpoints import import_release
    from adaptclip_med.model.weights_store import adaclip_folder, home

    _check_method(method)
    if method == "adaclip":
        from adaptclip_med.methods.adaclip import import_release as import_adaclip

        target = out or adaclip_folder() / f"{source.stem}.safetensors"
        typer.echo(f"imported -> {import_adaclip(source, target)} (all 38 AdaCLIP tensors checked; no published checksum)")
        return

    destination = out or home() / "adapters" / f"{source.parent.name or source.stem}.safetensors"
    spec = common.backbone_spec(backbone, backbone_weights, backbone_activation, offline, cache_dir)
    typer.echo(f"imported -> {import_release(spec, source, destination)}")
