"""What OHIF 3.13 needs of our SR, checked on the file (no browser, so it runs where the viewer is
not installed): every measurement group it turns into a measurement must carry a spatial coordinate,
either an SCOORD/SCOORD3D of the group or one a NUM is INFERRED FROM.  OHIF's SR viewport reads
``coords[0]`` of every measurement while placing them; a group without any coordinate (a study-level
finding, a group with only a segment reference and no sibling outline) breaks the viewport
("Something went wrong", a black viewport: tests/viewer/test_ohif.py shows it in the browser)."""

from __future__ import annotations

import pydicom
import pytest

from dicom_truth import COMPREHENSIVE_3D_SR_CLASS

pytestmark = pytest.mark.slow

MEASUREMENT_GROUP = "125007"
IMAGING_MEASUREMENTS = "126010"


def _code(item) -> str:
    return str(item.ConceptNameCodeSequence[0].CodeValue) if "ConceptNameCodeSequence" in item else ""


def _spatial(item) -> bool:
    return item.ValueType in ("SCOORD", "SCOORD3D")


def groups_without_coordinates(sr: pydicom.Dataset) -> list[str]:
    """Tracking identifiers of the findings (groups merged by tracking UID, as OHIF merges them)
    that hold no spatial coordinate anywhere OHIF looks."""
    container = next(i for i in sr.ContentSequence if _code(i) == IMAGING_MEASUREMENTS)
    spatial: dict[str, bool] = {}
    names: dict[str, str] = {}
    for group in (g for g in container.ContentSequence if _code(g) == MEASUREMENT_GROUP):
        items = list(group.ContentSequence)
        uid = next(str(i.UID) for i in items if i.ValueType == "UIDREF")
        names[uid] = next((str(i.TextValue) for i in items if i.ValueType == "TEXT"), uid)
        found = any(_spatial(i) for i in items) or any(
            _spatial(child) for i in items if i.ValueType == "NUM" for child in i.get("ContentSequence", []))
        spatial[uid] = spatial.get(uid, False) or found
    return sorted(names[uid] for uid, ok in spatial.items() if not ok)


def test_every_sr_finding_has_a_spatial_coordinate(scored_outputs):
    paths = scored_outputs.by_class.get(COMPREHENSIVE_3D_SR_CLASS)
    assert paths, "no Comprehensive 3D SR among the outputs"
    missing = groups_without_coordinates(pydicom.dcmread(paths[0]))
    assert not missing, f"SR measurement groups without any spatial coordinate (OHIF 3.13 breaks on them): {missing}"
