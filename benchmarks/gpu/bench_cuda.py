"""GPU throughput of study scoring at the paper's size (issue 17, item 3): slices/s for AdaptCLIP
ViT-L/14-336 at 518 px, few-shot k=1, per precision and batch size; studies/hour; peak memory;
and the bf16/fp16 deviation from exact fp32 at that size.

Prepared for a session with a lent GPU (benchmarks/gpu/run_device.sh calls it); nothing here
runs on a CPU-only machine except ``--help``.  Weights are ``random:0`` (speed does not depend on
weight values, and the device has no internet); the bank is synthetic features in the real
on-disk format (benchmarks/workloads.py).  What each figure means:

* ``encode_slices_per_s``: the vision tower alone (``method.encode``), batch after batch;
* ``study_slices_per_s``: the whole :class:`VolumeScorer` on a phantom study (windowing, model
  input, encode, bank matching and row reads, 1-NN, adapters, fusion, maps back to 512x512 on
  the CPU), which is what a batch run gets;
* ``studies_per_hour_300``: 3600 / (300 / study_slices_per_s), one GPU, full scoring; with
  ``--triage-fraction`` also with triage's measured scored fraction (a projection);
* ``peak_allocated_gib``: torch's peak allocated GPU memory during the study;
* ``tf32`` is fp32 weights with TF32 matmuls/convolutions allowed (not the product's ``fp32``,
  which turns TF32 off); it is measured to show what exactness costs.

    python -m benchmarks.gpu.bench_cuda --out OUT_DIR
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

GOAL_SLICES_PER_S = 20.0
TRIAGE_RESULTS = Path(__file__).resolve().parents[1] / "results" / "triage.json"


DEVICE = torch.device("cuda")


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def _reset_peak() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.reset_peak_memory_stats(DEVICE)


def _peak_gib() -> float | None:
    return round(torch.cuda.max_memory_allocated(DEVICE) / 2**30, 2) if DEVICE.type == "cuda" else None


def _method_at(base, precision: str):
    """A copy of the fp32 model in ``precision`` (tf32 = fp32 with TF32 allowed), wrapped in the contract."""
    from adaptclip_med.methods.adaptclip.method import AdaptCLIPMethod
    from adaptclip_med.model.precision import apply_precision

    loaded = copy.deepcopy(base)
    apply_precision(loaded.model, "fp32" if precision == "tf32" else precision)
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    method = AdaptCLIPMethod.from_loaded(loaded, DEVICE)
    return method


def encode_rate(method, batch: int, repeats: int = 3) -> float:
    images = torch.rand(batch, 3, method.image_size, method.image_size, device=DEVICE)
    with torch.no_grad():
        method.encode(images)
        _sync()
        started = time.perf_counter()
        for _ in range(repeats):
            method.encode(images)
        _sync()
    return batch * repeats / (time.perf_counter() - started)


def study_rate(method, bank, volume, batch: int) -> dict[str, Any]:
    from adaptclip_med.volume.scoring import VolumeScorer

    scorer = VolumeScorer(method, bank, None, shots=1, batch_size=batch, device=str(DEVICE))
    warm = type(volume)(array=volume.array[:batch], spacing=volume.spacing, modality=volume.modality,
                        positions=volume.positions[:batch], source_kind=volume.source_kind, source_label="warm-up")
    scorer.score(warm)
    _sync()
    _reset_peak()
    started = time.perf_counter()
    result = scorer.score(volume)
    _sync()
    seconds = time.perf_counter() - started
    slices = len(result.scored())
    return {"study_seconds": round(seconds, 3), "study_slices_per_s": round(slices / seconds, 2),
            "peak_allocated_gib": _peak_gib(),
            "studies_per_hour_300": round(3600.0 / (300.0 / (slices / seconds)), 1)}


def deviation(base, precision: str, images: torch.Tensor) -> dict[str, float]:
    """Max |map| and |score| difference of ``precision`` against exact fp32 on the same slices (k=1)."""
    with torch.no_grad():
        # each prediction right after its model is made: _method_at sets the TF32 flags
        reference_model = _method_at(base, "fp32").model
        ref = reference_model.predict(images[1:], reference_model.encode_references(images[:1]))
        del reference_model
        other_model = _method_at(base, precision).model
        out = other_model.predict(images[1:], other_model.encode_references(images[:1]))
        del other_model
    return {"max_abs_map": float((out.anomaly_map - ref.anomaly_map).abs().max()),
            "max_abs_score": float((out.score - ref.score).abs().max()),
            "finite": bool(torch.isfinite(out.anomaly_map).all())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workload", default="ViT-L-14-336@518")
    parser.add_argument("--precisions", default="bf16,fp16,fp32,tf32")
    parser.add_argument("--batch-sizes", default="8,16,32,64,auto")
    parser.add_argument("--slices", type=int, default=96, help="slices of the benchmark study")
    parser.add_argument("--budget-s", type=float, default=300.0, help="stop starting new configurations after this")
    parser.add_argument("--device", default="cuda", help="cpu only to smoke-test this script (tiny workload)")
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_cuda needs a CUDA GPU (none visible to torch)")
    started = time.time()
    from adaptclip_med.utils.atomic import atomic_write_text
    from adaptclip_med.volume.batch_size import resolve_batch_size
    from adaptclip_med.volume.bank.reader import ReferenceBank

    from benchmarks.volume import synthetic_study
    from benchmarks.workloads import Workload, build_loaded, phantom_images, write_synthetic_bank

    workload = Workload.parse(args.workload)
    base = build_loaded(workload, DEVICE)
    volume = synthetic_study(args.slices, side=512)
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else "cpu (smoke test, not a figure)",
        "capability": list(torch.cuda.get_device_capability(DEVICE)) if DEVICE.type == "cuda" else None,
        "torch": torch.__version__, "cuda": torch.version.cuda, "workload": workload.name, "shots": 1,
        "study_slices": args.slices, "weights": "random:0 (speed only)", "goal_slices_per_s": GOAL_SLICES_PER_S,
        "runs": {}, "deviation_vs_fp32": {}, "skipped": []}
    if TRIAGE_RESULTS.is_file():
        projection = json.loads(TRIAGE_RESULTS.read_text()).get("projection", {})
        result["triage_fractions"] = {k: v["scored_fraction"] for k, v in projection.get("runs", {}).items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        result["seconds"] = round(time.time() - started, 1)
        atomic_write_text(out / "gpu_bench.json", json.dumps(result, indent=1) + "\n")

    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as tmp:
        bank = ReferenceBank.open(write_synthetic_bank(Path(tmp), base, scans=1, rows=32))
        images = phantom_images(5, workload.image_size, DEVICE)
        for precision in args.precisions.split(","):
            if precision != "fp32":
                result["deviation_vs_fp32"][precision] = deviation(base, precision, images)
            method = _method_at(base, precision)
            for size_text in args.batch_sizes.split(","):
                if time.time() - started > args.budget_s:
                    result["skipped"].append(f"{precision}/{size_text}: time budget")
                    continue
                key = f"{precision}/bs{size_text}"
                try:
                    batch = resolve_batch_size(size_text, method)
                    row: dict[str, Any] = {"batch": batch, "encode_slices_per_s": round(encode_rate(method, batch), 2)}
                    row.update(study_rate(method, bank, volume, batch))
                    row["meets_goal"] = row["study_slices_per_s"] >= GOAL_SLICES_PER_S
                    for name, fraction in result.get("triage_fractions", {}).items():
                        if fraction and name != "full":
                            row.setdefault("studies_per_hour_300_triage_projected", {})[name] = round(
                                row["studies_per_hour_300"] / fraction, 1)
                except torch.cuda.OutOfMemoryError as exc:
                    row = {"error": f"out of memory: {str(exc).splitlines()[0]}"}
                    if DEVICE.type == "cuda":
                        torch.cuda.empty_cache()
                result["runs"][key] = row
                print(key, row, flush=True)
                save()
            del method
            if DEVICE.type == "cuda":
                torch.cuda.empty_cache()
        bank.close()
    best = max((r for r in result["runs"].values() if "study_slices_per_s" in r), key=lambda r: r["study_slices_per_s"],
               default=None)
    result["best_study_slices_per_s"] = best["study_slices_per_s"] if best else None
    save()
    print(json.dumps({k: result[k] for k in ("device", "best_study_slices_per_s", "deviation_vs_fp32")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
