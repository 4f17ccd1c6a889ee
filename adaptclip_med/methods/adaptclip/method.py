"""AdaptCLIP behind the method contract.

The network (this folder: TA/VA/PQA adapters, fusion, checkpoints, release import; the shared CLIP
backbone in ``model/``) is unchanged; this class only maps the contract onto it, so AdaptCLIP
outputs are bit-identical to the pre-contract code paths.  Its recipe (:attr:`training_recipe`)
and weights (:mod:`.catalog`, the ``--adapters demo`` alias in :mod:`.demo_weights`) are declared here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from adaptclip_med.methods.adaptclip.catalog import CATALOG
from adaptclip_med.methods.adaptclip.release import TRAINING_RECIPE
from adaptclip_med.methods.base import AnomalyMethod, MethodSpec, SlicePrediction
from adaptclip_med.methods.registry import register_method


@register_method
class AdaptCLIPMethod(AnomalyMethod):
    name = "adaptclip"
    display_name = "AdaptCLIP"
    summary = "AdaptCLIP (Gao et al., AAAI 2026): textual, visual and prompt-query adapters on a frozen CLIP; zero- or few-shot."
    references = "optional"
    uses_class_name = False
    trainable = True
    default_backbone = ("ViT-L-14-336", "openai")
    precisions = ("fp32", "bf16", "fp16", "int8", "auto")
    weights_catalog = CATALOG
    training_recipe = TRAINING_RECIPE

    def __init__(self, loaded, device: str | torch.device = "cpu", precision: str = "fp32") -> None:
        from adaptclip_med.methods.adaptclip.checkpoints import LoadedModel

        self.loaded: LoadedModel = loaded
        self.model = loaded.model
        self.device = torch.device(device)
        self.image_size = int(self.model.config.image_size)
        self.precision = precision
        #: the vision-tower runtime chosen at load (adaptclip_med/runtime/)
        self.runtime = "torch"

    @classmethod
    def load(cls, spec: MethodSpec) -> "AdaptCLIPMethod":
        from adaptclip_med.methods.backbones import backbone_spec_or_default
        from adaptclip_med.methods.adaptclip.checkpoints import build_model
        from adaptclip_med.methods.adaptclip.demo_weights import resolve_demo_spec
        from adaptclip_med.runtime.choice import configure_vision

        spec = resolve_demo_spec(spec)  # ``--adapters demo``: the packaged demonstration model
        loaded = build_model(backbone_spec_or_default(cls, spec), spec.weights, spec.image_size, spec.device)
        chosen = configure_vision(loaded.model, spec.runtime, spec.precision)
        method = cls(loaded, spec.device, chosen.precision)
        method.runtime = chosen.runtime
        return method

    @classmethod
    def from_loaded(cls, loaded, device: str | torch.device = "cpu") -> "AdaptCLIPMethod":
        """Wrap an already built :class:`~adaptclip_med.methods.adaptclip.checkpoints.LoadedModel` (training)."""
        return cls(loaded, device)

    # ------------------------------------------------------------------ identity
    def identity(self) -> dict[str, Any]:
        """The key banks and outputs record.  int8 (not exact; its error depends on the weights)
        is part of it, so an fp32 bank is not silently matched with int8 features or the reverse;
        fp32 / bf16 identities stay as they were (banks built before still open)."""
        ident = self.loaded.identity()
        return {"method": self.name, "backbone": ident["backbone"], "weights": ident["adapters"],
                "weights_sha256": ident["adapters_sha256"], "weights_provenance": ident["adapters_provenance"],
                "image_size": ident["image_size"], "tap_layers": ident["tap_layers"],
                "preprocessing": "bicubic resize to SxS, CLIP mean/std", "class_name": None,
                **({"precision": "int8"} if self.precision == "int8" else {})}

    def describe(self) -> str:
        return f"adaptclip, {self.model.backbone.identity.short()}, adapters {self.loaded.adapters_label}"

    # ------------------------------------------------------------------ preprocessing
    def image_input(self, images: Sequence[Any]) -> torch.Tensor:
        from adaptclip_med.preprocess import pil_to_model_input

        return torch.stack([pil_to_model_input(img, self.image_size) for img in images]).to(self.device)

    # ------------------------------------------------------------------ inference
    def encode(self, images: torch.Tensor):
        return self.model.encode(images)

    def global_embedding(self, encoded) -> torch.Tensor:
        return encoded.global_token

    def memory_rows(self, encoded) -> dict[str, torch.Tensor]:
        return {f"layer{i}": F.normalize(tap, dim=-1)[:, 1:] for i, tap in enumerate(encoded.taps)}

    def memory_from_rows(self, rows: Sequence[dict[str, torch.Tensor]]):
        """All patches of all given images pooled into one (1, M, D) memory per tapped layer."""
        from adaptclip_med.methods.adaptclip.network import ReferenceMemory

        layers = []
        for i in range(len(rows[0])):
            parts = [r[f"layer{i}"] for r in rows]
            layers.append(torch.cat(parts, dim=0).reshape(1, -1, parts[0].shape[-1]))
        return ReferenceMemory(layers=layers, shots=sum(int(r["layer0"].shape[0]) for r in rows))

    def predict_encoded(self, encoded, memory: Any = None) -> SlicePrediction:
        from adaptclip_med.methods.adaptclip.network import ReferenceMemory

        if isinstance(memory, list):
            # Per-query memories built for this call (the volume scorer's) are freed as they are
            # stacked, to keep the peak low; a list repeating one shared memory must keep it.
            distinct = len({id(m) for m in memory}) == len(memory)
            memory = ReferenceMemory.stack(memory, release=distinct) if memory and memory[0] is not None else None
        if memory is not None:
            memory = ReferenceMemory(layers=[layer.to(self.device) for layer in memory.layers], shots=memory.shots)
        pred = self.model.predict(None, memory, features=encoded)
        return SlicePrediction(anomaly_map=pred.anomaly_map, score=pred.score, extra_maps=pred.branch_maps,
                               extra_scores=pred.branch_scores)

    # ------------------------------------------------------------------ trainable parts
    def trainable_module(self) -> torch.nn.Module:
        return self.model

    def weights_module(self) -> torch.nn.Module:
        """The three adapters only (``self.model`` also holds the frozen CLIP); its state dict has
        the keys of :meth:`~adaptclip_med.methods.adaptclip.network.AdaptCLIP.adapter_state_dict`."""
        if getattr(self, "_weights_module", None) is None:
            self._weights_module = torch.nn.ModuleDict(self.model.adapter_modules())
        return self._weights_module

    def save_weights(self, path: Path, provenance: dict[str, Any] | None = None) -> Path:
        from adaptclip_med.methods.adaptclip.checkpoints import save_adapters

        return save_adapters(self.model, Path(path), provenance)

    # ------------------------------------------------------------------ training
    @classmethod
    def train(cls, spec: MethodSpec, index: Any, out_dir: Path, request: Any, resume: Path | None = None,
              on_epoch: Any = None) -> list[Any]:
        """AdaptCLIP's own plan in the shared loop: seeded fresh adapters (or ``resume``'s), the
        feature cache and reference pairing (:func:`~adaptclip_med.methods.adaptclip.trainer.train_adapters`).
        ``request.parts`` names the adapters to train (textual, visual, prompt_query; default all)."""
        from adaptclip_med.methods.adaptclip.trainer import train_adapters
        from adaptclip_med.methods.adaptclip.training_config import ADAPTERS, TrainingConfig
        from adaptclip_med.methods.backbones import backbone_spec_or_default

        names = set(ADAPTERS if request.parts is None else request.parts)
        adapters = tuple(name for name in ADAPTERS if name in names) + tuple(sorted(names - set(ADAPTERS)))
        recipe = cls.training_recipe
        config = TrainingConfig(epochs=request.epochs or recipe["epochs"], batch_size=request.batch_size or recipe["batch_size"],
                                lr=request.lr or recipe["lr"], seed=recipe["seed"] if request.seed is None else request.seed,
                                shots=request.shots, adapters=adapters, split=request.split,
                                image_size=spec.image_size or 518, cache_ram_bytes=request.cache_ram_bytes,
                                cache_dir=request.cache_dir)
        _, results = train_adapters(backbone_spec_or_default(cls, spec), index, Path(out_dir), config, spec.device, resume, on_epoch)
        return results
