"""Training any trainable method through the method contract.

The loop is shared; the objective, the trainable module and the authors' optimiser recipe come
from the method (``training_loss``, ``trainable_module``, ``optimizer_settings``), so a new method
trains with no change here.  AdaptCLIP keeps its own specialised trainer
(:mod:`adaptclip_med.methods.adaptclip.trainer`: backbone-feature cache, reference pairing), which its
method class names as ``custom_trainer``.

Per epoch N it writes ``epoch_N.safetensors`` (the method's project format via ``save_weights``;
provenance: dataset, layout, epoch, seed, losses, settings) and ``epoch_N.optim.pt`` (optimiser
state).  The epoch order is a pure function of (seed, epoch) and the per-step randomness
(mosaic augmentation) is seeded from (seed, epoch, step), so a resumed run replays what an
uninterrupted run would on the CPU.
"""

from __future__ import annotations

import io
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from adaptclip_med.data.samples import DatasetIndex
from adaptclip_med.errors import InputError
from adaptclip_med.methods.base import AnomalyMethod
from adaptclip_med.preprocess import load_rgb_image
from adaptclip_med.methods.adaptclip.training_config import TrainingConfig
from adaptclip_med.training.run_data import TrainingRun, epoch_order, load_training_mask, prepare_run
from adaptclip_med.utils.atomic import atomic_write_bytes
from adaptclip_med.utils.progress import progress_bar
from adaptclip_med.utils.redact import describe_path

log = logging.getLogger(__name__)

_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


@dataclass
class MethodEpoch:
    epoch: int
    losses: dict[str, float]
    checkpoint: Path
    seconds: float


@dataclass(frozen=True)
class MethodTrainingConfig:
    """Settings of a contract-driven run; ``None`` fields take the method's recipe."""

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 111
    split: str = "test"
    mosaic_rate: float | None = None

    def resolved(self, recipe: dict[str, Any]) -> dict[str, Any]:
        values = {"optimizer": recipe.get("optimizer", "adamw"), "lr": self.lr or recipe.get("lr", 1e-3),
                  "betas": tuple(recipe.get("betas", (0.9, 0.999))), "eps": recipe.get("eps", 1e-8),
                  "weight_decay": recipe.get("weight_decay", 0.0), "epochs": self.epochs or recipe.get("epochs", 5),
                  "batch_size": self.batch_size or recipe.get("batch_size", 1), "seed": self.seed, "split": self.split,
                  "mosaic_rate": recipe.get("mosaic_rate", 0.0) if self.mosaic_rate is None else self.mosaic_rate}
        if values["optimizer"] not in _OPTIMIZERS:
            raise InputError(f"optimizer '{values['optimizer']}' is not one of {', '.join(_OPTIMIZERS)}")
        max_batch = recipe.get("max_batch_size")
        if max_batch and values["batch_size"] > max_batch:
            raise InputError(f"this method trains with at most {max_batch} image(s) per batch, not {values['batch_size']}")
        return values


def mosaic(images: list[Image.Image], masks: list[np.ndarray]) -> tuple[Image.Image, np.ndarray]:
    """2x2 mosaic of four images (and masks) of one class, each at its own size (AdaCLIP's MVTec
    augmentation; the item keeps its own image-level label, as the authors' code does)."""
    width = max(images[0].width, images[2].width) + max(images[1].width, images[3].width)
    height = max(images[0].height, images[1].height) + max(images[2].height, images[3].height)
    canvas = Image.new("RGB", (width, height))
    canvas_mask = np.zeros((height, width), dtype=np.float32)
    left = max(images[0].width, images[2].width)
    top = max(images[0].height, images[1].height)
    for (x, y), image, mask in zip(((0, 0), (left, 0), (0, top), (left, top)), images, masks):
        canvas.paste(image, (x, y))
        canvas_mask[y:y + mask.shape[0], x:x + mask.shape[1]] = mask
    return canvas, canvas_mask


