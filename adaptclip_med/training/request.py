"""What a user asks of a training run (``train`` flags, the bundle's config), before the method's
recipe fills the gaps.  ``None`` = the method's own recipe (``AnomalyMethod.training_recipe``); the
settings only some methods use (reference shots, which adapters, the feature cache) are ignored by
the others."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3


@dataclass(frozen=True)
class TrainingRequest:
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int | None = None
    split: str = "test"
    #: normal reference images paired with each query (methods with a reference branch)
    shots: int = 1
    #: which trainable parts to train (None: all of them)
    parts: tuple[str, ...] | None = None
    #: RAM (bytes) and spill folder for caching backbone features across epochs
    cache_ram_bytes: int = 4 * GIB
    cache_dir: Path | None = None
