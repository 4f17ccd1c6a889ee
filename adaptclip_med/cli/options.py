"""Typer options shared by the volume commands (score, references, demo) and their conversion to
:class:`~adaptclip_med.volume.options.ScoringOptions`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from adaptclip_med.volume.options import OutputOptions, ReferenceOptions, ScoringOptions, SlicingOptions

if TYPE_CHECKING:
    from adaptclip_med.methods.base import MethodSpec

WindowOpt = typer.Option(None, "--window", help="CT window preset (brain, subdural, stroke, bone, lung, mediastinum, abdomen, soft_tissue, liver), 'LEVEL,WIDTH' in HU, or 'percentile' (default: the bank's; percentile scaling when none).")
AxisOpt = typer.Option("axial", "--axis", help="Slice axis: axial, coronal or sagittal.")
GridOpt = typer.Option("auto", "--grid", help="Physical in-plane grid every scan and study is resampled to, so studies "
                       "reconstructed at another field of view are compared at the references' scale: 'auto' (the "
                       "scans' median pixel size and field of view), 'PIXEL_MM' (field of view from the scans), "
                       "'PIXEL_MM,FOV_MM' (e.g. 0.5,250), or 'off' (each study at its own pixel size).")
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
AllowOtherModalityOpt = typer.Option(False, "--allow-other-modality", help="Score a study whose modality differs from the reference bank's (refused otherwise: the comparison is meaningless); recorded in study.json (docs/comparability.md).")
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


def study_scoring(spec: "MethodSpec", *, bank: str | None, shots: int | None, zero_shot: bool, window: str | None,
                  axis: str, batch_size: int | str, threshold: float | None, aggregate: str, match: str | None,
                  parametric_map: bool, key_objects: bool, triage: int | None,
                  allow_other_modality: bool) -> ScoringOptions:
    """The options ``score`` and ``batch`` build from their shared study-scoring flags, one part per concern."""
    return ScoringOptions(model=spec,
                          references=ReferenceOptions(bank=bank, shots=shots, zero_shot=zero_shot, match=match,
                                                      allow_other_modality=allow_other_modality),
                          slicing=SlicingOptions(window=window, axis=axis, batch_size=batch_size, triage=triage),
                          output=OutputOptions(threshold=threshold, aggregate=aggregate, parametric_map=parametric_map,
                                               key_objects=key_objects))
