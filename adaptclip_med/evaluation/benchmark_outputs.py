"""Everything ``adaptclip-med evaluate`` writes besides the metric tables: the protocol header,
the recorded reference choices and example overlays.

The protocol header states the hazards that change what the numbers mean (evaluation.md): which
auxiliary data the adapters learned from (the release trains on ANOTHER dataset's TEST split;
training on this dataset's test split makes its numbers meaningless), how the checkpoint was
chosen, the seeds and how references were drawn, the map size and the histogram binning.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from adaptclip_med.data.samples import DatasetIndex
from adaptclip_med.evaluation.benchmark import (
    FEW_SHOT_RANGE,
    ZERO_SHOT_RANGE,
    ZERO_SHOT_SEED,
    BenchmarkConfig,
    BenchmarkResult,
    Example,
)
from adaptclip_med.evaluation.report import write_report
from adaptclip_med.methods.base import AnomalyMethod
from adaptclip_med.outputs.overlay import mask_outline
from adaptclip_med.utils.atomic import atomic_write_bytes, atomic_write_text
from adaptclip_med.utils.redact import redact_component
from adaptclip_med.version import __version__

RELEASE_TRAINING = {"mvtec": "MVTec AD test split (AdaptCLIP release)", "visa": "VisA test split (AdaptCLIP release)"}


def auxiliary_data(provenance: dict[str, Any], index: DatasetIndex) -> str:
    """Where the adapters' training data came from, with a warning when it is this dataset."""
    source = str(provenance.get("source", "unknown"))
    if source.startswith("release:"):
        return RELEASE_TRAINING.get(source.split(":", 1)[1], source)
    if source == "untrained":
        return "none: untrained adapters (results have no diagnostic value)"
    if "dataset" in provenance:
        split = provenance.get("training", {}).get("split", "?")
        text = f"{provenance['dataset']} ({provenance.get('layout', '?')} layout), {split} split, epoch {provenance.get('epoch', '?')}"
        if provenance["dataset"] == redact_component(index.root.name):
            text += " — WARNING: same dataset name as the one evaluated; if the splits overlap the numbers are not a fair evaluation"
        return text
    return f"not recorded in the checkpoint ({source})"


def build_protocol(method: AnomalyMethod, index: DatasetIndex, config: BenchmarkConfig, result: BenchmarkResult,
                   preset: str | None = None) -> dict[str, Any]:
    """The report's protocol header (helper :func:`write_report` requires its first five keys)."""
    few_shot = sorted({k for k in config.shots if k > 0})
    seeds = []
    if 0 in config.shots:
        seeds.append(f"zero-shot: seed {ZERO_SHOT_SEED}")
    if few_shot:
        seeds.append(f"few-shot: seeds {', '.join(map(str, sorted(set(config.seeds))))}, each drawing k normal references "
                     "per class with replacement from the class's normal pool (see references.json)")
    identity = method.identity()
    sha = f", sha256 {identity['weights_sha256'][:16]}…" if identity.get("weights_sha256") else ""
    weights = identity.get("weights") or ("none (training-free)" if not method.trainable else "untrained")
    protocol: dict[str, Any] = {
        "method": method.describe(),
        "auxiliary_data": auxiliary_data(identity.get("weights_provenance") or {}, index) if method.trainable else "none (training-free method)",
        "checkpoint": f"{weights}{sha}; used as given (this tool does not select checkpoints on test data)",
        "seeds": "; ".join(seeds),
        "map_size": (f"{result.map_size}x{result.map_size} (model input {method.image_size}; maps bilinear, "
                     f"masks nearest{'; preset ' + preset if preset else ''})"),
        "bins": (f"{config.bins} equal-width bins over [{ZERO_SHOT_RANGE[0]:g}, {ZERO_SHOT_RANGE[1]:g}] for zero-shot maps and "
                 f"[{FEW_SHOT_RANGE[0]:g}, {FEW_SHOT_RANGE[1]:g}] for few-shot maps (harmonic mean with a 1-NN cosine distance)"),
        "dataset": (f"{redact_component(index.root.name)} ({index.layout} layout), {config.split} split, {len(result.images_per_class)} classes, "
                    f"{sum(result.images_per_class.values())} images"),
        "shots": ", ".join(map(str, sorted(set(config.shots)))),
        "backbone": _backbone_line(identity),
        "smoothing": "as the method defines it (AdaptCLIP and AdaCLIP: Gaussian sigma 4 px at the model input size; WinCLIP: none)",
        "software": f"adaptclip-med {__version__}",
        "other_outputs": ("references.json (every run's reference images); examples/ (per class, the first anomalous "
                          f"test images of the {_showcase_label(result)} run: ground-truth outline | anomaly map, jet on [0, 1])"),
    }
    if index.notes:
        protocol["dataset_notes"] = "; ".join(index.notes)
    return protocol


def _backbone_line(identity: dict[str, Any]) -> str:
    backbone = identity.get("backbone") or {}
    line = f"{backbone.get('architecture', '?')} [{backbone.get('weights', '?')}, {backbone.get('activation', '?')}]"
    return line + (f", taps {identity['tap_layers']}" if identity.get("tap_layers") else "")


def _showcase_label(result: BenchmarkResult) -> str:
    if not result.examples:
        return "most-shot"
    shots, seed = result.examples[0].run
    return f"{shots}-shot seed {seed}"


def references_record(result: BenchmarkResult, root: Path) -> dict[str, Any]:
    """JSON-ready record of every run's reference choice: paths relative to the dataset root, with
    UID-like components hashed (a reference list must not leak identifiers either)."""
    runs = []
    for (shots, seed), choices in sorted(result.references.items()):
        if shots == 0:
            continue
        runs.append({"shots": shots, "seed": seed,
                     "classes": {name: choice.to_record(root)["references"]  # redacted by display_name
                                 for name, choice in sorted(choices.items())}})
    return {"runs": runs}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "class"


def overlay_png(example: Example, alpha: float = 0.5) -> bytes:
    """Two panels: the query with the ground-truth outline in red, and the query blended with the
    anomaly map (jet, clipped to [0, 1])."""
    import matplotlib

    rgb = example.rgb.astype(np.float32) / 255.0
    outlined = rgb.copy()
    if example.mask is not None:
        mask = example.mask > 0.5
        outlined[mask_outline(mask)] = (1.0, 0.0, 0.0)
    heat = matplotlib.colormaps["jet"](np.clip(example.anomaly_map, 0.0, 1.0))[..., :3]
    blended = (1 - alpha) * rgb + alpha * heat
    gap = np.ones((rgb.shape[0], 4, 3), dtype=np.float32)
    panel = np.concatenate([outlined, gap, blended], axis=1)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(panel * 255.0, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def example_name(example: Example) -> str:
    """File names carry the class, run and a counter, never the source file name."""
    shots, seed = example.run
    return f"{_slug(example.class_name)}_{shots}shot_seed{seed}_{example.number}.png"


def write_benchmark_outputs(out_dir: Path, result: BenchmarkResult, protocol: dict[str, Any], root: Path) -> list[Path]:
    """report.md, results.csv, summary.csv, plots/ (via :func:`write_report`), references.json
    and examples/*.png; returns the written paths."""
    out_dir = Path(out_dir)
    written = list(write_report(out_dir, result.results, protocol, result.curves))
    written.append(atomic_write_text(out_dir / "references.json", json.dumps(references_record(result, root), indent=2) + "\n"))
    for example in result.examples:
        written.append(atomic_write_bytes(out_dir / "examples" / example_name(example), overlay_png(example)))
    return written
