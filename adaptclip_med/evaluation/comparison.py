"""Methods side by side: ``evaluate --method adaptclip,adaclip,winclip``.

Each method gets its complete report in ``<out>/<method>/`` (report.md, results.csv, plots,
references, examples); the output folder itself gets ``comparison.md`` and ``comparison.csv``
(one row per method x shot count x class, plus each method's class mean: image/pixel AUROC, AP,
F1-max, AUPRO as mean ± std over seeds) and ``comparison.png`` (class-mean metrics per method and
shot count).  Every method sees the same dataset, split, shots, seeds and reference draws
(references are drawn per (shots, seed) from the dataset alone).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from adaptclip_med.evaluation.summary import MEAN_ROW, Results, summarise
from adaptclip_med.utils.atomic import atomic_write_bytes, atomic_write_text

PLOTTED = ("I-AUROC", "P-AUROC", "P-AUPRO")


def comparison_rows(results_by_method: dict[str, Results]) -> list[dict[str, Any]]:
    rows = []
    for method, results in results_by_method.items():
        for shots, classes in summarise(results).items():
            for class_name, metrics in classes.items():
                row: dict[str, Any] = {"method": method, "shots": shots, "class": class_name}
                row.update({name: stat.format() for name, stat in metrics.items()})
                rows.append(row)
    return rows


def _markdown(rows: list[dict[str, Any]], names: list[str], protocols: dict[str, dict[str, Any]]) -> str:
    lines = ["# Methods compared", "", "Research software: not for clinical use. Same dataset, split, shot counts, seeds and",
             "reference images for every method; values in percent, mean ± std over seeds.", ""]
    for method, protocol in protocols.items():
        lines.append(f"- **{method}**: {protocol.get('method', method)}; weights: {protocol.get('checkpoint', '?')} "
                     f"(full report: [{method}/report.md]({method}/report.md))")
    lines += ["", "![class-mean metrics by method](comparison.png)", ""]
    header = ["method", "shots", "class", *names]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(col, "")) for col in header) + " |")
    return "\n".join(lines) + "\n"


def _plot(results_by_method: dict[str, Results]) -> bytes:
    figure = Figure(figsize=(8.0, 3.2))
    FigureCanvasAgg(figure)
    for panel, metric in enumerate(PLOTTED, start=1):
        axes = figure.add_subplot(1, len(PLOTTED), panel)
        for method, results in results_by_method.items():
            summary = summarise(results)
            shots = sorted(summary)
            values = [summary[k][MEAN_ROW][metric].mean if metric in summary[k][MEAN_ROW] else np.nan for k in shots]
            axes.plot(shots, values, "-o", markersize=4, label=method)
        axes.set_title(metric, fontsize=9)
        axes.set_xlabel("shots")
        axes.set_ylim(0, 100)
        if panel == 1:
            axes.set_ylabel("class mean (%)")
            axes.legend(fontsize=7, frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def write_comparison(out_dir: Path, results_by_method: dict[str, Results], protocols: dict[str, dict[str, Any]]) -> list[Path]:
    out_dir = Path(out_dir)
    rows = comparison_rows(results_by_method)
    names = [n for n in dict.fromkeys(k for row in rows for k in row) if n not in ("method", "shots", "class")]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["method", "shots", "class", *names])
    writer.writeheader()
    writer.writerows(rows)
    return [atomic_write_text(out_dir / "comparison.md", _markdown(rows, names, protocols)),
            atomic_write_text(out_dir / "comparison.csv", buffer.getvalue()),
            atomic_write_bytes(out_dir / "comparison.png", _plot(results_by_method))]
