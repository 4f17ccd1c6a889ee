"""Small phantom studies (8 slices of 64x64) and a tiny model for volume tests."""

from __future__ import annotations

import pytest

from tests.support import tiny_models

SHAPE = (8, 64, 64)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    from adaptclip_med.demo.phantom import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("phantoms"), seed=0, n_references=3, shape=SHAPE)


@pytest.fixture(scope="session")
def tiny_options():
    return tiny_models.tiny_options(batch_size=None)


@pytest.fixture(scope="session")
def tiny_loaded(tiny_options):
    from adaptclip_med.volume.pipeline import model_for

    return model_for(tiny_options)


@pytest.fixture(scope="session")
def bank(demo_data, tiny_loaded, tiny_options, tmp_path_factory):
    from adaptclip_med.volume.bank_builder import build_reference_bank

    return build_reference_bank("head", demo_data.reference_dirs[:2], tiny_loaded, tiny_options.preprocessing(),
                                tmp_path_factory.mktemp("banks"), calibration_slices=4)
