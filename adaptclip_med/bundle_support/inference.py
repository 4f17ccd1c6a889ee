"""The MONAI engine pieces of bundle inference: studies in, one prediction dictionary per study
out, one postprocessing transform per output file.

A study is not a tensor batch: it has a geometry, DICOM headers, skipped air slices and, for
few-shot scoring, a reference memory per slice.  So the bundle's evaluator iterates over studies
and lets the network score each whole study:

* :func:`collate_studies` turns the dictionaries of ``LoadStudyd`` + ``WindowIntensityd`` into a
  dictionary of per-study lists that MONAI's ``decollate_batch`` splits back into one dictionary
  per study (``decollate: true``).  Values without a batch dimension (the ``Volume``, the windowed
  study tensor, the scored result) travel as 0-d object arrays (:func:`opaque`), which
  ``decollate_batch`` hands back unchanged (it returns a 0-d array's ``item()``);
* :class:`StudyInferer` calls the network (:meth:`AnomalyMapNetwork.score_study`) for each study
  and returns the predictions, which decollate into one ``pred`` dictionary per study:
  ``study``, ``score``, ``volume``, ``result``, ``scorer``, ``seconds`` and (filled by the
  postprocessing) ``files``;
* postprocessing: one dictionary transform per output (:mod:`adaptclip_med.bundle_support.outputs`),
  ``SaveStudyJsond`` last, so a config chooses what it writes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.inferers import Inferer

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.io.volume import Volume
from adaptclip_med.slice_preprocessing import PreparedVolume, prepare_volume
from adaptclip_med.transforms import VOLUME_POSTFIX
from adaptclip_med.volume.bank.reader import ReferenceBank
from adaptclip_med.volume.options import OutputOptions, ReferenceOptions, SlicingOptions
from adaptclip_med.volume.scoring import DEFAULT_AGGREGATE

log = logging.getLogger(__name__)


def study_window(window: str | None, reference_bank: str | None = None, zero_shot: bool = False) -> str | None:
    """The window every study is read with: the one asked for, else the reference bank's (the
    1-NN comparison is only meaningful when query and references are windowed alike), else None
    (per-volume percentiles)."""
    if window or not reference_bank or zero_shot:
        return window or None
    stored = ReferenceBank.open(Path(reference_bank)).preprocessing().window
    if stored is None or isinstance(stored, str):
        return stored
    level, width = stored
    return f"{level:g},{width:g}"


class Held:
    """A holder with no length and no items, so ``decollate_batch`` cannot split what it holds
    (a study's windowed (Z, Y, X) tensor would otherwise be unbound along Z)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"Held({type(self.value).__name__})"


def opaque(value: Any) -> np.ndarray:
    """``value`` as a 0-d object array: MONAI's ``decollate_batch`` returns a 0-d array's
    ``item()`` as a leaf, so objects without a batch dimension (``Volume``, ``StudyResult``)
    come back unchanged; iterable values (tensors, arrays) come back as :class:`Held`."""
    holder = np.empty((), dtype=object)
    holder[()] = Held(value) if isinstance(value, Iterable) else value
    return holder


def unwrap(value: Any) -> Any:
    """The value :func:`opaque` wrapped, before or after decollation."""
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0:
        value = value.item()
    return value.value if isinstance(value, Held) else value


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, bytes, bool, int, float)) else opaque(value)


def collate_studies(batch: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """A batch of study dictionaries as ``{key: [value per study]}`` (non-scalar values wrapped
    by :func:`opaque`), so MONAI decollates it back into the study dictionaries."""
    keys = list(dict.fromkeys(key for item in batch for key in item))
    return {key: [_plain(item.get(key)) for item in batch] for key in keys}


def study_items(batch: dict[str, list[Any]] | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-study dictionaries of a collated batch (values unwrapped)."""
    if isinstance(batch, dict):
        size = max((len(v) for v in batch.values()), default=0)
        return [{key: unwrap(values[i]) for key, values in batch.items()} for i in range(size)]
    return [{key: unwrap(value) for key, value in item.items()} for item in batch]


def prepare_study_batch(batchdata: dict[str, list[Any]], device: str | torch.device | None = None,
                        non_blocking: bool = False, **kwargs: Any) -> tuple[dict[str, list[Any]], list[Any]]:
    """``(inputs, targets)`` for the evaluator: the collated studies and their labels (None when
    a study has no ground truth).  Nothing moves to the device here: the network batches slices."""
    size = max((len(v) for v in batchdata.values()), default=0)
    return batchdata, list(batchdata.get("label", [None] * size))


def prepared_slices(volume: Volume, windowed: Any) -> PreparedVolume:
    """The scorer's view of a study from the transforms' windowed slices.  Air-only slices are
    detected on the physical values with the function
    :func:`~adaptclip_med.slice_preprocessing.prepare_volume` uses, so the bundle skips the same
    slices as the CLI."""
    values = windowed.detach().cpu().numpy() if isinstance(windowed, torch.Tensor) else windowed
    slices01 = np.asarray(values, dtype=np.float32)
    if slices01.shape != volume.array.shape:
        raise AdaptClipError(f"{volume.source_label}: windowed image {slices01.shape} does not match the study "
                             f"{volume.array.shape}; keep LoadStudyd and WindowIntensityd without spatial transforms between")
    return prepare_volume(volume, None, slices01=slices01)


class StudyInferer(Inferer):
    """Scores each study of a batch by calling the network (zero-shot, or few-shot against a
    reference bank): ``network.score_study(volume, prepared slices, **settings)``."""

    def __init__(self, reference_bank: str | None = None, zero_shot: bool = False, shots: int | None = None,
                 window: str | None = None, axis: str = "axial", threshold: float | None = None,
                 aggregate: str = DEFAULT_AGGREGATE, match: str | None = None, slices_per_scan: int | None = None,
                 slice_batch_size: int = 4, image_key: str = "image", allow_other_modality: bool = False) -> None:
        self.settings = {  # the scoring parts the network's scorer takes
            "references": ReferenceOptions(bank=str(reference_bank) if reference_bank else None, zero_shot=bool(zero_shot),
                                           shots=shots, match=match, slices_per_scan=slices_per_scan,
                                           allow_other_modality=bool(allow_other_modality)),
            "slicing": SlicingOptions(window=window, axis=axis, batch_size=int(slice_batch_size)),
            "output": OutputOptions(threshold=threshold, aggregate=aggregate)}
        self.image_key = image_key

    def __call__(self, inputs: dict[str, list[Any]], network: Any, *args: Any, **kwargs: Any) -> dict[str, list[Any]]:
        preds: dict[str, list[Any]] = {"study": [], "score": [], "volume": [], "result": [], "scorer": [], "seconds": []}
        for item in study_items(inputs):
            volume = item[f"{self.image_key}_{VOLUME_POSTFIX}"]
            started = time.time()
            result = network.score_study(volume, prepared_slices(volume, item[self.image_key]), **self.settings)
            scorer = network.scorer(**self.settings)
            for key, value in (("study", str(item["study"])), ("score", float(result.score)), ("volume", volume),
                               ("result", result), ("scorer", scorer), ("seconds", time.time() - started)):
                preds[key].append(_plain(value))
            log.info("%s: study score %.4f (%s); comparability: %s", item["study"], result.score,
                     f"{scorer.shots}-shot" if scorer.shots else "zero-shot",
                     result.comparability.line() if result.comparability is not None else "n/a")
        return preds
