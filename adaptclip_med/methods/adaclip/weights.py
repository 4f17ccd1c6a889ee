"""AdaCLIP weights: the authors' released ``.pth`` files and the project's safetensors format.

Released files are flat ``{"clip_model.<name>": tensor}`` dicts of the 38 trainable tensors
(spec §5).  The authors load them with ``strict=False``, so a file with a missing or misnamed
key would silently run with random prompts (Q16); here every one of the 38 keys must be present
with the expected shape, or loading stops with a one-line error naming the key.

The project format is safetensors (cannot execute code on load, unlike a pickle) with a JSON
metadata header recording what shapes the outputs: method, backbone identity, image size,
prompt length/depth, software version, provenance.  Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from adaptclip_med.version import __version__
from adaptclip_med.errors import AdaptClipError, CheckpointMismatchError, MissingWeightsError
from adaptclip_med.methods.adaclip.constants import PROMPT_DEPTH, PROMPT_LENGTH
from adaptclip_med.methods.adaclip.parts import RELEASE_PREFIX, AdaClipParts, PartDims
from adaptclip_med.model.backbone_source import sha256_of_file
from adaptclip_med.methods.adaclip.releases import ADACLIP_RELEASES, AdaClipRelease

log = logging.getLogger(__name__)

FORMAT_NAME = "adaptclip-med/adaclip"
FORMAT_VERSION = 1
METADATA_KEY = "adaptclip_med"
RELEASE_SOURCE = ("github.com/caoyunkang/AdaCLIP README (download links to Google Drive); "
                  "no stable direct URL and no published checksum")
RELEASE_LICENSE = "MIT"


Release = AdaClipRelease
RELEASES: tuple[AdaClipRelease, ...] = ADACLIP_RELEASES


def release_named(name: str) -> Release | None:
    return next((r for r in RELEASES if r.file_name == name), None)


def looks_like_release_file(path: Path) -> bool:
    return Path(path).suffix in (".pth", ".pt")


def dims_from_release(state: dict[str, torch.Tensor]) -> PartDims:
    """Part dimensions read off a release-layout dict (for importing without a backbone)."""
    try:
        visual = state[RELEASE_PREFIX + "visual_prompter.static_prompts.0"]
        text = state[RELEASE_PREFIX + "text_prompter.static_prompts.0"]
    except KeyError as exc:
        raise CheckpointMismatchError(f"AdaCLIP checkpoint lacks the key {exc.args[0]}: not an AdaCLIP release file") from exc
    return PartDims(vision_width=int(visual.shape[1]), embed_dim=int(text.shape[1]), prompt_length=int(visual.shape[0]))


def read_release_file(path: Path) -> dict[str, torch.Tensor]:
    """torch.load (CPU, weights_only) of a release-layout file -> its flat tensor dict."""
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"AdaCLIP weights '{path}' do not exist: see 'adaptclip-med weights status' for how to obtain them")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise AdaptClipError(f"AdaCLIP weights '{path.name}' cannot be read as a torch file ({exc.__class__.__name__}): check the file") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointMismatchError(f"AdaCLIP weights '{path.name}' are not a flat dict of tensors (the release layout)")
    return state


def strip_release_state(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], source: str) -> dict[str, torch.Tensor]:
    """Checked copy of the 38 tensors without the ``clip_model.`` prefix; refuses any missing or
    wrong-shaped key (the authors' strict=False would run random prompts instead).  Extra keys are
    ignored, as by the authors' loader."""
    result: dict[str, torch.Tensor] = {}
    for key, shape in expected.items():
        full = RELEASE_PREFIX + key
        if full not in state:
            raise CheckpointMismatchError(
                f"AdaCLIP weights '{source}' lack {full} (need all {len(expected)} trainable tensors): pass a complete AdaCLIP checkpoint")
        if tuple(state[full].shape) != shape:
            raise CheckpointMismatchError(
                f"AdaCLIP weights '{source}': {full} has shape {tuple(state[full].shape)}, this backbone needs {shape}: "
                "choose the backbone the weights were trained for (the releases need ViT-L-14-336)")
        result[key] = state[full].detach().float().clone()
    extra = [k for k in state if not (k.startswith(RELEASE_PREFIX) and k[len(RELEASE_PREFIX):] in expected)]
    if extra:
        log.warning("AdaCLIP weights '%s': %d unexpected keys ignored (e.g. %s)", source, len(extra), extra[0])
    return result


def release_provenance(path: Path) -> dict[str, Any]:
    """What is known about a release-layout file: its sha256, and the release its name claims
    (unverifiable: the authors publish no checksums)."""
    path = Path(path)
    release = release_named(path.name)
    return {"source": f"release:{release.file_name}" if release else "release-layout file", "file": path.name,
            "sha256": sha256_of_file(path), "checksum": "not published by the authors",
            "origin": RELEASE_SOURCE if release else None, "license": RELEASE_LICENSE if release else None}


def load_release_into(parts: AdaClipParts, path: Path) -> dict[str, Any]:
    """Load a release-layout file into ``parts`` (all 38 keys checked); returns its provenance."""
    state = strip_release_state(read_release_file(path), parts.expected_shapes(), Path(path).name)
    parts.load_state_dict(state, strict=True)
    return release_provenance(path)


# ---------------------------------------------------------------------- project format
def metadata(parts: AdaClipParts, backbone: dict[str, Any] | None, image_size: int | None,
             provenance: dict[str, Any] | None) -> dict[str, Any]:
    dims = parts.dims
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "method": "adaclip", "backbone": backbone,
            "image_size": image_size, "prompt_length": dims.prompt_length, "prompt_depth": dims.prompt_depth,
            "vision_width": dims.vision_width, "embed_dim": dims.embed_dim, "software_version": __version__,
            "provenance": provenance or {}, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def save_project(parts: AdaClipParts, path: Path, backbone: dict[str, Any] | None, image_size: int | None,
                 provenance: dict[str, Any] | None = None) -> Path:
    """Write the 38 tensors (names without prefix) + metadata atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().float().contiguous() for k, v in parts.state_dict().items()}
    meta = metadata(parts, backbone, image_size, provenance)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_project_metadata(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"AdaCLIP weights '{path}' do not exist: import a release with 'adaptclip-med weights import' or train one")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(METADATA_KEY)
    except Exception as exc:
        raise AdaptClipError(f"AdaCLIP weights '{path.name}' are not a readable safetensors file ({exc.__class__.__name__})") from exc
    data = json.loads(raw) if raw else {}
    if data.get("format") != FORMAT_NAME or data.get("method") != "adaclip":
        raise CheckpointMismatchError(
            f"'{path.name}' is not an AdaCLIP checkpoint of adaptclip-med (format {data.get('format')}, method {data.get('method')}): "
            "pass AdaCLIP weights (.pth release or an imported .safetensors)")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointMismatchError(f"'{path.name}' has AdaCLIP format v{data.get('format_version')}: upgrade adaptclip-med")
    if data.get("prompt_length") != PROMPT_LENGTH or data.get("prompt_depth") != PROMPT_DEPTH:
        raise CheckpointMismatchError(f"'{path.name}' has prompt length/depth {data.get('prompt_length')}/{data.get('prompt_depth')}, "
                                      f"this AdaCLIP uses {PROMPT_LENGTH}/{PROMPT_DEPTH}")
    return data


def load_project_into(parts: AdaClipParts, path: Path) -> dict[str, Any]:
    """Load a project-format file into ``parts`` (all 38 tensors checked); returns its metadata."""
    path = Path(path)
    meta = read_project_metadata(path)
    with safe_open(str(path), framework="pt") as handle:
        state = {RELEASE_PREFIX + key: handle.get_tensor(key) for key in handle.keys()}
    parts.load_state_dict(strip_release_state(state, parts.expected_shapes(), path.name), strict=True)
    return meta


def import_release(source: Path, destination: Path, backbone: dict[str, Any] | None = None,
                   image_size: int | None = None) -> Path:
    """Convert a released ``.pth`` into the project format.  Dimensions come from the file itself;
    ``backbone`` (identity JSON) defaults to the authors' ViT-L-14-336 / OpenAI / GELU for
    ViT-L-sized files, recorded as the intended backbone (not verified at import)."""
    source = Path(source)
    state = read_release_file(source)
    parts = AdaClipParts(dims_from_release(state), seed=None)
    parts.load_state_dict(strip_release_state(state, parts.expected_shapes(), source.name), strict=True)
    if backbone is None and (parts.dims.vision_width, parts.dims.embed_dim) == (1024, 768):
        backbone = {"architecture": "ViT-L-14-336", "weights": "open_clip:openai", "activation": "gelu",
                    "recorded_as": "intended by the release (not verified at import)"}
    return save_project(parts, destination, backbone, image_size, release_provenance(source))