class MethodTrainer:
    """Epochs of one :class:`TrainingRun` on a method, checkpoints to ``out_dir``."""

    def __init__(self, method: AnomalyMethod, run: TrainingRun, settings: dict[str, Any], out_dir: Path) -> None:
        module = method.trainable_module()
        if module is None:
            raise InputError(f"method '{method.name}' is training-free: there is nothing to train")
        self.method = method
        self.module = module
        self.run = run
        self.settings = settings
        self.out_dir = Path(out_dir)
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer = _OPTIMIZERS[settings["optimizer"]]
        self.optimizer = optimizer(params, lr=settings["lr"], betas=settings["betas"], eps=settings["eps"],
                                   weight_decay=settings["weight_decay"])
        self.start_epoch = 1
        self.history: list[dict[str, Any]] = []

    def _mask(self, sample, size: int) -> np.ndarray:
        if sample.mask_path is None:
            return np.zeros((size, size), dtype=np.float32)
        return load_training_mask(sample, size).numpy().astype(np.float32)

    def _item(self, index: int, rng: random.Random) -> tuple[Image.Image, np.ndarray]:
        """The picture and full-resolution mask of one query (optionally replaced by a mosaic)."""
        sample = self.run.samples[index]
        if self.run.layout == "mvtec" and self.settings["mosaic_rate"] > 0 and rng.random() < self.settings["mosaic_rate"]:
            same = [i for i, s in enumerate(self.run.samples) if s.class_name == sample.class_name]
            picks = [rng.choice(same) for _ in range(4)]
            images = [load_rgb_image(self.run.samples[i].image_path) for i in picks]
            masks = [self._native_mask(self.run.samples[i], img) for i, img in zip(picks, images)]
            return mosaic(images, masks)
        image = load_rgb_image(sample.image_path)
        return image, self._native_mask(sample, image)

    @staticmethod
    def _native_mask(sample, image: Image.Image) -> np.ndarray:
        if sample.mask_path is None:
            return np.zeros((image.height, image.width), dtype=np.float32)
        with Image.open(sample.mask_path) as mask:
            return (np.asarray(mask.convert("L").resize(image.size, Image.NEAREST), dtype=np.float32) > 0).astype(np.float32)

    def _mask_tensor(self, mask: np.ndarray) -> torch.Tensor:
        """Mask resized to the model size, bilinear then > 0.5 (the authors' mask transform)."""
        size = self.method.image_size
        tensor = torch.from_numpy(mask)[None, None]
        resized = torch.nn.functional.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False,
                                                  antialias=True)
        return (resized[0, 0] > 0.5).float()

    def step(self, batch: list[int], rng: random.Random) -> dict[str, float]:
        items = [self._item(i, rng) for i in batch]
        samples = [self.run.samples[i] for i in batch]
        images = self.method.image_input([image for image, _ in items])
        masks = torch.stack([self._mask_tensor(mask) for _, mask in items]).to(images.device)
        labels = torch.tensor([s.label for s in samples], device=images.device)
        terms = self.method.training_loss(images, masks, labels, [s.class_name for s in samples])
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        self.optimizer.step()
        return {name: float(value.detach()) for name, value in terms.items()}

    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.module.train()
        batches = epoch_order(len(self.run.samples), self.settings["seed"], epoch, self.settings["batch_size"])
        sums: dict[str, float] = {}
        bar = progress_bar(batches, desc=f"epoch {epoch}/{self.settings['epochs']}", unit="batch")
        for count, batch in enumerate(bar, start=1):
            rng = random.Random(f"{self.settings['seed']}:{epoch}:{count}")
            for name, value in self.step(batch, rng).items():
                sums[name] = sums.get(name, 0.0) + value
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{sums['total'] / count:.4f}")
        self.module.eval()
        return {name: total / max(1, len(batches)) for name, total in sums.items()}

    def save_epoch(self, epoch: int, losses: dict[str, float]) -> Path:
        self.history.append({"epoch": epoch, "losses": losses})
        recorded = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.settings.items()}
        provenance = {"source": "adaptclip-med train", "method": self.method.name, "dataset": self.run.dataset_label,
                      "layout": self.run.layout, "epoch": epoch, "seed": self.settings["seed"], "losses": losses,
                      "training": recorded, "history": self.history}
        checkpoint = self.out_dir / f"epoch_{epoch}.safetensors"
        buffer = io.BytesIO()
        torch.save({"optimizer": self.optimizer.state_dict(), "epoch": epoch, "history": self.history,
                    "training": recorded}, buffer)
        atomic_write_bytes(checkpoint.with_name(f"{checkpoint.stem}.optim.pt"), buffer.getvalue())
        self.method.save_weights(checkpoint, provenance)
        return checkpoint

    def resume_from(self, checkpoint: Path) -> None:
        state_file = Path(checkpoint).with_name(f"{Path(checkpoint).stem}.optim.pt")
        if not state_file.is_file():
            raise InputError(f"{describe_path(Path(checkpoint))}: no optimizer state {state_file.name} next to it; cannot resume exactly")
        state = torch.load(state_file, map_location="cpu", weights_only=False)
        recorded = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.settings.items() if k != "epochs"}
        changed = [k for k, v in recorded.items() if state["training"].get(k) != v]
        if changed:
            raise InputError(f"{describe_path(Path(checkpoint))}: cannot resume with different {', '.join(changed)}")
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_epoch = int(state["epoch"]) + 1
        self.history = list(state["history"])

    def fit(self, on_epoch: Callable[[MethodEpoch], None] | None = None) -> list[MethodEpoch]:
        results = []
        for epoch in range(self.start_epoch, self.settings["epochs"] + 1):
            started = time.perf_counter()
            losses = self.train_epoch(epoch)
            checkpoint = self.save_epoch(epoch, losses)
            results.append(MethodEpoch(epoch, losses, checkpoint, time.perf_counter() - started))
            if on_epoch is not None:
                on_epoch(results[-1])
        return results


def train_method(method: AnomalyMethod, index: DatasetIndex, out_dir: Path, config: MethodTrainingConfig,
                 resume: Path | None = None, on_epoch: Callable[[MethodEpoch], None] | None = None) -> list[MethodEpoch]:
    """Library entry point of ``adaptclip-med train --method NAME`` for contract-trained methods.
    ``method`` is loaded with fresh weights (or the checkpoint to resume from)."""
    settings = config.resolved(method.optimizer_settings())
    run = prepare_run(index, TrainingConfig(epochs=settings["epochs"], batch_size=settings["batch_size"],
                                            seed=settings["seed"], split=settings["split"], image_size=method.image_size))
    torch.manual_seed(settings["seed"])
    np.random.seed(settings["seed"])  # scikit-learn steps inside a loss (e.g. KMeans) draw from numpy's global RNG
    trainer = MethodTrainer(method, run, settings, out_dir)
    if resume is not None:
        trainer.resume_from(Path(resume))
    return trainer.fit(on_epoch)
