"""Few-shot reference sampling: reproducible by seed, with replacement, order-independent."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from dataset_trees import generic_tree, mvtec_tree

from adaptclip_med.data.layouts import read_dataset
from adaptclip_med.data.references import choose_references, sample_references
from adaptclip_med.errors import InputError

POOL = [Path(f"/pool/{i:03d}.png") for i in range(20)]


def test_same_seed_same_choice_and_pool_order_does_not_matter():
    first = sample_references(POOL, 4, seed=10)
    shuffled = POOL[:]
    random.Random(0).shuffle(shuffled)
    assert sample_references(shuffled, 4, seed=10) == first
    assert first == random.Random(10).choices(POOL, k=4)  # the documented draw, spelled out
    choices = {tuple(sample_references(POOL, 4, seed)) for seed in (10, 20, 30)}
    assert len(choices) == 3


def test_draws_with_replacement():
    pool = POOL[:2]
    drawn = sample_references(pool, 8, seed=20)
    assert len(drawn) == 8 and set(drawn) <= set(pool)
    assert len(set(drawn)) < len(drawn)


def test_zero_shot_and_empty_pool():
    assert sample_references([], 0, seed=10) == []
    with pytest.raises(InputError, match="no normal images"):
        sample_references([], 1, seed=10)
    with pytest.raises(ValueError):
        sample_references(POOL, -1, seed=10)


def test_choose_references_per_class_is_recorded_and_independent(tmp_path):
    index = read_dataset(mvtec_tree(tmp_path))
    choices = choose_references(index, k=2, seed=30)
    assert set(choices) == {"bottle", "cable"}
    bottle_alone = choose_references(index, k=2, seed=30, classes=["bottle"])["bottle"]
    assert bottle_alone == choices["bottle"]  # independent of the other classes
    record = choices["bottle"].to_record(tmp_path)
    assert record["class"] == "bottle" and record["k"] == 2 and record["seed"] == 30
    assert all(r.startswith("bottle/train/good/") for r in record["references"])


def test_choose_references_refuses_few_shot_without_pool(tmp_path):
    index = read_dataset(generic_tree(tmp_path))
    assert choose_references(index, k=0, seed=10)["wrist"].paths == ()
    with pytest.raises(InputError, match="wrist: no normal reference images for 1-shot"):
        choose_references(index, k=1, seed=10)
