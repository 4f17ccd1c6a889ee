"""``network_def``: one image tensor in, one anomaly map out, as MONAI's tools expect."""

from __future__ import annotations

import numpy as np
import torch
from bundle_helpers import CONFIGS, IMAGE_SIZE, TINY, config

from tests.support.tiny_models import tiny_spec

from adaptclip_med.bundle_support import AdaptCLIPMapNetwork
from adaptclip_med.preprocess import slices_to_model_input


def test_verify_net_in_out_with_the_demo_override():
    from monai.bundle import verify_net_in_out

    verify_net_in_out(net_id="network_def", meta_file=str(CONFIGS / "metadata.json"),
                      config_file=config("inference", "demo"), device="cpu", image_size=IMAGE_SIZE)


def test_the_config_builds_the_method_spec_from_its_keys():
    """``method_spec`` is the package's one model record, built from the same keys users override."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(config("inference"))
    parser.update({**TINY, "device": "$torch.device('cpu')"})
    assert parser.get_parsed_content("method_spec") == tiny_spec()
    parser.update({"method": "winclip", "backbone": None, "class_name": "brain", "adapters": "w.pt"})
    spec = parser.get_parsed_content("method_spec", lazy=False)
    assert (spec.method, spec.class_name, spec.weights, spec.backbone.architecture) == ("winclip", "brain", "w.pt", "")


def test_grey_slices_give_the_scorers_map_at_the_input_size():
    network = AdaptCLIPMapNetwork(tiny_spec()).eval()
    generator = torch.Generator().manual_seed(0)
    slices = torch.rand(2, 1, 40, 72, generator=generator)
    with torch.no_grad():
        out = network(slices)
    assert out.shape == (2, 1, 40, 72) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    # The same conversion the volume scorer applies, then the model's own fused map.
    expected = network.method.predict(slices_to_model_input(slices[:, 0].numpy(), IMAGE_SIZE)).anomaly_map
    resized = torch.nn.functional.interpolate(expected.unsqueeze(1), size=(40, 72), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(out.numpy(), resized.numpy(), atol=1e-6)


def test_rgb_input_and_few_shot_memory_change_the_map():
    network = AdaptCLIPMapNetwork(tiny_spec()).eval()
    generator = torch.Generator().manual_seed(1)
    query = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    references = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    from adaptclip_med.preprocess import normalise

    with torch.no_grad():
        zero_shot = network(query)
        memory = network.method.encode_normals(normalise(references))
        few_shot = network(query, memory)
    assert zero_shot.shape == few_shot.shape == (1, 1, IMAGE_SIZE, IMAGE_SIZE)
    assert not torch.allclose(zero_shot, few_shot)


def test_state_dict_is_exactly_the_methods_trainable_tensors(tmp_path):
    """What CheckpointLoader loads: the adapters (no frozen backbone), under ``weights.``."""
    network = AdaptCLIPMapNetwork(tiny_spec())
    adapters = network.method.model.adapter_state_dict()
    assert network.state_dict().keys() == {f"weights.{key}" for key in adapters}
    assert all(p.requires_grad is not None for p in network.parameters())
    saved = network.save_checkpoint(tmp_path / "model.pt")
    assert torch.load(saved, weights_only=True).keys() == network.state_dict().keys()
