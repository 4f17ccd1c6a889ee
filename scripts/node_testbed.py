#!/usr/bin/env python3
"""The AI node next to a throw-away Orthanc, wired as docs/deploy-pacs.md describes, for the
end-to-end test (tests/pacs/test_node_orthanc.py) and the benchmark (benchmarks/node.py).

:class:`PacsWithNode` starts Debian's Orthanc (scripts/orthanc_testbed.py) as the hospital PACS
with the node registered as modality ``ainode``, the scanner registered, only registered peers
allowed to store, and the Lua ``OnStableSeries`` route; and ``adaptclip-med node run`` as a
subprocess (so a test can SIGKILL it) with the packaged demo model and a bank of demo normals.

    python scripts/node_testbed.py STUDY_FOLDER   # store it, wait for the results, print what came back
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


orthanc_testbed = _load("orthanc_testbed")
NODE_AET, PACS_AET, SCANNER_AET = "AINODE", "ORTHANC", "SCANNER"


def wait_for(predicate, timeout: float, poll: float = 0.25, what: str = "condition"):
    """Poll until ``predicate()`` is truthy; returns its value, or raises TimeoutError naming ``what``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"{what}: not reached within {timeout:.0f} s")


def demo_bank(work: Path, normals: list[Path]) -> Path:
    """The demo reference bank of ``normals``, built once by the demo's one bank builder."""
    from adaptclip_med.demo.bank import ensure_demo_bank
    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.volume.pipeline import model_for

    options = demo_options()
    return ensure_demo_bank(normals, model_for(options), options.preprocessing(), work / "banks")


def write_node_config(path: Path, node_port: int, pacs_port: int, bank: Path, state_dir: Path,
                      quiet_seconds: float = 3.0, allow_ae: str = PACS_AET) -> Path:
    """A node configuration like the documented one: Orthanc (``allow_ae``) may send, results go to Orthanc."""
    path.write_text(f"""\
[node]
ae_title = "{NODE_AET}"
bind = "127.0.0.1"
port = {node_port}
state_dir = "{state_dir}"
quiet_seconds = {quiet_seconds}
poll_seconds = 0.2

[[allow]]
ae_title = "{allow_ae}"
host = "127.0.0.1"

[destination]
ae_title = "{PACS_AET}"
host = "127.0.0.1"
port = {pacs_port}
attempts = 3
backoff_seconds = 1

[scoring]
adapters = "demo"
bank = "{bank}"
window = "brain"
parametric_map = true
device = "cpu"
""")
    return path


class NodeProcess:
    """``adaptclip-med node run`` in a subprocess; its log goes to ``log``."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 180.0) -> NodeProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "ADAPTCLIP_MED_PROGRESS": "0", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as handle:
            self.process = subprocess.Popen([sys.executable, "-m", "adaptclip_med.cli.main", "node", "run", "--config",
                                             str(self.config)], stdout=handle, stderr=subprocess.STDOUT, env=env)

        def listening() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"the node exited with code {self.process.returncode}: {self.log_text()[-2000:]}")
            return "listening on" in self.log.read_text(errors="replace")[offset:]

        wait_for(listening, timeout, what="node listening")
        return self

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def stop(self, timeout: float = 120.0) -> int | None:
        """SIGTERM and wait; returns the exit code (kills it after ``timeout``)."""
        if self.process is None:
            return None
        code = self.process.poll()
        if code is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
        self.process = None
        return code


class PacsWithNode:
    """Orthanc (strict peers, Lua routing) + the node, both on free loopback ports, in ``work``."""

    def __init__(self, work: Path, bank: Path, stable_age: int = 2, quiet_seconds: float = 3.0) -> None:
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.node_port = orthanc_testbed.free_port()
        peers = {"ainode": orthanc_testbed.DicomPeer(NODE_AET, self.node_port),
                 "scanner": orthanc_testbed.DicomPeer(SCANNER_AET, orthanc_testbed.free_port())}
        self.pacs = orthanc_testbed.OrthancTestbed(self.work / "orthanc", aet=PACS_AET, modalities=peers, strict=True,
                                                   route_to="ainode", stable_age=stable_age)
        self.state_dir = self.work / "node-state"
        self.bank = bank
        self.quiet_seconds = quiet_seconds
        self.node: NodeProcess | None = None

    def __enter__(self) -> PacsWithNode:
        self.pacs.start()
        config = write_node_config(self.work / "node.toml", self.node_port, self.pacs.dicom_port, self.bank,
                                   self.state_dir, self.quiet_seconds)
        self.node = NodeProcess(config, self.work / "node.log").start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.node is not None:
            self.node.stop()
        self.pacs.stop()

    def storescu(self, folder: Path, port: int | None = None, calling: str = SCANNER_AET,
                 called: str = PACS_AET) -> subprocess.CompletedProcess:
        """dcmtk ``storescu`` of a folder (into Orthanc unless ``port``/``called`` say otherwise)."""
        tool = orthanc_testbed.dcmtk_tool("storescu")
        if tool is None:
            raise RuntimeError("dcmtk's storescu is not installed (apt-get install dcmtk)")
        return subprocess.run([tool, "-aet", calling, "-aec", called, "+sd", "127.0.0.1",
                               str(port or self.pacs.dicom_port), str(folder)], capture_output=True, text=True, timeout=600)

    def results_in_pacs(self, study_uid: str) -> list[dict]:
        """The series of the study in Orthanc that the node wrote (not CT/MR)."""
        return [s for s in self.pacs.study_series(study_uid) if s.get("Modality") not in ("CT", "MR")]


def main(argv: list[str]) -> int:  # pragma: no cover - manual use
    import tempfile

    import pydicom

    from adaptclip_med.demo.dataset import make_ct_demo_dataset

    study = Path(argv[0])
    uid = str(pydicom.dcmread(next(p for p in sorted(study.rglob("*")) if p.is_file())).StudyInstanceUID)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = make_ct_demo_dataset(work / "demo", normals=2)
        with PacsWithNode(work / "run", demo_bank(work, data.normal_dirs)) as setup:
            print(setup.storescu(study).returncode)
            print(wait_for(lambda: setup.results_in_pacs(uid), 600, what="results in Orthanc"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
