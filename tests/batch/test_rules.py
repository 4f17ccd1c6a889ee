from __future__ import annotations

import pytest

from adaptclip_med.batch.rules import SeriesRules, load_rules, no_series_reason, select_series
from adaptclip_med.errors import InputError
from adaptclip_med.io.dicom_scan import SeriesInfo, SkippedFile


def series(key: str, **kw) -> SeriesInfo:
    base = dict(series_key=key, study_key="s", kind="image", modality="CT", description="AX HEAD", series_number=1,
                num_slices=30, orientation="axial", slice_thickness=5.0, body_part="HEAD")
    base.update(kw)
    return SeriesInfo(**base)


def test_default_rules_leave_localizers_derived_and_captures_and_prefer_thinnest_axial():
    candidates = [
        series("loc", is_localizer=True, num_slices=2, description="SCOUT"),
        series("mpr", is_derived=True, slice_thickness=0.6, orientation="coronal"),
        series("sc", is_secondary_capture=True, modality="OT", description="DOSE REPORT"),
        series("thick", slice_thickness=5.0),
        series("thin", slice_thickness=1.0, series_number=3),
        series("sag", slice_thickness=0.5, orientation="sagittal", series_number=4),
        series("pilot", slice_thickness=0.1, description="T/S/C RF FAST PILOT"),  # not flagged in ImageType
        SeriesInfo(series_key="sr", study_key="s", kind="non-image", modality="SR",
                   skipped=[SkippedFile(path=None, label="x", reason="non-image object (Basic Text SR Storage)")]),
    ]
    choice = select_series(candidates, SeriesRules())
    assert choice.chosen.series_key == "thin"
    assert len(choice.decisions) == len(candidates)  # every series has a recorded decision
    by_key = dict(zip([c.series_key for c in candidates], choice.decisions))
    assert by_key["loc"].reason == "localizer/scout" and not by_key["loc"].taken
    assert by_key["mpr"].reason.startswith("derived")
    assert by_key["sc"].reason == "secondary capture"
    assert by_key["pilot"].reason == "localizer/scout (by description)"
    assert "Basic Text SR" in by_key["sr"].reason
    assert by_key["thin"].taken and "axial" in by_key["thin"].reason and "of 3 eligible" in by_key["thin"].reason
    assert by_key["thick"].reason == "eligible but ranked below the chosen series"
    assert by_key["sag"].reason == "eligible but ranked below the chosen series"  # thinner, but not axial


def test_rules_filter_modality_body_part_description_and_slices():
    rules = SeriesRules(modalities=("CT",), body_parts=("HEAD",), description="(?i)brain|head",
                        exclude_description="(?i)bone", min_slices=10, allow_missing_body_part=False)
    candidates = [series("mr", modality="MR"), series("chest", body_part="CHEST"), series("nobody", body_part=""),
                  series("bone", description="HEAD BONE"), series("desc", description="ABDOMEN"),
                  series("short", num_slices=4), series("ok")]
    choice = select_series(candidates, rules)
    assert choice.chosen.series_key == "ok"
    reasons = [d.reason for d in choice.decisions]
    assert reasons[:6] == ["modality MR not in CT", "body part CHEST not in HEAD", "body part not recorded",
                           "description matches the excluded pattern", "description does not match the required pattern",
                           "4 slices < minimum 10"]
    assert choice.decisions[-1].reason == "only eligible series"


def test_no_eligible_series_reason_lists_every_series():
    choice = select_series([series("loc", is_localizer=True, description="SCOUT")], SeriesRules())
    assert choice.chosen is None
    assert no_series_reason(choice.decisions) == "no eligible series (CT series #1 'SCOUT': 30 slices, axial, 5 mm, localizer: localizer/scout)"
    assert no_series_reason([]) == "no image series in the study"


def test_load_rules_from_yaml(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("modalities: ct\nbody_parts: [head, Brain]\nmin_slices: 20\nplanes: [Axial]\nexclude_derived: false\n")
    rules = load_rules(path)
    assert rules == SeriesRules(modalities=("CT",), body_parts=("HEAD", "BRAIN"), min_slices=20, planes=("axial",),
                                exclude_derived=False)
    assert load_rules(None) == SeriesRules()


@pytest.mark.parametrize("text, message", [
    ("modality: CT\n", "unknown rule(s) modality"),
    ("min_slices: 0\n", "'min_slices' must be a positive integer"),
    ("exclude_derived: maybe\n", "'exclude_derived' must be true or false"),
    ("description: '(unclosed'\n", "'description' is not a valid regular expression"),
    ("planes: [diagonal]\n", "plane 'diagonal' is not one of"),
    ("- a list\n", "must be a mapping"),
    ("key: [unclosed\n", "not valid YAML"),
])
def test_bad_rules_are_one_line_input_errors_naming_the_file(tmp_path, text, message):
    path = tmp_path / "site_rules.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_rules(path)
    assert message in str(info.value) and "site_rules.yaml" in str(info.value) and "\n" not in str(info.value)
