"""The bundle's ``train#trainer``: the project's adapter trainer, publishing into ``models/``.

Training is :func:`adaptclip_med.training.trainer.train_adapters` unchanged (the release's recipe,
per-epoch checkpoints, exact resume); this wrapper only gives it the shape MONAI's training
properties name (``max_epochs``, a ``run()`` entry) and, when training ends, publishes the final
adapters into the bundle's model folder in two forms:

* ``adapters.safetensors``: the project checkpoint (with backbone identity and provenance), which
  ``configs/inference.json`` loads by default;
* ``model.pt``: the same adapter tensors as the state dict of the bundle's ``network_def``
  (:class:`~adaptclip_med.bundle_support.network.AnomalyMapNetwork`, keys ``weights.<adapter key>``),
  the MONAI bundle convention: MONAI's ``CheckpointLoader`` loads it into the network
  (``configs/inference.json``, ``adapters: null``) and ``torch.load(..., weights_only=True)``
  accepts it.  The frozen CLIP backbone is not in either file.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import torch

from adaptclip_med.bundle_support.network import network_state_dict
from adaptclip_med.data.samples import DatasetIndex
from adaptclip_med.model.backbone_source import BackboneSpec
from adaptclip_med.training.config import ADAPTERS, TrainingConfig
from adaptclip_med.training.trainer import train_adapters
from adaptclip_med.utils.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

ADAPTERS_FILE = "adapters.safetensors"
STATE_DICT_FILE = "model.pt"


class AdapterTrainingRun:
    """Trains adapters on ``dataset`` (checkpoints in ``output_dir/checkpoints``) and publishes the
    last epoch to ``model_dir``."""

    def __init__(self, dataset: DatasetIndex, output_dir: str | Path, model_dir: str | Path,
                 backbone: str = "ViT-L-14-336", backbone_weights: str = "openai", activation: str = "auto",
                 offline: bool = False, cache_dir: str | None = None, max_epochs: int = 15, batch_size: int = 8,
                 lr: float = 1e-3, seed: int = 10, shots: int = 1, adapters_to_train: tuple[str, ...] | list[str] = ADAPTERS,
                 split: str = "test", image_size: int = 518, device: str | torch.device = "cpu",
                 resume: str | Path | None = None) -> None:
        self.dataset = dataset
        self.output_dir = Path(output_dir)
        self.model_dir = Path(model_dir)
        self.spec = BackboneSpec(backbone, backbone_weights, activation, cache_dir, offline)
        self.max_epochs = int(max_epochs)
        self.config = TrainingConfig(epochs=self.max_epochs, batch_size=int(batch_size), lr=float(lr), seed=int(seed),
                                     shots=int(shots), adapters=tuple(adapters_to_train), split=split,
                                     image_size=int(image_size))
        self.device = device
        self.resume = Path(resume) if resume else None

    def run(self) -> Path:
        """Train, then publish; returns the published project checkpoint."""
        loaded, epochs = train_adapters(self.spec, self.dataset, self.output_dir / "checkpoints", self.config,
                                        self.device, self.resume)
        last = epochs[-1].checkpoint if epochs else self.resume  # a resumed run that was already complete
        published = atomic_write_bytes(self.model_dir / ADAPTERS_FILE, Path(last).read_bytes())
        state = network_state_dict(loaded.model.adapter_state_dict())  # = AnomalyMapNetwork.state_dict()
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.model_dir / STATE_DICT_FILE, buffer.getvalue())
        log.info("published %s (epoch %s) as %s and %s", Path(last).name, epochs[-1].epoch if epochs else "resumed",
                 published, self.model_dir / STATE_DICT_FILE)
        return published
