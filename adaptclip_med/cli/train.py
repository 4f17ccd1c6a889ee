"""``adaptclip-med train``: learn adapters on an annotated dataset (the release's recipe by default)."""

from __future__ import annotations

from pathlib import Path

import typer

from adaptclip_med.cli import common

GIB = 1024**3


def register(app: typer.Typer) -> None:
    app.command("train")(train)


def parse_adapters(value: str) -> tuple[str, ...]:
    """'textual,visual' -> ('textual', 'visual'); order and repeats do not matter."""
    from adaptclip_med.training.trainer import ADAPTERS

    names = {part.strip() for part in value.split(",") if part.strip()}
    return tuple(name for name in ADAPTERS if name in names) + tuple(sorted(names - set(ADAPTERS)))


@common.user_errors
def train(
    dataset_root: Path = typer.Argument(..., help="Annotated dataset root (MVTec, VisA, meta.json, BMAD, MVFA, volumes (imagesTr/labelsTr NIfTI or DICOM) or generic layout)."),
    layout: str = typer.Option("auto", "--layout", help="Dataset layout, or auto to detect it."),
    window: str = common.VolumeWindowOpt,
    axis: str = common.VolumeAxisOpt,
    out: Path = typer.Option(..., "--out", help="Folder for epoch_N.safetensors checkpoints (+ epoch_N.optim.pt for resuming)."),
    epochs: int = typer.Option(15, "--epochs", help="Total number of epochs (a resumed run continues up to it)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Queries per step (>= 2: BatchNorm)."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate (betas 0.5, 0.999; no weight decay or schedule)."),
    seed: int = typer.Option(10, "--seed", help="Seeds adapter initialisation, query order and reference pairing."),
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
    """Train the AdaptCLIP adapters; one checkpoint per epoch in OUT."""
    from adaptclip_med.data import read_dataset
    from adaptclip_med.training.trainer import TrainingConfig, train_adapters

    config = TrainingConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, shots=shots,
                            adapters=parse_adapters(adapters_to_train), split=split, image_size=image_size,
                            cache_ram_bytes=int(feature_cache_ram_gb * GIB), cache_dir=feature_cache_dir)
    config.validate()
    index = read_dataset(dataset_root, layout, common.volume_slicing(window, axis))
    spec = common.backbone_spec(backbone, backbone_weights, backbone_activation, offline, cache_dir)

    def report(result) -> None:
        losses = ", ".join(f"{k} {v:.4f}" for k, v in result.losses.items())
        typer.echo(f"epoch {result.epoch}/{epochs}: {losses} ({result.seconds:.1f} s) -> {result.checkpoint}")

    _, results = train_adapters(spec, index, out, config, common.resolve_device(device), resume, report)
    if not results:
        typer.echo(f"nothing to train: the checkpoint is already at epoch {epochs}")
