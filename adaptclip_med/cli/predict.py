"""``adaptclip-med predict``: score one 2-D image with 0..k normal references."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from adaptclip_med.cli import common

if TYPE_CHECKING:
    from adaptclip_med.methods.base import MethodSpec


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)


@common.user_errors
@common.model_options()
def predict(
    query: Path = typer.Argument(..., help="Query image (PNG/JPEG/TIFF, grey or RGB)."),
    reference: list[Path] = typer.Option([], "--reference", "-r", help="Normal reference image; repeat for k-shot. None = zero-shot."),
    out: Path = typer.Option(..., "--out", help="Result .npz (anomaly_map float32 SxS, score float32)."),
    overlay: Path = typer.Option(None, "--overlay", help="Also write the query with the anomaly map blended in colour (PNG)."),
    model: MethodSpec = None,
) -> None:
    """Score one 2-D image; writes RESULT.npz and optionally an overlay PNG."""
    from adaptclip_med.methods.registry import get_method
    from adaptclip_med.predict2d import predict_image, save_overlay, save_result_npz

    method = get_method(model.method).load(model)  # one image, one process: no shared model cache
    result = predict_image(method, query, list(reference))
    save_result_npz(out, result)
    if overlay is not None:
        save_overlay(overlay, result)
    mode = f"{len(reference)}-shot" if reference else "zero-shot"
    typer.echo(f"score {result.score:.4f} ({mode}, {method.describe()}) -> {out}")
