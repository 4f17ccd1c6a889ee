"""Pieces shared by the CLI commands: backbone/adapter options, logging and error reporting.

The CLI stays thin: it parses options, calls library functions and prints results.  Every
:class:`AdaptClipError` becomes ONE line on stderr and a non-zero exit; tracebacks only with
``--debug``.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from typing import Any, Callable, TypeVar

import typer

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.model.backbone_source import BackboneSpec

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_BACKBONE = "ViT-L-14-336"
DEFAULT_BACKBONE_WEIGHTS = "openai"
UNTRAINED = "untrained"

STATE: dict[str, Any] = {"debug": False}

BackboneOpt = typer.Option(DEFAULT_BACKBONE, "--backbone", help="open_clip ViT name (e.g. ViT-L-14-336, ViT-B-16-plus-240) or a model-config JSON path.")
BackboneWeightsOpt = typer.Option(DEFAULT_BACKBONE_WEIGHTS, "--backbone-weights", help="open_clip pretrained tag (e.g. openai), a local weights file (open_clip or OpenAI layout), or random[:SEED] (no diagnostic value).")
ActivationOpt = typer.Option("auto", "--backbone-activation", help="auto | quickgelu | gelu. OpenAI CLIP weights need QuickGELU; auto picks it for them.")
AdaptersOpt = typer.Option(..., "--adapters", help="Adapter checkpoint: project .safetensors or a released AdaptCLIP .pth; 'untrained' for fresh adapters (demo/training only).")
ImageSizeOpt = typer.Option(None, "--image-size", help="Square model input size (multiple of the patch size); default from the checkpoint (518 for the release).")
DeviceOpt = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto.")
OfflineOpt = typer.Option(False, "--offline", help="Never try to download weights; fail with instructions if they are not cached.")
CacheDirOpt = typer.Option(None, "--cache-dir", help="Hub cache folder for open_clip pretrained weights.")
PrecisionOpt = typer.Option("fp32", "--precision", help="Vision-tower precision: fp32 (exact), bf16, or auto (bf16 only where the hardware has native bf16 matmuls; the choice is logged). See docs/performance.md.")


VolumeWindowOpt = typer.Option(None, "--window", help="Volume datasets: CT window preset or LEVEL,WIDTH (default: dataset.json's, else per-volume percentiles).")
VolumeAxisOpt = typer.Option(None, "--axis", help="Volume datasets: slice axis axial, coronal or sagittal (default: dataset.json's, else axial).")


def volume_slicing(window: str | None, axis: str | None):
    """Slicing settings for volume dataset layouts given on the command line (None: the dataset's own)."""
    from adaptclip_med.volume.preprocessing import SlicePreprocessing, parse_window

    if window is None and axis is None:
        return None
    return SlicePreprocessing(window=parse_window(window), axis=axis or "axial")


def backbone_spec(backbone: str, weights: str, activation: str, offline: bool, cache_dir: str | None) -> BackboneSpec:
    return BackboneSpec(architecture=backbone, weights=weights, activation=activation, cache_dir=cache_dir,
                        offline=offline or os.environ.get("HF_HUB_OFFLINE") == "1")


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AdaptClipError(f"device '{device}' requested but no CUDA GPU is available: use --device cpu")
    return device


def adapters_argument(value: str) -> str | None:
    return None if value == UNTRAINED else value


def configure_logging(debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Third-party loggers: chatty at INFO, and highdicom/pydicom messages can quote UIDs or patient
    # attributes, which must never reach our logs.
    for noisy in ("PIL", "matplotlib", "urllib3", "httpx", "huggingface_hub", "highdicom"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pydicom logs every failed decoder attempt at ERROR with a traceback, and its warnings (also
    # issued as Python warnings) can quote header values; our readers turn those failures into one
    # line naming the file and the reason.  Importing pydicom first: its import sets its logger's level.
    import pydicom  # noqa: F401

    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module=r"(pydicom|highdicom)(\.|$)")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_drop_root_info)


def _drop_root_info(record: logging.LogRecord) -> bool:
    """open_clip logs its progress through the ROOT logger at INFO (tokenizer and config lookups);
    our own modules always log under their names, so root-level INFO is noise for users."""
    return not (record.name == "root" and record.levelno < logging.WARNING)


def user_errors(func: F) -> F:
    """Turn AdaptClipError (and Ctrl-C) into one line and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AdaptClipError as exc:
            if STATE["debug"]:
                raise
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # a file problem no reader anticipated: still one line naming the file
            if STATE["debug"]:
                raise
            from adaptclip_med.utils.redact import describe_path

            where = f"{describe_path(exc.filename)}: " if exc.filename else ""
            typer.echo(f"error: {where}{exc.strerror or type(exc).__name__}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)
