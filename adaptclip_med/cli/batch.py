"""``adaptclip-med batch``: score every study of a folder tree or a DICOMweb PACS into a ranked worklist.

Resumable (run the same command again after a crash), and scales out unchanged under
``torchrun --nproc_per_node N`` (see docs/performance.md for multi-node use).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from adaptclip_med.cli import common, options
from adaptclip_med.volume.batch_size import parse_batch_size

if TYPE_CHECKING:
    from adaptclip_med.methods.base import MethodSpec


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)


def _qido_filters(modality: str | None, study_date: str | None, qido: list[str]) -> dict[str, str]:
    filters: dict[str, str] = {}
    if modality:
        filters["ModalitiesInStudy"] = modality
    if study_date:
        filters["StudyDate"] = study_date
    for item in qido:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"'{item}' is not KEY=VALUE (e.g. StudyDescription=*HEAD*)", param_hint="--qido")
        filters[key.strip()] = value.strip()
    return filters


@common.user_errors
@common.model_options()
def batch(
    source: Path = typer.Argument(None, help="Folder tree (any structure, DICOMDIR-aware; DICOM studies and .nii/.nii.gz, .mha/.mhd or .nrrd/.nhdr files, one study each) or one file; omit with --dicomweb."),
    references: str = options.ReferencesOpt,
    out: Path = typer.Option(..., "--out", help="Output folder: <study_key>/ per study, worklist.csv, errors.csv."),
    rules: Path = typer.Option(None, "--rules", help="Series selection rules (YAML); default: any image modality, no localizers/derived/secondary captures, thinnest axial."),
    dicomweb: str = typer.Option(None, "--dicomweb", help="DICOMweb base URL (QIDO/WADO/STOW), e.g. http://pacs:8042/dicom-web."),
    modality: str = typer.Option(None, "--modality", help="QIDO filter ModalitiesInStudy (e.g. CT)."),
    study_date: str = typer.Option(None, "--study-date", help="QIDO filter StudyDate: YYYYMMDD or a range YYYYMMDD-YYYYMMDD."),
    qido: list[str] = typer.Option([], "--qido", help="Extra QIDO filter KEY=VALUE; repeatable."),
    stow: bool = typer.Option(False, "--stow", help="Store the DICOM results (SEG, SR; Parametric Map and key objects when written) back to the PACS."),
    retries: int = typer.Option(3, "--retries", help="Attempts per PACS request before the study is recorded as failed."),
    backoff: float = typer.Option(1.0, "--backoff", help="First retry delay in seconds (doubles at each attempt)."),
    timeout: float = typer.Option(60.0, "--timeout", help="PACS request timeout in seconds."),
    retry_failed: bool = typer.Option(True, "--retry-failed/--keep-failed", help="On resume, try failed studies again (default) or keep their failure."),
    scratch_dir: Path = typer.Option(None, "--scratch-dir", help="Where studies fetched from the PACS are held while scored (default: system temp)."),
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
    model: MethodSpec = None,
) -> None:
    """Score every study; write per-study outputs, worklist.csv (ranked by score) and errors.csv.

    Exit codes: 0 every study scored; 4 some studies failed (see errors.csv); 2 nothing scored
    (every study failed, or bad input); 3 weights missing.
    """
    from adaptclip_med.batch.dicomweb import DicomwebSource, RetryPolicy
    from adaptclip_med.batch.discovery import FolderSource
    from adaptclip_med.batch.rules import load_rules
    from adaptclip_med.batch.runner import run_batch
    from adaptclip_med.batch.worker import BatchOptions

    if (source is None) == (dicomweb is None):
        raise typer.BadParameter("give either a SOURCE folder or --dicomweb URL (not both)")
    if stow and dicomweb is None:
        raise typer.BadParameter("--stow needs --dicomweb", param_hint="--stow")
    filters = _qido_filters(modality, study_date, qido)
    if filters and dicomweb is None:
        raise typer.BadParameter("QIDO filters (--modality, --study-date, --qido) need --dicomweb")
    opts = options.study_scoring(model, bank=options.resolve_bank(references, banks_root), shots=shots, zero_shot=zero_shot,
                                   window=window, axis=axis, batch_size=parse_batch_size(batch_size), threshold=threshold, aggregate=aggregate,
                                   match=match, parametric_map=parametric_map, key_objects=key_objects, triage=triage,
                                   allow_other_modality=allow_other_modality)
    studies = (DicomwebSource(dicomweb, filters, RetryPolicy(retries, backoff), timeout) if dicomweb is not None
               else FolderSource(source, exclude=(out,)))
    batch_options = BatchOptions(out_dir=out, rules=load_rules(rules), stow=stow, retry_failed=retry_failed,
                                 scratch_dir=scratch_dir)
    summary = run_batch(studies, opts, batch_options)
    if summary.is_main:
        typer.echo(f"batch: {summary.line()}")
        typer.echo(f"worklist: {summary.worklist}  errors: {summary.errors}")
    if summary.is_main and summary.exit_code:
        raise typer.Exit(summary.exit_code)
