"""``adaptclip-med evaluate``: metrics over a dataset's test split for several shot counts and
seeds, written as a Markdown/CSV report with plots, reference choices and example overlays."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from adaptclip_med.cli import common
from adaptclip_med.errors import InputError

if TYPE_CHECKING:
    from adaptclip_med.methods.base import MethodSpec


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)


def parse_ints(values: list[str], what: str) -> tuple[int, ...]:
    """Click options take one value per flag: accept repeats (--shots 0 --shots 1), commas
    (--shots 0,1,2,4) and quoted spaces (--shots "0 1 2 4")."""
    numbers = []
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                numbers.append(int(part))
            except ValueError:
                raise InputError(f"{what}: {part!r} is not an integer") from None
    return tuple(numbers)


@common.user_errors
@common.model_options(multi=True)
def evaluate(
    dataset_root: Path = typer.Argument(..., help="Dataset root (MVTec, VisA, meta.json, BMAD, MVFA, volumes (imagesTr/labelsTr NIfTI or DICOM) or generic layout)."),
    layout: str = typer.Option("auto", "--layout", help="Dataset layout, or auto to detect it."),
    window: str = common.VolumeWindowOpt,
    axis: str = common.VolumeAxisOpt,
    shots: list[str] = typer.Option(["0,1,2,4"], "--shots", help="Shot counts, e.g. 0,1,2,4 (or repeat the flag)."),
    seeds: list[str] = typer.Option(["10,20,30"], "--seeds", help="Few-shot seeds, e.g. 10,20,30 (zero-shot always uses 10)."),
    out: Path = typer.Option(..., "--out", help="Report folder (one sub-folder per method plus comparison.md when several methods are given)."),
    map_size: int = typer.Option(None, "--map-size", help="Compare maps and masks at this size (default: the model input size)."),
    preset: str = typer.Option(None, "--preset", help="bmad: maps resized to 256, masks nearest (the release's BMAD evaluation)."),
    split: str = typer.Option("test", "--split", help="Split to evaluate."),
    classes: list[str] = typer.Option([], "--class", help="Evaluate only this class (repeatable)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Query images per forward pass."),
    examples: int = typer.Option(2, "--examples", help="Example overlays per class."),
    models: tuple[MethodSpec, ...] = None,
) -> None:
    """Evaluate one or several methods on DATASET_ROOT; writes report.md, CSV tables, plots/, references.json, examples/ (and comparison.md for several methods)."""
    from adaptclip_med.data.layouts import read_dataset
    from adaptclip_med.evaluation.benchmark import MAP_SIZE_PRESETS as PRESETS
    from adaptclip_med.evaluation.benchmark import BenchmarkConfig, run_benchmark
    from adaptclip_med.evaluation.benchmark_outputs import build_protocol, write_benchmark_outputs
    from adaptclip_med.evaluation.comparison import write_comparison
    from adaptclip_med.methods.registry import load_method

    if preset is not None and preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    if preset is not None and map_size is not None and map_size != PRESETS[preset]:
        raise InputError(f"--preset {preset} sets the map size to {PRESETS[preset]}; drop --map-size {map_size}")
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    config = BenchmarkConfig(shots=parse_ints(shots, "--shots"), seeds=parse_ints(seeds, "--seeds"),
                             map_size=PRESETS[preset] if preset else map_size, batch_size=batch_size, split=split,
                             classes=tuple(classes) or None, examples_per_class=examples)
    config.runs()
    index = read_dataset(dataset_root, layout, common.volume_slicing(window, axis))
    results, protocols = {}, {}
    for spec in models:
        method = load_method(spec)
        result = run_benchmark(method, index, config)
        protocol = build_protocol(method, index, config, result, preset)
        folder = out if len(models) == 1 else out / spec.method
        written = write_benchmark_outputs(folder, result, protocol, index.root)
        results[spec.method], protocols[spec.method] = result.results, protocol
        typer.echo(f"{spec.method}: {len(result.results)} (shots, seed, class) results, {len(written)} files -> {folder / 'report.md'}")
    if len(models) > 1:
        write_comparison(out, results, protocols)
        typer.echo(f"comparison of {len(models)} methods -> {out / 'comparison.md'}")
