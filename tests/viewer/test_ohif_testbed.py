"""The OHIF testbed itself (scripts/ohif_testbed.py), without a browser: one origin serves the viewer
with our configuration, falls back to index.html for the viewer's routes, and proxies DICOMweb to
Orthanc with bulk-data links on that same origin (a link to Orthanc's own port would be
cross-origin for the browser)."""

from __future__ import annotations

import json
import urllib.request

import pytest

pytestmark = pytest.mark.slow


def _get(url: str, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, dict(response.headers), response.read()


def test_one_origin_serves_ohif_and_proxies_dicomweb(empty_ohif, tmp_path):
    from adaptclip_med.demo.phantom import make_head_ct_phantom, write_dicom_series

    hu, _ = make_head_ct_phantom(3, (4, 32, 32), lesions=0)
    files = write_dicom_series(hu, tmp_path / "ct")
    assert empty_ohif.upload(files) == len(files)

    status, headers, body = _get(empty_ohif.url + "/app-config.js")
    assert status == 200 and b"adaptclip-med/orthanc" in body and b"wadoRoot: '/dicom-web'" in body
    _, headers, route = _get(empty_ohif.url + "/viewer?StudyInstanceUIDs=1.2.3")  # a client-side route
    _, _, index = _get(empty_ohif.url + "/index.html")
    assert route == index and headers.get("Cross-Origin-Opener-Policy") == "same-origin"

    _, _, studies = _get(empty_ohif.url + "/dicom-web/studies", "application/dicom+json")
    (study_uid,) = [s["0020000D"]["Value"][0] for s in json.loads(studies)]
    _, _, metadata = _get(f"{empty_ohif.url}/dicom-web/studies/{study_uid}/metadata", "application/dicom+json")
    links = [tag["BulkDataURI"] for instance in json.loads(metadata) for tag in instance.values() if "BulkDataURI" in tag]
    assert links and all(link.startswith(empty_ohif.url + "/dicom-web/") for link in links)
