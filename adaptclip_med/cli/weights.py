"""``adaptclip-med weights``: what is cached or missing, fetch (online), import a release."""

from __future__ import annotations

from pathlib import Path

import typer

from adaptclip_med.cli import common
from adaptclip_med.errors import AdaptClipError

_WEIGHT_METHODS = ("adaptclip", "adaclip", "winclip")


def _check_method(method: str) -> None:
    from adaptclip_med.errors import AdaptClipError

    if method not in _WEIGHT_METHODS:
        raise AdaptClipError(f"--method {method}: weights are managed for {', '.join(_WEIGHT_METHODS)}")


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
    """Show which known backbone weights and adapter checkpoints are present locally."""
    from adaptclip_med.model.weights_store import adaclip_instructions, adaclip_status, backbone_status, release_status
    from adaptclip_med.utils.home import home

    rows = backbone_status(cache_dir) + release_status(cache_dir) + adaclip_status()
    for row in rows:
        state = f"present  {row.path}" if row.present else "MISSING"
        typer.echo(f"{row.kind:9s} {row.name:70s} {state}")
    missing = [r for r in rows if not r.present]
    if missing:
        typer.echo("\nTo get missing weights (needs internet): 'adaptclip-med weights fetch --method winclip' (its CLIP backbone, "
                   "no trained weights needed); 'adaptclip-med weights fetch --release mvtec' (AdaptCLIP backbone + adapters), "
                   "then 'adaptclip-med weights import PATH/epoch_15.pth' (PATH as printed by fetch).")
    if any(r.kind == "adaclip" and not r.present for r in rows):
        typer.echo(adaclip_instructions())
    typer.echo(f"project data folder: {home()}")


@weights_app.command("fetch")
@common.user_errors
def fetch(
    backbone: str = common.BackboneOpt,
    backbone_weights: str = common.BackboneWeightsOpt,
    release: str = typer.Option(None, "--release", help="Also fetch a released adapter checkpoint: mvtec or visa."),
    method: str = typer.Option("adaptclip", "--method", help="Whose backbone to fetch (adaptclip, winclip); adaclip prints how to obtain its weights (no stable download URL)."),
    cache_dir: str = common.CacheDirOpt,
) -> None:
    """Download backbone weights (open_clip tag; default: the method's backbone) and optionally a released adapter checkpoint."""
    from adaptclip_med.model.weights_store import adaclip_instructions, fetch_backbone, fetch_release

    _check_method(method)
    if method == "adaclip":
        typer.echo(adaclip_instructions())
        return
    backbone, backbone_weights = _backbone_for(method, backbone, backbone_weights)
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
    from adaptclip_med.model.weights_store import adaclip_folder
    from adaptclip_med.utils.home import home

    if not source.is_file():
        from adaptclip_med.errors import MissingWeightsError
        from adaptclip_med.utils.redact import describe_path

        raise MissingWeightsError(f"{describe_path(source)}: no such file; download the released checkpoint "
                                  "(adaptclip-med weights fetch --release mvtec) or give the path of epoch_15.pth")
    _check_method(method)
    if method == "adaclip":
        from adaptclip_med.methods.adaclip import import_release as import_adaclip

        target = out or adaclip_folder() / f"{source.stem}.safetensors"
        typer.echo(f"imported -> {import_adaclip(source, target)} (all 38 AdaCLIP tensors checked; no published checksum)")
        return

    if method == "winclip":
        raise AdaptClipError("winclip is training-free: there is no release to import")
    destination = out or home() / "adapters" / f"{source.parent.name or source.stem}.safetensors"
    backbone, backbone_weights = _backbone_for(method, backbone, backbone_weights)
    spec = common.backbone_spec(backbone, backbone_weights, backbone_activation, offline, cache_dir)
    typer.echo(f"imported -> {import_release(spec, source, destination)}")
