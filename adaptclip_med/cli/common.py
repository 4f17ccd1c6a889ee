"""Pieces shared by the CLI commands: backbone/adapter options, logging and error reporting.

The CLI stays thin: it parses options, calls library functions and prints results.  Every
:class:`AdaptClipError` becomes ONE line on stderr and a non-zero exit; tracebacks only with
``--debug``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
import warnings
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

import typer

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.runtime import measured

if TYPE_CHECKING:
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.model.backbone_source import BackboneSpec

F = TypeVar("F", bound=Callable[..., Any])

UNTRAINED = "untrained"

STATE: dict[str, Any] = {"debug": False}

MethodOpt = typer.Option("adaptclip", "--method", help="Anomaly-detection method: adaptclip, adaclip or winclip (see docs/adding-a-method.md for others).")
MethodsOpt = typer.Option("adaptclip", "--method", help="Method, or several separated by commas to compare them (adaptclip,adaclip,winclip).")
ClassNameOpt = typer.Option(None, "--class-name", help="What the image shows, for methods with text prompts (adaclip, winclip); default: the method's documented default (e.g. the bank's).")
BackboneOpt = typer.Option(None, "--backbone", help="open_clip ViT name or model-config JSON path (default: the method's: ViT-L-14-336 for adaptclip/adaclip, ViT-B-16-plus-240 for winclip).")
BackboneWeightsOpt = typer.Option(None, "--backbone-weights", help="open_clip pretrained tag, a local weights file (open_clip or OpenAI layout), or random[:SEED] (no diagnostic value); default: the method's (openai, laion400m_e31).")
ActivationOpt = typer.Option("auto", "--backbone-activation", help="auto | quickgelu | gelu. auto: AdaptCLIP uses QuickGELU for OpenAI weights, AdaCLIP exact GELU (as its authors).")
AdaptersOpt = typer.Option(None, "--adapters", help="Trained weights of the method: project .safetensors or the authors' released .pth; 'untrained' for fresh ones (training only); 'demo' for the packaged demo model (synthetic training data, no diagnostic value). Several methods: METHOD=FILE,METHOD=FILE. Not used by winclip.")
ImageSizeOpt = typer.Option(None, "--image-size", help="Square model input size (multiple of the patch size); default from the checkpoint/method (518 for the releases, 240 for winclip).")
DeviceOpt = typer.Option("auto", "--device", help="cpu, cuda, cuda:N or auto.")
OfflineOpt = typer.Option(False, "--offline", help="Never try to download weights; fail with instructions if they are not cached.")
CacheDirOpt = typer.Option(None, "--cache-dir", help="Hub cache folder for open_clip pretrained weights.")
PrecisionOpt = typer.Option("fp32", "--precision", help="Vision-tower precision: fp32 (exact; TF32 off on CUDA), bf16, fp16 (GPUs), int8 (fast mode, NOT exact, CPU: runs in onnxruntime; " + measured.INT8_TOLERANCE + "), or auto (bf16 only where the hardware has native bf16 matmuls; the choice is logged). adaptclip only. See docs/performance.md.")
RuntimeOpt = typer.Option(None, "--runtime", help="Vision-tower runtime: torch (default; onnxruntime for --precision int8), onnxruntime or openvino (CPU; the exported tower is cached under ~/.cache/adaptclip-med/runtime-graphs; fp32 " + measured.FP32_TOLERANCE + "), or auto (a runtime only where one was measured faster than torch at fp32 on this kind of CPU). Needs the pip extra onnxruntime or openvino of adaptclip-med. adaptclip only.")


def adapters_for(adapters: str | None, methods: tuple[str, ...], method: str) -> str | None:
    """``--adapters FILE`` (one method) or ``--adapters a=FILE,b=FILE`` (several methods)."""
    if adapters is None or "=" not in adapters:
        return adapters
    pairs = dict(part.split("=", 1) for part in adapters.split(",") if "=" in part)
    unknown = sorted(set(pairs) - set(methods))
    if unknown:
        raise AdaptClipError(f"--adapters names {', '.join(unknown)}, which --method does not list ({', '.join(methods)})")
    return pairs.get(method)


def method_spec(flags: dict[str, Any], methods: tuple[str, ...], method: str, require_weights: bool = True) -> "MethodSpec":
    """The method spec of the model flags for ``method``, validated by the method (one-line errors
    naming the flag), with the backbone left to the method's default when not given and the
    device resolved."""
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.methods.registry import validate_spec

    given = adapters_for(flags.get("adapters"), methods, method)
    backbone = backbone_spec(flags.get("backbone") or "", flags.get("backbone_weights"), flags.get("backbone_activation", "auto"),
                             bool(flags.get("offline")), flags.get("cache_dir"))
    spec = MethodSpec(method=method, backbone=backbone, weights=None if given in (None, UNTRAINED) else given,
                      image_size=flags.get("image_size"), device=flags.get("device", "auto"),
                      precision=flags.get("precision", "fp32"), class_name=flags.get("class_name"), runtime=flags.get("runtime"))
    validate_spec(spec, weights_required=require_weights, untrained=given == UNTRAINED)
    return replace(spec, device=resolve_device(spec.device))


def _model_parameters(multi: bool, adapters_help: Any) -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter("method", kw, default=MethodsOpt if multi else MethodOpt, annotation=str),
        inspect.Parameter("class_name", kw, default=ClassNameOpt, annotation=Optional[str]),
        inspect.Parameter("backbone", kw, default=BackboneOpt, annotation=Optional[str]),
        inspect.Parameter("backbone_weights", kw, default=BackboneWeightsOpt, annotation=Optional[str]),
        inspect.Parameter("backbone_activation", kw, default=ActivationOpt, annotation=str),
        inspect.Parameter("adapters", kw, default=adapters_help or AdaptersOpt, annotation=Optional[str]),
        inspect.Parameter("image_size", kw, default=ImageSizeOpt, annotation=Optional[int]),
        inspect.Parameter("device", kw, default=DeviceOpt, annotation=str),
        inspect.Parameter("offline", kw, default=OfflineOpt, annotation=bool),
        inspect.Parameter("cache_dir", kw, default=CacheDirOpt, annotation=Optional[str]),
        inspect.Parameter("precision", kw, default=PrecisionOpt, annotation=str),
        inspect.Parameter("runtime", kw, default=RuntimeOpt, annotation=Optional[str]),
    ]


def model_options(multi: bool = False, adapters_option: Any = None, require_weights: bool = True) -> Callable[[F], F]:
    """Declare the model options ONCE for every command: the decorated command takes the validated
    :class:`~adaptclip_med.methods.MethodSpec` as ``model`` instead of twelve flags, or, with
    ``multi`` (``--method`` names several methods: score, evaluate compare them), one spec per
    method as ``models``.  ``require_weights=False``: a trainable method without --adapters is
    accepted (the dashboard then reviews only); a command that declares ``adapters_given`` learns
    whether --adapters was given (a file or ``untrained``)."""

    def decorate(func: F) -> F:
        signature = inspect.signature(func)
        extra = _model_parameters(multi, adapters_option)
        names = [p.name for p in extra]
        injected = {"models" if multi else "model", "adapters_given"}

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            flags = {name: kwargs.pop(name) for name in names if name in kwargs}
            from adaptclip_med.methods.registry import parse_methods

            methods = tuple(parse_methods(flags.get("method")))
            if len(methods) > 1 and not multi:
                raise AdaptClipError(f"this command takes one --method, got {', '.join(methods)}")
            specs = tuple(method_spec(flags, methods, name, require_weights) for name in methods)
            kwargs["models" if multi else "model"] = specs if multi else specs[0]
            if "adapters_given" in signature.parameters:
                kwargs["adapters_given"] = flags.get("adapters") is not None
            return func(*args, **kwargs)

        own = [p for p in signature.parameters.values() if p.name not in injected]
        wrapper.__signature__ = signature.replace(parameters=own + extra)  # type: ignore[attr-defined]
        # typer resolves the annotations: the injected ones name types only the command module imports
        wrapper.__annotations__ = {k: v for k, v in func.__annotations__.items() if k not in injected}
        return wrapper  # type: ignore[return-value]

    return decorate


VolumeWindowOpt = typer.Option(None, "--window", help="Volume datasets: CT window preset or LEVEL,WIDTH (default: dataset.json's, else per-volume percentiles).")
VolumeAxisOpt = typer.Option(None, "--axis", help="Volume datasets: slice axis axial, coronal or sagittal (default: dataset.json's, else axial).")


def volume_slicing(window: str | None, axis: str | None):
    """Slicing settings for volume dataset layouts given on the command line (None: the dataset's own)."""
    from adaptclip_med.slice_preprocessing import SlicePreprocessing, parse_window

    if window is None and axis is None:
        return None
    return SlicePreprocessing(window=parse_window(window), axis=axis or "axial")


def backbone_spec(backbone: str, weights: str | None, activation: str, offline: bool, cache_dir: str | None) -> "BackboneSpec":
    from adaptclip_med.model.backbone_source import BackboneSpec

    return BackboneSpec(architecture=backbone, weights=weights, activation=activation, cache_dir=cache_dir,
                        offline=offline or os.environ.get("HF_HUB_OFFLINE") == "1")


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AdaptClipError(f"device '{device}' requested but no CUDA GPU is available: use --device cpu")
    return device


def configure_logging(debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Third-party loggers: chatty at INFO, and highdicom/pydicom messages can quote UIDs or patient
    # attributes, which must never reach our logs.
    for noisy in ("PIL", "matplotlib", "urllib3", "httpx", "huggingface_hub", "highdicom"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pydicom logs every failed decoder attempt at ERROR with a traceback, and its warnings (also
    # issued as Python warnings) can quote header values; our readers turn those failures into one
    # line naming the file and the reason.  The logger is disabled rather than levelled: pydicom
    # sets its logger's level when it is imported (later, only by the commands that read DICOM),
    # and disabling survives that without importing pydicom here (0.5 s of start-up).
    logging.getLogger("pydicom").disabled = True
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
