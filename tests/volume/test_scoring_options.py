"""ScoringOptions is split by concern: each flat name lives in exactly one part, and the record
round-trips through the JSON the dashboard and bundle carry."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from adaptclip_med.review.config import DashboardConfig
from adaptclip_med.volume.options import (ModelOptions, OutputOptions, ReferenceOptions, ScoringOptions,
                                          SlicingOptions)

PARTS = {"model": ModelOptions, "references": ReferenceOptions, "slicing": SlicingOptions, "output": OutputOptions}


def test_each_flat_name_has_exactly_one_part():
    names = [f.name for cls in PARTS.values() for f in fields(cls)]
    assert len(names) == len(set(names))
    assert [f.name for f in fields(ScoringOptions)] == list(PARTS)


def test_build_routes_flat_names_to_their_part():
    options = ScoringOptions.build(backbone="ViT-B-16", bank="/banks/head", window="brain", threshold=0.7,
                                   device="cuda:1", zero_shot=True, parametric_map=True)
    assert options.model == ModelOptions(backbone="ViT-B-16", device="cuda:1")
    assert options.references == ReferenceOptions(bank="/banks/head", zero_shot=True)
    assert options.slicing == SlicingOptions(window="brain")
    assert options.output == OutputOptions(threshold=0.7, parametric_map=True)
    assert not options.references.uses_bank


def test_with_changes_one_part_and_refuses_unknown_names():
    base = ScoringOptions.build(window="bone", bank="/b")
    changed = base.with_(window=None, shots=2)
    assert changed.slicing.window is None and changed.references.shots == 2 and changed.references.bank == "/b"
    assert changed.model is base.model and changed.output is base.output  # untouched parts are shared
    assert base.slicing.window == "bone"  # frozen: the original is unchanged
    with pytest.raises(TypeError, match="unknown scoring option.*windwo"):
        base.with_(windwo="brain")


def test_json_round_trip_and_the_earlier_flat_record():
    options = ScoringOptions.build(method="winclip", class_name="brain", image_size=240, bank="/b", shots=1,
                                   match="retrieval", axis="coronal", batch_size=2, aggregate="topk:3")
    nested = json.loads(json.dumps(options.to_dict()))
    assert set(nested) == set(PARTS) and nested["slicing"]["axis"] == "coronal"
    assert ScoringOptions.from_dict(nested) == options
    flat = {k: v for part in nested.values() for k, v in part.items()}
    assert ScoringOptions.from_dict({**flat, "a_future_option": 1}) == options


def test_dashboard_config_stores_the_parts(tmp_path):
    scoring = ScoringOptions.build(window="40,80", image_size=56, bank=str(tmp_path / "bank"))
    config = DashboardConfig((tmp_path,), tmp_path / "o", tmp_path / "b", scoring)
    text = config.to_json()
    assert json.loads(text)["scoring"]["references"]["bank"] == str(tmp_path / "bank")
    assert DashboardConfig.from_json(text) == config


def test_derived_specs_read_only_their_part():
    options = ScoringOptions.build(method="adaptclip", backbone="ViT-L-14-336", backbone_weights="openai",
                                   adapters="a.safetensors", image_size=518, precision="bf16", window="brain",
                                   axis="sagittal")
    spec = options.method_spec()
    assert (spec.method, spec.weights, spec.image_size, spec.precision) == ("adaptclip", "a.safetensors", 518, "bf16")
    assert spec.backbone.architecture == "ViT-L-14-336" and spec.backbone.weights == "openai"
    preprocessing = options.preprocessing()
    assert preprocessing.axis == "sagittal" and preprocessing.window is not None
