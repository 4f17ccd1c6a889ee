"""Synthetic studies and a reference bank for ``configs/demo.json``, so the bundle runs offline.

The phantom head CTs come from :mod:`adaptclip_med.demo.dataset` (one study with three lesions
and its label map, normal studies); the bank is built from some normal studies with the network
the run uses, and one normal study is held out and scored alongside the abnormal one.  The demo
config runs the demo model (``adapters: demo``, trained on SYNTHETIC data): NO diagnostic value.

Preparation is idempotent and safe under ``torchrun``: rank 0 writes, the other ranks wait and
reuse.  The bank folder is named after the model/preprocessing key, so switching adapters (for
example after ``configs/train.json``) builds a matching bank instead of failing on a stale one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adaptclip_med.utils.distributed import rank_zero_first
from adaptclip_med.bundle_support.network import AdaptCLIPMapNetwork
from adaptclip_med.utils.atomic import atomic_write_text
from adaptclip_med.slice_preprocessing import SlicePreprocessing, parse_window
from adaptclip_med.volume.bank.format import bank_key

_INDEX = "demo_paths.json"
STUDY_WITH_LESIONS = "demo-study-with-lesions"
NORMAL_STUDY = "demo-normal-study"


class DemoStudies:
    """Phantom data under ``root/data`` and a reference bank under ``root/banks``."""

    def __init__(self, root: str | Path, network: AdaptCLIPMapNetwork, seed: int = 0, references: int = 3,
                 window: str | None = None, axis: str = "axial", slices: int = 16, size: int = 256) -> None:
        self.root = Path(root)
        self.slices, self.size = int(slices), int(size)
        self.seed = int(seed)
        self.references = int(references)
        paths = rank_zero_first(self._prepare_data)
        self.study_dir = Path(paths["study"])
        self.ground_truth = Path(paths["ground_truth"])
        self.normal_dirs = [Path(p) for p in paths["normals"]]
        preprocessing = SlicePreprocessing(window=parse_window(window), axis=axis)
        self.bank_dir = rank_zero_first(lambda: self._prepare_bank(network, preprocessing))

    def _prepare_data(self) -> dict[str, Any]:
        from adaptclip_med.demo.dataset import make_ct_demo_dataset

        data_dir = self.root / "data"
        index = data_dir / _INDEX
        if index.is_file():
            paths = json.loads(index.read_text())
            if (paths.get("seed") == self.seed and len(paths.get("normals", [])) == self.references + 1
                    and paths.get("shape") == [self.slices, self.size]):
                return paths
        made = make_ct_demo_dataset(data_dir, seed=self.seed, normals=self.references + 1, slices=self.slices, size=self.size)
        paths = {"seed": self.seed, "shape": [self.slices, self.size], "study": str(made.study_dir),
                 "ground_truth": str(made.ground_truth_nifti), "normals": [str(p) for p in made.normal_dirs]}
        atomic_write_text(index, json.dumps(paths, indent=1))
        return paths

    def _prepare_bank(self, network: AdaptCLIPMapNetwork, preprocessing: SlicePreprocessing) -> str:
        from adaptclip_med.demo.bank import ensure_demo_bank

        name = f"demo-seed{self.seed}-{bank_key(network.method, preprocessing)[:12]}"
        return str(ensure_demo_bank(self.normal_dirs[:self.references], network.method, preprocessing,
                                    self.root / "banks", name))

    def datalist(self) -> list[dict[str, Any]]:
        """The abnormal study (with its ground truth, used by the evaluation config) and the
        held-out normal study."""
        return [{"image": str(self.study_dir), "label": str(self.ground_truth), "study": STUDY_WITH_LESIONS},
                {"image": str(self.normal_dirs[self.references]), "study": NORMAL_STUDY}]
