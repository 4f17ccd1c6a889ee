"""Cost of the IHE AI Results objects per study: time and size of the SEG, SR, Parametric Map and
KOS writers on a phantom CT series (no model: a synthetic anomaly map with a few blobs), for a
16-slice and a 300-slice study.  Figures go to benchmarks/results/ai_results.json.

    python -m benchmarks.ai_results [--sizes 16,300] [--matrix 512] [--repeats 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.measure import PeakMemory, machine_description, write_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "ai_results.json"


def _probability(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Background noise below the threshold plus three ellipsoid blobs above it."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    probability = rng.uniform(0.0, 0.3, shape).astype(np.float32)
    for _ in range(3):
        centre = [rng.uniform(0.2, 0.8) * s for s in shape]
        radii = [max(1.0, 0.08 * shape[0]), 0.06 * shape[1], 0.05 * shape[2]]
        inside = ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((x - centre[2]) / radii[2]) ** 2
        probability = np.maximum(probability, np.clip(0.95 - 0.4 * inside, 0, 1).astype(np.float32))
    return probability


def _study(folder: Path, slices: int, matrix: int):
    from adaptclip_med.demo.phantom import write_dicom_series
    from adaptclip_med.io.loader import load_study

    hu = np.random.default_rng(1).normal(40, 10, (slices, matrix, matrix)).astype(np.float32)
    write_dicom_series(hu, folder, spacing=(1.0, 0.5, 0.5))
    volume, _ = load_study(folder)
    return volume


def run_size(slices: int, matrix: int, repeats: int) -> dict:
    from adaptclip_med.outputs import study_writers as sw
    from adaptclip_med.outputs.scoring_record import ScoringRecord

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        volume = _study(tmp / "study", slices, matrix)
        probability = _probability(volume.array.shape)

        class Result:  # the parts of a StudyResult the DICOM writers read
            threshold, threshold_source, score = 0.5, "default", float(probability.max())
            top_slices = [int(i) for i in np.argsort(-probability.reshape(slices, -1).max(axis=1))[:3]]
        Result.probability = probability
        Result.mask = probability >= 0.5
        scoring = ScoringRecord("AdaptCLIP", "adaptclip", {"method": "adaptclip"}, None, shots=0, references_note=None,
                                physical_grid=None, physical_grid_note=None, preprocessing={}, aggregate="max",
                                triage=None, threshold=0.5, threshold_source="default", allow_other_modality=False)
        figures: dict = {"slices": slices, "matrix": matrix, "mask_voxels": int(Result.mask.sum())}
        for writer in (sw.DICOM_SEG, sw.PARAMETRIC_MAP, sw.DICOM_SR, sw.KEY_OBJECTS):
            runs, peaks = [], []
            for _ in range(repeats):
                context = sw.StudyContext(volume, Result, tmp / "out", scoring)
                context.prepare_folder()
                if writer is not sw.DICOM_SEG:
                    sw.DICOM_SEG(context)  # the SR references the SEG
                with PeakMemory() as memory:
                    started = time.perf_counter()
                    files = writer(context)
                    runs.append(time.perf_counter() - started)
                peaks.append(memory.peak_rss - memory.start_rss)
            path = files[writer.name]
            figures[writer.name] = {"median_s": round(float(np.median(runs)), 3), "runs_s": [round(r, 3) for r in runs],
                                    "file_mib": round(path.stat().st_size / 2**20, 2),
                                    "peak_rss_above_start_mib": round(max(peaks), 1)}
            print(f"{slices} x {matrix}^2  {writer.name:15s} {figures[writer.name]}", flush=True)
        return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16,300", help="slice counts, comma-separated")
    parser.add_argument("--matrix", type=int, default=512, help="rows = columns of each slice")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    machine = machine_description()
    run_size(4, 64, 1)  # warm-up: first calls import and initialise highdicom's pieces
    studies = [run_size(int(s), args.matrix, args.repeats) for s in args.sizes.split(",")]
    write_results(RESULTS, {"what": "IHE AI Results writers per study (phantom CT, synthetic map)",
                            "command": "python -m benchmarks.ai_results " + " ".join(argv or []), "machine": machine,
                            "studies": studies})
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
