"""``torchrun`` with ``configs/multi_gpu_inference.json`` (gloo on CPU): studies are sharded across
two processes and the results equal a single-process run."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from bundle_helpers import BUNDLE, IMAGE_SIZE, TINY, cli_args, config, subprocess_env


def test_two_processes_shard_studies_and_match_one_process(demo_dir, tmp_path):
    from monai.bundle import ConfigWorkflow

    single = ConfigWorkflow(config_file=config("inference", "demo"), workflow_type="infer", logging_file=False,
                            demo_dir=str(demo_dir), output_dir=str(tmp_path / "one"), image_size=TINY["image_size"])
    single.initialize()
    single.run()
    single.finalize()

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "monai.bundle", "run", "--config_file", str(config("inference", "demo", "multi_gpu_inference")),
               *cli_args(demo_dir=demo_dir, image_size=IMAGE_SIZE, output_dir=tmp_path / "two")]
    result = subprocess.run(command, cwd=BUNDLE, env=subprocess_env(), capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = result.stdout + result.stderr
    # Each study was scored exactly once across the two ranks.
    assert log.count("demo-study-with-lesions: study score") == 1 and log.count("demo-normal-study: study score") == 1

    one = {r["study"]: r for r in json.loads((tmp_path / "one" / "summary.json").read_text())["studies"]}
    two = {r["study"]: r for r in json.loads((tmp_path / "two" / "summary.json").read_text())["studies"]}
    assert one.keys() == two.keys() == {"demo-study-with-lesions", "demo-normal-study"}
    for study in one:
        assert two[study]["score"] == pytest.approx(one[study]["score"], abs=1e-6)
        assert two[study]["top_slices"] == one[study]["top_slices"]
        maps = [np.asarray(nib.load(str(tmp_path / run / study / "anomaly_probability.nii.gz")).dataobj)
                for run in ("one", "two")]
        np.testing.assert_allclose(maps[1], maps[0], atol=1e-6)
