"""Typer options shared by the volume commands (score, references, demo) and their conversion to
:class:`~adaptclip_med.volume.options.ScoringOptions`."""

from __future__ import annotations

from pathlib import Path

import typer

from adaptclip_med.cli import common
from adaptclip_med.volume.options import ModelOptions, ScoringOptions

WindowOpt = typer.Option(None, "--window", help="CT window preset (brain, subdural, stroke, bone, lung, mediastinum, abdomen, soft_tissue, liver), 'LEVEL,WIDTH' in HU, or 'percentile' (default: the bank's; percentile scaling when none).")
AxisOpt = typer.Option("axial", "--axis", help="Slice axis: axial, coronal or sagittal.")
BatchSizeOpt = typer.Option(4, "--batch-size", help="Slices per forward pass.")
BanksRootOpt = typer.Option(None, "--banks-root", help="Folder holding reference banks (default: the banks folder of $ADAPTCLIP_MED_HOME).")
# Study-scoring options shared by ``score`` and ``batch`` (one help text each).
ReferencesOpt = typer.Option(None, "--references", help="Reference bank (folder or name); omit or --zero-shot for zero-shot.")
ShotsOpt = typer.Option(None, "--shots", help="Use the first k scans of the bank (default: all).")
ZeroShotOpt = typer.Option(False, "--zero-shot", help="Ignore references; text-only scoring.")
ThresholdOpt = typer.Option(None, "--threshold", help="Mask threshold on the anomaly map (default: the bank's calibrated value, else 0.5).")
AggregateOpt = typer.Option("max", "--aggregate", help="Study score from slice scores: max or topk:K.")
MatchOpt = typer.Option(None, "--match", help="Reference slice matching: position (default) or retrieval (docs/volumes.md).")
ScoringBatchSizeOpt = typer.Option("4", "--batch-size", help="Slices per forward pass, or auto: on a GPU the largest batch that fits in 70% of the free memory (measured per method), on a CPU 4.")
TriageOpt = typer.Option(None, "--triage", min=2, help="Triage mode: score every N-th body slice, then the neighbours of the highest-scoring and above-threshold slices until none is left; unscored slices get no map and are listed as not scored (docs/performance.md). Default: score every slice.")
ParametricMapOpt = typer.Option(False, "--parametric-map", help="Also write a DICOM Parametric Map (DICOM input).")
KeyObjectsOpt = typer.Option(False, "--key-objects", help="Also write a DICOM Key Object Selection of the top slices (DICOM input).")


def banks_root(value: Path | None) -> Path:
    from adaptclip_med.utils.home import home

    return Path(value) if value else home() / "banks"


def resolve_bank(value: str | None, root: Path | None) -> str | None:
    """A bank given as a folder path, or as a name under the banks root."""
    if value is None:
        return None
    path = Path(value)
    if path.is_dir():
        return str(path)
    candidate = banks_root(root) / value
    return str(candidate if candidate.is_dir() else path)


def scoring_options(model: common.ModelChoice, method: str | None = None, require_weights: bool = True,
                    **volume) -> ScoringOptions:
    """ScoringOptions for one method of the command's model options (validated by the method)."""
    spec = model.spec(method, require_weights)
    chosen = ModelOptions(method=spec.method, class_name=spec.class_name, backbone=model.backbone,
                          backbone_weights=model.backbone_weights, activation=model.activation, adapters=spec.weights,
                          image_size=model.image_size, device=spec.device, offline=model.offline, cache_dir=model.cache_dir,
                          precision=model.precision, runtime=model.runtime)
    return ScoringOptions(model=chosen).with_(**volume)
