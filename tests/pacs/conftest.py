"""A real Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) on loopback for PACS tests, started
through scripts/orthanc_testbed.py; batch test helpers are shared with tests/batch
(tests/support/dicom_studies.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_testbed():
    spec = importlib.util.spec_from_file_location("orthanc_testbed", ROOT / "scripts" / "orthanc_testbed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


testbed = _load_testbed()


@pytest.fixture()
def orthanc(tmp_path):
    if not testbed.orthanc_available():
        pytest.skip("Orthanc and its DICOMweb plugin are not installed (apt-get install orthanc orthanc-dicomweb)")
    with testbed.OrthancTestbed(tmp_path / "orthanc") as pacs:
        yield pacs


@pytest.fixture(scope="session")
def scoring():
    from adaptclip_med.volume.options import scoring_from_flat

    from tests.support.tiny_models import TINY_OPTIONS

    return scoring_from_flat({**TINY_OPTIONS, "zero_shot": True})  # the flat record the node's [scoring] table holds
