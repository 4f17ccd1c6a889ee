"""``adaptclip-med train``: learn adapters on an annotated dataset (the release's recipe by default)."""

from __future__ import annotations

from pathlib import Path

import typer

from adaptclip_med.cli import common
from adaptclip_med.errors import AdaptClipError

GIB = 1024**3


def register(app: typer.Typer) -> None:
    app.command("train")(train)


def parse_adapters(value: str) -> tuple[str, ...]:
    """'textual,visual' -> ('textual', 'visual'); order and repeats do not matter."""
    from adaptclip_med.training.config import ADAPTERS

    names = {part.strip() for part in value.split(",") if part.strip()}
    return tuple(name for name in ADAPTERS if name in names) + tuple(sorted(names - set(ADAPTERS)))


@common.user_errors
def train(
    dataset_root: Path = typer.Argument(..., help="Annotated dataset root (MVTec, VisA, meta.json, BMAD, MVFA, volumes (imagesTr/labelsTr NIfTI or DICOM) or generic layout)."),
    layout: str = typer.Option("auto", "--layout", help="Dataset layout, or auto to detect it."),
    window: str = common.VolumeWindowOpt,
    axis: str = common.VolumeAxisOpt,
    out: Path = typer.Option(..., "--out", help="Folder for epoch_N.safetensors checkpoints (+ epoch_N.optim.pt for resuming)."),
    method: str = common.MethodOpt,
    epochs: int = typer.Option(None, "--epochs", help="Total number of epochs (a resumed run continues up to it); default: the method's recipe (adaptclip 15, adaclip 5)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Queries per step; default: the method's recipe (adaptclip 8, >= 2 for BatchNorm; adaclip 1)."),
    lr: float = typer.Option(None, "--lr", help="Learning rate; default: the method's recipe (adaptclip Adam 1e-3, betas 0.5/0.999; adaclip AdamW 0.01, betas 0.5/0.999, weight decay 0.01)."),
    seed: int = typer.Option(None, "--seed", help="Seeds initialisation, query order and reference pairing (default: adaptclip 10, adaclip 111)."),
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
    from adaptclip_med.methods.registry import get_method

    cls = get_method(method)
    if not cls.trainable:
        raise AdaptClipError(f"method '{method}' is training-free: there is nothing to train")
    index = read_dataset(dataset_root, layout, common.volume_slicing(window, axis))
    spec = common.backbone_spec(backbone or "", backbone_weights, backbone_activation, offline, cache_dir)
    if method != "adaptclip":
        _train_with_contract(method, spec, index, out, epochs, batch_size, lr, seed, split, image_size, resume, device)
        return
    from adaptclip_med.model.backbone_source import BackboneSpec
    from adaptclip_med.training.config import TrainingConfig
    from adaptclip_med.training.trainer import train_adapters

    spec = BackboneSpec(spec.architecture or cls.default_backbone[0], spec.weights or cls.default_backbone[1], spec.activation,
                        spec.cache_dir, spec.offline)
    config = TrainingConfig(epochs=epochs or 15, batch_size=batch_size or 8, lr=lr or 1e-3, seed=10 if seed is None else seed, shots=shots,
                            adapters=parse_adapters(adapters_to_train), split=split, image_size=image_size,
                            cache_ram_bytes=int(feature_cache_ram_gb * GIB), cache_dir=feature_cache_dir)
    config.validate()

    def report(result) -> None:
        losses = ", ".join(f"{k} {v:.4f}" for k, v in result.losses.items())
        typer.echo(f"epoch {result.epoch}/{epochs}: {losses} ({result.seconds:.1f} s) -> {result.checkpoint}")

    _, results = train_adapters(spec, index, out, config, common.resolve_device(device), resume, report)
    if not results:
        typer.echo(f"nothing to train: the checkpoint is already at epoch {config.epochs}")


def _train_with_contract(method: str, spec, index, out: Path, epochs, batch_size, lr, seed, split: str, image_size: int,
                         resume: Path | None, device: str) -> None:
    """Methods other than AdaptCLIP train through the method contract (their own loss and recipe)."""
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.methods.registry import get_method
    from adaptclip_med.training.method_trainer import MethodTrainingConfig, train_method

    loaded = get_method(method).load(MethodSpec(method=method, backbone=spec, weights=str(resume) if resume else None,
                                                image_size=image_size, device=common.resolve_device(device)))
    config = MethodTrainingConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=111 if seed is None else seed, split=split)

    def report(result) -> None:
        typer.echo(f"epoch {result.epoch}: loss {result.losses['total']:.4f} ({result.seconds:.1f} s) -> {result.checkpoint}")

    results = train_method(loaded, index, out, config, resume, report)
    if not results:
        typer.echo("nothing to train: the checkpoint is already at the last epoch")
