"""Where a CLIP backbone comes from: architecture, weights and activation.

Backbone identity = (architecture config, weights source, activation).  All three change the
features, so all three are recorded in every checkpoint and result.  The activation is resolved
here explicitly because OpenAI CLIP weights were trained with QuickGELU while open_clip's plain
model names (``ViT-L-14-336``) build GELU: loading OpenAI weights into them silently changes the
features, and the state-dict keys cannot tell the two apart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch

from adaptclip_med.errors import AdaptClipError, MissingWeightsError

log = logging.getLogger(__name__)

PACKAGED_CONFIG_DIR = Path(__file__).parent / "configs"
#: The tiny random-initialised architecture used by the demo and the tests (no diagnostic value).
TINY_ARCHITECTURE = "adaptclip-tiny-vit"
#: Weights spec for a deterministic random initialisation: ``random`` or ``random:SEED``.
RANDOM_WEIGHTS_PREFIX = "random"
QUICKGELU_SUFFIX = "-quickgelu"
ACTIVATIONS = ("auto", "quickgelu", "gelu")

_OPENAI_ONLY_KEYS = ("input_resolution", "context_length", "vocab_size")


@dataclass(frozen=True)
class BackboneSpec:
    """What the user asked for: ``architecture`` (open_clip name or model-config JSON path),
    ``weights`` (open_clip pretrained tag, local file, ``random[:SEED]`` or None) and the
    activation (``auto`` resolves it, see :func:`resolve_activation`)."""

    architecture: str
    weights: str | None
    activation: str = "auto"
    cache_dir: str | None = None
    offline: bool = False


@dataclass(frozen=True)
class BackboneIdentity:
    """Resolved, recordable identity of a backbone (goes into checkpoints and study reports)."""

    architecture: str
    model_config: dict[str, Any]
    weights: str
    weights_sha256: str | None
    activation: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def short(self) -> str:
        return f"{self.architecture} [{self.weights}, {self.activation}]"


def ensure_packaged_configs_registered() -> None:
    """Make the configs shipped with the package (the tiny demo architecture) known to open_clip."""
    if TINY_ARCHITECTURE not in open_clip.list_models():
        open_clip.add_model_config(PACKAGED_CONFIG_DIR)


def resolve_architecture(name_or_config: str) -> tuple[str, dict[str, Any]]:
    """Return the open_clip model name and its config for a name or a model-config JSON path."""
    ensure_packaged_configs_registered()
    candidate = Path(name_or_config)
    if candidate.suffix == ".json":
        if not candidate.is_file():
            raise AdaptClipError(f"backbone config '{name_or_config}' does not exist: pass an open_clip model name or an existing model-config JSON file")
        try:
            json.loads(candidate.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise AdaptClipError(f"backbone config '{name_or_config}' is not valid JSON ({exc.__class__.__name__}): fix the file") from exc
        open_clip.add_model_config(candidate)
        name = candidate.stem
    else:
        name = name_or_config
    config = open_clip.get_model_config(name)
    if config is None:
        vits = [m for m in open_clip.list_models() if m.startswith("ViT-L-14") or m.startswith("ViT-B-16")]
        raise AdaptClipError(
            f"unknown backbone '{name_or_config}': use an open_clip ViT name (e.g. {', '.join(vits[:4])}) or a model-config JSON path"
        )
    if "vision_cfg" not in config or config["vision_cfg"].get("timm_model_name") or isinstance(config["vision_cfg"].get("layers"), (list, tuple)):
        raise AdaptClipError(f"backbone '{name}' is not a plain open_clip ViT CLIP (AdaptCLIP needs the ViT vision tower): choose e.g. ViT-L-14-336")
    return name, config


def is_random_weights(weights: str | None) -> bool:
    return weights is None or weights == RANDOM_WEIGHTS_PREFIX or weights.startswith(RANDOM_WEIGHTS_PREFIX + ":")


def random_seed(weights: str | None) -> int:
    if weights and ":" in weights:
        try:
            return int(weights.split(":", 1)[1])
        except ValueError as exc:
            raise AdaptClipError(f"weights '{weights}': the seed after 'random:' must be an integer") from exc
    return 0


def is_local_file(weights: str | None) -> bool:
    return bool(weights) and not is_random_weights(weights) and (os.sep in weights or Path(weights).suffix != "" or Path(weights).exists())


@dataclass(frozen=True)
class ActivationChoice:
    """The activation chosen for a load and why (printed once per load); ``certain`` is False when
    ``auto`` had to assume (a local file whose origin nothing tells), which is printed as a warning."""

    activation: str
    reason: str
    certain: bool = True


def choose_activation(name: str, config: dict[str, Any], weights: str | None, requested: str = "auto",
                      openai_layout_hint: bool = False) -> ActivationChoice:
    """Choose QuickGELU or GELU, with the reason.

    ``auto``: QuickGELU when the name or config says so, when the tag is ``openai``, when a local
    file has the original OpenAI layout (a TorchScript archive or OpenAI-only keys), or when the
    architecture's only published weights are OpenAI's (e.g. ``ViT-L-14-336``: any local file for
    it is OpenAI-derived).  GELU when every published weight of the architecture is non-OpenAI
    (e.g. ``ViT-B-16-plus-240``: LAION only).  Otherwise the config's own activation.  Half
    precision storage is NOT evidence: LAION and fine-tuned open_clip weights are often saved in
    fp16 too, and running their GELU as QuickGELU moves every output.
    """
    if requested not in ACTIVATIONS:
        raise AdaptClipError(f"activation '{requested}' is not one of {', '.join(ACTIVATIONS)}")
    if requested != "auto":
        return ActivationChoice(requested, f"{requested} was asked for (--backbone-activation, or the method's own rule)")
    if name.endswith(QUICKGELU_SUFFIX) or config.get("quick_gelu", False):
        return ActivationChoice("quickgelu", f"the {name} config says QuickGELU")
    if weights == "openai":
        return ActivationChoice("quickgelu", "OpenAI weights (trained with QuickGELU)")
    if not is_local_file(weights):
        return ActivationChoice("gelu", f"the {name} config says GELU")
    if openai_layout_hint:
        return ActivationChoice("quickgelu", "the weights file has the original OpenAI layout")
    tags = open_clip.list_pretrained_tags_by_model(name)
    if tags == ["openai"]:
        return ActivationChoice("quickgelu", f"{name}'s only published weights are OpenAI's")
    if tags and "openai" not in tags:
        return ActivationChoice("gelu", f"{name}'s published weights are all non-OpenAI ({', '.join(tags)})")
    return ActivationChoice("gelu", f"local weights for {name}: assuming the config's GELU; if these are OpenAI CLIP "
                                    f"weights use '{name}{QUICKGELU_SUFFIX}' or --backbone-activation quickgelu",
                            certain=False)


def resolve_activation(name: str, config: dict[str, Any], weights: str | None, requested: str = "auto",
                       openai_layout_hint: bool = False) -> str:
    """The activation only (see :func:`choose_activation` for the rule and the reason)."""
    return choose_activation(name, config, weights, requested, openai_layout_hint).activation


def sha256_of_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _cached_pretrained_file(name: str, tag: str, cache_dir: str | None) -> Path | None:
    """The already-downloaded file for an open_clip (name, tag), without touching the network."""
    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        return None
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = os.path.split(hub)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for fname in names:
            found = try_to_load_from_cache(repo_id, fname, cache_dir=cache_dir)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    url = cfg.get("url", "")
    if url:
        root = Path(cache_dir) if cache_dir else Path(os.path.expanduser("~/.cache/clip"))
        candidate = root / os.path.basename(url)
        if candidate.is_file():
            return candidate
    return None


_HUB_REACHABLE: dict[str, bool] = {}


def hub_reachable(timeout: float = 2.0) -> bool:
    """One quick TCP probe of the Hugging Face hub (port 443, ``timeout`` seconds), cached per
    process: without a network, the hub client's retries cost minutes and dozens of duplicated
    warnings before the same conclusion.  Behind a proxy (``HTTPS_PROXY``) the client's own
    attempt is trusted instead."""
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    if host not in _HUB_REACHABLE:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            _HUB_REACHABLE[host] = True
        except OSError:
            _HUB_REACHABLE[host] = False
    return _HUB_REACHABLE[host]


def pretrained_weights_file(name: str, tag: str, cache_dir: str | None = None, offline: bool = False) -> Path:
    """Path of the weights for an open_clip pretrained tag: from the hub cache, else downloaded.

    Offline (or when the download fails) the error says exactly what is missing and how to
    provide it, instead of a network stack trace.
    """
    base_name = name[: -len(QUICKGELU_SUFFIX)] if name.endswith(QUICKGELU_SUFFIX) else name
    tags = set(open_clip.list_pretrained_tags_by_model(name)) | set(open_clip.list_pretrained_tags_by_model(base_name))
    if tag not in tags:
        known = ", ".join(sorted(tags)) or "none"
        raise AdaptClipError(f"'{tag}' is neither a local file nor an open_clip pretrained tag of {name} (tags: {known})")
    lookup = name if open_clip.get_pretrained_cfg(name, tag) else base_name
    cached = _cached_pretrained_file(lookup, tag, cache_dir)
    if cached is not None:
        return cached
    hint = (f"run 'adaptclip-med weights fetch --backbone {name} --backbone-weights {tag}' on a machine with internet "
            f"(or copy the hub cache), or pass --backbone-weights /path/to/the/weights/file")
    if offline or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise MissingWeightsError(f"backbone weights {name}/{tag} are not in the local cache and downloads are off: {hint}")
    if not hub_reachable():
        raise MissingWeightsError(f"backbone weights {name}/{tag} are not in the local cache and the download server "
                                  f"cannot be reached (no network?): {hint}; add --offline to skip this check")
    try:
        target = open_clip.download_pretrained(open_clip.get_pretrained_cfg(lookup, tag), cache_dir=cache_dir)
    except Exception as exc:  # network libraries raise many types; all mean the same to the user
        raise MissingWeightsError(f"backbone weights {name}/{tag} could not be downloaded ({exc.__class__.__name__}): {hint}") from exc
    if not target or not Path(target).is_file():
        raise MissingWeightsError(f"backbone weights {name}/{tag} could not be downloaded: {hint}")
    return Path(target)


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], bool]:
    """Read CLIP weights in open_clip or original OpenAI layout (TorchScript archive or state dict).

    Returns the fp32 state dict and whether the file carried OpenAI-only hints (a TorchScript
    archive or OpenAI-only keys), used to resolve the activation.  fp16 storage is not such a
    hint: open_clip's own (GELU) checkpoints are commonly saved in half precision too.
    """
    if not path.is_file():
        raise MissingWeightsError(f"backbone weights file '{path}' does not exist: pass an existing file or an open_clip pretrained tag")
    openai_hint = False
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        checkpoint: Any = load_file(str(path), device="cpu")
    else:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            try:
                checkpoint = torch.jit.load(str(path), map_location="cpu").state_dict()
                openai_hint = True
            except Exception as exc:
                raise AdaptClipError(f"backbone weights file '{path.name}' is neither a state dict nor a TorchScript CLIP archive: check the file") from exc
    if isinstance(checkpoint, torch.jit.ScriptModule):  # torch.load may dispatch to jit.load itself
        checkpoint = checkpoint.state_dict()
        openai_hint = True
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint and isinstance(checkpoint["state_dict"], dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise AdaptClipError(f"backbone weights file '{path.name}' holds no state dict")
    state: dict[str, torch.Tensor] = {}
    for key, value in checkpoint.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key in _OPENAI_ONLY_KEYS:
            openai_hint = True
            continue
        if not isinstance(value, torch.Tensor):
            continue
        state[key] = value.float() if value.is_floating_point() else value
    return state, openai_hint
