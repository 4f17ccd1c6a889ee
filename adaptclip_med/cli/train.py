"""``adaptclip-med train``: learn adapters on an annotated dataset (the release's recipe by default)."""

from __future__ import annotations

from pathlib import Path

import typer

from adaptclip_med.cli import common
from adaptclip_med.errors import AdaptClipError

GIB = 1024**3


def register(app: typer.Typer) -> None:
    app.command("train")(train)


@common.user_errors
def train(
    dataset_root: Path = typer.Argument(..., help="Annotated dataset root (MVTec, VisA, meta.json, BMAD, MVFA, volumes (imagesTr/labelsTr NIfTI or DICOM) or generic layout)."),
    layout: str = typer.Option("auto", "--layout", help="Dataset layout, or auto to detect it."),
    window: str = common.VolumeWindowOpt,
    axis: str = common.VolumeAxisOpt,
    out: Path = typer.Option(..., "--out", help="Folder for epoch_N.safetensors checkpoints (+ epoch_N.optim.pt for resuming)."),
    method: str = common.MethodOpt,
    epochs: int = typer.Option(None, "--epochs", help="Total number of epochs (a resumed run continues up to it); default: the method's recipe (its training_recipe)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Queries per step; default: the method's recipe (AdaptCLIP needs >= 2 for BatchNorm)."),
    lr: float = typer.Option(None, "--lr", help="Learning rate; default: the method's recipe (its optimiser, betas and weight decay are always the recipe's)."),
    seed: int = typer.Option(None, "--seed", help="Seeds initialisation, query order and reference pairing (default: the method's recipe)."),
    shots: int = typer.Option(1, "--shots", help="Normal reference images paired with each query."),
    image_size: int = typer.Option(518, "--image-size", help="Square model input size (multiple of the patch size)."),
    split: str = typer.Option("test", "--split", help="Split to learn from: test (the release's recipe: an auxiliary dataset's annotated test split), train, valid or all."),
    adapters_to_train: str = typer.Option("textual,visual,prompt_query", "--adapters-to-train", help="Comma-separated: textual, visual, prompt_query."),
    resume: Path = typer.Option(None, "--resume", help="Continue from epoch_N.safetensors (needs epoch_N.optim.pt beside it)."),
    feature_cache_ram_gb: float = typer.Option(4.0, "--feature-cache-ram-gb", help="RAM for caching backbone features across epochs (0 disables)."),
    feature_cache_dir: Path = typer.Option(None, "--feature-cache-dir", help="Spill features that do not fit in RAM to this folder (float32, deleted at the end)."),
    backbone: str = common.BackboneOpt,
    backbone_weights: str = common.BackboneWeightsOpt,
    backbone_activation: str = common.ActivationOpt,
    device: str = common.DeviceOpt,
    offline: bool = common.OfflineOpt,
    cache_dir: str = common.CacheDirOpt,
) -> None:
    """Train a method's trainable parts (AdaptCLIP adapters, AdaCLIP prompts) with its authors' recipe; one checkpoint per epoch in OUT."""
    from adaptclip_med.data.layouts import read_dataset
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.methods.registry import get_method
    from adaptclip_med.training.request import TrainingRequest

    cls = get_method(method)
    if not cls.trainable:
        raise AdaptClipError(f"method '{method}' is training-free: there is nothing to train")
    index = read_dataset(dataset_root, layout, common.volume_slicing(window, axis))
    backbone_spec = common.backbone_spec(backbone or "", backbone_weights, backbone_activation, offline, cache_dir)
    spec = MethodSpec(method=method, backbone=backbone_spec, image_size=image_size, device=common.resolve_device(device))
    request = TrainingRequest(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, split=split, shots=shots,
                              parts=tuple(part.strip() for part in adapters_to_train.split(",") if part.strip()),
                              cache_ram_bytes=int(feature_cache_ram_gb * GIB), cache_dir=feature_cache_dir)

    def report(result) -> None:
        typer.echo(f"{result.summary} ({result.seconds:.1f} s) -> {result.checkpoint}")

    if not cls.train(spec, index, out, request, resume, report):
        typer.echo("nothing to train: the checkpoint is already at the last epoch")
