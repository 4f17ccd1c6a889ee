"""MONAI intensity transforms give the CLI's windowing; output names and writer units are one
registry; the bundle's postprocessing is one transform per output, chosen by the config."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from adaptclip_med.demo.phantom import make_head_ct_phantom
from adaptclip_med.intensity import CT_WINDOWS, apply_window, normalise_array, percentile_scale


@pytest.fixture(scope="module")
def phantom() -> np.ndarray:
    hu, _ = make_head_ct_phantom(0, (6, 48, 48), lesions=1)
    return hu


@pytest.mark.parametrize("name", sorted(CT_WINDOWS))
def test_monai_scale_intensity_range_is_our_window_exactly(phantom, name):
    from monai.transforms import ScaleIntensityRanged

    from adaptclip_med.transforms import WindowIntensityd

    level, width = CT_WINDOWS[name]
    ours = apply_window(phantom, level, width)
    monai = ScaleIntensityRanged("image", a_min=level - width / 2, a_max=level + width / 2, b_min=0.0, b_max=1.0,
                                 clip=True)({"image": torch.from_numpy(phantom.astype(np.float32))})["image"]
    assert float(np.abs(np.asarray(monai) - ours).max()) == 0.0
    transformed = WindowIntensityd("image", window=name)({"image": torch.from_numpy(phantom)})["image"]
    assert transformed.dtype == torch.float32 and float(np.abs(transformed.numpy() - ours).max()) == 0.0


def test_monai_percentiles_match_ours_within_one_ulp(phantom):
    from monai.transforms import ScaleIntensityRangePercentilesd

    from adaptclip_med.transforms import WindowIntensity

    ours = percentile_scale(phantom)
    monai = ScaleIntensityRangePercentilesd("image", lower=0.5, upper=99.5, b_min=0.0, b_max=1.0, clip=True)(
        {"image": torch.from_numpy(phantom.astype(np.float32))})["image"]
    assert float(np.abs(np.asarray(monai) - ours).max()) < 1e-6
    assert float(np.abs(WindowIntensity(None)(phantom) - normalise_array(phantom, None)).max()) < 1e-6
    # integer CT is cast first (MONAI keeps the input dtype); a constant volume maps to zeros
    assert WindowIntensity("brain")(phantom.astype(np.int16)).dtype == np.float32
    assert not WindowIntensity(None)(np.full((2, 4, 4), 7.0)).any()


def test_layout_names_and_default_writers():
    from adaptclip_med.outputs import layout, study_writers

    assert layout.overlay_name(2, 7) == "overlay_top2_slice0007.png" and layout.parse_overlay_name("overlay_top2_slice0007.png") == (2, 7)
    # the number in the name is the 1-based slice the viewer shows (array index 6)
    assert layout.DICOM_RESULTS == ("anomaly_seg.dcm", "anomaly_pmap.dcm", "anomaly_sr.dcm", "anomaly_kos.dcm")
    assert [w.name for w in study_writers.default_writers()] == ["probability_nifti", "mask_nifti", "dicom_seg",
                                                                  "dicom_sr", "slices_csv", "overlays", "score_plot"]
    assert "parametric_map" in [w.name for w in study_writers.default_writers(parametric_map=True)]
    optional = [w.name for w in study_writers.default_writers(parametric_map=True, key_objects=True)]
    assert optional.index("dicom_seg") < optional.index("dicom_sr") and "key_objects" in optional
    from adaptclip_med.bundle_support import OUTPUT_TRANSFORMS

    assert list(OUTPUT_TRANSFORMS) == list(study_writers.WRITERS)  # one bundle transform per writer unit


def test_inference_config_writes_the_sr_after_the_seg_and_key_objects_on_request():
    from bundle_helpers import config

    inference = json.loads(open(config("inference")[0]).read())
    steps = [(t["_target_"].rsplit(".", 1)[-1], t.get("_disabled_")) for t in inference["postprocessing"]["transforms"]]
    names = [name for name, _ in steps]
    assert names.index("SaveDicomSegd") < names.index("SaveDicomSrd") < names.index("SaveStudyJsond") == len(names) - 1
    assert dict(steps)["SaveKeyObjectsd"] == "$not @key_objects" and inference["key_objects"] is False
    assert names.index("SaveOverlaysd") == 5  # overrides addressing transforms by index keep working


def test_decollation_gives_one_dict_per_study():
    from monai.transforms import Decollated

    from adaptclip_med.bundle_support import collate_studies, study_items

    class Thing:  # stands for a Volume: no batch dimension
        pass

    volumes = [Thing(), Thing()]
    batch = collate_studies([{"study": f"s{i}", "image": torch.zeros(3, 4, 4), "image_volume": v}
                             for i, v in enumerate(volumes)])
    rows = Decollated(keys=None, detach=True)(batch)
    assert [r["study"] for r in rows] == ["s0", "s1"] and [r["image_volume"] for r in rows] == volumes
    assert study_items(batch)[1]["image"].shape == (3, 4, 4)


def test_a_config_drops_the_overlays(tmp_path):
    from monai.bundle import ConfigWorkflow

    from bundle_helpers import TINY, config

    from tests.support.phantoms import write_nifti_study

    studies = tmp_path / "studies"
    studies.mkdir()
    write_nifti_study(studies / "head.nii.gz", seed=2, lesions=1)
    (studies / "head_mask.nii.gz").unlink()
    override = tmp_path / "no_overlays.json"
    override.write_text(json.dumps({"postprocessing#transforms#5#_disabled_": True}))
    flow = ConfigWorkflow(config_file=config("inference") + [str(override)], workflow_type="infer", logging_file=False,
                          **TINY, window="brain", zero_shot=True, dataset_dir=str(studies), output_dir=str(tmp_path / "out"))
    flow.initialize()
    assert type(flow.parser.get_parsed_content("postprocessing").transforms[-1]).__name__ == "SaveStudyJsond"
    flow.run()
    folder = next(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    report = json.loads((folder / "study.json").read_text())
    assert not list(folder.glob("overlay_*.png")) and not any(k.startswith("overlay") for k in report["files"])
    assert {"probability_nifti", "mask_nifti", "slices_csv", "score_plot"} <= set(report["files"])
    assert report["software"]["version"]
