"""Aggregating per-(shots, seed, class) metric dicts into mean ± std over seeds.

The mean over classes is taken within each seed first and then summarised over seeds, which is
how few-shot papers report "mean ± std" (the spread is that of the headline number, not of
individual classes).  std is the sample standard deviation (n - 1) over seeds; with one seed
there is none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from adaptclip_med.evaluation.metrics import METRIC_NAMES, mean_over_classes

ResultKey = tuple[int, int, str]  # (shots, seed, class)
Results = Mapping[ResultKey, Mapping[str, float]]
MEAN_ROW = "(mean)"


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float | None  # None with a single seed
    n: int

    def format(self, decimals: int = 1) -> str:
        text = f"{self.mean:.{decimals}f}"
        return text if self.std is None else f"{text} ± {self.std:.{decimals}f}"


def _stat(values: list[float]) -> Stat:
    array = np.asarray(values, dtype=np.float64)
    return Stat(float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else None, int(array.size))


def metric_names(results: Results) -> list[str]:
    """Metrics present anywhere, in the canonical order (unknown extras last, sorted)."""
    present = {name for metrics in results.values() for name in metrics}
    return [n for n in METRIC_NAMES if n in present] + sorted(present - set(METRIC_NAMES))


def shot_counts(results: Results) -> list[int]:
    return sorted({shots for shots, _, _ in results})


def seeds_for(results: Results, shots: int) -> list[int]:
    return sorted({seed for s, seed, _ in results if s == shots})


def classes_for(results: Results, shots: int) -> list[str]:
    return sorted({name for s, _, name in results if s == shots})


def per_seed_means(results: Results, shots: int) -> dict[int, dict[str, float]]:
    """Mean over classes for each seed of one shot count."""
    return {seed: mean_over_classes({name: m for (s, sd, name), m in results.items() if s == shots and sd == seed})
            for seed in seeds_for(results, shots)}


def summarise(results: Results) -> dict[int, dict[str, dict[str, Stat]]]:
    """shots -> row (each class, then :data:`MEAN_ROW`) -> metric -> Stat over seeds."""
    names = metric_names(results)
    summary: dict[int, dict[str, dict[str, Stat]]] = {}
    for shots in shot_counts(results):
        rows: dict[str, dict[str, Stat]] = {}
        for class_name in classes_for(results, shots):
            per_seed = [m for (s, _, c), m in results.items() if s == shots and c == class_name]
            rows[class_name] = {n: _stat([m[n] for m in per_seed if n in m]) for n in names
                                if any(n in m for m in per_seed)}
        means = list(per_seed_means(results, shots).values())
        rows[MEAN_ROW] = {n: _stat([m[n] for m in means if n in m]) for n in names if any(n in m for m in means)}
        summary[shots] = rows
    return summary
