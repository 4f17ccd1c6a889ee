"""``adaptclip-med references``: build, list, rename and delete reference banks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from adaptclip_med.cli import common, options
from adaptclip_med.volume.options import ScoringOptions, SlicingOptions

if TYPE_CHECKING:
    from adaptclip_med.methods.base import MethodSpec

references_app = typer.Typer(help="Reference banks of normal scans (encoded once, reused for every study).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(references_app, name="references")


@references_app.command("build")
@common.user_errors
@common.model_options()
def build(
    name: str = typer.Argument(..., help="Bank name, e.g. ct-head-noncontrast."),
    scans: list[Path] = typer.Argument(..., help="Normal scans (DICOM folders/files, NIfTI, MetaImage .mha/.mhd or NRRD .nrrd)."),
    window: str = options.WindowOpt,
    axis: str = options.AxisOpt,
    grid: str = options.GridOpt,
    calibrate: bool = typer.Option(True, "--calibrate/--no-calibrate", help="Leave-one-scan-out calibration of the mask threshold (needs >= 2 scans)."),
    batch_size: int = options.BatchSizeOpt,
    banks_root: Path = options.BanksRootOpt,
    model: MethodSpec = None,
) -> None:
    """Encode k normal scans once and store their per-slice features on disk."""
    from adaptclip_med.volume.physical_grid import parse_grid
    from adaptclip_med.volume.pipeline import model_for
    from adaptclip_med.volume.bank_builder import build_reference_bank
    from adaptclip_med.volume.bank.reader import ReferenceBank

    grid_choice = parse_grid(grid)  # a bad --grid is refused before the model loads
    opts = ScoringOptions(model=model, slicing=SlicingOptions(window=window, axis=axis, batch_size=batch_size))
    method = model_for(opts)
    path = build_reference_bank(name, list(scans), method, opts.preprocessing(), options.banks_root(banks_root),
                                batch_size=batch_size, calibrate=calibrate, grid=grid_choice)
    note = " (zero-shot method: the bank serves threshold calibration only)" if method.references == "unused" else ""
    built_grid = ReferenceBank.open(path).grid
    grid_text = f"grid {built_grid.text()}" if built_grid is not None else "no physical grid"
    typer.echo(f"reference bank '{name}' ({len(scans)} scans, {method.describe()}, {grid_text}) -> {path}{note}")
    typer.echo(calibration_line(path))


def calibration_line(bank_path: Path) -> str:
    """The bank's calibrated thresholds, each named for what it applies to."""
    from adaptclip_med.outputs.thresholds import PIXEL_NAME, SLICE_NAME
    from adaptclip_med.volume.bank.reader import ReferenceBank

    bank = ReferenceBank.open(Path(bank_path))
    try:
        calibration = bank.calibration or {}
    finally:
        bank.close()
    if "pixel_threshold" not in calibration:
        return "no calibration: scoring with this bank uses the default pixel threshold"
    quantile = calibration.get("pixel_quantile")
    line = (f"{PIXEL_NAME} {calibration['pixel_threshold']:.4f} (map value; "
            f"{'' if quantile is None else f'{100 * float(quantile):g} % quantile of '}normal maps, leave-one-scan-out)")
    if calibration.get("normal_slice_score_max") is not None:
        line += f"; {SLICE_NAME} {float(calibration['normal_slice_score_max']):.4f} (highest normal slice score)"
    return line


@references_app.command("list")
@common.user_errors
def list_(banks_root: Path = options.BanksRootOpt) -> None:
    """List the banks under the banks root."""
    from adaptclip_med.volume.bank.folders import list_banks

    banks = list_banks(options.banks_root(banks_root))
    if not banks:
        typer.echo(f"no reference banks under {options.banks_root(banks_root)}")
    for bank in banks:
        typer.echo(f"{bank['name']:30s} {bank['method']:10s} {bank['scans']} scans  window={bank['preprocessing'].get('window')}  "
                   f"calibrated={bank['calibrated']}  grid={_grid_text(bank.get('grid'))}  created {bank['created']}")


def _grid_text(record: dict | None) -> str:
    """'0.9mm/256x256' for a bank on a physical grid, 'none' for one without (each study at its own size)."""
    return f"{record['pixel_mm']:g}mm/{record['rows']}x{record['cols']}" if record else "none"


@references_app.command("rename")
@common.user_errors
def rename(old: str, new: str, banks_root: Path = options.BanksRootOpt) -> None:
    """Rename a bank (its identity key is unchanged)."""
    from adaptclip_med.volume.bank.folders import rename_bank

    typer.echo(f"renamed -> {rename_bank(options.banks_root(banks_root), old, new)}")


@references_app.command("delete")
@common.user_errors
def delete(name: str, banks_root: Path = options.BanksRootOpt) -> None:
    """Delete a bank."""
    from adaptclip_med.volume.bank.folders import delete_bank

    delete_bank(options.banks_root(banks_root), name)
    typer.echo(f"deleted reference bank '{name}'")
