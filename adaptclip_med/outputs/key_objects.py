"""Key Object Selection of the top-scoring slices: the images a reader should look at first.

A KOS ("Of Interest", DCM 113000) lists source images of the study; PACS viewers show them as key
images.  The algorithm is the observer device and is listed in Contributing Equipment.  A
multi-frame source is referenced as a whole object (highdicom's KOS references instances).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
from pydicom.sr.codedict import codes

from adaptclip_med.outputs.dicom_sources import ImageRef
from adaptclip_med.outputs.equipment import AlgorithmEquipment, add_contributing_equipment
from adaptclip_med.utils.atomic import atomic_write_bytes


def build_key_object_selection(images: Sequence[ImageRef], equipment: AlgorithmEquipment, *, series_number: int,
                               series_description: str, description: str) -> hd.ko.KeyObjectSelectionDocument:
    """The KOS dataset over ``images`` (in order, each instance once; at least one)."""
    unique = list({image.sop_instance_uid: image.header for image in images}.values())
    if not unique:
        raise ValueError("a key object selection needs at least one image")
    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=equipment.device_uid, name=equipment.name,
                                                       manufacturer_name=equipment.manufacturer, model_name=equipment.name)
    content = hd.ko.KeyObjectSelection(document_title=codes.DCM.OfInterest, referenced_objects=unique,
                                       observer_device_context=hd.sr.ObserverContext(codes.DCM.Device, device),
                                       description=description)
    document = hd.ko.KeyObjectSelectionDocument(
        evidence=unique, content=content, series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=equipment.manufacturer,
        series_description=series_description)
    return add_contributing_equipment(document, equipment)


def write_key_object_selection(path: str | Path, images: Sequence[ImageRef], equipment: AlgorithmEquipment, *,
                               series_number: int, series_description: str, description: str) -> Path:
    """Build the KOS (:func:`build_key_object_selection`) and write it atomically."""
    document = build_key_object_selection(images, equipment, series_number=series_number,
                                          series_description=series_description, description=description)
    buffer = io.BytesIO()
    document.save_as(buffer)
    return atomic_write_bytes(Path(path), buffer.getvalue())
