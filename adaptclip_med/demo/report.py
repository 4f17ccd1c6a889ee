"""The demo's HTML report: one self-contained page (images inline) opened from the summary.

It puts the demo's claims next to their evidence: lesions detected and Dice per lesion, the
study scores of the lesion and the normal study, the score plot and the display overlays of the
lesion slices.  SYNTHETIC DATA, NO DIAGNOSTIC VALUE, said at the top.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from adaptclip_med.utils.atomic import atomic_write_bytes


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def write_demo_report(path: Path, summary: dict[str, Any], score_plot: Path, overlays: list[tuple[str, Path]]) -> Path:
    """Write the page to ``path`` (atomically) and return it."""
    esc = html.escape
    facts = [("Lesions detected", f"{summary['lesions_detected']}/{summary['lesions']}"),
             ("Voxel Dice (all lesions)", f"{summary['voxel_dice']:.3f}"),
             ("False-positive regions, lesion study", str(summary["false_positive_components"])),
             ("False-positive regions, normal study", str(summary["normal_false_positive_components"])),
             ("Study score, lesion study", f"{summary['study_score_with_lesions']:.4f}"),
             ("Study score, normal study", f"{summary['study_score_normal']:.4f}"),
             ("Pixel threshold", f"{summary['pixel_threshold']:.4f} ({summary['threshold_source']})"),
             ("Model", summary["model"]), ("Wall time", f"{summary['seconds']:.0f} s")]
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    lesions = "".join(
        f"<tr><td>{p['lesion']}</td><td>{esc(p['kind'])}</td><td>{p['voxels']}</td><td>{p['slices']}</td>"
        f"<td>{'detected' if p['detected'] else 'missed'}</td><td>{p['dice']:.3f}</td><td>{p['peak_probability']:.4f}</td></tr>"
        for p in summary["per_lesion"])
    figures = "".join(f"<figure>{_image(p, caption)}<figcaption>{esc(caption)}</figcaption></figure>" for caption, p in overlays)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>adaptclip-med demo report</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto;color:#222}}th,td{{text-align:left;padding:0.15em 0.8em}}
figure{{display:inline-block;margin:0.4em}}img{{max-width:100%}}.warn{{color:#a00;font-weight:bold}}</style>
</head><body>
<h1>adaptclip-med demo: synthetic head CT</h1>
<p class="warn">{esc(summary['label'])}</p>
<table>{rows}</table>
<h2>Lesions (ground truth from the phantom's label map)</h2>
<table><tr><th>#</th><th>kind</th><th>voxels</th><th>slices</th><th>result</th><th>Dice</th><th>peak map</th></tr>{lesions}</table>
<h2>Slice scores</h2>{_image(score_plot, 'score plot')}
<h2>Lesion slices</h2>{figures}
</body></html>
"""
    return atomic_write_bytes(Path(path), page.encode("utf-8"))
