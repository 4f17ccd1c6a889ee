"""The CT-window-on-non-HU warning names where the window came from and the fix that applies.

Reproduced on main: an MR study scored against a CT bank (whose window is the bank's, not the
user's) was told to "omit --window", an option the user never gave.
"""

from __future__ import annotations

import dataclasses
import logging

from adaptclip_med.io.loader import load_study
from adaptclip_med.methods.base import MethodSpec
from adaptclip_med.model.backbone_source import BackboneSpec
from adaptclip_med.volume.options import ReferenceOptions, ScoringOptions, SlicingOptions
from adaptclip_med.volume.pipeline import make_scorer


def _mr(demo_data):
    volume, _ = load_study(demo_data.study_dir)
    return dataclasses.replace(volume, modality="MR")


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "not HU" in r.getMessage()]


def test_window_from_the_bank_names_the_bank_and_asks_for_a_bank_of_that_modality(bank, demo_data, tiny_loaded,
                                                                                 tiny_options, caplog):
    scorer = make_scorer(tiny_options.with_references(bank=str(bank), allow_other_modality=True).with_slicing(window=None), tiny_loaded)
    with caplog.at_level(logging.WARNING):
        scorer.score(_mr(demo_data))
    [message] = _warnings(caplog)
    assert "from reference bank 'head'" in message and "omit --window" not in message
    assert "a bank built from MR references" in message


def test_window_from_the_command_line_says_omit_window(demo_data, tiny_loaded, caplog):
    options = ScoringOptions(model=MethodSpec(backbone=BackboneSpec("adaptclip-tiny-vit", "random:0", offline=True), image_size=56),
                             references=ReferenceOptions(zero_shot=True), slicing=SlicingOptions(window="brain"))
    scorer = make_scorer(options, tiny_loaded)
    with caplog.at_level(logging.WARNING):
        scorer.score(_mr(demo_data))
    [message] = _warnings(caplog)
    assert message.startswith("CT window brain (from --window) applied to a volume of modality MR")
    assert message.endswith("omit --window for percentile scaling")
