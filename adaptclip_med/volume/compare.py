"""One study scored by one or several methods: ``score --method a,b``.

One method writes its outputs straight into the output folder (as always).  Several methods write
one sub-folder each (``<out>/<method>/``, complete study outputs) plus a comparison in the output
folder itself: ``methods.json`` (each method's identity, study score, top slices, threshold) and
``methods_score_plot.png`` (every method's slice-score curve on one plot).  The study is read and
windowed once and shared by all methods.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from adaptclip_med import __version__
from adaptclip_med.outputs import layout
from adaptclip_med.outputs.slice_numbers import instance_numbers, slice_labels
from adaptclip_med.outputs.thresholds import flag_line, result_flag
from adaptclip_med.utils.ownership import claim_output_folder, require_owned
from adaptclip_med.volume.options import ScoringOptions
from adaptclip_med.outputs.study_writers import NOT_FOR_CLINICAL_USE
from adaptclip_med.volume.pipeline import make_scorer, write_study_outputs

METHODS_JSON = "methods.json"
METHODS_PLOT = layout.METHODS_SCORE_PLOT


def score_with_methods(study: Path, out: Path, runs: Sequence[ScoringOptions], series_rule=None,
                       study_index: int | None = None) -> list[str]:
    """Score ``study`` with each options record; returns the lines to print.  ``study_index`` /
    an int ``series_rule`` choose when the input holds several studies / series."""
    from adaptclip_med.io.loader import load_study

    require_owned(Path(out), "output folder")  # before any work: refuse a folder of the user's own files
    scorers = [make_scorer(options) for options in runs]
    axes = {s.preprocessing.axis for s in scorers}
    volume, candidates = load_study(Path(study), series_rule=series_rule, axis=scorers[0].preprocessing.axis,
                                    study=study_index)
    if len(axes) > 1:
        raise ValueError("all methods of one comparison slice along the same axis")
    if len(runs) > 1:  # the comparison folder holds methods.json and one folder per method
        claim_output_folder(Path(out), "output folder")
    lines, summary, curves = [], [], []
    for options, scorer in zip(runs, scorers):
        folder = Path(out) if len(runs) == 1 else Path(out) / options.model.method
        started = time.time()
        result = scorer.score(volume)
        files = write_study_outputs(volume, result, folder, scorer, time.time() - started, max(0, len(candidates) - 1),
                                    parametric_map=options.output.parametric_map, key_objects=options.output.key_objects)
        mode = f"{scorer.shots}-shot" if scorer.shots else "zero-shot"
        missing = getattr(files, "not_written", {})
        lacking = f" (not written: {', '.join(missing)}; reasons in study.json)" if missing else ""
        flag, peak = result_flag(result)
        lines.append(f"{options.model.method}: {flag_line(flag, result.threshold, peak)}; {score_phrase(result)} "
                     f"({mode}, {options.output.aggregate}); top slices "
                     f"{slice_labels(result.top_slices, instance_numbers(volume))}; outputs in {folder}{lacking}")
        lines.extend(comparability_lines(options.model.method, result))
        summary.append({"method": options.model.method, "folder": folder.name if len(runs) > 1 else ".", "score": result.score,
                        "study_flag": flag,
                        "mode": mode, "top_slices": result.top_slices, "threshold": result.threshold,
                        "threshold_source": result.threshold_source, "identity": scorer.method.identity(),
                        "references_note": scorer.references_note(),
                        "comparability": None if result.comparability is None else result.comparability.line()})
        curves.append((options.model.method, np.array([s.position_mm for s in result.slices]),
                       np.array([np.nan if s.skipped else s.score for s in result.slices])))
    if len(runs) > 1:
        _write_comparison(Path(out), summary, curves)
        lines.append(f"comparison of {len(runs)} methods: {Path(out) / METHODS_JSON}, {Path(out) / METHODS_PLOT}")
    return lines


def score_phrase(result) -> str:
    """``study score 0.1234``, or why there is none (a not-comparable study is never ranked)."""
    if result.score == result.score:
        return f"study score {result.score:.4f}"
    return "no study score (not comparable)"


def comparability_lines(method: str, result) -> list[str]:
    """The guard's verdict for ``score``'s output: one line, plus its notes (old bank ...)."""
    verdict = result.comparability
    if verdict is None:
        return []
    return [f"{method}: comparability: {verdict.line()}", *[f"{method}: note: {note}" for note in verdict.notes]]


def _write_comparison(out: Path, summary: list[dict], curves: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    from adaptclip_med.outputs.plots import save_methods_plot
    from adaptclip_med.outputs.tables import write_study_json

    ranked = sorted(summary, key=lambda item: item["score"] if item["score"] == item["score"] else float("-inf"), reverse=True)
    write_study_json(out / METHODS_JSON, {"methods": summary, "ranking": [m["method"] for m in ranked],
                                          "software": {"name": "adaptclip-med", "version": __version__},
                                          "disclaimer": NOT_FOR_CLINICAL_USE})
    save_methods_plot(out / METHODS_PLOT, curves, title="slice anomaly scores by method (research use only)")
