"""AnomalyImageDataset: CLIP preprocessing, mask resizing modes and reference pairing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_trees import bmad_class, mvtec_tree, png
from PIL import Image

from adaptclip_med.data.layouts import read_dataset
from adaptclip_med.data.references import choose_references
from adaptclip_med.data.samples import AnomalySample
from adaptclip_med.data.torch_dataset import AnomalyImageDataset, load_mask
from adaptclip_med.errors import InputError
from adaptclip_med.preprocess import CLIP_MEAN, CLIP_STD

torch.set_num_threads(1)


def test_item_tensors_and_clip_normalisation(tmp_path):
    index = read_dataset(mvtec_tree(tmp_path))
    test = index.select(split="test", class_name="bottle")
    references = {name: choice.paths for name, choice in choose_references(index, 2, 10).items()}
    dataset = AnomalyImageDataset(test, 16, references=references)
    anomalous = next(dataset[i] for i in range(len(dataset)) if dataset.samples[i].label == 1)
    assert anomalous["image"].shape == (3, 16, 16)
    assert anomalous["references"].shape == (2, 3, 16, 16)
    assert anomalous["label"].dtype == torch.int64 and int(anomalous["label"]) == 1
    assert anomalous["class_name"] == "bottle" and anomalous["has_mask"] is True
    # grey 200 replicated to RGB, then per-channel CLIP mean/std
    expected = (200 / 255 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(anomalous["image"][:, 5, 5], expected, atol=1e-5, rtol=0)
    mask = anomalous["mask"]
    assert mask.shape == (1, 16, 16) and set(mask.unique().tolist()) == {0.0, 1.0}
    assert mask.sum() == 8 * 8  # the 4x4 square of the 8x8 mask, doubled in each direction


def test_mask_nearest_keeps_thin_structures_bilinear_threshold_drops_them(tmp_path):
    array = np.zeros((8, 8), dtype=np.uint8)
    array[1, 1] = 1  # a single-pixel mask stored as 0/1, not 0/255
    Image.fromarray(array).save(tmp_path / "m.png")
    nearest = load_mask(tmp_path / "m.png", 4, "nearest", (8, 8))
    bilinear = load_mask(tmp_path / "m.png", 4, "bilinear", (8, 8))
    assert nearest.sum() == 1 and nearest[0, 0, 0] == 1
    assert bilinear.sum() == 0  # area-weighted value 1/4 < 0.5
    assert set(bilinear.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(InputError, match="mask is 8x8 but its image is 16x16"):
        load_mask(tmp_path / "m.png", 4, "nearest", (16, 16))


def test_samples_without_mask(tmp_path):
    normal = AnomalySample(png(tmp_path / "n.png"), None, 0, "c", "test")
    image_level = AnomalySample(png(tmp_path / "a.png", 200), None, 1, "c", "test")
    dataset = AnomalyImageDataset([normal, image_level], 8)
    assert dataset[0]["has_mask"] is True and dataset[1]["has_mask"] is False
    assert dataset[1]["mask"].sum() == 0
    assert dataset[0]["references"].shape == (0, 3, 8, 8)  # zero-shot


def test_random_pairing_excludes_query_and_is_reproducible(tmp_path):
    root = bmad_class(tmp_path / "Brain")
    index = read_dataset(root)
    train = index.select(split="train")
    pool = index.normal_pool
    dataset = AnomalyImageDataset(train, 8, pool=pool, k=1, seed=10, mask_interpolation="bilinear")
    same = AnomalyImageDataset(train, 8, pool=pool, k=1, seed=10, mask_interpolation="bilinear")
    for i in range(len(dataset)):
        item = dataset[i]
        assert item["references"].shape == (1, 3, 8, 8)
        torch.testing.assert_close(item["references"], same[i]["references"])
    # Each train image can only be paired with the OTHER train image: check which one by value.
    png(pool["Brain"][0], 10)
    png(pool["Brain"][1], 250)
    first = dataset[0]["references"][0, 0, 0, 0].item()
    second = dataset[1]["references"][0, 0, 0, 0].item()
    assert first > second  # image 0 (value 10) was paired with image 1 (value 250) and vice versa


def test_random_mode_changes_with_epoch(tmp_path):
    paths = [png(tmp_path / f"p{i}.png", 10 * i) for i in range(12)]
    query = AnomalySample(paths[0], None, 0, "c", "train")
    dataset = AnomalyImageDataset([query], 8, pool={"c": paths}, k=3, seed=10)
    drawn = []
    for epoch in range(4):
        dataset.set_epoch(epoch)
        drawn.append(tuple(dataset[0]["references"][:, 0, 0, 0].tolist()))
    assert len(set(drawn)) > 1
    dataset.set_epoch(0)
    assert tuple(dataset[0]["references"][:, 0, 0, 0].tolist()) == drawn[0]


def test_configuration_errors(tmp_path):
    sample = AnomalySample(png(tmp_path / "n.png"), None, 0, "c", "test")
    with pytest.raises(ValueError, match="not both"):
        AnomalyImageDataset([sample], 8, references={"c": []}, pool={"c": []})
    with pytest.raises(InputError, match="no references chosen for class"):
        AnomalyImageDataset([sample], 8, references={"other": []})
    lonely = AnomalyImageDataset([sample], 8, pool={"c": [Path(sample.image_path)]})
    with pytest.raises(InputError, match="no normal image other than the query"):
        lonely[0]


def test_dataloader_collates_a_batch(tmp_path):
    index = read_dataset(mvtec_tree(tmp_path))
    references = {k: v.paths for k, v in choose_references(index, 1, 10).items()}
    dataset = AnomalyImageDataset(index.select(split="test"), 8, references=references)
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch["image"].shape == (4, 3, 8, 8)
    assert batch["references"].shape == (4, 1, 3, 8, 8)
    assert len(batch["class_name"]) == 4 and batch["has_mask"].dtype == torch.bool
