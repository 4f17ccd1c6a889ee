"""MONAI transforms over the project's readers and windowing, so bundle configs are plain MONAI lists.

``LoadStudy`` turns a path into a ``MetaTensor`` (Z, Y, X) of physical values whose affine is the
canonical RAS affine; the dictionary twin also stores the :class:`Volume` under
``"<key>_volume"`` because outputs need the source geometry and DICOM headers.  The array has no
channel axis (``meta['original_channel_dim'] = 'no_channel'``, so ``EnsureChannelFirstd`` works).
``WindowIntensity`` maps values to [0, 1] with a CT window or per-volume percentiles.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type

from adaptclip_med.intensity import normalise_array
from adaptclip_med.io.loader import SeriesRule, load_study
from adaptclip_med.io.volume import Volume

VOLUME_POSTFIX = "volume"


def volume_to_metatensor(volume: Volume) -> MetaTensor:
    """The volume's canonical array with non-identifying metadata attached."""
    meta = {
        "spacing": np.asarray(volume.spacing, dtype=np.float64), "modality": volume.modality,
        "source_kind": volume.source_kind, "source_label": volume.source_label,
        "positions": np.asarray(volume.positions), "original_channel_dim": "no_channel",
        "filename_or_obj": volume.source_label,
    }
    return MetaTensor(torch.from_numpy(np.ascontiguousarray(volume.array)),
                      affine=torch.as_tensor(volume.canonical_affine, dtype=torch.float64), meta=meta)


class LoadStudy(Transform):
    """Path (DICOM folder/file, NIfTI, image) -> :class:`Volume` via :func:`load_study`."""

    def __init__(self, axis: str = "axial", series_rule: SeriesRule = None, modality: str | None = None) -> None:
        self.axis = axis
        self.series_rule = series_rule
        self.modality = modality

    def __call__(self, path: str | Path) -> Volume:
        volume, _ = load_study(path, series_rule=self.series_rule, axis=self.axis, modality=self.modality)
        return volume


class LoadStudyd(MapTransform):
    """Dictionary twin of :class:`LoadStudy`: ``data[key]`` becomes a MetaTensor and
    ``data[f"{key}_{volume_postfix}"]`` the :class:`Volume`."""

    def __init__(self, keys: KeysCollection, axis: str = "axial", series_rule: SeriesRule = None,
                 modality: str | None = None, volume_postfix: str = VOLUME_POSTFIX,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadStudy(axis=axis, series_rule=series_rule, modality=modality)
        self.volume_postfix = volume_postfix

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            volume = self.loader(d[key])
            d[key] = volume_to_metatensor(volume)
            d[f"{key}_{self.volume_postfix}"] = volume
        return d


class WindowIntensity(Transform):
    """Physical values -> [0, 1]: a CT window (preset name or (level, width)) or, for None,
    per-volume 0.5/99.5 percentiles.  Torch in, torch out (metadata kept); numpy in, numpy out."""

    def __init__(self, window: str | tuple[float, float] | None = None) -> None:
        self.window = window

    def __call__(self, img: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        values = normalise_array(img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img),
                                 self.window)
        out, *_ = convert_to_dst_type(values, img, dtype=values.dtype)
        return out


class WindowIntensityd(MapTransform):
    """Dictionary twin of :class:`WindowIntensity`."""

    def __init__(self, keys: KeysCollection, window: str | tuple[float, float] | None = None,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.windower = WindowIntensity(window)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.windower(d[key])
        return d
