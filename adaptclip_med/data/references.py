"""Few-shot reference selection (evaluation protocol: seeds 10, 20, 30; zero-shot uses seed 10).

For each class, k normal images are drawn WITH replacement (as the published protocol does, so a
k-shot set may repeat an image when the pool is small) from that class's normal pool, using a
fresh ``random.Random(seed)`` per class: a class's choice depends only on its own pool, k and the
seed, not on which other classes are evaluated or in what order.  The pool is sorted first so the
choice does not depend on directory listing order either.  The choice is kept as a
:class:`ReferenceChoice` so reports can record exactly which images were used.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from adaptclip_med.data.files import display_name
from adaptclip_med.data.samples import DatasetIndex
from adaptclip_med.errors import InputError


def sample_references(pool: Sequence[Path], k: int, seed: int) -> list[Path]:
    """k paths drawn with replacement from ``pool`` by ``random.Random(seed)``."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if k == 0:
        return []
    if not pool:
        raise InputError(f"no normal images to draw {k} reference(s) from")
    return random.Random(seed).choices(sorted(Path(p) for p in pool), k=k)


@dataclass(frozen=True)
class ReferenceChoice:
    class_name: str
    k: int
    seed: int
    paths: tuple[Path, ...]

    def to_record(self, root: Path) -> dict:
        """JSON-ready record with paths relative to the dataset root."""
        return {"class": self.class_name, "k": self.k, "seed": self.seed,
                "references": [display_name(p, root) for p in self.paths]}


def choose_references(index: DatasetIndex, k: int, seed: int,
                      classes: Iterable[str] | None = None) -> dict[str, ReferenceChoice]:
    """Per-class reference choice for a dataset index (all its classes by default)."""
    choices = {}
    for name in sorted(classes if classes is not None else index.classes):
        pool = index.normal_pool.get(name, ())
        if k > 0 and not pool:
            raise InputError(f"{name}: no normal reference images for {k}-shot evaluation "
                             f"({index.layout} layout; see its notes)")
        choices[name] = ReferenceChoice(name, k, seed, tuple(sample_references(pool, k, seed)))
    return choices
