"""The tiny random CLIP models every test runs on (no downloads): their settings, and weight
files saved the way users' weights are (loaded back through the real weights path)."""

from __future__ import annotations

from pathlib import Path

import torch

#: AdaptCLIP's tiny test backbone (packaged open_clip config) and its input size.
TINY = "adaptclip-tiny-vit"
TINY_SIZE = 56
#: The tiny AdaptCLIP model in the flat vocabulary of the bundle configs and the node's
#: ``[scoring]`` table: random seed-0 backbone, untrained adapters, offline.
TINY_MODEL = {"backbone": TINY, "backbone_weights": "random:0", "adapters": None, "image_size": TINY_SIZE,
              "offline": True}
#: The tiny model with the brain window and batches of 8 slices (batch, node, dashboard tests).
TINY_OPTIONS = {**TINY_MODEL, "window": "brain", "batch_size": 8}


def tiny_spec():
    """The tiny AdaptCLIP model as its one record (what :data:`TINY_MODEL` and the bundle config's
    ``method_spec`` build)."""
    from adaptclip_med.volume.options import method_spec_from_flat

    return method_spec_from_flat(TINY_MODEL)


def tiny_options(window: str = "brain", batch_size: int | None = 8):
    """Scoring options of the tiny model (``batch_size`` None: the slicing options' default)."""
    from adaptclip_med.volume.options import ScoringOptions, SlicingOptions

    slicing = SlicingOptions(window=window) if batch_size is None else SlicingOptions(window=window, batch_size=batch_size)
    return ScoringOptions(model=tiny_spec(), slicing=slicing)


def random_clip_state(architecture: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of a registered open_clip architecture (packaged configs included) with
    random weights drawn from ``seed``."""
    import open_clip

    from adaptclip_med.model.backbone_source import ensure_packaged_configs_registered

    ensure_packaged_configs_registered()
    torch.manual_seed(seed)
    return open_clip.create_model(architecture, pretrained=None, load_weights=False).state_dict()


def save_random_clip(architecture: str, path: Path, seed: int = 0) -> Path:
    """A registered open_clip architecture with random weights saved as a state dict file (the
    tiny test backbones of AdaCLIP and WinCLIP, loaded back through the real weights path)."""
    torch.save(random_clip_state(architecture, seed), path)
    return path


def save_tiny_weights(path: Path, seed: int = 0, fp16: bool = False, openai_keys: bool = False) -> Path:
    """The tiny AdaptCLIP backbone as a weights file (optionally fp16 and with the OpenAI
    layout's extra keys)."""
    state = {k: (v.half() if fp16 and v.is_floating_point() else v) for k, v in random_clip_state(TINY, seed).items()}
    if openai_keys:
        state.update(input_resolution=torch.tensor(56), context_length=torch.tensor(77), vocab_size=torch.tensor(49408))
    torch.save(state, path)
    return path


def randomise_adapter_state(model, seed: int = 3) -> None:
    """Give every adapter parameter and BN buffer distinct values so layout mistakes show up."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in model.adapter_modules().items():
            for key, tensor in module.state_dict().items():
                if key.endswith("num_batches_tracked") or key in ("prefix", "suffix", "token_ids"):
                    continue
                noise = torch.randn(tensor.shape, generator=generator) * 0.1
                if key.endswith("running_var"):
                    tensor.copy_(1.0 + noise.abs())
                elif key.endswith("weight") and tensor.ndim == 1:
                    tensor.copy_(1.0 + noise)
                else:
                    tensor.copy_(noise * (3.0 if tensor.ndim > 1 else 1.0))
    model.textual.invalidate_cache()


def save_random_adaptclip_adapters(backbone_file: Path, path: Path, seed: int = 3) -> Path:
    """Adapters of the tiny AdaptCLIP with random values (non-trivial BN statistics) saved as the
    project's .safetensors, for the CLI's ``--adapters``."""
    from adaptclip_med.model.backbone_source import BackboneSpec
    from adaptclip_med.methods.adaptclip.checkpoints import build_model, save_adapters

    loaded = build_model(BackboneSpec(TINY, str(backbone_file), offline=True), None, TINY_SIZE)
    randomise_adapter_state(loaded.model, seed)
    save_adapters(loaded.model, path)
    return path


def save_random_adaclip_release(method, path: Path, seed: int = 9) -> Path:
    """AdaCLIP prompt weights in the authors' release layout (a flat .pth of tensors) with random
    values shaped for ``method``'s network, as ``--adapters FILE.pth`` reads them."""
    generator = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=generator) * 0.3 for k, v in method.network.parts.release_state_dict().items()}
    torch.save(state, path)
    return path


def save_random_adaclip_weights(backbone_file: Path, path: Path, image_size: int = TINY_SIZE, seed: int = 9) -> Path:
    """:func:`save_random_adaclip_release` for the tiny AdaCLIP backbone saved in ``backbone_file``."""
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.methods.registry import load_method
    from adaptclip_med.model.backbone_source import BackboneSpec

    method = load_method(MethodSpec(method="adaclip", backbone=BackboneSpec("adaclip-tiny-vit", str(backbone_file), offline=True),
                                    image_size=image_size))
    return save_random_adaclip_release(method, path, seed)
