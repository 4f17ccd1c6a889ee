"""The AI node next to Orthanc (issue 22 goals): receiving speed and end-to-end time.

1. Receiving: a 300-slice CT study (512 x 512, 16-bit, about 150 MB) stored with dcmtk's
   ``storescu`` into the node (``adaptclip-med node run``, a subprocess, every instance fsynced
   and recorded in the queue before it is acknowledged) and into Orthanc (Debian's, default
   storage), on the same machine; median wall time of ``storescu`` over a few runs, each into a
   fresh node state / fresh Orthanc.
2. End to end, as docs/deploy-pacs.md sets it up (scripts/node_testbed.py): a phantom study
   stored into Orthanc -> Lua ``OnStableSeries`` route (StableAge 2 s) -> node (quiet period 3 s)
   -> demo model -> SEG, SR, KO and Parametric Map visible in Orthanc; median seconds from the
   start of ``storescu`` to all four result series being listed by Orthanc, for a 16-slice study
   (several runs) and a 300-slice one (``--e2e-300-runs``, 0 to skip on a loaded machine), with the
   node's own scoring time of each study (from its log) and the load average after each block.

Results go to benchmarks/results/node.json; docs/deploy-pacs.md quotes them.

    python -m benchmarks.node [--receive-runs 3] [--e2e-runs 3] [--e2e-300-runs 1]   # 0 runs: keep the earlier figures
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import generate_uid

from benchmarks.measure import machine_description, write_results

from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "node.json"
#: The node's log line for a scored study: "study KEY: scored 0.1234 in 15.1 s" (the scoring step alone).
SCORED_LINE = re.compile(r": scored [0-9.]+ in ([0-9.]+) s")
RESULT_CLASSES = {"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.30", "1.2.840.10008.5.1.4.1.1.88.34",
                  "1.2.840.10008.5.1.4.1.1.88.59"}  # SEG, Parametric Map, Comprehensive 3D SR, KO


def _node_testbed():
    return load_script("node_testbed")


def write_study(folder: Path, slices: int, size: int, seed: int = 3) -> Path:
    """A phantom head CT of ``slices`` slices at ``size`` px: the demo's 32-slice 256-px head,
    repeated along z and upsampled in-plane (cheap to make; the pixels only need to be CT-like)."""
    from adaptclip_med.demo.ct_head import PIXEL_MM, SLICE_MM, make_ct_head
    from adaptclip_med.demo.phantom import write_dicom_series

    base, _ = make_ct_head(seed, min(slices, 32), 256)
    hu = np.concatenate([base] * (-(-slices // base.shape[0])))[:slices]
    factor = size // 256
    if factor > 1:
        hu = hu.repeat(factor, axis=1).repeat(factor, axis=2)
    write_dicom_series(hu, folder, spacing=(SLICE_MM if slices <= 32 else 1.0, PIXEL_MM / factor, PIXEL_MM / factor),
                       study_uid=generate_uid(), series_description="SYNTHETIC PHANTOM HEAD",
                       study_description="SYNTHETIC HEAD CT - NO DIAGNOSTIC VALUE")
    return folder


def _storescu(tb, folder: Path, port: int, called: str, calling: str = "SCANNER") -> float:
    tool = tb.orthanc_testbed.dcmtk_tool("storescu")
    started = time.perf_counter()
    done = subprocess.run([tool, "-aet", calling, "-aec", called, "+sd", "127.0.0.1", str(port), str(folder)],
                          capture_output=True, text=True, timeout=1200)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"storescu into {called} failed: {done.stderr[-500:]}")
    return seconds


def receive_runs(tb, work: Path, study: Path, bank: Path, runs: int) -> dict[str, Any]:
    """storescu of ``study`` into a fresh Orthanc and a fresh node, alternately."""
    orthanc_s, node_s = [], []
    for run in range(runs):
        with tb.orthanc_testbed.OrthancTestbed(work / f"orthanc-{run}", aet="ORTHANC") as pacs:
            orthanc_s.append(_storescu(tb, study, pacs.dicom_port, "ORTHANC"))
            assert len(pacs.get_json("/instances")) == len(list(study.glob("*.dcm")))
        port = tb.orthanc_testbed.free_port()
        config = tb.write_node_config(work / f"node-{run}.toml", port, 9, bank, work / f"node-state-{run}",
                                      quiet_seconds=3600, allow_ae="SCANNER")  # receive only: nothing is scored
        node = tb.NodeProcess(config, work / f"node-{run}.log").start()
        try:
            node_s.append(_storescu(tb, study, port, tb.NODE_AET))
        finally:
            node.stop()
        spooled = list((work / f"node-state-{run}" / "spool").rglob("*.dcm"))
        assert len(spooled) == len(list(study.glob("*.dcm"))), "the node must have spooled every instance"
    return {"orthanc_s": _stats(orthanc_s), "node_s": _stats(node_s),
            "node_vs_orthanc_speed": round(statistics.median(orthanc_s) / statistics.median(node_s), 3), "load_average": _load()}


def end_to_end_runs(tb, setup, folders: list[Path]) -> dict[str, Any]:
    """Each study stored into Orthanc; seconds until every result series is listed there."""
    import pydicom

    seconds, scoring = [], []
    log = setup.node.log
    for folder in folders:
        uid = str(pydicom.dcmread(sorted(folder.glob("*.dcm"))[0]).StudyInstanceUID)
        started = time.perf_counter()
        done = setup.storescu(folder)
        if done.returncode != 0:
            raise RuntimeError(f"storescu into Orthanc failed: {done.stderr[-500:]}")
        tb.wait_for(lambda: {s["SOPClassUID"] for s in setup.results_in_pacs(uid)} >= RESULT_CLASSES, 3600, poll=0.5,
                    what="results in Orthanc")
        seconds.append(time.perf_counter() - started)
        scored = SCORED_LINE.findall(log.read_text(errors="replace").replace("\r", "\n"))
        scoring.append(float(scored[-1]) if scored else float("nan"))
    return {**_stats(seconds), "scoring_s": [round(v, 2) for v in scoring], "load_average": _load()}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _stats(values: list[float]) -> dict[str, Any]:
    return {"median": round(statistics.median(values), 2), "runs": [round(v, 2) for v in values]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receive-runs", type=int, default=3)
    parser.add_argument("--receive-slices", type=int, default=300)
    parser.add_argument("--e2e-runs", type=int, default=3)
    parser.add_argument("--e2e-300-runs", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("ADAPTCLIP_MED_PROGRESS", "0")
    tb = _node_testbed()
    machine = machine_description()
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    with tempfile.TemporaryDirectory(prefix="node-bench-") as tmp:
        work = Path(tmp)
        from adaptclip_med.demo.dataset import make_ct_demo_dataset

        data = make_ct_demo_dataset(work / "demo", normals=2)
        bank = tb.demo_bank(work, data.normal_dirs)
        receive = previous.get("receive", {})
        if args.receive_runs:
            big = write_study(work / "ct300", args.receive_slices, 512)
            megabytes = sum(p.stat().st_size for p in big.glob("*.dcm")) / 1e6
            (work / "receive").mkdir()
            receive = {"study": f"{args.receive_slices} slices, 512x512 int16, {megabytes:.0f} MB",
                       **receive_runs(tb, work / "receive", big, bank, args.receive_runs)}
        e2e: dict[str, Any] = dict(previous.get("end_to_end", {}))
        with tb.PacsWithNode(work / "e2e", bank) as setup:
            if args.e2e_runs:
                small = [write_study(work / f"ct16-{i}", 16, 256, seed=10 + i) for i in range(args.e2e_runs)]
                e2e["16_slices_256px"] = end_to_end_runs(tb, setup, small)
            if args.e2e_300_runs:
                e2e["300_slices_512px"] = end_to_end_runs(tb, setup, [
                    write_study(work / f"ct300-e2e-{i}", 300, 512, seed=20 + i) for i in range(args.e2e_300_runs)])
    payload = {"receive": receive,
               "end_to_end": e2e,
               "settings": {"orthanc_stable_age_s": 2, "node_quiet_seconds": 3, "model": "demo (--adapters demo)",
                            "bank": "demo normals (2 x 16 slices)", "outputs": "SEG, SR, KO, Parametric Map",
                            "note": "end-to-end times include the 2 s StableAge and the 3 s quiet period"},
               "machine": machine}
    write_results(RESULTS, payload)
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
