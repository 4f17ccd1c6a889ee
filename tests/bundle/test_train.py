"""``configs/train.json``: the project trainer on a tiny synthetic auxiliary set publishes adapters
that ``configs/inference.json`` then loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from bundle_helpers import IMAGE_SIZE, TINY, config
from PIL import Image

from adaptclip_med.model.backbone_source import sha256_of_file

from tests.support.phantoms import write_nifti_study
from tests.support.tiny_models import tiny_spec


def write_mvtec_like(root, seed=0, size=IMAGE_SIZE):
    """Grey textures; anomalies are bright squares with masks (MVTec AD folder layout)."""
    rng = np.random.default_rng(seed)

    def texture():
        return rng.normal(120, 10, (size, size)).clip(0, 255)

    for split in ("train/good", "test/good"):
        (root / "widget" / split).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(texture().astype(np.uint8)).convert("RGB").save(root / "widget" / split / f"{i:03d}.png")
    (root / "widget" / "test" / "bright").mkdir(parents=True)
    (root / "widget" / "ground_truth" / "bright").mkdir(parents=True)
    for i in range(3):
        image, mask = texture(), np.zeros((size, size), np.uint8)
        y, x = rng.integers(4, size - 14, 2)
        image[y:y + 10, x:x + 10], mask[y:y + 10, x:x + 10] = 250, 255
        Image.fromarray(image.astype(np.uint8)).convert("RGB").save(root / "widget" / "test" / "bright" / f"{i:03d}.png")
        Image.fromarray(mask).save(root / "widget" / "ground_truth" / "bright" / f"{i:03d}_mask.png")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from monai.bundle import ConfigWorkflow

    root = tmp_path_factory.mktemp("train")
    data = write_mvtec_like(root / "data")
    flow = ConfigWorkflow(config_file=config("train"), logging_file=False, dataset_dir=str(data),
                          model_dir=str(root / "models"), output_dir=str(root / "out"), backbone=TINY["backbone"],
                          backbone_weights=TINY["backbone_weights"], offline=True, image_size=IMAGE_SIZE,
                          **{"train#trainer#max_epochs": 2, "train#trainer#batch_size": 3})
    flow.initialize()
    flow.run()
    return root


def test_training_publishes_the_project_checkpoint_and_a_plain_state_dict(trained):
    from safetensors.torch import load_file

    models = trained / "models"
    checkpoints = trained / "out" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("epoch_*.safetensors")) == ["epoch_1.safetensors", "epoch_2.safetensors"]
    assert (models / "adapters.safetensors").read_bytes() == (checkpoints / "epoch_2.safetensors").read_bytes()
    state = torch.load(models / "model.pt", weights_only=True)
    project = load_file(str(models / "adapters.safetensors"))
    project.pop("static_text_features")
    # model.pt is the state dict of the bundle's network_def: the adapter tensors under "weights."
    assert all(key.startswith("weights.") for key in state)
    state = {key.removeprefix("weights."): tensor for key, tensor in state.items()}
    assert state.keys() == project.keys()
    for key, tensor in state.items():
        assert torch.equal(tensor, project[key]), key


def test_checkpoint_loader_loads_model_pt_into_the_network(trained, tmp_path):
    """``adapters: null`` + ``models/model.pt``: MONAI's CheckpointLoader loads it into network_def;
    the study is scored with the trained adapters (same score as from adapters.safetensors)."""
    from monai.bundle import ConfigWorkflow

    studies = tmp_path / "studies"
    studies.mkdir()
    write_nifti_study(studies / "head.nii.gz", seed=5, lesions=1)
    (studies / "head_mask.nii.gz").unlink()
    reports = {}
    for adapters in (None, str(trained / "models" / "adapters.safetensors")):
        out = tmp_path / ("loader" if adapters is None else "safetensors")
        flow = ConfigWorkflow(config_file=config("inference"), workflow_type="infer", logging_file=False,
                              **{**TINY, "adapters": adapters}, model_dir=str(trained / "models"), window="brain",
                              zero_shot=True, dataset_dir=str(studies), output_dir=str(out))
        flow.initialize()
        assert flow.parser.get_parsed_content("load_checkpoint") is (adapters is None)
        handlers = [type(h).__name__ for h in flow.parser.get_parsed_content("handlers")]
        assert ("CheckpointLoader" in handlers) is (adapters is None)
        flow.run()
        reports[adapters is None] = json.loads(next(out.glob("study-*/study.json")).read_text())
    loaded, published = reports[True], reports[False]
    assert loaded["scoring"]["model"]["weights"] == "model.pt"
    assert loaded["score"] == pytest.approx(published["score"], abs=1e-6)


def test_network_state_dict_is_exactly_the_trainable_tensors(trained):
    from adaptclip_med.bundle_support import AnomalyMapNetwork

    network = AnomalyMapNetwork(tiny_spec())
    state = torch.load(trained / "models" / "model.pt", weights_only=True)
    assert network.state_dict().keys() == state.keys()
    network.load_checkpoint(trained / "models" / "model.pt")
    assert all(torch.equal(network.state_dict()[k].cpu(), v) for k, v in state.items())
    assert network.method.identity()["weights"] == "model.pt"


def test_inference_loads_the_trained_adapters(trained, tmp_path):
    from monai.bundle import ConfigWorkflow

    studies = tmp_path / "studies"
    studies.mkdir()
    write_nifti_study(studies / "head.nii.gz", seed=5, lesions=1)
    (studies / "head_mask.nii.gz").unlink()
    flow = ConfigWorkflow(config_file=config("inference"), workflow_type="infer", logging_file=False,
                          **{k: v for k, v in TINY.items() if k != "adapters"},  # default: <model_dir>/adapters.safetensors
                          model_dir=str(trained / "models"), window="brain", zero_shot=True,
                          dataset_dir=str(studies), output_dir=str(tmp_path / "out"))
    flow.initialize()
    flow.run()
    report = json.loads(next((tmp_path / "out").glob("study-*/study.json")).read_text())
    model = report["scoring"]["model"]
    assert model["method"] == "adaptclip" and model["weights"] == "adapters.safetensors"
    assert model["weights_sha256"] == sha256_of_file(trained / "models" / "adapters.safetensors")
    assert model["weights_provenance"]["epoch"] == 2
