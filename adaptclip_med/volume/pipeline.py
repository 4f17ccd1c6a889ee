"""Scorers from scoring options: the model (from the shared cache), the reference bank opened ONCE
and checked against the model, and the volume scorer built from both.  Scoring a study with the
scorer and writing its outputs is :mod:`adaptclip_med.volume.study_run`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from adaptclip_med.methods.base import AnomalyMethod
from adaptclip_med.methods.registry import load_method
from adaptclip_med.volume.batch_size import resolve_batch_size
from adaptclip_med.volume.options import ScoringOptions
from adaptclip_med.volume.bank.reader import MatchPolicy, ReferenceBank
from adaptclip_med.volume.scoring import VolumeScorer
from adaptclip_med.volume.triage import TriagePlan

log = logging.getLogger(__name__)


def model_for(options: ScoringOptions) -> AnomalyMethod:
    """The method these options describe, from the shared model cache (models are expensive)."""
    return load_method(options.model)


def open_bank_for(method: AnomalyMethod, bank_path: str | Path) -> ReferenceBank:
    """Open a bank and check it was built by this method with these settings (one-line error
    naming the differing fields otherwise)."""
    return ReferenceBank.open(Path(bank_path), expected_identity=method.identity())


def with_bank_class_name(options: ScoringOptions, bank: ReferenceBank) -> ScoringOptions:
    """A study scored against a bank uses the bank's class name unless one is given."""
    if options.model.class_name is not None:
        return options
    recorded = (bank.meta.get("model") or {}).get("class_name")
    return options.with_model(class_name=recorded) if recorded else options


def make_scorer(options: ScoringOptions, method: AnomalyMethod | None = None,
                bank: ReferenceBank | None = None) -> VolumeScorer:
    """The volume scorer for these options (``method``: an already loaded model to reuse; ``bank``:
    the options' bank, already opened by :func:`open_bank_for`).  The bank is read once: opened
    first when the model is still to be loaded (its class name names the model), then checked
    against the model's identity."""
    bank = bank if options.references.uses_bank else None
    if options.references.uses_bank and bank is None:
        bank = ReferenceBank.open(Path(options.references.bank))
    if method is None:
        method = model_for(with_bank_class_name(options, bank) if bank is not None else options)
    if bank is not None:
        bank.check_identity(method.identity())
    references, slicing, output = options.references, options.slicing, options.output
    preprocessing = slicing.preprocessing()
    if bank is not None and slicing.window is None:
        preprocessing = None  # take the bank's
    return VolumeScorer(method, bank, preprocessing, shots=references.shots,
                        batch_size=resolve_batch_size(slicing.batch_size, method),
                        device=options.model.device, threshold=output.threshold, aggregate=output.aggregate,
                        match=MatchPolicy.from_options(references.match, references.slices_per_scan),
                        triage=TriagePlan(slicing.triage) if slicing.triage else None,
                        allow_other_modality=references.allow_other_modality)
