"""The project's adapter checkpoint format and the one place models are built from files.

Format: a safetensors file holding the adapter tensors plus ``static_text_features`` (so loading
skips encoding 231 sentences), and a JSON metadata header recording everything that shapes the
outputs: backbone identity (architecture, weights source, activation, fingerprint), image size,
tapped layers, value-stream start, prompt length, software version and provenance.  safetensors
is used because it cannot execute code on load, unlike a pickle.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from adaptclip_med.version import __version__
from adaptclip_med.errors import AdaptClipError, CheckpointMismatchError, MissingWeightsError
from adaptclip_med.methods.adaptclip import release_import
from adaptclip_med.methods.adaptclip.network import AdaptCLIP, AdapterConfig
from adaptclip_med.model.backbone import ClipBackbone
from adaptclip_med.model.build import build_backbone
from adaptclip_med.model.backbone_source import BackboneSpec, sha256_of_file

log = logging.getLogger(__name__)

FORMAT_NAME = "adaptclip-med/adapters"
FORMAT_VERSION = 1
_METADATA_KEY = "adaptclip_med"
_STATIC_TEXT_KEY = "static_text_features"


@dataclass
class CheckpointMetadata:
    backbone: dict[str, Any]
    backbone_fingerprint: str
    embed_dim: int
    text_width: int
    image_size: int
    tap_layers: list[int]
    vv_start_layer: int
    prompt_length: int
    reduction: int
    pq_context: bool
    provenance: dict[str, Any] = field(default_factory=dict)
    software_version: str = __version__
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def adapter_config(self) -> AdapterConfig:
        return AdapterConfig(prompt_length=self.prompt_length, reduction=self.reduction,
                             pq_context=self.pq_context, image_size=self.image_size)


def metadata_for(model: AdaptCLIP, provenance: dict[str, Any] | None = None) -> CheckpointMetadata:
    backbone = model.backbone
    cfg = model.config
    return CheckpointMetadata(
        backbone=backbone.identity.to_json(), backbone_fingerprint=backbone.fingerprint(),
        embed_dim=backbone.embed_dim, text_width=backbone.text_width, image_size=cfg.image_size,
        tap_layers=list(backbone.tap_layers), vv_start_layer=backbone.vv_start_layer,
        prompt_length=cfg.prompt_length, reduction=cfg.reduction, pq_context=cfg.pq_context,
        provenance=provenance or {})


def save_adapters(model: AdaptCLIP, path: Path, provenance: dict[str, Any] | None = None) -> Path:
    """Write the project-format checkpoint atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.adapter_state_dict().items()}
    tensors[_STATIC_TEXT_KEY] = model.backbone.static_text_features().detach().cpu().contiguous()
    meta = metadata_for(model, provenance)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        save_file(tensors, str(tmp), metadata={_METADATA_KEY: json.dumps(asdict(meta), sort_keys=True)})
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_metadata(path: Path) -> CheckpointMetadata:
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(_METADATA_KEY)
    except Exception as exc:
        raise AdaptClipError(f"adapter checkpoint '{Path(path).name}' is not a readable safetensors file ({exc.__class__.__name__})") from exc
    if raw is None:
        raise CheckpointMismatchError(f"'{Path(path).name}' is a safetensors file but not an adaptclip-med adapter checkpoint (no metadata)")
    data = json.loads(raw)
    if data.get("format") != FORMAT_NAME or data.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointMismatchError(f"'{Path(path).name}' has checkpoint format {data.get('format')} v{data.get('format_version')}: upgrade adaptclip-med")
    known = CheckpointMetadata.__dataclass_fields__
    return CheckpointMetadata(**{k: v for k, v in data.items() if k in known})


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}


def _check_dims(source: str, backbone: ClipBackbone, embed_dim: int, text_width: int) -> None:
    if embed_dim != backbone.embed_dim or text_width != backbone.text_width:
        raise CheckpointMismatchError(
            f"adapters '{source}' were made for a backbone with embedding dim {embed_dim} / text width {text_width}, but "
            f"{backbone.identity.architecture} has {backbone.embed_dim} / {backbone.text_width}: choose the backbone the adapters were trained for "
            "(the released ones need ViT-L-14-336 with OpenAI weights)")


@dataclass(frozen=True)
class LoadedModel:
    """A ready model plus what identifies its adapters (for reports and reference-bank keys)."""

    model: AdaptCLIP
    adapters_label: str
    provenance: dict[str, Any]
    adapters_sha256: str | None = None

    def identity(self) -> dict[str, Any]:
        return {"backbone": self.model.backbone.identity.to_json() | {"fingerprint": self.model.backbone.fingerprint()},
                "adapters": self.adapters_label, "adapters_sha256": self.adapters_sha256,
                "adapters_provenance": self.provenance, "image_size": self.model.config.image_size,
                "tap_layers": list(self.model.backbone.tap_layers)}


