"""AdaptCLIP's training plan for the shared loop (:mod:`adaptclip_med.training.loop`): the release's
recipe (spec §6), per-epoch checkpoints and exact resume.

Recipe: each annotated query is paired with ONE random normal image of its class (``shots``);
losses of :mod:`adaptclip_med.methods.adaptclip.losses` for TA, VA and the four PQA layers, all weights 1;
Adam, no schedule, no augmentation (lr, betas, batch, epochs and seed: ``AdaptCLIPMethod.training_recipe``);
masks resized bilinear then thresholded at 0.5.  The backbone stays frozen in eval
mode, the trained adapters are in train mode (their BatchNorm statistics update).

Reproducibility: the query order and the reference pairing of epoch e depend only on (seed, e),
and adapters are initialised from ``seed`` (:func:`initial_model`).  Per epoch N the trainer
writes ``epoch_N.safetensors`` (project checkpoint format; provenance holds the dataset label,
layout, epoch, seed, losses and the training settings) and ``epoch_N.optim.pt`` (Adam state).
Resuming from epoch N therefore replays epochs N+1.. exactly as an uninterrupted run would on
the CPU (GPU kernels are not bit-deterministic).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from adaptclip_med.data.samples import DatasetIndex
from adaptclip_med.errors import InputError
from adaptclip_med.data.torch_dataset import draw_references
from adaptclip_med.methods.adaptclip.checkpoints import (
    LoadedModel,
    build_model,
    read_metadata,
    save_adapters,
)
from adaptclip_med.methods.adaptclip.feature_cache import FeatureCache
from adaptclip_med.methods.adaptclip.losses import adaptclip_losses
from adaptclip_med.methods.adaptclip.network import AdaptCLIP, ReferenceMemory
from adaptclip_med.methods.adaptclip.training_config import BRANCH_OF, RESUME_KEYS, TrainingConfig
from adaptclip_med.model.backbone import VisionFeatures
from adaptclip_med.model.backbone_source import BackboneSpec
from adaptclip_med.preprocess import load_model_inputs
from adaptclip_med.training.loop import EpochResult, TrainingPlan, fit, require_optimizer_state
from adaptclip_med.training.run_data import TrainingRun, load_training_mask, prepare_run
from adaptclip_med.utils.progress import progress_bar
from adaptclip_med.utils.redact import describe_path

log = logging.getLogger(__name__)

__all__ = ["AdapterPlan", "initial_model", "train_adapters"]


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


def pair_references(run: TrainingRun, sample_index: int, epoch: int, shots: int, seed: int) -> list[Path]:
    """``shots`` normal images of the query's class (with replacement, never the query itself); a
    pure function of (seed, epoch, query), so a resumed run pairs as an uninterrupted one."""
    sample = run.samples[sample_index]
    return draw_references(run.pools[sample.class_name], sample.image_path, f"class {sample.class_name}",
                           shots, seed, epoch, sample_index)


class AdapterPlan(TrainingPlan):
    """AdaptCLIP's adapters on one :class:`TrainingRun`: backbone features cached across epochs,
    each query paired with ``shots`` normal references for the prompt-query adapter."""

    def __init__(self, model: AdaptCLIP, run: TrainingRun, config: TrainingConfig, device: str | torch.device = "cpu") -> None:
        self.model = model
        self.run = run
        self.config = config
        self.epochs = config.epochs
        self.batch_size = config.batch_size
        self.seed = config.seed
        self.device = torch.device(device)
        self.trained = {name: model.adapter_modules()[name] for name in config.adapters}
        self.branches = frozenset(BRANCH_OF[name] for name in config.adapters)
        for name, module in model.adapter_modules().items():
            module.requires_grad_(name in self.trained)
        params = [p for module in self.trained.values() for p in module.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=config.lr, betas=config.betas, weight_decay=0.0)
        self.cache: FeatureCache | None = None
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
    def resume_from(self, checkpoint: Path) -> tuple[int, list[dict[str, Any]]]:
        """Continue after ``checkpoint`` (its adapters must already be loaded into the model)."""
        checkpoint = Path(checkpoint)
        provenance = read_metadata(checkpoint).provenance
        recorded = provenance.get("training", {})
        current = self.config.recorded()
        changed = [key for key in RESUME_KEYS if recorded.get(key) != current[key]]
        if changed:
            raise InputError(f"{describe_path(checkpoint)}: cannot resume with different {', '.join(changed)} "
                             f"(checkpoint has {', '.join(f'{k}={recorded.get(k)}' for k in changed)})")
        state = torch.load(require_optimizer_state(checkpoint), map_location=self.device, weights_only=True)
        self.optimizer.load_state_dict(state)
        start_epoch = int(provenance["epoch"]) + 1
        if start_epoch > self.config.epochs:
            log.warning("%s is already at epoch %d of %d: nothing to train", describe_path(checkpoint), start_epoch - 1, self.config.epochs)
        return start_epoch, list(provenance.get("history", []))

    # ------------------------------------------------------------------ training
    @contextlib.contextmanager
    def session(self) -> Iterator[FeatureCache]:
        """The feature cache, filled with every image the run will encode, held open while epochs run."""
        size = self.config.image_size
        with FeatureCache(self.model.encode, lambda paths: load_model_inputs(paths, size), self.device,
                          self.config.cache_ram_bytes, self.config.cache_dir) as cache:
            self._fill(cache)
            self.cache = cache
            try:
                yield cache
            finally:
                self.cache = None

    def _fill(self, cache: FeatureCache) -> None:
        needed = [s.image_path for s in self.run.samples]
        if "prompt_query" in self.trained:
            needed += [p for name in sorted({s.class_name for s in self.run.samples}) for p in self.run.pools[name]]
        cache.fill(needed, self.config.batch_size,
                   lambda chunks: progress_bar(chunks, desc="encoding images", unit="batch"))
        log.info("feature cache: %d of %d images (%.1f MB in RAM)", cache.cached_images, len(set(needed)),
                 cache.ram_bytes_used / 1e6)

    def begin_epoch(self, epoch: int) -> None:
        self.model.train()
        for name, module in self.model.adapter_modules().items():
            module.train(name in self.trained)

    def finish(self) -> None:
        self.model.eval()

    def step(self, batch: list[int], epoch: int, count: int) -> dict[str, float]:
        assert self.cache is not None, "steps run inside session()"
        size = self.config.image_size
        samples = [self.run.samples[i] for i in batch]
        uses_memory = "prompt_query" in self.trained
        reference_paths = ([p for i in batch for p in pair_references(self.run, i, epoch, self.config.shots, self.config.seed)]
                           if uses_memory else [])
        features = self.cache.features([s.image_path for s in samples] + reference_paths)
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

    def progress(self, sums: dict[str, float], count: int) -> dict[str, str]:
        """Running mean losses for the progress bar: total, then each trained branch (PQA layers averaged)."""
        shown = {"loss": sums["total"] / count}
        for branch in ("ta", "va", "pq"):
            if branch in self.branches:
                values = [v for k, v in sums.items() if k.rstrip("0123456789") == branch]
                shown[branch] = sum(values) / len(values) / count
        return {k: f"{v:.3f}" for k, v in shown.items()}

    # ------------------------------------------------------------------ checkpoints
    def provenance(self, epoch: int, losses: dict[str, float], history: list[dict[str, Any]]) -> dict[str, Any]:
        return {"source": "adaptclip-med train", "dataset": self.run.dataset_label, "layout": self.run.layout,
                "epoch": epoch, "seed": self.config.seed, "losses": losses, "training": self.config.recorded(),
                "history": history}

    def optimizer_state(self, epoch: int, history: list[dict[str, Any]]) -> Any:
        return self.optimizer.state_dict()

    def save_weights(self, checkpoint: Path, provenance: dict[str, Any]) -> Path:
        return save_adapters(self.model, checkpoint, provenance)


def train_adapters(spec: BackboneSpec, index: DatasetIndex, out_dir: Path, config: TrainingConfig,
                   device: str | torch.device = "cpu", resume: Path | None = None,
                   on_epoch: Callable[[EpochResult], None] | None = None) -> tuple[LoadedModel, list[EpochResult]]:
    """AdaptCLIP's training entry point (``train``, the bundle, the demo model): fresh (seeded) or
    resumed adapters, trained on ``index`` with ``config`` through the shared loop; checkpoints go
    to ``out_dir``."""
    config.validate()
    run = prepare_run(index, config.split)
    if resume is not None:
        recorded_size = read_metadata(Path(resume)).image_size
        if recorded_size != config.image_size:
            raise InputError(f"{describe_path(resume)}: trained at image size {recorded_size}, not {config.image_size}; resume with the same --image-size")
        loaded = build_model(spec, resume, config.image_size, device)
    else:
        loaded = initial_model(spec, config.image_size, config.seed, device)
    return loaded, fit(AdapterPlan(loaded.model, run, config, device), Path(out_dir), resume, on_epoch)
