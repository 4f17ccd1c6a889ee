"""The one training loop every trainable method plugs into.

The loop owns what is the same for every method: epochs from the resumed one to the last, the
batches of an epoch (a pure function of (seed, epoch), :func:`~adaptclip_med.training.run_data.epoch_order`),
running losses on the progress bar, per-epoch averages, the history, and per epoch N the two files
``epoch_N.safetensors`` (the method's weights, provenance in its metadata) and ``epoch_N.optim.pt``
(optimiser state, written first and atomically), then the caller's ``on_epoch``.

A method supplies a :class:`TrainingPlan` (``AnomalyMethod.training_plan``): its optimiser, one
step, what goes into the two files and how a resume reads them back.  The generic plan trains any
method through ``training_loss`` (:mod:`adaptclip_med.training.method_trainer`); AdaptCLIP's plan
adds its backbone-feature cache and reference pairing (``methods/adaptclip/trainer.py``).
"""

from __future__ import annotations

import contextlib
import io
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adaptclip_med.errors import InputError
from adaptclip_med.training.run_data import TrainingRun, epoch_order
from adaptclip_med.utils.atomic import atomic_write_bytes
from adaptclip_med.utils.progress import progress_bar
from adaptclip_med.utils.redact import describe_path


@dataclass
class EpochResult:
    epoch: int
    losses: dict[str, float]
    checkpoint: Path
    seconds: float
    #: one line for the user (the plan's :meth:`TrainingPlan.summary`)
    summary: str = ""


def optimizer_state_path(checkpoint: Path) -> Path:
    """``epoch_N.safetensors`` -> ``epoch_N.optim.pt`` in the same folder."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.optim.pt")


def require_optimizer_state(checkpoint: Path) -> Path:
    """The optimiser state next to ``checkpoint``; a one-line error when it is missing."""
    state_file = optimizer_state_path(checkpoint)
    if not state_file.is_file():
        raise InputError(f"{describe_path(Path(checkpoint))}: no optimizer state {state_file.name} next to it; cannot resume exactly")
    return state_file


class TrainingPlan(ABC):
    """One method's part of a training run: its optimiser and step, and its checkpoint contents."""

    run: TrainingRun
    optimizer: torch.optim.Optimizer
    epochs: int
    batch_size: int
    seed: int

    def session(self) -> contextlib.AbstractContextManager[Any]:
        """Held open while epochs run (e.g. a feature cache); default: nothing."""
        return contextlib.nullcontext()

    def begin_epoch(self, epoch: int) -> None:
        """Put modules in train mode (and whatever else an epoch starts with)."""

    def end_epoch(self, epoch: int) -> None:
        """Called after the last step of an epoch, before its checkpoint is written."""

    def finish(self) -> None:
        """Called when the loop ends (e.g. back to eval mode)."""

    @abstractmethod
    def step(self, batch: list[int], epoch: int, count: int) -> dict[str, float]:
        """Train on the samples ``batch`` (indices into ``run.samples``), the ``count``-th batch of
        ``epoch``; returns the loss terms (``"total"`` among them)."""

    @abstractmethod
    def progress(self, sums: dict[str, float], count: int) -> dict[str, str]:
        """Progress-bar fields from the loss sums after ``count`` batches."""

    def summary(self, epoch: int, losses: dict[str, float]) -> str:
        """One line for the user after an epoch (before its time and checkpoint)."""
        return f"epoch {epoch}/{self.epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in losses.items())

    @abstractmethod
    def provenance(self, epoch: int, losses: dict[str, float], history: list[dict[str, Any]]) -> dict[str, Any]:
        """What the epoch's weights file records (dataset, epoch, seed, losses, settings, history)."""

    @abstractmethod
    def optimizer_state(self, epoch: int, history: list[dict[str, Any]]) -> Any:
        """What ``epoch_N.optim.pt`` holds (``torch.save``-able)."""

    @abstractmethod
    def save_weights(self, checkpoint: Path, provenance: dict[str, Any]) -> Path:
        """Write the trainable weights to ``checkpoint`` (atomically)."""

    @abstractmethod
    def resume_from(self, checkpoint: Path) -> tuple[int, list[dict[str, Any]]]:
        """Load the optimiser state saved with ``checkpoint`` (whose weights the method already
        holds), refusing changed settings with a one-line error; returns (next epoch, history)."""


def _epoch(plan: TrainingPlan, epoch: int) -> dict[str, float]:
    plan.begin_epoch(epoch)
    batches = epoch_order(len(plan.run.samples), plan.seed, epoch, plan.batch_size)
    sums: dict[str, float] = {}
    bar = progress_bar(batches, desc=f"epoch {epoch}/{plan.epochs}", unit="batch")
    for count, batch in enumerate(bar, start=1):
        for name, value in plan.step(batch, epoch, count).items():
            sums[name] = sums.get(name, 0.0) + value
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(plan.progress(sums, count))
    plan.end_epoch(epoch)
    return {name: total / max(1, len(batches)) for name, total in sums.items()}


def _save(plan: TrainingPlan, out_dir: Path, epoch: int, losses: dict[str, float], history: list[dict[str, Any]]) -> Path:
    history.append({"epoch": epoch, "losses": losses})
    checkpoint = Path(out_dir) / f"epoch_{epoch}.safetensors"
    buffer = io.BytesIO()
    torch.save(plan.optimizer_state(epoch, history), buffer)
    atomic_write_bytes(optimizer_state_path(checkpoint), buffer.getvalue())
    plan.save_weights(checkpoint, plan.provenance(epoch, losses, history))
    return checkpoint


def fit(plan: TrainingPlan, out_dir: Path, resume: Path | None = None,
        on_epoch: Callable[[EpochResult], None] | None = None) -> list[EpochResult]:
    """Train ``plan`` from epoch 1 (or the one after ``resume``) to ``plan.epochs``, checkpoints in
    ``out_dir``; returns one result per epoch run (none when the checkpoint is already at the end)."""
    start, history = plan.resume_from(Path(resume)) if resume is not None else (1, [])
    results: list[EpochResult] = []
    if start > plan.epochs:
        return results
    with plan.session():
        for epoch in range(start, plan.epochs + 1):
            started = time.perf_counter()
            losses = _epoch(plan, epoch)
            checkpoint = _save(plan, out_dir, epoch, losses, history)
            results.append(EpochResult(epoch, losses, checkpoint, time.perf_counter() - started, plan.summary(epoch, losses)))
            if on_epoch is not None:
                on_epoch(results[-1])
    plan.finish()
    return results
