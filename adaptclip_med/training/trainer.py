"""Adapter training with the release's recipe (spec §6), per-epoch checkpoints and exact resume.

Recipe: each annotated query is paired with ONE random normal image of its class (``shots``);
losses of :mod:`adaptclip_med.training.losses` for TA, VA and the four PQA layers, all weights 1;
Adam (lr 1e-3, betas 0.5/0.999, no weight decay, no schedule); batch 8; 15 epochs; seed 10; no
augmentation; masks resized bilinear then thresholded at 0.5.  The backbone stays frozen in eval
mode, the trained adapters are in train mode (their BatchNorm statistics update).

Reproducibility: the query order and the reference pairing of epoch e depend only on (seed, e),
and adapters are initialised from ``seed`` (:func:`initial_model`).  Per epoch N the trainer
writes ``epoch_N.safetensors`` (project checkpoint format; provenance holds the dataset label,
layout, epoch, seed, losses and the training settings) and ``epoch_N.optim.pt`` (Adam state).
Resuming from epoch N therefore replays epochs N+1.. exactly as an uninterrupted run would on
the CPU (GPU kernels are not bit-deterministic).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from adaptclip_med.data.samples import DatasetIndex
from adaptclip_med.errors import InputError
from adaptclip_med.model.adaptclip import AdaptCLIP, ReferenceMemory
from adaptclip_med.model.backbone import VisionFeatures
from adaptclip_med.model.backbone_source import BackboneSpec
from adaptclip_med.model.checkpoints import (
    LoadedModel,
    build_model,
    read_metadata,
    save_adapters,
)
from adaptclip_med.training.config import (
    BRANCH_OF,
    RESUME_KEYS,
    TrainingConfig,
)
from adaptclip_med.preprocess import load_model_inputs
from adaptclip_med.training.feature_cache import FeatureCache
from adaptclip_med.training.losses import adaptclip_losses
from adaptclip_med.training.run_data import (
    TrainingRun,
    epoch_order,
    load_training_mask,
    pair_references,
    prepare_run,
)
from adaptclip_med.utils.atomic import atomic_write_bytes
from adaptclip_med.utils.progress import progress_bar
from adaptclip_med.utils.redact import describe_path

log = logging.getLogger(__name__)

#: The training loop (``ADAPTERS`` and ``TrainingConfig`` are imported from training.config).
__all__ = ["AdapterTrainer", "EpochResult", "initial_model", "optimizer_state_path",
           "train_adapters"]

@dataclass
class EpochResult:
    epoch: int
    losses: dict[str, float]
    checkpoint: Path
    seconds: float



# ---------------------------------------------------------------------------------- set-up
def initial_model(spec: BackboneSpec, image_size: int, seed: int, device: str | torch.device = "cpu") -> LoadedModel:
    """Backbone + freshly initialised adapters, the initialisation fixed by ``seed`` (without
    disturbing the caller's global random state)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(spec, None, image_size, device)


# ---------------------------------------------------------------------------------- one step
def split_features(features: VisionFeatures, count: int) -> tuple[VisionFeatures, VisionFeatures]:
    """First ``count`` images vs the rest."""
    head = VisionFeatures([t[:count] for t in features.taps], features.global_token[:count], features.grid)
    tail = VisionFeatures([t[count:] for t in features.taps], features.global_token[count:], features.grid)
    return head, tail


class AdapterTrainer:
    """Runs epochs of one :class:`TrainingRun` on a model, writing checkpoints to ``out_dir``."""

    def __init__(self, model: AdaptCLIP, run: TrainingRun, out_dir: Path, device: str | torch.device = "cpu") -> None:
        self.model = model
        self.run = run
        self.config = run.config
        self.out_dir = Path(out_dir)
        self.device = torch.device(device)
        self.trained = {name: model.adapter_modules()[name] for name in self.config.adapters}
        self.branches = frozenset(BRANCH_OF[name] for name in self.config.adapters)
        for name, module in model.adapter_modules().items():
            module.requires_grad_(name in self.trained)
        params = [p for module in self.trained.values() for p in module.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=self.config.lr, betas=self.config.betas, weight_decay=0.0)
        self.start_epoch = 1
        # Ground-truth masks do not change between epochs: decode each once (bool, anomalous
        # images only; normal ones are all zeros) instead of reopening image and mask every step.
        self._masks: dict[int, torch.Tensor] = {}

    def _mask(self, index: int) -> torch.Tensor:
        sample = self.run.samples[index]
        size = self.config.image_size
        if sample.mask_path is None:
            return torch.zeros(size, size)
        if index not in self._masks:
            self._masks[index] = load_training_mask(sample, size).bool()
        return self._masks[index].float()

    # ------------------------------------------------------------------ resume
    def resume_from(self, checkpoint: Path) -> None:
        """Continue after ``checkpoint`` (its adapters must already be loaded into the model)."""
        checkpoint = Path(checkpoint)
        provenance = read_metadata(checkpoint).provenance
        recorded = provenance.get("training", {})
        current = self.config.recorded()
        changed = [key for key in RESUME_KEYS if recorded.get(key) != current[key]]
        if changed:
            raise InputError(f"{describe_path(checkpoint)}: cannot resume with different {', '.join(changed)} "
                             f"(checkpoint has {', '.join(f'{k}={recorded.get(k)}' for k in changed)})")
        state_file = optimizer_state_path(checkpoint)
        if not state_file.is_file():
            raise InputError(f"{describe_path(checkpoint)}: no optimizer state {state_file.name} next to it; cannot resume exactly")
        state = torch.load(state_file, map_location=self.device, weights_only=True)
        self.optimizer.load_state_dict(state)
        self.start_epoch = int(provenance["epoch"]) + 1
        self.run.history = list(provenance.get("history", []))
        if self.start_epoch > self.config.epochs:
            log.warning("%s is already at epoch %d of %d: nothing to train", describe_path(checkpoint), self.start_epoch - 1, self.config.epochs)

    # ------------------------------------------------------------------ training
    def set_modes(self) -> None:
        self.model.train()
        for name, module in self.model.adapter_modules().items():
            module.train(name in self.trained)

    def step(self, cache: FeatureCache, batch: list[int], epoch: int) -> dict[str, float]:
        size = self.config.image_size
        samples = [self.run.samples[i] for i in batch]
        uses_memory = "prompt_query" in self.trained
        reference_paths = [p for i in batch for p in pair_references(self.run, i, epoch)] if uses_memory else []
        features = cache.features([s.image_path for s in samples] + reference_paths)
        query, references = split_features(features, len(batch))
        memory = ReferenceMemory.from_features(references, queries=len(batch)) if uses_memory else None
        labels = torch.tensor([s.label for s in samples], device=self.device)
        masks = torch.stack([self._mask(i) for i in batch]).to(self.device)
        known = torch.tensor([s.has_pixel_truth for s in samples], device=self.device)
        outputs = self.model.branches(query, memory, (size, size))
        terms = adaptclip_losses(outputs, labels, masks, known, self.branches)
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        self.optimizer.step()
        return {name: float(value.detach()) for name, value in terms.items()}

    def train_epoch(self, cache: FeatureCache, epoch: int) -> dict[str, float]:
        self.set_modes()
        batches = epoch_order(len(self.run.samples), self.config.seed, epoch, self.config.batch_size)
        sums: dict[str, float] = {}
        bar = progress_bar(batches, desc=f"epoch {epoch}/{self.config.epochs}", unit="batch")
        for count, batch in enumerate(bar, start=1):
            for name, value in self.step(cache, batch, epoch).items():
                sums[name] = sums.get(name, 0.0) + value
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(self._running(sums, count))
        return {name: total / max(1, len(batches)) for name, total in sums.items()}

    def _running(self, sums: dict[str, float], count: int) -> dict[str, str]:
        """Running mean losses for the progress bar: total, then each trained branch (PQA layers averaged)."""
        shown = {"loss": sums["total"] / count}
        for branch in ("ta", "va", "pq"):
            if branch in self.branches:
                values = [v for k, v in sums.items() if k.rstrip("0123456789") == branch]
                shown[branch] = sum(values) / len(values) / count
        return {k: f"{v:.3f}" for k, v in shown.items()}

    def save_epoch(self, epoch: int, losses: dict[str, float]) -> Path:
        self.run.history.append({"epoch": epoch, "losses": losses})
        provenance = {"source": "adaptclip-med train", "dataset": self.run.dataset_label, "layout": self.run.layout,
                      "epoch": epoch, "seed": self.config.seed, "losses": losses, "training": self.config.recorded(),
                      "history": self.run.history}
        checkpoint = self.out_dir / f"epoch_{epoch}.safetensors"
        buffer = io.BytesIO()
        torch.save(self.optimizer.state_dict(), buffer)
        atomic_write_bytes(optimizer_state_path(checkpoint), buffer.getvalue())
        save_adapters(self.model, checkpoint, provenance)
        return checkpoint

    def fit(self, on_epoch: Callable[[EpochResult], None] | None = None) -> list[EpochResult]:
        """Train from ``start_epoch`` to ``config.epochs``; returns one result per epoch run."""
        results: list[EpochResult] = []
        if self.start_epoch > self.config.epochs:
            return results
        size = self.config.image_size
        with FeatureCache(self.model.encode, lambda paths: load_model_inputs(paths, size), self.device,
                          self.config.cache_ram_bytes, self.config.cache_dir) as cache:
            needed = [s.image_path for s in self.run.samples]
            if "prompt_query" in self.trained:
                needed += [p for name in sorted({s.class_name for s in self.run.samples}) for p in self.run.pools[name]]
            cache.fill(needed, self.config.batch_size,
                       lambda chunks: progress_bar(chunks, desc="encoding images", unit="batch"))
            log.info("feature cache: %d of %d images (%.1f MB in RAM)", cache.cached_images, len(set(needed)),
                     cache.ram_bytes_used / 1e6)
            for epoch in range(self.start_epoch, self.config.epochs + 1):
                started = time.perf_counter()
                losses = self.train_epoch(cache, epoch)
                checkpoint = self.save_epoch(epoch, losses)
                result = EpochResult(epoch, losses, checkpoint, time.perf_counter() - started)
                results.append(result)
                if on_epoch is not None:
                    on_epoch(result)
        self.model.eval()
        return results


def optimizer_state_path(checkpoint: Path) -> Path:
    """``epoch_N.safetensors`` -> ``epoch_N.optim.pt`` in the same folder."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.optim.pt")


def train_adapters(spec: BackboneSpec, index: DatasetIndex, out_dir: Path, config: TrainingConfig,
                   device: str | torch.device = "cpu", resume: Path | None = None,
                   on_epoch: Callable[[EpochResult], None] | None = None) -> tuple[LoadedModel, list[EpochResult]]:
    """Library entry point of ``adaptclip-med train``: fresh (seeded) or resumed adapters, trained
    on ``index`` with ``config``; checkpoints go to ``out_dir``."""
    config.validate()
    run = prepare_run(index, config)
    if resume is not None:
        recorded_size = read_metadata(Path(resume)).image_size
        if recorded_size != config.image_size:
            raise InputError(f"{describe_path(resume)}: trained at image size {recorded_size}, not {config.image_size}; resume with the same --image-size")
        loaded = build_model(spec, resume, config.image_size, device)
    else:
        loaded = initial_model(spec, config.image_size, config.seed, device)
    trainer = AdapterTrainer(loaded.model, run, out_dir, device)
    if resume is not None:
        trainer.resume_from(Path(resume))
    return loaded, trainer.fit(on_epoch)
