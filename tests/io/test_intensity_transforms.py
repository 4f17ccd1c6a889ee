"""CT windows, percentile scaling, background slices, and the MONAI transforms in a Compose."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from io_helpers import stored_hu
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd

from adaptclip_med.errors import InputError
from adaptclip_med.intensity import (
    CT_WINDOWS,
    apply_window,
    background_slices,
    body_mask_fraction,
    is_background_slice,
    normalise_volume,
    percentile_scale,
)
from adaptclip_med.io.volume import Volume
from adaptclip_med.transforms import LoadStudyd, WindowIntensity, WindowIntensityd


def test_window_maps_level_and_width_linearly():
    hu = np.array([-1000.0, 0.0, 40.0, 60.0, 80.0, 1000.0])
    np.testing.assert_allclose(apply_window(hu, *CT_WINDOWS["brain"]), [0, 0, 0.5, 0.75, 1, 1])
    assert apply_window(hu, 40, 40).dtype == np.float32
    with pytest.raises(InputError):
        apply_window(hu, 40, 0)


def test_percentile_scaling_is_per_volume_and_constant_volumes_map_to_zero():
    data = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    scaled = percentile_scale(data)
    assert scaled.min() == 0 and scaled.max() == 1
    low, high = np.percentile(data, [0.5, 99.5])
    np.testing.assert_allclose(scaled[5, 0, 0], (500 - low) / (high - low), rtol=1e-6)
    assert not percentile_scale(np.full((2, 3, 3), 7.0)).any()


def test_normalise_volume_uses_a_window_only_when_asked(phantom):
    volume = Volume(array=stored_hu(phantom[0]), spacing=(3, 1.5, 1.25), modality="CT",
                    positions=np.arange(8) * 3.0, source_kind="dicom", source_label="phantom")
    brain = normalise_volume(volume, "brain")
    np.testing.assert_allclose(brain, apply_window(volume.array, 40, 80))
    custom = normalise_volume(volume, (50.0, 100.0))
    np.testing.assert_allclose(custom, apply_window(volume.array, 50, 100))
    auto = normalise_volume(volume, None)
    np.testing.assert_allclose(auto, percentile_scale(volume.array))
    with pytest.raises(InputError, match="unknown window"):
        normalise_volume(volume, "brian")


def test_background_slices_by_modality(phantom):
    air = np.full((32, 32), -1000.0, np.float32) + np.random.default_rng(0).normal(0, 5, (32, 32))
    head = stored_hu(phantom[0])[4]
    assert is_background_slice(air, "CT") and not is_background_slice(head, "CT")
    assert is_background_slice(np.zeros((8, 8)), "MR")
    mr = np.zeros((3, 32, 32), np.float32)
    mr += np.abs(np.random.default_rng(1).normal(0, 3, mr.shape))  # air noise in a magnitude image
    mr[1, 8:24, 8:24] += 400.0
    volume = Volume(array=mr, spacing=(1, 1, 1), modality="MR", positions=np.arange(3), source_kind="nifti",
                    source_label="mr")
    np.testing.assert_array_equal(background_slices(volume), [True, False, True])
    assert body_mask_fraction(percentile_scale(mr)[1]) == pytest.approx(0.25, abs=0.02)


def test_monai_compose_loads_and_windows_a_dicom_study(write_series, phantom):
    folder = write_series(shuffle_seed=7)
    pipeline = Compose([LoadStudyd(keys="image"), WindowIntensityd(keys="image", window="brain"),
                        EnsureChannelFirstd(keys="image")])
    item = pipeline({"image": str(folder), "label": 1})
    image = item["image"]
    assert isinstance(image, MetaTensor) and tuple(image.shape) == (1, 8, 48, 48)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    np.testing.assert_allclose(image[0].numpy(), apply_window(stored_hu(phantom[0]), 40, 80))
    volume = item["image_volume"]
    assert volume.modality == "CT" and item["label"] == 1
    np.testing.assert_allclose(image.affine.numpy(), volume.canonical_affine)
    assert image.meta["modality"] == "CT"


def test_transforms_allow_missing_keys_and_keep_array_types():
    missing = Compose([LoadStudyd(keys="image", allow_missing_keys=True),
                       WindowIntensityd(keys="image", allow_missing_keys=True)])
    assert missing({"other": 1}) == {"other": 1}
    array = np.array([[0.0, 40.0, 80.0]])
    assert isinstance(WindowIntensity("brain")(array), np.ndarray)
    out = WindowIntensity((40, 80))(torch.tensor(array))
    assert isinstance(out, torch.Tensor) and torch.allclose(out, torch.tensor([[0.0, 0.5, 1.0]], dtype=out.dtype))
