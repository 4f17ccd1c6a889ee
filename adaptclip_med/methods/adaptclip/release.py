"""AdaptCLIP's published release, as facts: the Hugging Face repo, its two adapter files with their
checksums, and the training recipe it was made with.  Plain data (no torch), so the weights catalog,
the release importer, the method and the training settings all read it without importing each other."""

from __future__ import annotations

from typing import Any

#: AdaptCLIP's released adapters (GPL-2.0) on the Hugging Face hub.
RELEASE_REPO = "csgaobb/AdaptCLIP"
#: relative path in the release repo -> (short name, sha256)
RELEASE_FILES: dict[str, tuple[str, str]] = {
    "adaptclip_checkpoints/12_4_128_train_on_mvtec_3adapters_batch8/epoch_15.pth": (
        "mvtec", "90b95703879af490b6ce841e141625516db63d23fdaef4cf86731b3d7bb3b1bb"),
    "adaptclip_checkpoints/12_4_128_train_on_visa_3adapters_batch8/epoch_15.pth": (
        "visa", "777821da141eb57d159acef46868440faf773a2dd0acf5c276ec3f258c27edee"),
}

#: the release's recipe (spec §6): Adam, no weight decay, no schedule
TRAINING_RECIPE: dict[str, Any] = {"optimizer": "adam", "lr": 1e-3, "betas": (0.5, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                                   "epochs": 15, "batch_size": 8, "seed": 10}
