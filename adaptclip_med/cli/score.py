"""``adaptclip-med score``: score one study (DICOM folder/files, NIfTI or 2-D image) slice by slice."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from adaptclip_med.cli import common, options
from adaptclip_med.volume.batch_size import parse_batch_size

if TYPE_CHECKING:
    from adaptclip_med.methods.base import MethodSpec


def register(app: typer.Typer) -> None:
    app.command("score")(score)


@common.user_errors
@common.model_options(multi=True)
def score(
    study: Path = typer.Argument(..., help="DICOM folder or file, NIfTI (.nii/.nii.gz), MetaImage (.mha/.mhd), NRRD (.nrrd/.nhdr) or 2-D image."),
    references: str = options.ReferencesOpt,
    out: Path = typer.Option(..., "--out", help="Output folder for this study."),
    window: str = options.WindowOpt,
    axis: str = options.AxisOpt,
    shots: int = options.ShotsOpt,
    zero_shot: bool = options.ZeroShotOpt,
    threshold: float = options.ThresholdOpt,
    aggregate: str = options.AggregateOpt,
    match: str = options.MatchOpt,
    allow_other_modality: bool = options.AllowOtherModalityOpt,
    parametric_map: bool = options.ParametricMapOpt,
    key_objects: bool = options.KeyObjectsOpt,
    batch_size: str = options.ScoringBatchSizeOpt,
    triage: int = options.TriageOpt,
    banks_root: Path = options.BanksRootOpt,
    models: tuple[MethodSpec, ...] = None,
    study_index: int = typer.Option(None, "--study", min=0, help="When the input holds several studies: the index (0, 1, ...) of the one to score, as listed by the refusal."),
    series_index: int = typer.Option(None, "--series", min=0, help="Index of the image series to score within the study, as listed by the refusal."),
) -> None:
    """Score a study and write NIfTI map/mask, DICOM SEG + TID 1500 SR (DICOM input), slices.csv, overlays and study.json."""
    from adaptclip_med.volume.compare import score_with_methods

    bank = options.resolve_bank(references, banks_root)
    runs = [options.study_scoring(spec, bank=bank, shots=shots, zero_shot=zero_shot, window=window, axis=axis,
                                  batch_size=parse_batch_size(batch_size), threshold=threshold, aggregate=aggregate,
                                  match=match, parametric_map=parametric_map, key_objects=key_objects, triage=triage,
                                  allow_other_modality=allow_other_modality)
            for spec in models]
    for line in score_with_methods(study, out, runs, series_rule=series_index, study_index=study_index):
        typer.echo(line)
