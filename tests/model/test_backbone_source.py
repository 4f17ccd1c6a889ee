"""Weights resolution: activation choice, OpenAI-layout files, offline errors."""

from __future__ import annotations

import pytest
import torch

from adaptclip_med.errors import MissingWeightsError
from adaptclip_med.model.build import build_backbone
from adaptclip_med.model.backbone_source import BackboneSpec, read_state_dict, resolve_activation, resolve_architecture
from tests.support.tiny_models import TINY, save_tiny_weights


@pytest.mark.parametrize("name,weights,hint,expected", [
    ("ViT-L-14-336", "openai", False, "quickgelu"),
    ("ViT-L-14-336", "/x/ViT-L-14-336px.pt", False, "quickgelu"),   # only OpenAI weights exist for it
    ("ViT-L-14", "/x/weights.pt", False, "gelu"),
    ("ViT-L-14", "/x/weights.pt", True, "quickgelu"),                 # file looked like OpenAI's
    ("ViT-L-14-quickgelu", "/x/weights.pt", False, "quickgelu"),
    ("ViT-B-16-plus-240", "laion400m_e31", False, "gelu"),
])
def test_activation_resolution(name, weights, hint, expected):
    _, config = resolve_architecture(name)
    assert resolve_activation(name, config, weights, "auto", hint) == expected


def test_explicit_activation_wins():
    _, config = resolve_architecture("ViT-L-14-336")
    assert resolve_activation("ViT-L-14-336", config, "openai", "gelu") == "gelu"


def test_openai_layout_file_loads_as_fp32_with_same_features(tmp_path, tiny_weights):
    openai_file = save_tiny_weights(tmp_path / "openai_layout.pt", fp16=True, openai_keys=True)
    state, hint = read_state_dict(openai_file)
    assert hint and all(v.dtype != torch.float16 for v in state.values()) and "input_resolution" not in state
    a = build_backbone(BackboneSpec(TINY, str(openai_file)))
    b = build_backbone(BackboneSpec(TINY, str(tiny_weights)))
    assert a.identity.activation == "quickgelu" and a.clip.visual.proj.dtype == torch.float32
    x = torch.randn(1, 3, 56, 56)
    # fp16 storage rounds the weights: features agree to fp16 precision
    torch.testing.assert_close(a.encode_image(x).global_token, b.encode_image(x).global_token, atol=5e-2, rtol=5e-2)


def test_torchscript_archive_is_read(tmp_path, tiny_weights):
    state = torch.load(tiny_weights, weights_only=True)

    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for i, (k, v) in enumerate(state.items()):
                self.register_buffer(f"b{i}", v)

    scripted = torch.jit.script(Holder())
    path = tmp_path / "scripted.pt"
    scripted.save(str(path))
    loaded, hint = read_state_dict(path)
    assert hint and len(loaded) == len(state)


def test_uncached_tag_offline_says_what_to_do():
    with pytest.raises(MissingWeightsError, match="weights fetch"):
        build_backbone(BackboneSpec("ViT-B-16-plus-240", "laion400m_e31", offline=True))


def test_without_network_the_missing_weights_line_comes_at_once(monkeypatch, tmp_path):
    """No --offline and no network: one quick probe, then the one-line error (no download attempt)."""
    import socket
    import time

    from adaptclip_med.model import backbone_source

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for key in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HF_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(backbone_source, "_HUB_REACHABLE", {})
    probes = []

    def unreachable(address, timeout=None):
        probes.append((address, timeout))
        raise OSError("Network is unreachable")

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted although the hub is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(backbone_source.open_clip, "download_pretrained", no_download)
    started = time.time()
    for _ in range(2):
        with pytest.raises(MissingWeightsError, match="cannot be reached"):
            backbone_source.pretrained_weights_file("ViT-B-16", "openai", cache_dir=str(tmp_path))
    assert time.time() - started < 5 and probes == [(("huggingface.co", 443), 2.0)]
