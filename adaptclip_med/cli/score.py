"""``adaptclip-med score``: score one study (DICOM folder/files, NIfTI or 2-D image) slice by slice."""

from __future__ import annotations

from pathlib import Path

import typer

from adaptclip_med.cli import common, options


def register(app: typer.Typer) -> None:
    app.command("score")(score)


@common.user_errors
def score(
    study: Path = typer.Argument(..., help="DICOM folder or file, NIfTI (.nii/.nii.gz) or 2-D image."),
    references: str = options.ReferencesOpt,
    out: Path = typer.Option(..., "--out", help="Output folder for this study."),
    window: str = options.WindowOpt,
    axis: str = options.AxisOpt,
    shots: int = options.ShotsOpt,
    zero_shot: bool = options.ZeroShotOpt,
    threshold: float = options.ThresholdOpt,
    aggregate: str = options.AggregateOpt,
    match: str = options.MatchOpt,
    parametric_map: bool = options.ParametricMapOpt,
    batch_size: int = options.BatchSizeOpt,
    banks_root: Path = options.BanksRootOpt,
    backbone: str = common.BackboneOpt,
    backbone_weights: str = common.BackboneWeightsOpt,
    backbone_activation: str = common.ActivationOpt,
    adapters: str = common.AdaptersOpt,
    image_size: int = common.ImageSizeOpt,
    device: str = common.DeviceOpt,
    offline: bool = common.OfflineOpt,
    cache_dir: str = common.CacheDirOpt,
    precision: str = common.PrecisionOpt,
    study_index: int = typer.Option(None, "--study", min=0, help="When the input holds several studies: the index (0, 1, ...) of the one to score, as listed by the refusal."),
    series_index: int = typer.Option(None, "--series", min=0, help="Index of the image series to score within the study, as listed by the refusal."),
) -> None:
    """Score a study and write NIfTI map/mask, DICOM SEG (DICOM input), slices.csv, overlays and study.json."""
    from adaptclip_med.volume.pipeline import make_scorer, score_study

    opts = options.scoring_options(backbone, backbone_weights, backbone_activation, adapters, image_size, device, offline, cache_dir,
                                   precision=precision,
                                   bank=options.resolve_bank(references, banks_root), shots=shots, zero_shot=zero_shot,
                                   window=window, axis=axis, batch_size=batch_size, threshold=threshold, aggregate=aggregate,
                                   match=match, parametric_map=parametric_map)
    scorer = make_scorer(opts)
    result = score_study(study, out, scorer, series_rule=series_index, parametric_map=parametric_map,
                         study_index=study_index)
    mode = f"{scorer.shots}-shot" if scorer.shots else "zero-shot"
    typer.echo(f"study score {result.score:.4f} ({mode}, {opts.aggregate}); top slices {result.top_slices}; outputs in {out}")
