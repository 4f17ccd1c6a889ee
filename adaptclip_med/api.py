"""The public Python API: the four calls a script needs, on top of the method contract.

Each returns plain objects (a method, a bank folder, a study result) and uses exactly the code
paths of the CLI, so a notebook and ``adaptclip-med score`` give the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from adaptclip_med.methods.base import AnomalyMethod, MethodSpec
from adaptclip_med.methods.registry import load_method as _load_cached
from adaptclip_med.methods.registry import validate_spec


def load_method(spec: MethodSpec | str = "adaptclip") -> AnomalyMethod:
    """A ready method (eval mode) for a :class:`~adaptclip_med.methods.MethodSpec` (method,
    backbone, trained weights, image size, device, precision, class name, runtime; ``None`` fields
    take the method's defaults, e.g. ViT-L-14-336 + openai; weights None = untrained, or nothing
    for WinCLIP), or for a method name with all the method's defaults.  The spec is validated by
    its method first (one-line error), as the command line does."""
    spec = MethodSpec(method=spec) if isinstance(spec, str) else spec
    validate_spec(spec, weights_required=False)
    return _load_cached(spec)


def build_bank(name: str, scans: Sequence[str | Path], method: AnomalyMethod, *, window: str | None = None,
               axis: str = "axial", root: str | Path | None = None, batch_size: int = 4, calibrate: bool = True,
               grid: str = "auto") -> Path:
    """Encode normal scans once into a reference bank folder (``root/name``; default root
    ``$ADAPTCLIP_MED_HOME/banks``); returns the folder.  ``grid``: the physical in-plane grid
    ('auto', 'off', 'PIXEL_MM' or 'PIXEL_MM,FOV_MM'; see docs/physical-grid.md)."""
    from adaptclip_med.utils.home import home
    from adaptclip_med.slice_preprocessing import SlicePreprocessing, parse_window
    from adaptclip_med.volume.bank_builder import build_reference_bank

    preprocessing = SlicePreprocessing(window=parse_window(window), axis=axis)
    return build_reference_bank(name, [Path(s) for s in scans], method, preprocessing,
                                Path(root) if root else home() / "banks", batch_size=batch_size, calibrate=calibrate,
                                grid=grid)


def score_study(study: str | Path, method: AnomalyMethod, *, bank: str | Path | None = None, out: str | Path,
                window: str | None = None, axis: str = "axial", shots: int | None = None, threshold: float | None = None,
                aggregate: str = "max", batch_size: int = 4, allow_other_modality: bool = False):
    """Score a study (DICOM folder/file, NIfTI, 2-D image) and write every output into ``out``;
    returns :class:`~adaptclip_med.volume.study_run.StudyOutputs` (score, top slices, files, and
    ``comparability``: whether the study is comparable with the bank, docs/comparability.md)."""
    from adaptclip_med.volume.options import OutputOptions, ReferenceOptions, ScoringOptions, SlicingOptions
    from adaptclip_med.volume.pipeline import make_scorer
    from adaptclip_med.volume.study_run import score_study as _score

    options = ScoringOptions(
        model=MethodSpec(method=method.name, class_name=method.class_name, device=str(method.device)),
        references=ReferenceOptions(bank=str(bank) if bank else None, zero_shot=bank is None, shots=shots,
                                    allow_other_modality=allow_other_modality),
        slicing=SlicingOptions(window=window, axis=axis, batch_size=batch_size),
        output=OutputOptions(threshold=threshold, aggregate=aggregate))
    return _score(Path(study), Path(out), make_scorer(options, method))


def predict_image(method: AnomalyMethod, query: str | Path, references: Sequence[str | Path] = ()):
    """Score one 2-D image with 0..k normal references (``predict``'s logic); returns an
    :class:`~adaptclip_med.predict2d.ImagePrediction` (map at model size, score, display RGB)."""
    from adaptclip_med.predict2d import predict_image as _predict

    return _predict(method, Path(query), [Path(r) for r in references])
