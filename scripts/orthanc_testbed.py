#!/usr/bin/env python3
"""A throw-away Orthanc PACS on loopback, for trying ``adaptclip-med batch --dicomweb`` and for tests.

It writes an Orthanc JSON configuration with a temporary storage folder, free loopback HTTP and
DICOM ports, no remote access, no authentication and the DICOMweb plugin enabled, starts
``Orthanc config.json`` as a subprocess, waits until ``/system`` answers, and stops it (and
deletes the storage) at the end.  Needs the Debian packages ``orthanc`` and ``orthanc-dicomweb``.

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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OrthancTestbed:
    """``with OrthancTestbed() as pacs: pacs.dicomweb_url ...``"""

    def __init__(self, workdir: Path | None = None, startup_timeout: float = 30.0) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="orthanc-testbed-"))
        self.startup_timeout = startup_timeout
        self.http_port = _free_port()
        self.dicom_port = _free_port()
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
            "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": "TESTBED",
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "HttpServerEnabled": True,
            "DicomServerEnabled": True, "Plugins": [str(plugin)], "UnknownSopClassAccepted": True,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Host": f"127.0.0.1:{self.http_port}"},
        }
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
