"""Picture of a study's AI results as a viewer would draw them, read back from the DICOM files.

For each region of the SR (``anomaly_sr.dcm``), the source image its outline lies on, with the
SEG's voxels on that image in the segment's recommended colour and the SR's POLYLINE on top,
labelled with the region's measurements.  Everything is read from the written objects (SR, SEG,
source images), so the picture also checks that they agree.  Used for docs/images/ai-results.png:

    adaptclip-med demo --out demo_output
    python scripts/render_ai_results.py demo_output/<study source folder> demo_output/<study result folder> \
        docs/images/ai-results.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import highdicom as hd
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pydicom  # noqa: E402

WINDOW = (40.0, 80.0)  # brain window: level, width


def _source_images(folder: Path) -> dict[str, pydicom.Dataset]:
    images = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            try:
                ds = pydicom.dcmread(path)
            except Exception:  # noqa: BLE001 - not DICOM: skip
                continue
            if "PixelData" in ds:
                images[str(ds.SOPInstanceUID)] = ds
    return images


def _seg_on(seg: hd.seg.Segmentation, sop_instance_uid: str) -> np.ndarray | None:
    for index, group in enumerate(seg.PerFrameFunctionalGroupsSequence):
        ref = group.DerivationImageSequence[0].SourceImageSequence[0]
        if str(ref.ReferencedSOPInstanceUID) == sop_instance_uid:
            pixels = seg.pixel_array if int(seg.NumberOfFrames) > 1 else seg.pixel_array[None]
            return pixels[index].astype(bool)
    return None


def render(sources: Path, results: Path, out: Path) -> Path:
    images = _source_images(sources)
    sr = hd.sr.srread(results / "anomaly_sr.dcm")
    seg = hd.seg.segread(results / "anomaly_seg.dcm")
    colour = np.array(hd.color.CIELabColor.from_dicom_value(
        seg.get_segment_description(1).RecommendedDisplayCIELabValue).to_rgb()) / 255.0
    volumetric = {g.tracking_uid: g for g in sr.content.get_volumetric_roi_measurement_groups()}
    planar = sr.content.get_planar_roi_measurement_groups()
    study = sr.content.get_image_measurement_groups()[0]
    finding = study.get_qualitative_evaluations()[0].value.meaning
    threshold = {m.name.meaning: m.value for m in study.get_measurements()}.get("Operating threshold")
    columns = max(1, len(planar))
    figure, axes = plt.subplots(1, columns, figsize=(4 * columns, 4.4), squeeze=False)
    for axis, group in zip(axes[0], planar):
        roi = group.roi
        uid = str(roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
        image = images[uid]
        hu = image.pixel_array * float(image.get("RescaleSlope", 1)) + float(image.get("RescaleIntercept", 0))
        level, width = WINDOW
        axis.imshow(np.clip((hu - level + width / 2) / width, 0, 1), cmap="gray")
        mask = _seg_on(seg, uid)
        if mask is not None:
            overlay = np.zeros((*mask.shape, 4))
            overlay[mask] = [*colour, 0.45]
            axis.imshow(overlay)
        points = np.asarray(roi.value) - 0.5  # DICOM pixel coordinates -> matplotlib pixel centres
        axis.plot(points[:, 0], points[:, 1], color="yellow", linewidth=1.5)
        values = {(m.name.meaning, m.derivation.meaning if m.derivation else None): m.value
                  for m in volumetric[group.tracking_uid].get_measurements()}
        axis.set_title(f"{group.tracking_identifier}\npeak {values[('Anomaly score', 'Maximum')]:.2f}, "
                       f"volume {values[('Volume', None)]:.0f} mm³", fontsize=9)
        axis.axis("off")
    figure.suptitle(f"SR finding: anomaly {finding} at threshold {threshold:.3g} — SEG (colour) + SR outline (yellow)"
                    " — research use only, no diagnostic value", fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 0.92))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", type=Path, help="the study's source DICOM folder")
    parser.add_argument("results", type=Path, help="the study's result folder (anomaly_sr.dcm, anomaly_seg.dcm)")
    parser.add_argument("out", type=Path, help="PNG to write")
    args = parser.parse_args()
    print(render(args.sources, args.results, args.out))


if __name__ == "__main__":
    main()
