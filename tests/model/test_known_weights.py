"""The plain-data weights registry (what ``weights status`` reads without open_clip) matches
open_clip's own pretrained registry, and the releases' names are the ones the loaders use."""

from __future__ import annotations

import open_clip

from adaptclip_med.methods.adaclip.releases import ADACLIP_RELEASES
from adaptclip_med.methods.adaptclip.release import RELEASE_FILES
from adaptclip_med.model.known_weights import KNOWN_BACKBONES


def test_known_backbones_match_open_clip():
    for known in KNOWN_BACKBONES:
        cfg = open_clip.get_pretrained_cfg(known.architecture, known.tag)
        assert cfg, known
        assert cfg.get("hf_hub") == known.hf_hub and cfg.get("url") == known.url, known


def test_release_names_are_shared_with_the_loaders():
    from adaptclip_med.methods.adaclip.weights import RELEASES
    from adaptclip_med.methods.adaptclip import release_import

    assert release_import.RELEASE_FILES is RELEASE_FILES and RELEASES is ADACLIP_RELEASES
    assert {r.file_name for r in ADACLIP_RELEASES} == {"pretrained_mvtec_colondb.pth", "pretrained_visa_clinicdb.pth",
                                                        "pretrained_all.pth"}


def test_weights_status_imports_no_model_stack():
    import subprocess
    import sys

    code = ("import sys; from adaptclip_med.cli.main import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['weights', 'status']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('torch', 'open_clip') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
