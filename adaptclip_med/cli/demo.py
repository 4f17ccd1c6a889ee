"""``adaptclip-med demo``: the whole pipeline on synthetic phantoms, offline, in a couple of minutes."""

from __future__ import annotations

from pathlib import Path

import typer

from adaptclip_med.cli import common


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@common.user_errors
def demo(out: Path = typer.Option(Path("demo_output"), "--out", help="Output folder."),
         seed: int = typer.Option(0, "--seed", help="Phantom seed.")) -> None:
    """Synthetic head-CT phantoms -> reference bank -> scoring -> graded outputs (no diagnostic value)."""
    from adaptclip_med.demo.run import DEMO_LABEL, run_demo
    from adaptclip_med.outputs.slice_numbers import slice_number

    typer.echo(DEMO_LABEL)
    result = run_demo(out, seed=seed)
    lesions = result.lesions
    typer.echo(f"study with lesions : score {result.abnormal.score:.4f}  top slices {[slice_number(z) for z in result.abnormal.top_slices]}")
    typer.echo(f"normal study       : score {result.normal.score:.4f}  false-positive regions {result.normal_false_positive_components}"
               f"  ({'lesion study scored higher' if result.abnormal.score > result.normal.score else 'NOT lower than the lesion study'})")
    typer.echo(f"lesions detected   : {lesions.detected}/{lesions.lesions}  false-positive regions {lesions.false_positive_components}  "
               f"voxel Dice {lesions.dice:.3f}")
    for item in lesions.per_lesion:
        typer.echo(f"  lesion {item['lesion']} ({item['kind']}): {item['voxels']} voxels on slices {[slice_number(z) for z in item['slices']]}, "
                   f"peak map {item['peak_probability']:.3f}, {'detected' if item['detected'] else 'missed'}, Dice {item['dice']:.3f}")
    typer.echo("(slices numbered from 1, as in the viewer, the overlays and slices.csv)")
    typer.echo(f"wall time          : {result.seconds:.0f} s")
    typer.echo(f"open               : {result.report} (report)")
    for name, path in result.figures.items():
        typer.echo(f"                     {path} ({name.replace('_', ' ')})")
    typer.echo(f"outputs            : {result.abnormal.out_dir} (NIfTI map/mask, DICOM SEG + SR, slices.csv, study.json), "
               f"{result.normal.out_dir}; summary {result.out_dir / 'demo_summary.json'}")
    typer.echo(DEMO_LABEL)
