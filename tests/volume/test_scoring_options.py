"""ScoringOptions is split by concern, its model part IS the method spec (the one record of the
model choice), and the record round-trips through the JSON the dashboard carries, including
configurations written before the spec record."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from adaptclip_med.methods.base import MethodSpec
from adaptclip_med.model.backbone_source import BackboneSpec
from adaptclip_med.review.config import DashboardConfig
from adaptclip_med.volume.options import (OutputOptions, ReferenceOptions, ScoringOptions, SlicingOptions,
                                          scoring_from_flat)

SETTING_PARTS = {"references": ReferenceOptions, "slicing": SlicingOptions, "output": OutputOptions}

#: A dashboard configuration exactly as the code before the spec record wrote it (commit b2af659):
#: the model part flat (adapters, backbone, backbone_weights, activation, offline, cache_dir ...).
CONFIG_BEFORE_THE_SPEC_RECORD = """{
 "allowed_hosts": [], "banks_root": "/banks", "data_roots": ["/data"], "demo": false, "login": "local",
 "manage_role": "ai-admin", "max_upload_mb": 200, "model_configured": true, "output": "/out", "results": [],
 "role_claim": "groups",
 "scoring": {
  "model": {"activation": "auto", "adapters": null, "backbone": "winclip-tiny-vit", "backbone_weights": "random:0",
            "cache_dir": null, "class_name": "brain", "device": "cpu", "image_size": 84, "method": "winclip",
            "offline": true, "precision": "fp32", "runtime": null},
  "output": {"aggregate": "topk:3", "key_objects": false, "parametric_map": true, "threshold": 0.4},
  "references": {"allow_other_modality": false, "bank": "/banks/head", "match": "retrieval", "shots": 2,
                 "slices_per_scan": null, "zero_shot": false},
  "slicing": {"axis": "coronal", "batch_size": "auto", "triage": 3, "window": "brain"}
 },
 "send_to": "", "show_patient_names": false, "sign_off_role": "radiologist", "trusted_groups_header": "",
 "trusted_header": "", "upload_ttl_minutes": 120
}"""


def _winclip_options() -> ScoringOptions:
    return ScoringOptions(
        model=MethodSpec(method="winclip", backbone=BackboneSpec("winclip-tiny-vit", "random:0", offline=True),
                         image_size=84, class_name="brain"),
        references=ReferenceOptions(bank="/banks/head", shots=2, match="retrieval"),
        slicing=SlicingOptions(window="brain", axis="coronal", batch_size="auto", triage=3),
        output=OutputOptions(threshold=0.4, aggregate="topk:3", parametric_map=True))


def test_the_model_part_is_the_method_spec_and_setting_names_are_unique():
    assert [f.name for f in fields(ScoringOptions)] == ["model", *SETTING_PARTS]
    assert isinstance(ScoringOptions().model, MethodSpec) and ScoringOptions().model == MethodSpec()
    names = [f.name for cls in SETTING_PARTS.values() for f in fields(cls)]
    assert len(names) == len(set(names))  # one flat name, one part: the node's [scoring] table relies on it


def test_with_a_part_changes_only_that_part_and_refuses_unknown_fields():
    base = ScoringOptions(references=ReferenceOptions(bank="/b"), slicing=SlicingOptions(window="bone"))
    changed = base.with_slicing(window=None).with_references(shots=2)
    assert changed.slicing.window is None and changed.references.shots == 2 and changed.references.bank == "/b"
    assert changed.model is base.model and changed.output is base.output  # untouched parts are shared
    assert base.slicing.window == "bone"  # frozen: the original is unchanged
    assert base.with_model(device="cuda:1").model == MethodSpec(device="cuda:1")
    with pytest.raises(TypeError, match="windwo"):
        base.with_slicing(windwo="brain")
    with pytest.raises(TypeError, match="window"):
        base.with_references(window="brain")  # the caller names the part: a field of another part is refused


def test_json_round_trip_of_the_spec_record():
    options = _winclip_options()
    nested = json.loads(json.dumps(options.to_dict()))
    assert set(nested) == {"model", *SETTING_PARTS} and nested["slicing"]["axis"] == "coronal"
    assert nested["model"]["weights"] is None and nested["model"]["backbone"]["architecture"] == "winclip-tiny-vit"
    assert ScoringOptions.from_dict(nested) == options
    nested["model"]["a_future_field"] = 1
    nested["references"]["a_future_option"] = 2
    assert ScoringOptions.from_dict(nested) == options  # a configuration from a newer version still opens
    default = ScoringOptions().to_dict()
    assert default["model"]["backbone"] is None and ScoringOptions.from_dict(default) == ScoringOptions()


def test_a_dashboard_config_written_before_the_spec_record_still_opens():
    config = DashboardConfig.from_json(CONFIG_BEFORE_THE_SPEC_RECORD)
    assert config.scoring == _winclip_options()
    assert config.data_roots == (Path("/data"),) and config.model_configured
    again = DashboardConfig.from_json(config.to_json())  # written back in the spec record, the same config
    assert again == config


def test_the_earlier_flat_record_still_opens():
    old_parts = json.loads(CONFIG_BEFORE_THE_SPEC_RECORD)["scoring"]
    flat = {k: v for part in old_parts.values() for k, v in part.items()}
    assert ScoringOptions.from_dict({**flat, "a_future_option": 1}) == _winclip_options()


def test_flat_names_of_the_node_table_map_to_the_spec_and_unknown_ones_are_refused():
    options = scoring_from_flat({"method": "adaptclip", "backbone": "ViT-L-14-336", "backbone_weights": "openai",
                                 "adapters": "a.safetensors", "image_size": 518, "precision": "bf16", "device": "cuda:1",
                                 "bank": "/banks/head", "zero_shot": True, "window": "brain", "threshold": 0.7,
                                 "parametric_map": True})
    assert options.model == MethodSpec(method="adaptclip", backbone=BackboneSpec("ViT-L-14-336", "openai"),
                                       weights="a.safetensors", image_size=518, device="cuda:1", precision="bf16")
    assert options.references == ReferenceOptions(bank="/banks/head", zero_shot=True) and not options.references.uses_bank
    assert options.slicing == SlicingOptions(window="brain")
    assert options.output == OutputOptions(threshold=0.7, parametric_map=True)
    with pytest.raises(TypeError, match="unknown scoring option.*windwo"):
        scoring_from_flat({"windwo": "brain"})


def test_dashboard_config_stores_the_parts(tmp_path):
    scoring = ScoringOptions(model=MethodSpec(image_size=56), references=ReferenceOptions(bank=str(tmp_path / "bank")),
                             slicing=SlicingOptions(window="40,80"))
    config = DashboardConfig((tmp_path,), tmp_path / "o", tmp_path / "b", scoring)
    text = config.to_json()
    assert json.loads(text)["scoring"]["references"]["bank"] == str(tmp_path / "bank")
    assert DashboardConfig.from_json(text) == config


def test_preprocessing_reads_only_the_slicing_part():
    options = ScoringOptions(model=MethodSpec(precision="bf16"), slicing=SlicingOptions(window="brain", axis="sagittal"))
    preprocessing = options.preprocessing()
    assert preprocessing.axis == "sagittal" and preprocessing.window is not None