def build_model(backbone_spec: BackboneSpec, adapters: str | Path | None, image_size: int | None = None,
                device: str | torch.device = "cpu") -> LoadedModel:
    """Backbone + adapters from a project checkpoint, a released ``.pth``, or fresh (untrained)
    adapters when ``adapters`` is None (only meaningful for training and the tiny demo)."""
    if adapters is None:
        backbone = build_backbone(backbone_spec)
        config = AdapterConfig(image_size=image_size or AdapterConfig().image_size)
        model = AdaptCLIP(backbone, config)
        return LoadedModel(model.to(device).eval(), "untrained", {"source": "untrained"})

    path = Path(adapters).expanduser()
    if not path.is_file():
        raise MissingWeightsError(
            f"adapter checkpoint '{path}' does not exist: import a released file with 'adaptclip-med weights import', "
            "train one with 'adaptclip-med train', or pass the path of an existing .safetensors/.pth")
    if release_import.looks_like_release_file(path):
        return _build_from_release(backbone_spec, path, image_size, device)

    meta = read_metadata(path)
    backbone = build_backbone(backbone_spec, tuple(meta.tap_layers), meta.vv_start_layer)
    _check_dims(path.name, backbone, meta.embed_dim, meta.text_width)
    recorded = meta.backbone.get("architecture")
    if recorded and recorded != backbone.identity.architecture:
        log.warning("adapters were trained on %s but the backbone is %s", recorded, backbone.identity.architecture)
    if meta.backbone.get("activation") and meta.backbone["activation"] != backbone.identity.activation:
        log.warning("adapters were trained with a %s backbone but this backbone uses %s: outputs will differ",
                    meta.backbone["activation"], backbone.identity.activation)
    config = meta.adapter_config()
    if image_size:
        config = replace(config, image_size=image_size)
    model = AdaptCLIP(backbone, config)
    tensors = _read_tensors(path)
    static_text = tensors.pop(_STATIC_TEXT_KEY, None)
    try:
        model.load_adapter_state_dict(tensors)
    except RuntimeError as exc:
        raise CheckpointMismatchError(f"adapter checkpoint '{path.name}' does not fit this backbone: {str(exc).splitlines()[0]}") from exc
    if static_text is not None and meta.backbone_fingerprint == backbone.fingerprint():
        backbone.set_static_text_features(static_text)
    provenance = dict(meta.provenance)
    return LoadedModel(model.to(device).eval(), path.name, provenance, sha256_of_file(path))


def _build_from_release(backbone_spec: BackboneSpec, path: Path, image_size: int | None,
                        device: str | torch.device) -> LoadedModel:
    provenance = release_import.identify_release(path)
    checkpoint = release_import.read_release_file(path)
    settings = release_import.RELEASE_SETTINGS
    backbone = build_backbone(backbone_spec)
    _check_dims(path.name, backbone, release_import.release_embed_dim(checkpoint), release_import.release_text_width(checkpoint))
    config = AdapterConfig(prompt_length=release_import.release_prompt_length(checkpoint), reduction=settings["reduction"],
                           pq_context=settings["pq_context"], image_size=image_size or settings["image_size"])
    model = AdaptCLIP(backbone, config)
    expected_prefix = model.textual.prefix.clone()
    try:
        model.load_adapter_state_dict(release_import.convert_release_state(checkpoint))
    except RuntimeError as exc:
        raise CheckpointMismatchError(f"release checkpoint '{path.name}' does not fit this backbone: {str(exc).splitlines()[0]}") from exc
    if not torch.allclose(expected_prefix, model.textual.prefix, atol=1e-4):
        log.warning("the checkpoint's prompt embeddings differ from this backbone's token embeddings: "
                    "the adapters were trained with other CLIP text weights")
    info = {"source": f"release:{provenance.release}" if provenance.release else "release-layout file",
            "sha256": provenance.sha256, "license": release_import.RELEASE_LICENSE if provenance.release else None}
    return LoadedModel(model.to(device).eval(), path.name, info, provenance.sha256)


def import_release(backbone_spec: BackboneSpec, source: Path, destination: Path) -> Path:
    """Convert a released ``.pth`` into the project format (verifying the published checksum)."""
    loaded = _build_from_release(backbone_spec, Path(source), None, "cpu")
    return save_adapters(loaded.model, destination, loaded.provenance)
