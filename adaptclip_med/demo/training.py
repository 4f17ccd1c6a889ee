"""How the packaged demo checkpoint is made: the project's own trainer on AUXILIARY synthetic data.

Recipe (reproduced by ``python scripts/train_demo_model.py``): write the synthetic abdomen set
of :mod:`adaptclip_med.demo.body` (12 normal pairing images, 12 normal and 48 lesion queries,
256 px, brain window), then :func:`adaptclip_med.methods.adaptclip.trainer.train_adapters` with the
release's recipe (Adam 1e-3, betas 0.5/0.999, batch 8, seed 10, 1-shot pairing, all three
adapters) for ``DEMO_EPOCHS`` epochs on the formula-weighted demo backbone at 256 px.  The last
epoch's adapters are copied into the package; the loss history goes to a JSON file and a loss
curve picture.  SYNTHETIC TRAINING DATA, NO DIAGNOSTIC VALUE.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from adaptclip_med.demo.body import TrainingSetSize, write_training_set
from adaptclip_med.methods.adaptclip.demo_weights import DEMO_CHECKPOINT, DEMO_IMAGE_SIZE
from adaptclip_med.model.demo_backbone import DEMO_ARCHITECTURE, DEMO_WEIGHTS
from adaptclip_med.utils.atomic import atomic_write_bytes, atomic_write_text

DEMO_EPOCHS = 15
DEMO_SEED = 10


@dataclass
class DemoTraining:
    """What a demo training run produced."""

    checkpoint: Path
    history: list[dict]
    seconds: float
    figures: dict[str, Path]


def save_loss_curve(history: list[dict], path: Path) -> Path:
    """PNG of the per-epoch mean losses (total and per branch), labelled as synthetic training."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    epochs = [h["epoch"] for h in history]
    axes.plot(epochs, [h["losses"]["total"] for h in history], "-o", color="black", label="total", markersize=3)
    for branch, colour in (("ta", "tab:blue"), ("va", "tab:orange"), ("pq", "tab:green")):
        keys = [k for k in history[0]["losses"] if k.rstrip("0123456789") == branch]
        if keys:
            values = [sum(h["losses"][k] for k in keys) / len(keys) for h in history]
            label = branch if len(keys) == 1 else f"{branch} (mean of {len(keys)} layers)"
            axes.plot(epochs, values, "-", color=colour, label=label)
    axes.set_xlabel("epoch")
    axes.set_ylabel("mean training loss")
    axes.set_title("demo adapters on SYNTHETIC abdomen phantoms (no diagnostic value)", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


def train_demo_model(work_dir: Path, figures_dir: Path | None = None, epochs: int = DEMO_EPOCHS,
                     counts: TrainingSetSize = TrainingSetSize(), install: bool = True) -> DemoTraining:
    """Write the auxiliary set under ``work_dir``, train, and (``install``) copy the last epoch
    into the package; the loss curve and numbers go to ``figures_dir`` when given."""
    from adaptclip_med.data.layouts import read_dataset
    from adaptclip_med.model.backbone_source import BackboneSpec
    from adaptclip_med.methods.adaptclip.trainer import train_adapters
    from adaptclip_med.methods.adaptclip.training_config import TrainingConfig

    work_dir = Path(work_dir)
    started = time.perf_counter()
    root = write_training_set(work_dir / "auxiliary_abdomen", counts=counts)
    index = read_dataset(root, "mvtec")
    config = TrainingConfig(epochs=epochs, seed=DEMO_SEED, image_size=DEMO_IMAGE_SIZE)
    spec = BackboneSpec(DEMO_ARCHITECTURE, DEMO_WEIGHTS, offline=True)
    _, results = train_adapters(spec, index, work_dir / "checkpoints", config)
    seconds = time.perf_counter() - started
    last = results[-1].checkpoint
    history = [{"epoch": r.epoch, "losses": r.losses, "seconds": r.seconds} for r in results]
    if install:
        DEMO_CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(DEMO_CHECKPOINT, last.read_bytes())
    figures: dict[str, Path] = {}
    if figures_dir is not None:
        figures_dir = Path(figures_dir)
        figures["loss_curve"] = save_loss_curve(history, figures_dir / "demo-model-loss.png")
        record = {"label": "SYNTHETIC training data (abdomen phantoms), no diagnostic value", "epochs": epochs,
                  "training_seconds": round(seconds, 1), "images": len(index.samples),
                  "checkpoint_bytes": last.stat().st_size, "history": history}
        figures["numbers"] = atomic_write_text(figures_dir / "demo-model-training.json", json.dumps(record, indent=1))
    shutil.rmtree(work_dir / "checkpoints", ignore_errors=True) if install else None
    return DemoTraining(DEMO_CHECKPOINT if install else last, history, seconds, figures)
