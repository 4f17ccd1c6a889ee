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
    from adaptclip_med.volume.options import ScoringOptions

    from tests.support.tiny_models import TINY_OPTIONS

    return ScoringOptions.build(**TINY_OPTIONS, zero_shot=True)
