"""The comparability guard works for every method through the method contract: AdaptCLIP and
WinCLIP (local memory rows) and AdaCLIP (zero-shot: no memory rows, its global embedding), each
on a tiny random CLIP against a bank of small phantoms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from adaptclip_med.slice_preprocessing import SlicePreprocessing

PREPROCESSING = SlicePreprocessing(window="brain")


def _adaptclip(tiny_loaded, tmp_path):
    return tiny_loaded


def _winclip(tiny_loaded, tmp_path):
    from tests.support.tiny_models import save_random_clip

    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.methods.registry import load_method
    from adaptclip_med.model.backbone_source import BackboneSpec

    weights = save_random_clip("winclip-tiny-vit", tmp_path / "winclip.pt", seed=11)
    return load_method(MethodSpec(method="winclip", backbone=BackboneSpec("winclip-tiny-vit", str(weights), offline=True),
                                  class_name="brain"))


def _adaclip(tiny_loaded, tmp_path):
    from tests.support.tiny_models import save_random_clip

    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.methods.registry import load_method
    from adaptclip_med.model.backbone_source import BackboneSpec

    weights = save_random_clip("adaclip-tiny-vit", tmp_path / "adaclip.pt", seed=0)
    return load_method(MethodSpec(method="adaclip", backbone=BackboneSpec("adaclip-tiny-vit", str(weights), offline=True),
                                  image_size=56, class_name="brain"))


@pytest.mark.parametrize("make_method", [_adaptclip, _winclip, _adaclip], ids=["adaptclip", "winclip", "adaclip"])
def test_every_method_gets_a_calibrated_bound_and_a_verdict(make_method, tiny_loaded, demo_data, tmp_path):
    from pydicom.data import get_testdata_file

    from adaptclip_med.io.loader import load_study
    from adaptclip_med.volume.bank_builder import build_reference_bank
    from adaptclip_med.volume.bank.reader import ReferenceBank
    from adaptclip_med.volume.scoring import VolumeScorer

    method = make_method(tiny_loaded, tmp_path)
    folder = build_reference_bank("head", demo_data.reference_dirs[:3], method, PREPROCESSING, tmp_path / "banks",
                                  calibrate=False)
    distribution = json.loads((folder / "bank.json").read_text())["comparability"]["distribution"]
    assert distribution["slices"] > 0 and distribution["bound"] > 0
    scorer = VolumeScorer(method, ReferenceBank.open(folder))
    study = scorer.score(load_study(demo_data.study_dir)[0])
    assert study.comparability.status in ("comparable", "partly comparable")
    assert all(np.isfinite(s.reference_distance) for s in study.scored())
    body = scorer.score(load_study(Path(get_testdata_file("CT_small.dcm")))[0])
    assert body.comparability.status == "not comparable", body.comparability.line()
    assert np.isnan(body.score)
