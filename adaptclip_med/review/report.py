"""The signed-off study as a document: HTML (self-contained, images inline) and PDF (matplotlib).

A report must travel on its own (mail, archive), so the HTML embeds its images as data URIs and
the PDF needs nothing but matplotlib, already a dependency.  It is identified by the pseudonymous
study key only: no patient identifiers are written.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adaptclip_med.outputs.slice_numbers import instance_of, slice_label
from adaptclip_med.review.store import Review
from adaptclip_med.utils.atomic import atomic_write_bytes
from adaptclip_med.outputs.study_writers import NOT_FOR_CLINICAL_USE


@dataclass(frozen=True)
class KeySlice:
    index: int  # 0-based array index; reports show ``label``
    score: float
    image: np.ndarray  # RGB uint8, overlay rendered at the reviewed threshold
    label: str = ""  # "slice 7 (instance 7)": the viewer's 1-based number (outputs/slice_numbers.py)
    reference: np.ndarray | None = None  # RGB uint8 matched normal slice, when a bank was used

    @property
    def title(self) -> str:
        return self.label or f"slice {self.index + 1}"


@dataclass(frozen=True)
class ReportContent:
    study_key: str
    review: Review
    study_score: float
    model_threshold: float
    reviewed_threshold: float
    model_summary: str
    findings: list[str]
    slice_scores: np.ndarray  # (Z,) nan where skipped
    key_slices: list[KeySlice] = field(default_factory=list)
    comparability: str = ""  # the comparability guard's line (volume/comparability.py)
    context: tuple[tuple[str, str], ...] = ()  # patient context (label, value), only for an authorised reader
    value_unit: str = ""  # unit of ROI mean / SD: "HU" for CT, "" (signal, no unit) otherwise
    instances: tuple[int | None, ...] = ()  # DICOM InstanceNumber per canonical slice (slice labels)


MEASUREMENT_COLUMNS = ("#", "Kind", "Slice", "Length", "Mean", "SD", "Area")


def _number(value: Any, unit: str, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{float(value):.{digits}f}" + (f" {unit}" if unit else "")


def measurement_rows(measurements: tuple[dict[str, Any], ...], unit: str = "",
                     instances: tuple[int | None, ...] = ()) -> list[tuple[str, ...]]:
    """The reader's kept measurements as report rows (:data:`MEASUREMENT_COLUMNS`), numbered M1, M2 ...
    as the reviewed SR numbers them; the slice is the viewer's 1-based number (with the DICOM
    instance), so a reader following the signed report lands on the slice that was measured."""
    rows = []
    for number, m in enumerate(measurements, start=1):
        where = slice_label(int(m["z"]), instance_of(list(instances), int(m["z"])))
        if m.get("kind") == "distance":
            rows.append((f"M{number}", "distance", where, _number(m.get("length_mm"), "mm"), "-", "-", "-"))
        else:
            rows.append((f"M{number}", "ellipse ROI", where, "-", _number(m.get("mean"), unit), _number(m.get("sd"), unit),
                         _number(m.get("area_mm2"), "mm²")))
    return rows


def score_curve_png(scores: np.ndarray, marks: list[int]) -> bytes:
    """PNG of slice score against the 1-based slice number (the viewer's), key slices marked."""
    fig = _figure(figsize=(7.0, 2.2), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    index = np.arange(1, scores.size + 1)
    ax.plot(index, scores, color="#1f77b4", linewidth=1.4)
    valid = [m for m in marks if 0 <= m < scores.size and np.isfinite(scores[m])]
    ax.scatter([m + 1 for m in valid], scores[valid], color="#d62728", zorder=3, s=18, label="key slices")
    ax.set_xlabel("slice (1-based, as in the viewer)")
    ax.set_ylabel("anomaly score")
    ax.set_xlim(1, max(scores.size, 2))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _figure(**kwargs):
    """A private matplotlib Figure: Streamlit serves sessions from threads, and pyplot's global
    figure state is not thread-safe (outputs/plots.py draws the same way)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _facts(content: ReportContent) -> list[tuple[str, str]]:
    review = content.review
    override = "none" if review.threshold_override is None else f"{review.threshold_override:.3f}"
    return [*content.context, ("Study", content.study_key), ("Decision", review.decision_label), ("Reviewer", review.reviewer),
            ("Signed off (UTC)", review.reviewed_at), ("Revision", str(review.revision)),
            ("Study score", f"{content.study_score:.4f}" if content.study_score == content.study_score else "none (not comparable)"),
            *([("Comparability", content.comparability)] if content.comparability else []),
            ("Model pixel threshold", f"{content.model_threshold:.4f}"),
            ("Pixel threshold override", override), ("Model", content.model_summary),
            *([("Reviewer identity", review.reviewer_id)] if review.reviewer_id else []),
            *([("Audit chain head at sign-off", review.record_hash)] if review.record_hash else [])]


def render_html(content: ReportContent) -> str:
    esc = html.escape
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _facts(content))
    notes = {f.finding_id: f.note for f in content.review.findings}
    findings = "".join(f"<li>{esc(text)}" + (f"<br><em>{esc(notes[i])}</em>" if notes.get(i) else "") + "</li>"
                       for i, text in enumerate(content.findings, start=1)) or "<li>No region above the threshold.</li>"
    figures = []
    for key in content.key_slices:
        images = f'<img alt="{esc(key.title)}" src="{_data_uri(_png(key.image))}">'
        if key.reference is not None:
            images += f'<img alt="matched normal slice" src="{_data_uri(_png(key.reference))}">'
        figures.append(f"<figure>{images}<figcaption>{esc(key.title)}, slice score {key.score:.4f}"
                       f"{' | right: matched normal reference' if key.reference is not None else ''}</figcaption></figure>")
    curve = _data_uri(score_curve_png(content.slice_scores, [k.index for k in content.key_slices]))
    rows_m = measurement_rows(content.review.measurements, content.value_unit, content.instances)
    head = "".join(f"<th>{esc(c)}</th>" for c in MEASUREMENT_COLUMNS)
    measured = (f'<table class="measurements"><tr>{head}</tr>'
                + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows_m) + "</table>"
                if rows_m else "<p>No measurements.</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Anomaly review {esc(content.study_key)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}}th{{text-align:left;padding-right:1em}}
figure{{display:inline-block;margin:0.5em}}.measurements td,.measurements th{{padding:0.1em 0.6em}}img{{max-width:22em;margin-right:0.3em}}.warn{{color:#a00;font-weight:bold}}</style>
</head><body>
<h1>Anomaly review</h1>
<p class="warn">{esc(NOT_FOR_CLINICAL_USE)}</p>
<table>{rows}</table>
<h2>Notes</h2><p>{esc(content.review.notes) or "&mdash;"}</p>
<h2>Findings (threshold {content.reviewed_threshold:.3f})</h2><ol>{findings}</ol>
<h2>Measurements</h2>{measured}
<h2>Slice scores</h2><img alt="score curve" src="{curve}" style="max-width:100%">
<h2>Key slices</h2>{''.join(figures)}
</body></html>
"""


def write_html_report(path: Path, content: ReportContent) -> Path:
    return atomic_write_bytes(Path(path), render_html(content).encode("utf-8"))


def write_pdf_report(path: Path, content: ReportContent) -> Path:
    """A two-part PDF: facts, notes, findings and score curve; then the key slices."""
    from matplotlib.backends.backend_pdf import PdfPages
    from PIL import Image

    buffer = io.BytesIO()
    with PdfPages(buffer) as pdf:
        fig = _figure(figsize=(8.27, 11.69))
        lines = ["Anomaly review", NOT_FOR_CLINICAL_USE, ""] + [f"{k}: {v}" for k, v in _facts(content)]
        lines += ["", f"Notes: {content.review.notes or '-'}", "", f"Findings (threshold {content.reviewed_threshold:.3f}):"]
        notes = {f.finding_id: f.note for f in content.review.findings}
        for i, text in enumerate(content.findings, start=1):
            lines.append(f"  {text}" + (f"  - {notes[i]}" if notes.get(i) else ""))
        if not content.findings:
            lines.append("  none")
        rows_m = measurement_rows(content.review.measurements, content.value_unit, content.instances)
        lines += ["", "Measurements:" if rows_m else "Measurements: none"]
        if rows_m:
            widths = [max(len(r[i]) for r in [MEASUREMENT_COLUMNS, *rows_m]) for i in range(len(MEASUREMENT_COLUMNS))]
            for row in [MEASUREMENT_COLUMNS, *rows_m]:
                lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        fig.text(0.06, 0.96, "\n".join(lines), va="top", family="monospace", fontsize=8.5, wrap=True)
        curve = np.asarray(Image.open(io.BytesIO(score_curve_png(content.slice_scores, [k.index for k in content.key_slices]))))
        ax = fig.add_axes((0.06, 0.05, 0.88, 0.3))
        ax.imshow(curve)
        ax.axis("off")
        pdf.savefig(fig)
        if content.key_slices:
            columns = 2 if any(k.reference is not None for k in content.key_slices) else 1
            fig = _figure(figsize=(8.27, 11.69))
            axes = fig.subplots(len(content.key_slices), columns, squeeze=False)
            for row, key in enumerate(content.key_slices):
                axes[row][0].imshow(key.image)
                axes[row][0].set_title(f"{key.title}, slice score {key.score:.4f}", fontsize=8)
                if columns == 2 and key.reference is not None:
                    axes[row][1].imshow(key.reference)
                    axes[row][1].set_title("matched normal reference", fontsize=8)
                for ax in axes[row]:
                    ax.axis("off")
            fig.tight_layout()
            pdf.savefig(fig)
    return atomic_write_bytes(Path(path), buffer.getvalue())
