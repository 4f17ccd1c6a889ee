"""MONAI transforms over the project's readers and windowing, so bundle configs are plain MONAI lists.

``LoadStudy`` turns a path into a ``MetaTensor`` (Z, Y, X) of physical values whose affine is the
canonical RAS affine; the dictionary twin also stores the :class:`Volume` under
``"<key>_volume"`` because outputs need the source geometry and DICOM headers.  The array has no
channel axis (``meta['original_channel_dim'] = 'no_channel'``, so ``EnsureChannelFirstd`` works).
``WindowIntensity`` maps values to [0, 1] with a CT window or per-volume percentiles, through
MONAI's ``ScaleIntensityRange`` / ``ScaleIntensityRangePercentiles``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import MapTransform, ScaleIntensityRange, ScaleIntensityRangePercentiles, Transform
from monai.utils import convert_to_dst_type, convert_to_tensor

from adaptclip_med.errors import InputError
from adaptclip_med.intensity import resolve_window

PERCENTILES = (0.5, 99.5)  # as adaptclip_med.intensity.percentile_scale
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
    """Physical values -> [0, 1] float32: a CT window (preset name or (level, width)) or, for None,
    per-volume 0.5/99.5 percentiles.  Torch in, torch out (metadata kept); numpy in, numpy out.

    Built on MONAI's own intensity transforms, which give the values of
    :mod:`adaptclip_med.intensity` (the CLI's windowing), as ``tests/bundle/test_transforms.py``
    checks on a phantom volume:

    * window: ``ScaleIntensityRange(a_min=level - width/2, a_max=level + width/2, b_min=0, b_max=1,
      clip=True)``, identical to :func:`~adaptclip_med.intensity.apply_window` (difference 0);
    * percentiles: ``ScaleIntensityRangePercentiles(lower=0.5, upper=99.5, b_min=0, b_max=1,
      clip=True)``, equal to :func:`~adaptclip_med.intensity.percentile_scale` within one float32
      ulp (< 1e-6: torch and numpy round the division differently), except that a constant volume
      is mapped to zeros here directly (MONAI warns "divide by zero" and gives the same zeros).

    Our own code remains for what MONAI does not do: preset names (:data:`CT_WINDOWS`), the
    positive-width check and the float32 cast of integer input (``ScaleIntensityRange`` keeps the
    input dtype, which would truncate [0, 1] to {0, 1} for integer CT)."""

    def __init__(self, window: str | tuple[float, float] | None = None) -> None:
        self.window = window
        resolved = resolve_window(window)
        if resolved is None:
            self.scaler: Transform = ScaleIntensityRangePercentiles(lower=PERCENTILES[0], upper=PERCENTILES[1], b_min=0.0,
                                                                    b_max=1.0, clip=True, dtype=np.float32)
        else:
            level, width = resolved
            if width <= 0:
                raise InputError(f"window width must be positive, got {width}")
            self.scaler = ScaleIntensityRange(a_min=level - width / 2.0, a_max=level + width / 2.0, b_min=0.0, b_max=1.0,
                                              clip=True, dtype=np.float32)

    def __call__(self, img: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        values = convert_to_tensor(img, dtype=torch.float32, track_meta=get_track_meta())
        flat = values.as_tensor() if isinstance(values, MetaTensor) else values
        if self.window is None and (flat.numel() == 0 or bool(flat.max() == flat.min())):
            out = torch.zeros_like(values)  # constant volume: zeros (as intensity.percentile_scale)
        else:
            out = self.scaler(values)
        out, *_ = convert_to_dst_type(out, img, dtype=np.float32 if isinstance(img, np.ndarray) else torch.float32)
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
