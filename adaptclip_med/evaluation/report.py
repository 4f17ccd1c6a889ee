"""Evaluation report: Markdown + CSV tables and PNG plots, every file written atomically.

Files under ``out_dir``:

* ``report.md`` — protocol header (auxiliary training data, checkpoint, seeds, map size, bins,
  and anything else given), a summary over shot counts, one per-class table per shot count
  (mean ± std over seeds), and the plots;
* ``results.csv`` — one row per (shots, seed, class), the raw numbers;
* ``summary.csv`` — one row per (shots, class or ``(mean)``): mean, std and seed count per metric;
* ``plots/`` — per-class bar charts and, when curves are given, image-level ROC/PR curves.

The protocol header is mandatory because the usual hazards (adapters trained on another
dataset's TEST split, checkpoint picked by test score, few seeds) change what the numbers mean.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path

from adaptclip_med.evaluation.aupro import DEFAULT_FPR_LIMIT
from adaptclip_med.evaluation.metrics import ImageCurves
from adaptclip_med.evaluation.plots import curves_png, per_class_bars_png
from adaptclip_med.evaluation.summary import (
    MEAN_ROW,
    ResultKey,
    Results,
    Stat,
    metric_names,
    seeds_for,
    summarise,
)
from adaptclip_med.utils.atomic import atomic_write_bytes, atomic_write_text

REQUIRED_PROTOCOL = ("auxiliary_data", "checkpoint", "seeds", "map_size", "bins")
BAR_METRICS = ("I-AUROC", "P-AUROC", "P-AUPRO")
MISSING = "–"


def _protocol_value(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _csv_text(header: list[str], rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _cell(stat: Stat | None) -> str:
    return MISSING if stat is None else stat.format()


def _slug(metric: str) -> str:
    return metric.lower().replace("@", "_at_").replace(".", "")


def _results_csv(results: Results, names: list[str]) -> str:
    rows = [[shots, seed, name] + [f"{metrics[n]:.4f}" if n in metrics else "" for n in names]
            for (shots, seed, name), metrics in sorted(results.items())]
    return _csv_text(["shots", "seed", "class", *names], rows)


def _summary_csv(summary: Mapping[int, Mapping[str, Mapping[str, Stat]]], names: list[str]) -> str:
    header = ["shots", "class", "n_seeds"] + [f"{n} {part}" for n in names for part in ("mean", "std")]
    rows = []
    for shots, table in summary.items():
        for row_name, stats in table.items():
            n_seeds = max((s.n for s in stats.values()), default=0)
            cells: list[object] = [shots, row_name, n_seeds]
            for n in names:
                stat = stats.get(n)
                cells += [f"{stat.mean:.4f}" if stat else "", f"{stat.std:.4f}" if stat and stat.std is not None else ""]
            rows.append(cells)
    return _csv_text(header, rows)


def _curve_plots(curves: Mapping[ResultKey, ImageCurves]) -> dict[str, bytes]:
    """ROC and PR figures per shot count, for the lowest seed (one line per class)."""
    figures = {}
    for shots in sorted({k[0] for k in curves}):
        seed = min(k[1] for k in curves if k[0] == shots)
        per_class = {name: c for (s, sd, name), c in sorted(curves.items()) if s == shots and sd == seed}
        for kind, label in (("roc", "ROC"), ("pr", "precision-recall")):
            title = f"Image-level {label}, {shots}-shot, seed {seed}"
            figures[f"image_{kind}_{shots}shot.png"] = curves_png(per_class, kind, title)
    return figures


def write_report(out_dir: Path, results: Results, protocol: Mapping[str, object],
                 curves: Mapping[ResultKey, ImageCurves] | None = None) -> list[Path]:
    """Write the report files; returns their paths (report.md first).

    ``results`` maps (shots, seed, class) to a metric dict in percent as returned by
    :meth:`adaptclip_med.evaluation.metrics.MetricAccumulator.compute`; ``curves`` optionally
    maps the same keys to image-level curves for the ROC/PR plots.
    """
    missing = [key for key in REQUIRED_PROTOCOL if key not in protocol]
    if missing:
        raise ValueError(f"protocol must state {', '.join(missing)}")
    if not results:
        raise ValueError("no results to report")
    out_dir = Path(out_dir)
    fpr_limit = protocol.get("fpr_limit", DEFAULT_FPR_LIMIT)
    names = metric_names(results)
    summary = summarise(results)

    plots = {f"per_class_{_slug(m)}.png": per_class_bars_png(
        {shots: {c: s[m] for c, s in table.items() if c != MEAN_ROW and m in s} for shots, table in summary.items()}, m)
        for m in BAR_METRICS if m in names}
    plots.update(_curve_plots(curves or {}))

    lines = ["# AdaptCLIP evaluation report", "", "## Protocol", ""]
    lines += [f"- **{key}**: {_protocol_value(value)}" for key, value in protocol.items()]
    lines += ["", "Metrics in percent. Image-level metrics are exact; pixel-level metrics come from fixed-bin "
              "histograms of map values (a binned approximation, bin count above). P-AUPRO: 8-connected "
              f"ground-truth regions, PRO integrated over FPR from 0 to {fpr_limit} and divided by {fpr_limit}. "
              "Mean rows average, within each seed first, the classes "
              "where a metric is defined; ± is the sample standard deviation over seeds.", "",
              "## Summary (mean over classes)", ""]
    lines += _markdown_table(["shots", "seeds", *names],
                             [[str(shots), str(len(seeds_for(results, shots))),
                               *(_cell(summary[shots][MEAN_ROW].get(n)) for n in names)] for shots in summary])
    for shots, table in summary.items():
        lines += ["", f"## {shots}-shot per class (seeds {', '.join(map(str, seeds_for(results, shots)))})", ""]
        lines += _markdown_table(["class", *names], [[row, *(_cell(stats.get(n)) for n in names)]
                                                     for row, stats in table.items()])
    if plots:
        lines += ["", "## Plots", ""] + [f"![{name}](plots/{name})" for name in plots]

    written = [atomic_write_text(out_dir / "report.md", "\n".join(lines) + "\n"),
               atomic_write_text(out_dir / "results.csv", _results_csv(results, names)),
               atomic_write_text(out_dir / "summary.csv", _summary_csv(summary, names))]
    written += [atomic_write_bytes(out_dir / "plots" / name, data) for name, data in plots.items()]
    return written
