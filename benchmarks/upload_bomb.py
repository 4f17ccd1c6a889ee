"""Memory and time to refuse a decompression-bomb upload (a 4 MB ``.nii.gz`` that expands to 4 GB).

Before issue 23 the dashboard expanded every ``.nii.gz`` upload fully to screen it (a 2 MB file
grew the server by 4 GB).  Two bombs are screened here, each in a fresh process, measuring the
peak of Python allocations (tracemalloc, which sees zlib's output buffers) during screening only: one whose header declares a 4 GB volume, one whose header declares a tiny volume followed
by 4 GB of zeros.  Results: benchmarks/results/upload_bomb.json (quoted in docs/sign-in.md).

    python -m benchmarks.upload_bomb
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.measure import write_results

RESULTS = Path(__file__).parent / "results" / "upload_bomb.json"
EXPANDED = 4 << 30

_CHILD = r"""
import json, sys, time, tracemalloc, zlib
import nibabel as nib, numpy as np
from adaptclip_med.review.uploads import screen_uploads
shape, total = json.loads(sys.argv[1]), int(sys.argv[2])
image = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4)); image.header.set_data_shape(shape)
engine = zlib.compressobj(9, zlib.DEFLATED, 31)
parts = [engine.compress(image.header.binaryblock + b"\0" * 4)]
chunk = b"\0" * (64 << 20)
for _ in range(total // len(chunk)):
    parts.append(engine.compress(chunk))
parts.append(engine.flush()); data = b"".join(parts); del chunk
upload = [("bomb.nii.gz", data)]
tracemalloc.start()
start = time.perf_counter()
accepted, rejected = screen_uploads(upload, 200)
seconds = time.perf_counter() - start
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps({"compressed_mib": len(data) / 2**20, "expanded_mib": total / 2**20, "screen_ms": seconds * 1000,
                  "python_allocations_peak_mib": peak / 2**20,
                  "refused": not accepted, "reason": rejected[0].reason if rejected else None}))
"""


def main() -> None:
    cases = {"header declares 4 GB": ([2048, 2048, 1024], EXPANDED), "small header + 4 GB of zeros": ([64, 64, 64], EXPANDED)}
    results = {}
    for name, (shape, total) in cases.items():
        run = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(shape), str(total)], capture_output=True, text=True,
                             check=True)
        results[name] = json.loads(run.stdout)
        print(name, results[name])
    write_results(RESULTS, {"benchmark": "upload_bomb", "upload_limit_mb": 200, "cases": results})


if __name__ == "__main__":
    main()
