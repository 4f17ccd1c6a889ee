"""Reference banks are built safely: one build per name, private staging, and a bank that checks
its own consistency when opened.

Reproduced on main: two builds of one bank name shared the staging folder ``.<name>.building``;
one run reported success for a bank holding the other run's brain-window features under
bone-window metadata and a calibration matching neither.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from adaptclip_med.errors import AdaptClipError, InputError
from adaptclip_med.volume.bank.build_slot import BankBusyError, building_slot
from adaptclip_med.volume.bank_builder import build_reference_bank
from adaptclip_med.volume.bank.reader import ReferenceBank

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def _start(role, banks, flags, window, scans):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(HERE / "bank_build_worker.py"), role, str(banks), str(flags), window,
                             *map(str, scans)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_two_concurrent_builds_of_one_name_never_mix(demo_data, tmp_path, tiny_loaded):
    banks, flags = tmp_path / "banks", tmp_path / "flags"
    flags.mkdir()
    scans = demo_data.reference_dirs[:2]
    first = _start("first", banks, flags, "brain", scans)
    second = _start("second", banks, flags, "bone", scans)
    out_second, err_second = second.communicate(timeout=600)
    out_first, err_first = first.communicate(timeout=600)
    assert first.returncode == 0 and out_first.strip().endswith("built"), err_first[-2000:]
    assert second.returncode == 2, err_second[-2000:]
    refusal = out_second.strip().splitlines()[-1]
    assert refusal == ("refused: reference bank 'head' is being built by another process right now; wait for that "
                       "build to finish (or build under another name)")
    bank = ReferenceBank.open(banks / "head", expected_identity=tiny_loaded.identity())  # consistent: opens
    assert bank.preprocessing().window == "brain" and bank.calibration is not None
    assert not [p.name for p in banks.iterdir() if ".building" in p.name]


def test_staging_is_private_and_a_failed_build_keeps_the_previous_bank(bank, tmp_path):
    root = tmp_path / "banks"
    shutil.copytree(bank, root / "head")
    before = (root / "head" / "bank.json").read_text()
    with pytest.raises(RuntimeError):
        with building_slot(root, "head", root / "head") as slot:
            assert slot.staging.name == f".head.building-{slot.build_id}"
            (slot.staging / "partial").write_text("x")
            raise RuntimeError("encoding failed")
    assert (root / "head" / "bank.json").read_text() == before
    assert sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) == ["head"]


def test_a_build_in_progress_refuses_a_second_one_in_the_same_process_too(tmp_path):
    with building_slot(tmp_path, "head", tmp_path / "head"):
        with pytest.raises(BankBusyError, match="is being built by another process"):
            with building_slot(tmp_path, "head", tmp_path / "head"):
                pass


@pytest.fixture()
def two_banks(demo_data, tiny_loaded, tiny_options, tmp_path):
    """The same bank name built twice, with the brain and the bone window (two builds)."""
    from adaptclip_med.slice_preprocessing import SlicePreprocessing

    scans = demo_data.reference_dirs[:2]
    brain = build_reference_bank("head", scans, tiny_loaded, SlicePreprocessing("brain"), tmp_path / "a",
                                 calibration_slices=2)
    bone = build_reference_bank("head", scans, tiny_loaded, SlicePreprocessing("bone"), tmp_path / "b",
                                calibration_slices=2)
    return brain, bone


def test_features_of_another_build_are_refused_at_open(two_banks):
    brain, bone = two_banks
    shutil.copy(bone / "scan_01.safetensors", brain / "scan_01.safetensors")
    with pytest.raises(InputError) as caught:
        ReferenceBank.open(brain)
    assert str(caught.value) == ("reference bank 'head' is inconsistent: scan_01.safetensors comes from another build "
                                 "than bank.json; rebuild it with 'adaptclip-med references build'")


def test_features_restamped_but_encoded_with_another_window_are_refused(two_banks):
    brain, bone = two_banks
    build_id = json.loads((brain / "bank.json").read_text())["build_id"]
    tensors = load_file(str(bone / "scan_00.safetensors"))
    key = json.loads((bone / "bank.json").read_text())["key"]
    save_file(tensors, str(brain / "scan_00.safetensors"), metadata={"build_id": build_id, "bank_key": key})
    with pytest.raises(InputError, match="scan_00.safetensors was encoded with other settings"):
        ReferenceBank.open(brain)


def test_calibration_of_another_build_and_changed_files_are_refused(two_banks):
    brain, bone = two_banks
    meta = json.loads((brain / "bank.json").read_text())
    other = json.loads((bone / "bank.json").read_text())
    (brain / "bank.json").write_text(json.dumps({**meta, "calibration": other["calibration"]}))
    with pytest.raises(InputError, match="the calibration was computed on another build's features"):
        ReferenceBank.open(brain)
    (brain / "bank.json").write_text(json.dumps(meta))
    with open(brain / "scan_00.safetensors", "ab") as handle:
        handle.write(b"\0" * 16)
    with pytest.raises(InputError, match=r"scan_00.safetensors changed after the build \(\d+ bytes, \d+ when built\)"):
        ReferenceBank.open(brain)


def test_a_bank_built_before_the_stamps_still_opens(two_banks):
    brain, _ = two_banks
    meta = json.loads((brain / "bank.json").read_text())
    for field in ("build_id", "manifest"):
        meta.pop(field)
    meta["calibration"].pop("build_id")
    (brain / "bank.json").write_text(json.dumps(meta))
    assert ReferenceBank.open(brain).name == "head"


def test_the_cli_refusal_is_one_line_with_exit_code_2(tmp_path, demo_data):
    from typer.testing import CliRunner

    from adaptclip_med.cli.main import app

    banks = tmp_path / "banks"
    args = ["references", "build", "head", *map(str, demo_data.reference_dirs[:2]), "--banks-root", str(banks),
            "--window", "brain", "--backbone", "adaptclip-tiny-vit", "--backbone-weights", "random:0",
            "--adapters", "untrained", "--image-size", "56", "--offline", "--device", "cpu"]
    with building_slot(banks, "head", banks / "head"):
        result = CliRunner().invoke(app, args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and "is being built by another process" in errors[0]
    assert isinstance(result.exception, SystemExit) and not isinstance(result.exception, AdaptClipError)
