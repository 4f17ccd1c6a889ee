"""DICOM Parametric Map (float32) of the anomaly probability, for viewers that show heat maps.

Frames are written in ascending slice position (:mod:`adaptclip_med.outputs.frame_order`: OHIF
stacks Parametric Map frames in file order) and the algorithm is listed in Contributing Equipment.
"""

from __future__ import annotations

import io
from pathlib import Path

import highdicom as hd
import numpy as np
from highdicom.pm import ParametricMap, RealWorldValueMapping

from adaptclip_med.io.volume import Volume
from adaptclip_med.outputs.dicom_sources import conform_derived, deriving_from, require_frame_of_reference, source_aligned_frames
from adaptclip_med.outputs.equipment import MANUFACTURER, AlgorithmEquipment, add_contributing_equipment
from adaptclip_med.outputs.frame_order import order_frames_ascending
from adaptclip_med.utils.atomic import atomic_write_bytes
from adaptclip_med.version import __version__

_NO_UNITS = hd.sr.CodedConcept(value="1", scheme_designator="UCUM", meaning="no units")


def write_parametric_map(prob_zyx: np.ndarray, volume: Volume, path: str | Path, *, algorithm_name: str = "AdaptCLIP",
                         software_version: str = __version__, series_description: str = "Anomaly probability",
                         series_number: int = 9902, equipment: AlgorithmEquipment | None = None) -> Path:
    """Write probabilities in [0, 1] (shaped like ``volume.array``) as a float32 Parametric Map
    aligned frame by frame with the source images; windowed 0..1 for display.  2-D sources without
    a frame of reference are refused (:class:`InputError`): the IOD requires one.  ``equipment``:
    the algorithm for Contributing Equipment (default: identified by name and version only)."""
    sources, frames = source_aligned_frames(np.clip(np.asarray(prob_zyx, dtype=np.float32), 0.0, 1.0), volume,
                                            "parametric map")
    require_frame_of_reference(volume, "DICOM Parametric Map")
    mapping = RealWorldValueMapping(lut_label="anomaly", lut_explanation="anomaly probability",
                                    unit=_NO_UNITS, value_range=(0.0, 1.0), slope=1.0, intercept=0.0)
    with deriving_from(volume, "DICOM Parametric Map"):
        pmap = ParametricMap(
            source_images=sources, pixel_array=frames.astype(np.float32), series_instance_uid=hd.UID(),
            series_number=series_number, sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
            manufacturer_model_name=algorithm_name, software_versions=software_version, device_serial_number="0",
            contains_recognizable_visual_features=False, real_world_value_mappings=[mapping],
            voi_lut_transformations=[hd.VOILUTTransformation(window_center=0.5, window_width=1.0)],
            series_description=series_description,
        )
    conform_derived(pmap, volume, laterality=True)
    order_frames_ascending(pmap)
    add_contributing_equipment(pmap, equipment or AlgorithmEquipment.unidentified(algorithm_name, software_version))
    buffer = io.BytesIO()
    pmap.save_as(buffer)
    return atomic_write_bytes(Path(path), buffer.getvalue(), private=True)  # it carries the patient's identity
