"""``adaptclip-med predict``: score one 2-D image with 0..k normal references."""

from __future__ import annotations

from pathlib import Path

import typer

from adaptclip_med.cli import common


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)


@common.user_errors
def predict(
    query: Path = typer.Argument(..., help="Query image (PNG/JPEG/TIFF, grey or RGB)."),
    reference: list[Path] = typer.Option([], "--reference", "-r", help="Normal reference image; repeat for k-shot. None = zero-shot."),
    backbone: str = common.BackboneOpt,
    backbone_weights: str = common.BackboneWeightsOpt,
    backbone_activation: str = common.ActivationOpt,
    adapters: str = common.AdaptersOpt,
    image_size: int = common.ImageSizeOpt,
    out: Path = typer.Option(..., "--out", help="Result .npz (anomaly_map float32 SxS, score float32)."),
    overlay: Path = typer.Option(None, "--overlay", help="Also write the query with the anomaly map blended in colour (PNG)."),
    device: str = common.DeviceOpt,
    offline: bool = common.OfflineOpt,
    cache_dir: str = common.CacheDirOpt,
    precision: str = common.PrecisionOpt,
) -> None:
    """Score one 2-D image; writes RESULT.npz and optionally an overlay PNG."""
    from adaptclip_med.model.checkpoints import build_model
    from adaptclip_med.model.precision import apply_precision
    from adaptclip_med.predict2d import predict_image, save_overlay, save_result_npz

    spec = common.backbone_spec(backbone, backbone_weights, backbone_activation, offline, cache_dir)
    dev = common.resolve_device(device)
    loaded = build_model(spec, common.adapters_argument(adapters), image_size, dev)
    apply_precision(loaded.model, precision)
    size = loaded.model.config.image_size
    result = predict_image(loaded.model, query, list(reference), size, dev)
    save_result_npz(out, result)
    if overlay is not None:
        save_overlay(overlay, result)
    mode = f"{len(reference)}-shot" if reference else "zero-shot"
    typer.echo(f"score {result.score:.4f} ({mode}, {loaded.model.backbone.identity.short()}, adapters {loaded.adapters_label}) -> {out}")
