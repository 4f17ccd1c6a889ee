"""Process start to exit of the light commands (``--help``, ``weights status``, ``references list``):
median of ``--runs`` fresh processes each, written to benchmarks/results/startup.json with the CPU.

    python -m benchmarks.startup [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.measure import machine_description, write_results

COMMANDS = {"--help": ["--help"], "weights status": ["weights", "status"], "references list": ["references", "list"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = {"machine": machine_description(), "runs": args.runs, "commands": {}}
    with tempfile.TemporaryDirectory() as home:
        env = {"ADAPTCLIP_MED_HOME": home, "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
        for name, argv in COMMANDS.items():
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "adaptclip_med.cli.main", *argv], check=True, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times.append(time.perf_counter() - started)
            results["commands"][name] = {"median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times]}
            print(f"{name:16s} median {statistics.median(times):.2f} s")
    path = Path(__file__).resolve().parent / "results" / "startup.json"
    write_results(path, results)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
