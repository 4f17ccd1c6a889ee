"""Import (and export) the authors' released adapter checkpoints (spec §7).

The release is a torch pickle ``{textual_learner, visual_learner, pq_learner}`` of state dicts
with the authors' key names (``local_adater`` sic, ``sharebn``, four copies of the shared PQA
heads).  Those names live only in this module; everywhere else the project's own names are used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from adaptclip_med.errors import AdaptClipError, CheckpointMismatchError, ChecksumError
from adaptclip_med.model.backbone_source import sha256_of_file
from adaptclip_med.model.known_weights import RELEASE_FILES, RELEASE_REPO

log = logging.getLogger(__name__)

RELEASE_LICENSE = "GPL-2.0"
RELEASE_BYTES = 7_520_074
#: The release's fixed settings.  Its tapped layers (6/12/18/24) and value-stream start (6) are the
#: backbone defaults for a 24-block ViT, so they are not repeated here.
RELEASE_SETTINGS = {"prompt_length": 12, "reduction": 4, "pq_context": True, "image_size": 518}

_TOP_KEYS = ("textual_learner", "visual_learner", "pq_learner")
_PIXEL_HEAD_INDICES = (0, 1, 3, 4, 5, 7, 8)
_IMAGE_HEAD_INDICES = (0, 1, 3, 4, 6)


@dataclass(frozen=True)
class ReleaseProvenance:
    path_name: str
    sha256: str
    release: str | None  # "mvtec" / "visa" when the file is a verified release, else None


def looks_like_release_file(path: Path) -> bool:
    return path.suffix in (".pth", ".pt")


def identify_release(path: Path) -> ReleaseProvenance:
    """Hash the file; if it claims to be one of the two releases (by its path or exact size) the
    hash must match the published one, otherwise a corrupted/partial download would pass silently."""
    sha = sha256_of_file(path)
    by_hash = {digest: name for name, digest in RELEASE_FILES.values()}
    if sha in by_hash:
        return ReleaseProvenance(path.name, sha, by_hash[sha])
    posix = path.as_posix()
    claimed = [name for rel, (name, _) in RELEASE_FILES.items() if posix.endswith(rel)]
    if claimed or path.stat().st_size == RELEASE_BYTES:
        which = claimed[0] if claimed else "AdaptCLIP"
        raise ChecksumError(
            f"'{path.name}' looks like the released {which} checkpoint but its sha256 {sha[:12]}... does not match the published "
            f"one: download it again from the Hugging Face repo {RELEASE_REPO}")
    return ReleaseProvenance(path.name, sha, None)


def read_release_file(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise AdaptClipError(f"adapter checkpoint '{path.name}' cannot be read as a torch file ({exc.__class__.__name__}): check the file") from exc
    if not isinstance(checkpoint, dict) or not all(k in checkpoint for k in _TOP_KEYS):
        raise CheckpointMismatchError(
            f"adapter checkpoint '{path.name}' is not in the AdaptCLIP release layout (expected keys {', '.join(_TOP_KEYS)}): "
            "pass a released epoch_15.pth or a project .safetensors checkpoint")
    return checkpoint


def _last_copy(state: dict[str, torch.Tensor], prefix: str, indices: tuple[int, ...], copies: int) -> dict[str, torch.Tensor]:
    """The release stores the shared head once per layer; loading them into one module in key order
    leaves the LAST copy in place, so that is the one used (they are identical in the releases)."""
    result: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.startswith(prefix + "."):
            continue
        copy_index, rest = key[len(prefix) + 1:].split(".", 1)
        if int(copy_index) == copies - 1:
            result[rest] = value
        elif not torch.equal(value, state[f"{prefix}.{copies - 1}.{rest}"]):
            log.warning("release checkpoint: %s.%s differs between layer copies; using the last copy like the release", prefix, rest)
    if {int(k.split(".")[0]) for k in result} != set(indices):
        raise CheckpointMismatchError(f"release checkpoint: unexpected layout of '{prefix}' (module indices {sorted({k.split('.')[0] for k in result})})")
    return result


def convert_release_state(checkpoint: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Map release keys onto the project's adapter state-dict keys (see AdaptCLIP.adapter_state_dict)."""
    ta, va, pq = (checkpoint[k] for k in _TOP_KEYS)
    state: dict[str, torch.Tensor] = {}
    try:
        state["textual.ctx_normal"] = ta["ctx_pos"].reshape(-1, ta["ctx_pos"].shape[-1])
        state["textual.ctx_abnormal"] = ta["ctx_neg"].reshape(-1, ta["ctx_neg"].shape[-1])
        width = ta["ctx_pos"].shape[-1]
        state["textual.prefix"] = torch.cat([ta["token_prefix_pos"].reshape(1, -1, width), ta["token_prefix_neg"].reshape(1, -1, width)])
        state["textual.suffix"] = torch.cat([ta["token_suffix_pos"].reshape(1, -1, width), ta["token_suffix_neg"].reshape(1, -1, width)])
        state["textual.token_ids"] = torch.cat([ta["tokenized_prompts_pos"].reshape(1, -1), ta["tokenized_prompts_neg"].reshape(1, -1)]).to(torch.int32)
    except KeyError as exc:
        raise CheckpointMismatchError(f"release checkpoint: textual adapter key {exc} is missing") from exc
    for release_name, own_name in (("local_adater", "local_adapter"), ("global_adapter", "global_adapter")):
        prefix = f"{release_name}.fc."
        entries = {k[len(prefix):]: v for k, v in va.items() if k.startswith(prefix)}
        if not entries:
            raise CheckpointMismatchError(f"release checkpoint: visual adapter '{release_name}' is missing")
        for key, value in entries.items():
            state[f"visual.{own_name}.net.{key}"] = value
    layers = sorted({int(k.split(".")[1]) for k in pq if k.startswith("sharebn.")})
    for key, value in pq.items():
        if key.startswith("sharebn."):
            state["prompt_query.layer_norms." + key[len("sharebn."):]] = value
    for key, value in _last_copy(pq, "local_adapter", _PIXEL_HEAD_INDICES, len(layers)).items():
        state[f"prompt_query.pixel_head.{key}"] = value
    for key, value in _last_copy(pq, "global_adapter", _IMAGE_HEAD_INDICES, len(layers)).items():
        state[f"prompt_query.image_head.{key}"] = value
    return {k: v.clone() for k, v in state.items()}


