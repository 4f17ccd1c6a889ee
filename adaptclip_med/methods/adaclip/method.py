"""AdaCLIP (Cao et al., ECCV 2024) behind the method contract: hybrid static + dynamic prompts
on a frozen CLIP, zero-shot (no references), class-name driven.

Re-implemented from the fact sheet ``spec/adaclip.md`` (the official code at commit e27ee32 defines
the outputs).  Deliberate choices:

* **Activation**: ``auto`` means exact GELU, always — the authors run the OpenAI weights with
  GELU and the released weights correspond to that (Q1).  The chosen activation is enforced on
  every MLP of both towers (whatever the open_clip config says) and recorded in the identity.
* **Default class name** ``"medical scan"``: AdaCLIP puts the class name into every sentence
  ("a bad photo of a damaged {}."); a modality- and organ-neutral noun keeps them grammatical for
  any radiology input.  Passing the organ ("brain", "chest") is better where it is known.
* **Batch semantics**: per image, as the batch-size-1 official code (Q13).
* **Score**: the HSF score alone, never fused with the map (Q11); KMeans seeded with 111 per
  image (a fresh test.py run, Q10).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.methods.adaclip import maps, weights
from adaptclip_med.methods.adaclip.catalog import CATALOG
from adaptclip_med.methods.adaclip.constants import (
    DEFAULT_IMAGE_SIZE,
    K_CLUSTERS,
    KMEANS_SEED,
    PREPROCESSING,
    PROMPT_DEPTH,
    PROMPT_LENGTH,
    TOPK_FACTOR,
    TRAINING_RECIPE,
)
from adaptclip_med.methods.adaclip.loss import adaclip_loss
from adaptclip_med.methods.adaclip.network import AdaClipNetwork, AdaClipOutput, part_dims
from adaptclip_med.methods.adaclip.parts import AdaClipParts
from adaptclip_med.methods.base import AnomalyMethod, MethodSpec, SlicePrediction
from adaptclip_med.methods.registry import register_method
from adaptclip_med.model.backbone_source import ACTIVATIONS, BackboneSpec

log = logging.getLogger(__name__)

DEFAULT_CLASS_NAME = "medical scan"


def choose_activation(requested: str | None) -> str:
    """AdaCLIP's activation rule: ``auto`` (or None) -> exact GELU, whatever the weights' origin;
    an explicit choice is honoured."""
    requested = requested or "auto"
    if requested not in ACTIVATIONS:
        raise AdaptClipError(f"activation '{requested}' is not one of {', '.join(ACTIVATIONS)}")
    return "gelu" if requested == "auto" else requested


def enforce_activation(clip: nn.Module, activation: str) -> None:
    """Set the MLP activation of every block of both towers (open_clip's config flag may disagree
    with the requested one, e.g. a config with ``quick_gelu: true``)."""
    from open_clip.transformer import QuickGELU

    for blocks in (clip.visual.transformer.resblocks, clip.transformer.resblocks):
        for block in blocks:
            block.mlp.gelu = nn.GELU() if activation == "gelu" else QuickGELU()


@register_method
class AdaCLIPMethod(AnomalyMethod):
    name = "adaclip"
    summary = "AdaCLIP (Cao et al., ECCV 2024): static + dynamic prompts on a frozen CLIP, zero-shot, class-name prompts."
    references = "unused"
    uses_class_name = True
    default_class_name = DEFAULT_CLASS_NAME
    trainable = True
    default_backbone = ("ViT-L-14-336", "openai")
    precisions = ("fp32",)
    weights_catalog = CATALOG
    training_recipe = TRAINING_RECIPE

    def __init__(self, network: AdaClipNetwork, backbone_identity: dict[str, Any], weights_label: str,
                 weights_sha256: str | None, provenance: dict[str, Any], class_name: str,
                 device: str | torch.device = "cpu") -> None:
        self.network = network
        self.backbone_identity = backbone_identity
        self.weights_label = weights_label
        self.weights_sha256 = weights_sha256
        self.provenance = provenance
        self.class_name = class_name
        self.image_size = network.image_size
        self.device = torch.device(device)

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, spec: MethodSpec) -> "AdaCLIPMethod":
        from adaptclip_med.methods.backbones import backbone_spec_or_default
        from adaptclip_med.model.build import build_backbone

        if spec.precision not in (*cls.precisions, "auto"):  # 'auto' resolves to the only precision, fp32
            raise AdaptClipError(f"adaclip runs in {', '.join(cls.precisions)} only (asked for {spec.precision})")
        from adaptclip_med.runtime.choice import require_torch_runtime

        require_torch_runtime(cls.name, spec.runtime)
        given: BackboneSpec = backbone_spec_or_default(cls, spec)
        activation = choose_activation(given.activation)
        backbone = build_backbone(replace(given, activation=activation))
        clip = backbone.clip
        enforce_activation(clip, activation)
        identity = replace(backbone.identity, activation=activation).to_json()
        identity["fingerprint"] = backbone.fingerprint()

        image_size = int(spec.image_size or DEFAULT_IMAGE_SIZE)
        patch = backbone.patch_size
        if image_size <= 0 or image_size % patch:
            raise AdaptClipError(f"adaclip image size {image_size} is not a multiple of the backbone's patch size {patch}: use e.g. {patch * max(1, round(image_size / patch))}")
        parts = AdaClipParts(part_dims(clip))
        label, sha, provenance = "untrained", None, {"source": "untrained", "init_seed": 111}
        if spec.weights is not None:
            path = Path(spec.weights).expanduser()
            if weights.looks_like_release_file(path):
                provenance = weights.load_release_into(parts, path)
                sha = provenance["sha256"]
            else:
                meta = weights.load_project_into(parts, path)
                provenance = dict(meta.get("provenance") or {})
                recorded = (meta.get("backbone") or {}).get("activation")
                if recorded and recorded != activation:
                    log.warning("AdaCLIP weights were made with a %s backbone but this one uses %s: outputs will differ", recorded, activation)
                sha = weights.sha256_of_file(path)
            label = path.name
        network = AdaClipNetwork(clip, backbone.tokenizer, image_size, parts).to(spec.device).eval()
        return cls(network, identity, label, sha, provenance, spec.class_name or DEFAULT_CLASS_NAME, spec.device)

    # ------------------------------------------------------------------ identity
    def identity(self) -> dict[str, Any]:
        return {"method": self.name, "backbone": self.backbone_identity, "weights": self.weights_label,
                "weights_sha256": self.weights_sha256, "weights_provenance": self.provenance,
                "image_size": self.image_size, "preprocessing": PREPROCESSING, "class_name": self.class_name,
                "prompts": {"length": PROMPT_LENGTH, "depth": PROMPT_DEPTH},
                "hsf": {"clusters": K_CLUSTERS, "topk": TOPK_FACTOR * K_CLUSTERS, "kmeans_seed": KMEANS_SEED},
                "smoothing": "scipy gaussian_filter sigma 4, reflect, truncate 4"}

    # ------------------------------------------------------------------ preprocessing
    def image_input(self, images: Sequence[Any]) -> torch.Tensor:
        """PIL -> RGB -> bicubic squash to SxS on the uint8 image (aspect ratio ignored, Q12)."""
        from adaptclip_med.preprocess import pil_to_model_input

        return torch.stack([pil_to_model_input(img.convert("RGB"), self.image_size) for img in images]).to(self.device)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def encode(self, images: torch.Tensor, class_names: Sequence[str] | None = None) -> AdaClipOutput:
        """The whole per-image forward (nothing in AdaCLIP depends on reference memory)."""
        names = list(class_names) if class_names is not None else [self.class_name] * images.shape[0]
        return self.network(images.to(self.device), names, aggregation=True)

    def global_embedding(self, encoded: AdaClipOutput) -> torch.Tensor:
        """The unprompted CLIP image embedding g, normalised (depends only on the backbone)."""
        return F.normalize(encoded.g, dim=-1)

    def predict_encoded(self, encoded: AdaClipOutput, memory: Any = None) -> SlicePrediction:
        raw = encoded.raw_map
        assert raw is not None, "encode() output with aggregation=True expected"
        size = self.image_size
        tap_maps = {f"tap{j}": (maps.upsample_logits(l, size).softmax(dim=1)[:, 1]) for j, l in enumerate(encoded.tap_logits)}
        score = encoded.image_probs[:, 1]
        return SlicePrediction(anomaly_map=maps.smooth(raw), score=score,
                               extra_maps={"unsmoothed": raw, **tap_maps}, extra_scores={"hsf": score})

    # ------------------------------------------------------------------ trainable parts
    def trainable_module(self) -> AdaClipParts:
        return self.network.parts

    def training_loss(self, images: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor,
                      class_names: Sequence[str], references: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = self.network(images.to(self.device), list(class_names), aggregation=False)
        return adaclip_loss(out.tap_maps, out.image_probs, masks.to(self.device), labels.to(self.device))

    def save_weights(self, path: Any, provenance: dict[str, Any] | None = None) -> Path:
        return weights.save_project(self.network.parts, Path(path), self.backbone_identity, self.image_size, provenance)

    def release_memory(self) -> None:
        self.network.text._tokens.clear()
