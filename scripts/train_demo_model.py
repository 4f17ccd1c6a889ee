"""Rebuild the packaged demo checkpoint (adaptclip_med/methods/adaptclip/weights/demo_adapters.safetensors)
and its training figures (docs/images/demo-model-loss.png, docs/images/demo-model-training.json).

    python scripts/train_demo_model.py [--work /tmp/demo-train] [--epochs 15]

Trains with the project's own trainer on SYNTHETIC abdomen phantoms (auxiliary domain); the
demo study is a head.  No diagnostic value.  About 4 CPU-minutes (15 min wall measured on 2 contended cores, load about 10).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from adaptclip_med.demo.training import DEMO_EPOCHS, train_demo_model

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="scratch folder for the auxiliary data")
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="demo-train-"))
    result = train_demo_model(work, figures_dir=DOCS / "images", epochs=args.epochs)
    last = result.history[-1]["losses"]["total"]
    print(f"trained {len(result.history)} epochs in {result.seconds:.0f} s, final loss {last:.4f} -> {result.checkpoint} "
          f"({result.checkpoint.stat().st_size / 1e6:.2f} MB); figures {', '.join(str(p) for p in result.figures.values())}")


if __name__ == "__main__":
    main()