def release_embed_dim(checkpoint: dict[str, dict[str, torch.Tensor]]) -> int:
    return int(checkpoint["visual_learner"]["global_adapter.fc.0.weight"].shape[1])


def release_text_width(checkpoint: dict[str, dict[str, torch.Tensor]]) -> int:
    return int(checkpoint["textual_learner"]["ctx_pos"].shape[-1])


def release_prompt_length(checkpoint: dict[str, dict[str, torch.Tensor]]) -> int:
    return int(checkpoint["textual_learner"]["ctx_pos"].shape[-2])


def export_release_state(adapter_state: dict[str, torch.Tensor], num_layers: int = 4) -> dict[str, dict[str, torch.Tensor]]:
    """Inverse of :func:`convert_release_state`: the project's adapters in the release layout
    (for use with the authors' code, and to test the importer)."""
    width = adapter_state["textual.ctx_normal"].shape[-1]
    ta = {
        "ctx_pos": adapter_state["textual.ctx_normal"].reshape(1, 1, -1, width).clone(),
        "ctx_neg": adapter_state["textual.ctx_abnormal"].reshape(1, 1, -1, width).clone(),
        "token_prefix_pos": adapter_state["textual.prefix"][0].reshape(1, 1, -1, width).clone(),
        "token_suffix_pos": adapter_state["textual.suffix"][0].reshape(1, 1, -1, width).clone(),
        "token_prefix_neg": adapter_state["textual.prefix"][1].reshape(1, 1, -1, width).clone(),
        "token_suffix_neg": adapter_state["textual.suffix"][1].reshape(1, 1, -1, width).clone(),
        "tokenized_prompts_pos": adapter_state["textual.token_ids"][0].reshape(1, 1, -1).to(torch.int32).clone(),
        "tokenized_prompts_neg": adapter_state["textual.token_ids"][1].reshape(1, 1, -1).to(torch.int32).clone(),
    }
    va: dict[str, torch.Tensor] = {}
    for own_name, release_name in (("local_adapter", "local_adater"), ("global_adapter", "global_adapter")):
        prefix = f"visual.{own_name}.net."
        for key, value in adapter_state.items():
            if key.startswith(prefix):
                va[f"{release_name}.fc.{key[len(prefix):]}"] = value.clone()
    pq: dict[str, torch.Tensor] = {}
    for key, value in adapter_state.items():
        if key.startswith("prompt_query.layer_norms."):
            pq["sharebn." + key[len("prompt_query.layer_norms."):]] = value.clone()
    for own, release in (("pixel_head", "local_adapter"), ("image_head", "global_adapter")):
        prefix = f"prompt_query.{own}."
        for layer in range(num_layers):
            for key, value in adapter_state.items():
                if key.startswith(prefix):
                    pq[f"{release}.{layer}.{key[len(prefix):]}"] = value
    return {"textual_learner": ta, "visual_learner": va, "pq_learner": pq}
