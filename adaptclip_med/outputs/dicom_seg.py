"""DICOM Segmentation (BINARY) of the anomaly mask, referencing the source images frame by frame.

BINARY is used because every SEG viewer supports it.  An empty mask still produces a valid SEG
with all frames encoded (empty), so "nothing found" is recorded explicitly in the PACS.  The
segment carries a recommended display colour (viewers such as OHIF log its absence and pick one
themselves) and the algorithm is listed in Contributing Equipment (IHE AI Results).
"""

from __future__ import annotations

import io
from pathlib import Path

import highdicom as hd
import numpy as np
from highdicom.seg import SegmentAlgorithmTypeValues, Segmentation, SegmentationTypeValues, SegmentDescription
from pydicom.sr.codedict import codes

from adaptclip_med.io.volume import Volume
from adaptclip_med.outputs.dicom_sources import conform_derived, deriving_from, has_plane_positions, source_aligned_frames
from adaptclip_med.outputs.equipment import MANUFACTURER, AlgorithmEquipment, add_contributing_equipment
from adaptclip_med.utils.atomic import atomic_write_bytes
from adaptclip_med.version import __version__

__all__ = ["SEGMENT_RGB", "write_dicom_seg"]

#: The anomaly segment's recommended display colour (an orange-red distinct from grey anatomy).
SEGMENT_RGB = (255, 96, 0)


def write_dicom_seg(mask_zyx: np.ndarray, volume: Volume, path: str | Path, *, algorithm_name: str,
                    software_version: str = __version__, series_description: str = "Anomaly mask (research)", segment_label: str = "anomaly",
                    series_number: int = 9901, equipment: AlgorithmEquipment | None = None) -> Path:
    """Write ``mask_zyx`` (bool, shaped like ``volume.array``) as a DICOM SEG next to the study.

    Patient and study attributes are copied from the source headers by highdicom; they are never
    used in the file name, which the caller chooses.  ``equipment``: the algorithm for Contributing
    Equipment (default: identified by ``algorithm_name`` and ``software_version`` only)."""
    sources, frames = source_aligned_frames(np.asarray(mask_zyx).astype(bool), volume, "SEG")
    description = SegmentDescription(
        segment_number=1, segment_label=segment_label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion,
        algorithm_type=SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=algorithm_name, family=codes.cid7162.ArtificialIntelligence, version=software_version),
        display_color=hd.color.CIELabColor.from_rgb(*SEGMENT_RGB),
    )
    with deriving_from(volume, "DICOM SEG"):
        seg = Segmentation(
            source_images=sources, pixel_array=frames.astype(np.uint8), segmentation_type=SegmentationTypeValues.BINARY,
            segment_descriptions=[description], series_instance_uid=hd.UID(), series_number=series_number,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
            manufacturer_model_name=algorithm_name, software_versions=software_version, device_serial_number="0",
            series_description=series_description,
            omit_empty_frames=bool(frames.any()) and has_plane_positions(sources[0]),
        )
    conform_derived(seg, volume)
    add_contributing_equipment(seg, equipment or AlgorithmEquipment.unidentified(algorithm_name, software_version))
    buffer = io.BytesIO()
    seg.save_as(buffer)
    return atomic_write_bytes(Path(path), buffer.getvalue(), private=True)  # it carries the patient's identity
