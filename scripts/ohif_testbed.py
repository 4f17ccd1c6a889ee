#!/usr/bin/env python3
"""The OHIF viewer in front of a throw-away Orthanc, on one loopback origin, for tests and for people.

Radiologists read our results (SEG, Parametric Map, SR) in a web viewer such as OHIF, not in our
dashboard, so the project checks them there.  This script owns that set-up:

* ``install``: the prebuilt static OHIF viewer shipped in the npm package ``@ohif/app`` (pinned
  :data:`OHIF_VERSION`, fetched with ``npm pack``: the tarball only, no dependency tree) is unpacked
  into ``.ohif/<version>/dist`` (ignored by git; skipped when already there) and its
  ``app-config.js`` is replaced by a DICOMweb data source on the same origin (``/dicom-web``);
* ``serve FILES...``: starts Debian's Orthanc with the DICOMweb plugin (scripts/orthanc_testbed.py),
  uploads the files (REST ``POST /instances``), writes an nginx configuration at run time that serves
  ``dist/`` (``try_files $uri /index.html``) and proxies ``/dicom-web/`` and ``/wado`` to Orthanc on
  a free loopback port - one origin, because Orthanc sends no CORS headers by design - and prints the
  viewer's study list URL (``--study-urls``: each study's viewer link too) until Ctrl-C or SIGTERM.

    python scripts/ohif_testbed.py install
    python scripts/ohif_testbed.py serve path/to/study/ path/to/outputs/*.dcm [--study-urls]

Needs ``npm`` (install only), Debian ``nginx``, ``orthanc`` and ``orthanc-dicomweb``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OHIF_PACKAGE = "@ohif/app"
OHIF_VERSION = "3.13.2"
INSTALL_ROOT = Path(os.environ.get("ADAPTCLIP_OHIF_DIR", ROOT / ".ohif"))
NGINX = "/usr/sbin/nginx"
MIME_TYPES = "/etc/nginx/mime.types"
#: marker written last by install: its presence means the dist folder is complete
INSTALLED_MARKER = "installed.json"

#: OHIF's configuration: one DICOMweb data source on the page's own origin (nginx proxies it to Orthanc).
#: Orthanc's DICOMweb plugin has no QIDO includefield=all, serves frames and bulk data by WADO-RS and
#: no server-side thumbnails for derived objects, hence the choices below.
APP_CONFIG = """/** adaptclip-med: OHIF served next to Orthanc on one origin (written by scripts/ohif_testbed.py). */
window.config = {
  name: 'adaptclip-med/orthanc',
  routerBasename: null,
  extensions: [],
  modes: [],
  customizationService: {},
  showStudyList: true,
  maxNumberOfWebWorkers: 2,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: true,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  investigationalUseDialog: { option: 'never' },
  maxNumRequests: { interaction: 100, thumbnail: 5, prefetch: 10 },
  showErrorDetails: 'always',
  defaultDataSourceName: 'orthanc',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'orthanc',
      configuration: {
        friendlyName: 'Orthanc (adaptclip-med testbed)',
        name: 'orthanc',
        wadoUriRoot: '/wado',
        qidoRoot: '/dicom-web',
        wadoRoot: '/dicom-web',
        qidoSupportsIncludeField: false,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        staticWado: true,
        singlepart: 'bulkdata,pdf,video',
        bulkDataURI: { enabled: true, relativeResolution: 'studies' },
        omitQuotationForMultipartRequest: true,
      },
    },
  ],
};
"""


# ------------------------------------------------------------------------------------------- install
def dist_dir(version: str = OHIF_VERSION, root: Path = INSTALL_ROOT) -> Path:
    return Path(root) / version / "dist"


def ohif_installed(version: str = OHIF_VERSION, root: Path = INSTALL_ROOT) -> bool:
    return (Path(root) / version / INSTALLED_MARKER).is_file() and (dist_dir(version, root) / "index.html").is_file()


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def install(version: str = OHIF_VERSION, root: Path = INSTALL_ROOT) -> Path:
    """Fetch ``@ohif/app@version`` with ``npm pack`` (npm checks the registry's integrity hash), unpack
    its ``dist/`` into ``root/version/dist`` through a staging folder, and write our app-config.js.
    A complete earlier install is kept as is."""
    target = Path(root) / version
    if ohif_installed(version, root):
        print(f"OHIF {version} already installed in {dist_dir(version, root)}")
        return dist_dir(version, root)
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is not installed (apt-get install npm); it fetches the OHIF viewer")
    Path(root).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        packed = subprocess.run([npm, "pack", f"{OHIF_PACKAGE}@{version}", "--json", "--pack-destination", tmp],
                                capture_output=True, text=True, cwd=tmp)
        if packed.returncode != 0:
            raise SystemExit(f"npm pack {OHIF_PACKAGE}@{version} failed: {packed.stderr.strip().splitlines()[-1:]}")
        tarball = next(Path(tmp).glob("*.tgz"))
        staging = Path(tmp) / "staging"
        with tarfile.open(tarball) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith("package/dist/") and (m.isfile() or m.isdir())]
            archive.extractall(staging, members=members, filter="data")
        (staging / "package" / "dist" / "app-config.js").write_text(APP_CONFIG)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        (staging / "package" / "dist").rename(dist_dir(version, root))
        info = {"package": OHIF_PACKAGE, "version": version, "tarball_bytes": tarball.stat().st_size,
                "dist_bytes": _folder_bytes(dist_dir(version, root))}
        (target / INSTALLED_MARKER).write_text(json.dumps(info, indent=2))
    print(f"OHIF {version} installed in {dist_dir(version, root)} "
          f"(downloaded {info['tarball_bytes'] / 1e6:.1f} MB, unpacked {info['dist_bytes'] / 1e6:.0f} MB)")
    return dist_dir(version, root)


# --------------------------------------------------------------------------------------------- serve
def _load_orthanc_testbed():
    spec = importlib.util.spec_from_file_location("orthanc_testbed", ROOT / "scripts" / "orthanc_testbed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


orthanc_testbed = _load_orthanc_testbed()


def nginx_available() -> bool:
    return Path(NGINX).is_file() and Path(MIME_TYPES).is_file()


def missing_parts(version: str = OHIF_VERSION, root: Path = INSTALL_ROOT) -> list[str]:
    """What the testbed lacks here, as install hints (empty when everything is there)."""
    missing = []
    if not nginx_available():
        missing.append("nginx (apt-get install nginx)")
    if not orthanc_testbed.orthanc_available():
        missing.append("Orthanc with its DICOMweb plugin (apt-get install orthanc orthanc-dicomweb)")
    if not ohif_installed(version, root):
        missing.append("the OHIF viewer (python scripts/ohif_testbed.py install)")
    return missing


class ProxiedOrthanc(orthanc_testbed.OrthancTestbed):
    """Orthanc whose DICOMweb answers name the host the request came to (nginx's origin), not its own
    port: OHIF follows the BulkDataURIs in the metadata, and a URI on Orthanc's port would be
    cross-origin.  It also serves WADO-URI under /wado."""

    def write_config(self) -> Path:
        path = super().write_config()
        config = json.loads(path.read_text())
        config["DicomWeb"].pop("Host", None)
        config["DicomWeb"]["EnableWado"] = True
        config["DicomWeb"]["WadoRoot"] = "/wado"
        path.write_text(json.dumps(config, indent=2))
        return path


def nginx_config(workdir: Path, dist: Path, port: int, orthanc_port: int) -> str:
    """A self-contained nginx configuration (every path under ``workdir``): the static viewer with
    the single-page-app fallback, and Orthanc's DICOMweb / WADO-URI behind the same origin.  The
    cross-origin-isolation headers let OHIF use SharedArrayBuffer for volumes."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    tmp = workdir / "tmp"
    upstream = f"http://127.0.0.1:{orthanc_port}"
    return f"""{user}worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    include {MIME_TYPES};
    default_type application/octet-stream;
    access_log {workdir}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {dist};
        add_header Cross-Origin-Opener-Policy same-origin always;
        add_header Cross-Origin-Embedder-Policy require-corp always;
        add_header Cross-Origin-Resource-Policy same-origin always;
        location /dicom-web/ {{
            proxy_pass {upstream}/dicom-web/;
            proxy_set_header Host $http_host;
            proxy_read_timeout 300s;
            client_max_body_size 0;
        }}
        location /wado {{
            proxy_pass {upstream}/wado;
            proxy_set_header Host $http_host;
        }}
        location / {{
            try_files $uri /index.html;
        }}
    }}
}}
"""


class OhifTestbed:
    """``with OhifTestbed() as viewer: viewer.upload(files); viewer.viewer_url(study_uid)``: Orthanc
    (DICOMweb) and nginx (OHIF + proxy) on free loopback ports, stopped and deleted at exit."""

    def __init__(self, workdir: Path | None = None, dist: Path | None = None, startup_timeout: float = 30.0) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="ohif-testbed-"))
        self.dist = Path(dist) if dist else dist_dir()
        self.startup_timeout = startup_timeout
        self.orthanc = ProxiedOrthanc(self.workdir / "orthanc", startup_timeout=startup_timeout)
        self.port = 0
        self.nginx: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def viewer_url(self, study_instance_uid: str) -> str:
        return f"{self.url}/viewer?StudyInstanceUIDs={study_instance_uid}"

    def upload(self, files: list[Path]) -> int:
        return self.orthanc.upload(files)

    def study_uids(self) -> list[str]:
        return sorted(self.orthanc.get_json(f"/studies/{sid}")["MainDicomTags"]["StudyInstanceUID"]
                      for sid in self.orthanc.get_json("/studies"))

    def start(self) -> OhifTestbed:
        if not (self.dist / "index.html").is_file():
            raise RuntimeError(f"no OHIF viewer in {self.dist} (python scripts/ohif_testbed.py install)")
        self.orthanc.start()
        try:
            self._start_nginx()
        except BaseException:
            self.orthanc.stop()
            raise
        return self

    def _start_nginx(self) -> None:
        web = self.workdir / "nginx"
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (web / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        self.port = orthanc_testbed._free_port()
        config = web / "nginx.conf"
        config.write_text(nginx_config(web, self.dist.resolve(), self.port, self.orthanc.http_port))
        with open(web / "nginx.out", "wb") as log:
            self.nginx = subprocess.Popen([NGINX, "-p", str(web), "-c", str(config), "-e", str(web / "error.log")],
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + self.startup_timeout
        while time.time() < deadline:
            if self.nginx.poll() is not None:
                raise RuntimeError(f"nginx exited with code {self.nginx.returncode}; see {web / 'error.log'}")
            try:
                with urllib.request.urlopen(self.url + "/dicom-web/studies", timeout=5):
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        raise RuntimeError(f"nginx did not answer within {self.startup_timeout:.0f} s")

    def stop(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            os.killpg(self.nginx.pid, signal.SIGTERM)
            try:
                self.nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.nginx.pid, signal.SIGKILL)
                self.nginx.wait()
        self.nginx = None
        self.orthanc.stop()

    def __enter__(self) -> OhifTestbed:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- CLI
def _files(arguments: list[str]) -> list[Path]:
    return [p for arg in arguments for p in ([Path(arg)] if Path(arg).is_file() else sorted(Path(arg).rglob("*")))
            if p.is_file()]


def _serve(arguments: list[str], study_urls: bool = False) -> int:
    missing = missing_parts()
    if missing:
        print("cannot start the OHIF testbed; missing: " + "; ".join(missing), file=sys.stderr)
        return 1
    files = _files(arguments)
    # SIGTERM (kill, a service manager) stops and cleans up like Ctrl-C does
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with OhifTestbed() as viewer:
        if files:
            print(f"uploaded {viewer.upload(files)} of {len(files)} files")
        uids = viewer.study_uids()
        print(f"OHIF study list: {viewer.url}/  ({len(uids)} studies; Ctrl-C stops both servers and deletes the storage)")
        for uid in uids if study_urls else ():  # on request only: the links carry StudyInstanceUIDs
            print(f"  viewer: {viewer.viewer_url(uid)}")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/ohif_testbed.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help=f"fetch {OHIF_PACKAGE} {OHIF_VERSION} into {INSTALL_ROOT} (skipped when there)")
    serve = commands.add_parser("serve", help="start Orthanc + nginx + OHIF, upload FILES, print viewer URLs, wait for Ctrl-C")
    serve.add_argument("files", nargs="*", help="DICOM files or folders to upload (source series and our outputs)")
    serve.add_argument("--study-urls", action="store_true",
                       help="also print each study's /viewer?StudyInstanceUIDs=... link (they show the study UIDs)")
    args = parser.parse_args(argv)
    if args.command == "install":
        install()
        return 0
    return _serve(args.files, args.study_urls)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
