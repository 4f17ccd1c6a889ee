"""A real Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) on loopback for PACS tests, started
through scripts/orthanc_testbed.py; batch test helpers are shared with tests/batch
(tests/support/dicom_studies.py)."""

from __future__ import annotations

import pytest

from tests.support.scripts import load_script

testbed = load_script("orthanc_testbed")


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
