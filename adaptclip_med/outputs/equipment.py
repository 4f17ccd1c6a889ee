"""The algorithm as contributing equipment of every derived DICOM object (IHE AI Results).

IHE AIR lists the algorithm that made a SEG, Parametric Map, SR or KOS in Contributing Equipment
(0018,A001) with Purpose of Reference ``(Newcode1, 99IHE, "Processing Algorithm")``, manufacturer,
model name, software version and a Device UID that changes whenever the model changes.  Here the
Device UID is derived from the method's identity (backbone, weights and their checksum, image
size...) AND the reference bank's identity (name, key, creation time, calibration), so two results
share it exactly when the same model compared against the same bank made them: a PACS or a
registry can then tell results of different models or banks apart without reading study.json.

highdicom's ``ContributingEquipment`` accepts only the DCM purposes and has no Device UID, so the
item is built here with pydicom.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from adaptclip_med.version import __version__

MANUFACTURER = "adaptclip-med"
#: IHE AIR's purpose of reference for an AI algorithm (private IHE scheme, as the profile spells it)
PROCESSING_ALGORITHM = Code("Newcode1", "99IHE", "Processing Algorithm")
#: The project's own codes (anomaly score, operating threshold...) in SRs: no standard code exists.
LOCAL_SCHEME = "99ACMED"
_SCHEMES = {"99IHE": ("IHE private codes", "IHE"), LOCAL_SCHEME: ("adaptclip-med codes", MANUFACTURER)}


def device_uid(model_identity: Mapping[str, Any] | None, bank_identity: Mapping[str, Any] | None) -> str:
    """A UID (``2.25.<128-bit integer>``) that is a pure function of the model and bank identities:
    the same pair always gives the same UID, any change to either gives another."""
    payload = json.dumps({"model": model_identity or None, "bank": bank_identity or None}, sort_keys=True, default=str)
    return "2.25." + str(int(hashlib.sha256(payload.encode()).hexdigest()[:32], 16))


def scoring_parameters(scoring: Mapping[str, Any]) -> tuple[str, ...]:
    """``key=value`` lines of everything that shaped the result (method identity, bank, threshold,
    preprocessing...), for the SR's Algorithm Identification parameters."""
    lines = []
    for key, value in scoring.items():
        if key == "references_note" or value is None:
            continue
        shown = value if isinstance(value, (str, int, float, bool)) else json.dumps(value, sort_keys=True, default=str)
        lines.append(f"{key}={shown}")
    return tuple(lines)


@dataclass(frozen=True)
class AlgorithmEquipment:
    """The algorithm that produced a result: what Contributing Equipment, the SR's device observer
    and Algorithm Identification say about it."""

    name: str  # the method's display name, also Manufacturer's Model Name (e.g. "AdaptCLIP")
    version: str  # software version of adaptclip-med
    device_uid: str
    parameters: tuple[str, ...] = ()
    manufacturer: str = MANUFACTURER

    @classmethod
    def for_scoring(cls, name: str, scoring: Mapping[str, Any], version: str = __version__) -> "AlgorithmEquipment":
        """From a scorer's ``describe()`` (``model``: the method identity, ``reference_bank``: the bank)."""
        return cls(name, version, device_uid(scoring.get("model"), scoring.get("reference_bank")),
                   scoring_parameters(scoring))

    @classmethod
    def unidentified(cls, name: str, version: str = __version__) -> "AlgorithmEquipment":
        """When only the algorithm's name and version are known (no scoring description)."""
        return cls(name, version, device_uid({"method": name, "version": version}, None))


def contributing_equipment_item(equipment: AlgorithmEquipment) -> Dataset:
    """One Contributing Equipment Sequence item for ``equipment`` (purpose Processing Algorithm)."""
    purpose = Dataset()
    purpose.CodeValue = PROCESSING_ALGORITHM.value
    purpose.CodingSchemeDesignator = PROCESSING_ALGORITHM.scheme_designator
    purpose.CodeMeaning = PROCESSING_ALGORITHM.meaning
    item = Dataset()
    item.Manufacturer = equipment.manufacturer
    item.ManufacturerModelName = equipment.name[:64]
    item.SoftwareVersions = equipment.version
    item.DeviceUID = equipment.device_uid
    item.ContributionDescription = f"{equipment.name} anomaly detection (research use only)"
    item.PurposeOfReferenceCodeSequence = [purpose]
    return item


def declare_coding_schemes(dataset: Dataset, schemes: Sequence[str] = tuple(_SCHEMES)) -> None:
    """Coding Scheme Identification (0008,0110) for the private schemes the object uses."""
    present = {str(item.CodingSchemeDesignator) for item in dataset.get("CodingSchemeIdentificationSequence", [])}
    items = list(dataset.get("CodingSchemeIdentificationSequence", []))
    for designator in schemes:
        if designator in present:
            continue
        name, organisation = _SCHEMES[designator]
        item = Dataset()
        item.CodingSchemeDesignator = designator
        item.CodingSchemeName = name
        item.CodingSchemeResponsibleOrganization = organisation
        items.append(item)
    dataset.CodingSchemeIdentificationSequence = items


def add_contributing_equipment(dataset: Dataset, equipment: AlgorithmEquipment) -> Dataset:
    """Append the algorithm to ``dataset``'s Contributing Equipment (keeping what highdicom put
    there: the source's acquisition equipment and highdicom itself) and declare the 99IHE scheme."""
    dataset.ContributingEquipmentSequence = [*dataset.get("ContributingEquipmentSequence", []),
                                             contributing_equipment_item(equipment)]
    declare_coding_schemes(dataset, ("99IHE",))
    return dataset
