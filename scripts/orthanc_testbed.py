#!/usr/bin/env python3
"""A throw-away Orthanc PACS on loopback, for trying ``adaptclip-med batch --dicomweb`` and for tests.

It writes an Orthanc JSON configuration with a temporary storage folder, free loopback HTTP and
DICOM ports, no remote access, no authentication and the DICOMweb plugin enabled, starts
``Orthanc config.json`` as a subprocess, waits until ``/system`` answers, and stops it (and
deletes the storage) at the end.  Needs the Debian packages ``orthanc`` and ``orthanc-dicomweb``.

For the AI node (``adaptclip-med node``, docs/deploy-pacs.md) it also plays the hospital PACS:
``modalities`` registers DICOM peers (``DicomModalities``); ``strict=True`` accepts C-STOREs only
from those registered AE title + host pairs (``DicomAlwaysAllowStore: false``,
``DicomCheckModalityHost: true``); ``route_to`` installs :data:`ROUTING_LUA`, an ``OnStableSeries``
route of original CT/MR series to that modality, with ``stable_age`` seconds of quiet.

    python scripts/orthanc_testbed.py [FILES_OR_FOLDERS...]   # upload, print the URL, wait for Ctrl-C
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

PLUGIN_CANDIDATES = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",)


def find_dicomweb_plugin() -> Path | None:
    """The DICOMweb plugin shipped by ``orthanc-dicomweb`` (asks dpkg when it is not where Debian puts it)."""
    for candidate in PLUGIN_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    try:
        listing = subprocess.run(["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    found = [Path(line) for line in listing.splitlines() if "DicomWeb" in line and ".so" in line and Path(line).is_file()]
    return found[0] if found else None


def orthanc_available() -> bool:
    return shutil.which("Orthanc") is not None and find_dicomweb_plugin() is not None


def dcmtk_tool(name: str) -> str | None:
    """The Debian dcmtk binary ``name`` (storescu, echoscu ...), not a same-named script that comes
    first on PATH (pynetdicom installs its own ``storescu``): the first candidate whose version
    line says dcmtk."""
    candidates = [f"/usr/bin/{name}", f"/bin/{name}", f"/usr/local/bin/{name}", shutil.which(name)]
    for candidate in dict.fromkeys(c for c in candidates if c and Path(c).is_file()):
        try:
            version = subprocess.run([candidate, "--version"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if "dcmtk" in version.lower():
            return candidate
    return None


def free_port() -> int:
    """A free TCP port on loopback (bound then released: good enough for tests)."""
    return _free_port()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: The routing rule of docs/deploy-pacs.md: when a series has been stable (nothing new for
#: StableAge seconds), send it to the AI node if it is an ORIGINAL CT or MR series.  SEG, SR, KO,
#: Parametric Maps (modality OT) and DERIVED images are never routed, so the results the node
#: stores back cannot be routed again.  Series-level, not OnStableStudy: the results make the
#: STUDY unstable again, which would re-route it.
ROUTING_LUA = """\
-- adaptclip-med AI node routing (docs/deploy-pacs.md)
local AI_NODE = '%(modality)s'
local ROUTED_MODALITIES = { CT = true, MR = true }

local function IsDerived(seriesId)
  -- ImageType is an instance attribute: look at the series' first instance
  local instances = ParseJson(RestApiGet('/series/' .. seriesId .. '/instances'))
  if #instances == 0 then return true end
  local tags = ParseJson(RestApiGet('/instances/' .. instances[1]['ID'] .. '/simplified-tags'))
  local imageType = tags['ImageType'] or ''
  return string.find(imageType, 'DERIVED', 1, true) ~= nil
end

function OnStableSeries(seriesId, tags, metadata)
  if ROUTED_MODALITIES[tags['Modality']] == nil then
    return  -- SEG, SR, KO, OT (Parametric Map), PR ...: never routed
  end
  if IsDerived(seriesId) then
    return
  end
  RestApiPost('/modalities/' .. AI_NODE .. '/store', seriesId)
end
"""


class DicomPeer(NamedTuple):
    """A DICOM application entity registered in Orthanc's ``DicomModalities``."""

    aet: str
    port: int
    host: str = "127.0.0.1"

    def as_config(self) -> dict:
        return {"AET": self.aet, "Host": self.host, "Port": self.port, "AllowEcho": True, "AllowStore": True,
                "AllowFind": False, "AllowMove": False, "AllowGet": False}


