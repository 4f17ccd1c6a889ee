"""The generic training plan: any trainable method through the method contract.

The loop is :func:`adaptclip_med.training.loop.fit`; the objective, the trainable module and the
authors' optimiser recipe come from the method (``training_loss``, ``trainable_module``,
``training_recipe``), so a new method trains with no change here (``AnomalyMethod.train`` uses this
plan by default).  AdaptCLIP plugs its own plan into the same loop
(:mod:`adaptclip_med.methods.adaptclip.trainer`: backbone-feature cache, reference pairing).

Per epoch N it writes ``epoch_N.safetensors`` (the method's project format via ``save_weights``;
provenance: dataset, layout, epoch, seed, losses, settings) and ``epoch_N.optim.pt`` (optimiser
state).  The epoch order is a pure function of (seed, epoch) and the per-step randomness
(mosaic augmentation) is seeded from (seed, epoch, step), so a resumed run replays what an
uninterrupted run would on the CPU.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from adaptclip_med.data.samples import DatasetIndex
from adaptclip_med.errors import InputError
from adaptclip_med.preprocess import load_rgb_image
from adaptclip_med.training.loop import EpochResult, TrainingPlan, fit, require_optimizer_state
from adaptclip_med.training.request import TrainingRequest
from adaptclip_med.training.run_data import TrainingRun, prepare_run
from adaptclip_med.utils.redact import describe_path

if TYPE_CHECKING:
    from adaptclip_med.methods.base import AnomalyMethod, MethodSpec

log = logging.getLogger(__name__)

_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def contract_settings(recipe: dict[str, Any], request: TrainingRequest) -> dict[str, Any]:
    """The run's settings: the user's request over the method's recipe (what checkpoints record)."""
    values = {"optimizer": recipe.get("optimizer", "adamw"), "lr": request.lr or recipe.get("lr", 1e-3),
              "betas": tuple(recipe.get("betas", (0.9, 0.999))), "eps": recipe.get("eps", 1e-8),
              "weight_decay": recipe.get("weight_decay", 0.0), "epochs": request.epochs or recipe.get("epochs", 5),
              "batch_size": request.batch_size or recipe.get("batch_size", 1),
              "seed": recipe.get("seed", 0) if request.seed is None else request.seed, "split": request.split,
              "mosaic_rate": recipe.get("mosaic_rate", 0.0)}
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


class ContractPlan(TrainingPlan):
    """Epochs of one :class:`TrainingRun` on a method, through its ``training_loss``."""

    def __init__(self, method: "AnomalyMethod", run: TrainingRun, settings: dict[str, Any]) -> None:
        module = method.trainable_module()
        if module is None:
            raise InputError(f"method '{method.name}' is training-free: there is nothing to train")
        self.method = method
        self.module = module
        self.run = run
        self.settings = settings
        self.epochs = settings["epochs"]
        self.batch_size = settings["batch_size"]
        self.seed = settings["seed"]
        params = [p for p in module.parameters() if p.requires_grad]
        optimizer = _OPTIMIZERS[settings["optimizer"]]
        self.optimizer = optimizer(params, lr=settings["lr"], betas=settings["betas"], eps=settings["eps"],
                                   weight_decay=settings["weight_decay"])

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

    def begin_epoch(self, epoch: int) -> None:
        self.module.train()

    def end_epoch(self, epoch: int) -> None:
        self.module.eval()

    def step(self, batch: list[int], epoch: int, count: int) -> dict[str, float]:
        rng = random.Random(f"{self.seed}:{epoch}:{count}")
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

    def progress(self, sums: dict[str, float], count: int) -> dict[str, str]:
        return {"loss": f"{sums['total'] / count:.4f}"}

    def summary(self, epoch: int, losses: dict[str, float]) -> str:
        return f"epoch {epoch}: loss {losses['total']:.4f}"

    def _recorded(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.settings.items()}

    def provenance(self, epoch: int, losses: dict[str, float], history: list[dict[str, Any]]) -> dict[str, Any]:
        return {"source": "adaptclip-med train", "method": self.method.name, "dataset": self.run.dataset_label,
                "layout": self.run.layout, "epoch": epoch, "seed": self.seed, "losses": losses,
                "training": self._recorded(), "history": history}

    def optimizer_state(self, epoch: int, history: list[dict[str, Any]]) -> Any:
        return {"optimizer": self.optimizer.state_dict(), "epoch": epoch, "history": history, "training": self._recorded()}

    def save_weights(self, checkpoint: Path, provenance: dict[str, Any]) -> Path:
        return self.method.save_weights(checkpoint, provenance)

    def resume_from(self, checkpoint: Path) -> tuple[int, list[dict[str, Any]]]:
        state = torch.load(require_optimizer_state(checkpoint), map_location="cpu", weights_only=False)
        recorded = {k: v for k, v in self._recorded().items() if k != "epochs"}
        changed = [k for k, v in recorded.items() if state["training"].get(k) != v]
        if changed:
            raise InputError(f"{describe_path(Path(checkpoint))}: cannot resume with different {', '.join(changed)}")
        self.optimizer.load_state_dict(state["optimizer"])
        return int(state["epoch"]) + 1, list(state["history"])


def train_method(method: "AnomalyMethod", index: DatasetIndex, out_dir: Path, request: TrainingRequest,
                 resume: Path | None = None, on_epoch: Callable[[EpochResult], None] | None = None) -> list[EpochResult]:
    """Train a loaded method (fresh weights, or those of the checkpoint to resume from) through its
    ``training_loss`` with the shared loop."""
    settings = contract_settings(method.training_recipe, request)
    run = prepare_run(index, settings["split"])
    torch.manual_seed(settings["seed"])
    np.random.seed(settings["seed"])  # scikit-learn steps inside a loss (e.g. KMeans) draw from numpy's global RNG
    return fit(ContractPlan(method, run, settings), out_dir, resume, on_epoch)


def train_through_contract(cls: "type[AnomalyMethod]", spec: "MethodSpec", index: DatasetIndex, out_dir: Path,
                           request: TrainingRequest, resume: Path | None = None,
                           on_epoch: Callable[[EpochResult], None] | None = None) -> list[EpochResult]:
    """``AnomalyMethod.train`` by default: load the method with the weights to resume from (or
    fresh ones), then :func:`train_method`."""
    method = cls.load(replace(spec, weights=str(resume) if resume else None))
    return train_method(method, index, out_dir, request, resume, on_epoch)
