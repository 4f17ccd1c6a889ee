"""AdaptCLIP's training settings (the release's recipe, ``AdaptCLIPMethod.training_recipe``, by
default) and what a resume must keep equal."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from adaptclip_med.errors import InputError
from adaptclip_med.methods.adaptclip.release import TRAINING_RECIPE as RECIPE

ADAPTERS = ("textual", "visual", "prompt_query")
BRANCH_OF = {"textual": "ta", "visual": "va", "prompt_query": "pq"}
SPLITS = ("test", "train", "valid", "all")
#: Settings that must match when resuming (epochs may grow; cache settings only affect speed).
RESUME_KEYS = ("batch_size", "lr", "betas", "seed", "shots", "adapters", "split", "image_size")


@dataclass(frozen=True)
class TrainingConfig:
    """Training settings; the defaults are the release's recipe.  ``split`` picks the annotated
    images to learn from ("test": the release trains on an auxiliary dataset's test split)."""

    epochs: int = RECIPE["epochs"]
    batch_size: int = RECIPE["batch_size"]
    lr: float = RECIPE["lr"]
    betas: tuple[float, float] = RECIPE["betas"]
    seed: int = RECIPE["seed"]
    shots: int = 1
    adapters: tuple[str, ...] = ADAPTERS
    split: str = "test"
    image_size: int = 518
    cache_ram_bytes: int = 4 * 1024**3
    cache_dir: Path | None = None

    def validate(self) -> None:
        if self.batch_size < 2:
            raise InputError(f"batch size {self.batch_size}: training needs at least 2 images per batch (BatchNorm statistics)")
        if self.epochs < 1 or self.shots < 1 or self.lr <= 0:
            raise InputError("epochs and shots must be >= 1 and the learning rate > 0")
        unknown = sorted(set(self.adapters) - set(ADAPTERS))
        if unknown or not self.adapters:
            raise InputError(f"adapters to train must be among {', '.join(ADAPTERS)}, got {', '.join(unknown) or 'none'}")
        if self.split not in SPLITS:
            raise InputError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")

    def recorded(self) -> dict[str, Any]:
        """What goes into checkpoint provenance (and is compared on resume)."""
        data = asdict(self)
        data.pop("cache_ram_bytes")
        data.pop("cache_dir")
        data["betas"] = list(self.betas)
        data["adapters"] = list(self.adapters)
        return data