class OrthancTestbed:
    """``with OrthancTestbed() as pacs: pacs.dicomweb_url ...``"""

    def __init__(self, workdir: Path | None = None, startup_timeout: float = 30.0, aet: str = "TESTBED",
                 modalities: dict[str, DicomPeer] | None = None, strict: bool = False, route_to: str | None = None,
                 stable_age: int = 60) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="orthanc-testbed-"))
        self.startup_timeout = startup_timeout
        self.http_port = _free_port()
        self.dicom_port = _free_port()
        self.aet = aet
        self.modalities = dict(modalities or {})
        self.strict = strict
        self.route_to = route_to
        self.stable_age = stable_age
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def write_config(self) -> Path:
        plugin = find_dicomweb_plugin()
        if plugin is None:
            raise RuntimeError("the Orthanc DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)")
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "adaptclip-testbed", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": self.aet,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "HttpServerEnabled": True,
            "DicomServerEnabled": True, "Plugins": [str(plugin)], "UnknownSopClassAccepted": True,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Host": f"127.0.0.1:{self.http_port}"},
            "DicomModalities": {name: peer.as_config() for name, peer in self.modalities.items()},
            "StableAge": self.stable_age,
        }
        if self.strict:  # only registered AE title + host pairs may store (the node included)
            config.update({"DicomAlwaysAllowStore": False, "DicomAlwaysAllowEcho": False, "DicomCheckModalityHost": True})
        if self.route_to is not None:
            if self.route_to not in self.modalities:
                raise ValueError(f"route_to={self.route_to!r} is not one of the registered modalities")
            lua = self.workdir / "route-to-ai-node.lua"
            lua.write_text(ROUTING_LUA % {"modality": self.route_to})
            config["LuaScripts"] = [str(lua)]
        path = self.workdir / "orthanc.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def start(self) -> OrthancTestbed:
        config = self.write_config()
        log = open(self.workdir / "orthanc.log", "wb")
        self.process = subprocess.Popen(["Orthanc", str(config)], cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.time() + self.startup_timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with code {self.process.returncode}; see {self.workdir / 'orthanc.log'}")
            try:
                self.get_json("/system")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {self.startup_timeout:.0f} s")

    def stop(self) -> None:
        """Terminate the server (kill it if it does not stop within 10 s); keeps the storage."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> OrthancTestbed:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ----------------------------------------------------------------------------------- REST helpers
    def get_json(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.loads(response.read())

    def upload(self, files: list[Path]) -> int:
        """Store DICOM files through the REST API (POST /instances); returns how many were accepted
        (Orthanc answers 400 for files it cannot parse; those are not counted)."""
        stored = 0
        for path in files:
            request = urllib.request.Request(self.url + "/instances", data=Path(path).read_bytes(), method="POST",
                                             headers={"Content-Type": "application/dicom"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    stored += json.loads(response.read()).get("Status") in ("Success", "AlreadyStored")
            except urllib.error.HTTPError:
                continue
        return stored

    def post_json(self, path: str, body: object):
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def study_series(self, study_uid: str) -> list[dict]:
        """Every series Orthanc holds in the study with this Study Instance UID: its main tags
        (Modality, SeriesDescription ...), its own StudyInstanceUID and its instance count."""
        found = self.post_json("/tools/find", {"Level": "Series", "Query": {"StudyInstanceUID": study_uid}, "Expand": True})
        series = []
        for item in found:
            first = self.get_json(f"/instances/{item['Instances'][0]}/simplified-tags") if item["Instances"] else {}
            series.append({**item["MainDicomTags"], "StudyInstanceUID": first.get("StudyInstanceUID"),
                           "SOPClassUID": first.get("SOPClassUID"), "instances": len(item["Instances"])})
        return series

    def jobs(self, job_type: str | None = None) -> list[dict]:
        """Orthanc's jobs (routing sends are ``DicomModalityStore`` jobs), oldest first."""
        found = [self.get_json(f"/jobs/{job_id}") for job_id in self.get_json("/jobs")]
        return sorted((j for j in found if job_type is None or j.get("Type") == job_type), key=lambda j: j["CreationTime"])

    def series_modalities(self) -> list[str]:
        return sorted(self.get_json(f"/series/{sid}")["MainDicomTags"].get("Modality", "")
                      for sid in self.get_json("/series"))


def main(argv: list[str]) -> int:
    files = [p for arg in argv for p in ([Path(arg)] if Path(arg).is_file() else sorted(Path(arg).rglob("*")))
             if p.is_file()]
    with OrthancTestbed() as pacs:
        if files:
            print(f"uploaded {pacs.upload(files)} of {len(files)} files")
        print(f"Orthanc running: REST {pacs.url}  DICOMweb {pacs.dicomweb_url}  (Ctrl-C to stop and delete it)")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
