"""Project checkpoint format, release import/export, checksums and mismatch errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adaptclip_med.errors import CheckpointMismatchError, ChecksumError
from adaptclip_med.methods.adaptclip import release_import
from adaptclip_med.methods.adaptclip.adapters import PromptQueryAdapter, TextualAdapter, VisualAdapter
from adaptclip_med.methods.adaptclip.checkpoints import build_model, read_metadata, save_adapters

LAYOUT = json.loads((Path(__file__).parent / "release_layout.json").read_text())


def _predict_all(model, images):
    memory = model.encode_references(images[3:5])
    return model.predict(images[:3]), model.predict(images[:3], memory)


def test_own_format_round_trip_is_identical(tiny_model, tiny_spec, images, tmp_path):
    path = save_adapters(tiny_model, tmp_path / "adapters.safetensors", {"source": "test"})
    meta = read_metadata(path)
    assert meta.backbone["architecture"] == "adaptclip-tiny-vit" and meta.backbone["activation"] == "quickgelu"
    assert meta.tap_layers == [2, 4, 6, 8] and meta.image_size == 56 and meta.prompt_length == 12
    assert meta.backbone["weights_sha256"] and meta.provenance == {"source": "test"}
    loaded = build_model(tiny_spec, path).model
    assert loaded.backbone._static_text is not None  # reused from the checkpoint, not recomputed
    torch.testing.assert_close(loaded.backbone._static_text, tiny_model.backbone.static_text_features())
    for a, b in zip(_predict_all(tiny_model, images), _predict_all(loaded, images)):
        torch.testing.assert_close(a.anomaly_map, b.anomaly_map, atol=0, rtol=0)
        torch.testing.assert_close(a.score, b.score, atol=0, rtol=0)


def test_release_layout_at_vit_l_sizes_matches_the_published_keys():
    """Build adapters at D=768 and export them: every key, shape and dtype of the release."""
    state: dict[str, torch.Tensor] = {}
    for prefix, module in (("textual", TextualAdapter(768, 77, 12)), ("visual", VisualAdapter(768)),
                           ("prompt_query", PromptQueryAdapter(768))):
        state.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})
    exported = release_import.export_release_state(state)
    for group in ("textual_learner", "visual_learner", "pq_learner"):
        want = {key: (shape, dtype) for key, shape, dtype in LAYOUT[group]}
        got = {key: (list(t.shape), str(t.dtype).replace("torch.", "")) for key, t in exported[group].items()}
        assert got == want, group
    assert sum(v.numel() for v in exported["textual_learner"].values() if v.is_floating_point()) - 2 * 65 * 768 == 18_432


def test_release_import_reproduces_project_outputs(tiny_model, tiny_spec, images, tmp_path):
    """A state dict laid out like the release gives the same outputs as the project-format model."""
    path = tmp_path / "epoch_15.pth"
    torch.save(release_import.export_release_state(tiny_model.adapter_state_dict()), path)
    loaded = build_model(tiny_spec, path, image_size=56)
    assert loaded.provenance["source"] == "release-layout file" and loaded.provenance["sha256"]
    assert loaded.model.config.prompt_length == 12 and loaded.model.backbone.tap_layers == (2, 4, 6, 8)
    for a, b in zip(_predict_all(tiny_model, images), _predict_all(loaded.model, images)):
        torch.testing.assert_close(a.anomaly_map, b.anomaly_map, atol=1e-6, rtol=0)
        torch.testing.assert_close(a.score, b.score, atol=1e-6, rtol=0)


def test_release_shaped_file_with_wrong_checksum_is_refused(tiny_model, tiny_spec, tmp_path):
    folder = tmp_path / "adaptclip_checkpoints" / "12_4_128_train_on_mvtec_3adapters_batch8"
    folder.mkdir(parents=True)
    path = folder / "epoch_15.pth"
    torch.save(release_import.export_release_state(tiny_model.adapter_state_dict()), path)
    with pytest.raises(ChecksumError, match="sha256"):
        build_model(tiny_spec, path)


def test_checkpoint_for_another_backbone_is_refused(tiny_model, tmp_path):
    from adaptclip_med.model.backbone_source import BackboneSpec

    other = tmp_path / "other-tiny.json"
    config = json.loads((Path(__file__).parents[2] / "adaptclip_med/model/configs/adaptclip-tiny-vit.json").read_text())
    config["embed_dim"] = 32
    other.write_text(json.dumps(config))
    path = save_adapters(tiny_model, tmp_path / "a.safetensors")
    with pytest.raises(CheckpointMismatchError, match="embedding dim 64"):
        build_model(BackboneSpec(str(other), "random:0"), path)
    torch.save(release_import.export_release_state(tiny_model.adapter_state_dict()), tmp_path / "r.pth")
    with pytest.raises(CheckpointMismatchError, match="embedding dim 64"):
        build_model(BackboneSpec(str(other), "random:0"), tmp_path / "r.pth")
