"""Every registered method side by side: time and memory per slice, zero- and few-shot, through
the method contract (what ``score`` runs), at the real architectures with random weights (no
downloads: speed does not depend on the weights' values).

* AdaptCLIP and AdaCLIP: ViT-L-14-336 at 518 px (AdaCLIP needs two vision passes per image: the
  plain pass for its dynamic prompts and the prompted pass, plus 48 prompted sentences through
  the text tower, recomputed per image);
* WinCLIP: ViT-B-16-plus-240 at 240 px (one full pass plus 365 window passes of 5 or 10 tokens).

Per slice = one batch of ``--batch`` phantom slices through ``encode`` + ``predict_encoded`` with
a memory of k reference slices (encoded once, as a bank stores them), divided by the batch;
per study = per slice x 300 body slices (an extrapolation, said so in the results).  Medians of
``--repeats`` runs, interleaved across k so load changes hit both alike.  Results with the CPU
model and flags: benchmarks/results/methods_<device>.json; table in docs/performance.md.

Against the machine's limit (benchmarks/flops.py): the run measures this machine's fp32 GEMM rate
(n^3 torch.matmul, before and after the methods), counts each method's FLOPs per slice while its
warm-up call runs, and prints every per-slice time beside the FLOP bound (time / bound).
AdaptCLIP is also timed against the naive fp32 path (tests/support/naive.py: open_clip-style
attention, text and references re-encoded per call), interleaved with its own calls.

    python -m benchmarks.methods [--methods adaptclip,adaclip,winclip] [--repeats 3] [--batch 2] [--quick]

``--quick`` uses the tiny test architectures (a smoke run of the harness, seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.flops import bound_fraction, count_flops, gemm_rate, machine_gemm_rate
from benchmarks.measure import PeakMemory, machine_description, synchronise, write_results
from benchmarks.workloads import phantom_slices

RESULTS = Path(__file__).resolve().parent / "results"
STUDY_SLICES = 300
REAL = {"adaptclip": ("ViT-L-14-336", 518), "adaclip": ("ViT-L-14-336", 518), "winclip": ("ViT-B-16-plus-240", 240)}
QUICK = {"adaptclip": ("adaptclip-tiny-vit", 56), "adaclip": ("adaclip-tiny-vit", 56), "winclip": ("winclip-tiny-vit", 84)}


def _spec(name: str, quick: bool, device: str):
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.model.backbone_source import BackboneSpec

    architecture, size = (QUICK if quick else REAL)[name]
    return MethodSpec(method=name, backbone=BackboneSpec(architecture, "random:0", offline=True), image_size=size, device=device,
                      class_name="brain")


def bench_method(name: str, quick: bool, repeats: int, batch: int, device: torch.device, naive: bool = True) -> dict[str, Any]:
    from adaptclip_med.methods.registry import get_method

    spec = _spec(name, quick, str(device))
    started = time.perf_counter()
    method = get_method(name).load(spec)
    build_s = time.perf_counter() - started
    slices, _ = phantom_slices(max(batch + 2, 8), seed=3)
    queries = method.slice_input(slices[:batch])
    shots = [0] + ([1] if method.references != "unused" else [])
    memories = {0: None}
    if 1 in shots:
        memories[1] = method.encode_normals(method.slice_input(slices[batch:batch + 1]))

    def run(k: int):
        with torch.no_grad():
            return method.predict_encoded(method.encode(queries), memories[k])  # one memory shared by the batch

    calls = {str(k): (lambda k=k: run(k)) for k in shots}
    if name == "adaptclip" and naive:
        from tests.support.naive import naive_predict

        reference = method.slice_input(slices[batch:batch + 1])
        calls["naive_fp32_k1"] = lambda: naive_predict(method.model, queries, reference)
    out: dict[str, Any] = {"architecture": spec.backbone.architecture, "image_size": method.image_size, "build_s": round(build_s, 2),
                           "references": method.references, "per_k": {}}
    for fn in calls.values():
        fn()  # warm-up: one-time work (text features, caches) is not part of a slice
    flops = {key: count_flops(fn) for key, fn in calls.items()}  # a second, counted call (untimed)
    runs: dict[str, list[float]] = {key: [] for key in calls}
    peaks: dict[str, PeakMemory] = {}
    for _ in range(repeats):  # interleaved: k = 0, k = 1, naive, k = 0, ...
        for key, fn in calls.items():
            with PeakMemory(device) as memory:
                synchronise(device)
                started = time.perf_counter()
                fn()
                synchronise(device)
                runs[key].append(time.perf_counter() - started)
            peaks[key] = memory
    for key in calls:
        median = statistics.median(runs[key])
        per_slice = median / batch
        entry = {"batch_median_s": round(median, 4), "runs_s": [round(r, 4) for r in runs[key]],
                 "per_slice_s": round(per_slice, 4), "flops_per_slice": flops[key] // batch,
                 "study_300_slices_min_extrapolated": round(per_slice * STUDY_SLICES / 60, 2), **peaks[key].to_json()}
        if key.isdigit():
            out["per_k"][key] = entry
        else:
            out[key] = entry
    if "naive_fp32_k1" in out and "1" in out["per_k"]:
        out["per_k"]["1"]["vs_naive_fp32"] = round(out["naive_fp32_k1"]["per_slice_s"] / out["per_k"]["1"]["per_slice_s"], 3)
    return out


def add_bounds(results: dict[str, Any], gflops: float) -> None:
    """Each per-slice time beside its FLOP bound at this machine's GEMM rate (1.0 = at the bound)."""
    for name, entry in results["methods"].items():
        for key, row in [*entry["per_k"].items(), *([("naive", entry["naive_fp32_k1"])] if "naive_fp32_k1" in entry else [])]:
            row.update(bound_fraction(row["per_slice_s"], row["flops_per_slice"], gflops))
            ratio = f", {row['vs_naive_fp32']:.2f}x the naive fp32 path" if "vs_naive_fp32" in row else ""
            print(f"{name} k={key}: {row['per_slice_s']:.2f} s/slice, {row['tflop']:.3f} TFLOP, bound {row['bound_s']:.2f} s "
                  f"at {gflops:.0f} GFLOP/s -> {row['time_over_bound']:.2f}x the bound{ratio}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="adaptclip,adaclip,winclip")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny test architectures (harness smoke run)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive fp32 AdaptCLIP path")
    parser.add_argument("--gemm-n", type=int, default=4096, help="size of the n^3 fp32 GEMM that measures the machine")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_grad_enabled(False)
    results = {"machine": machine_description(), "batch": args.batch, "repeats": args.repeats, "quick": args.quick,
               "note": f"per-study minutes = per-slice x {STUDY_SLICES} body slices (extrapolated, not measured); "
                       "time_over_bound = per-slice time / (FLOPs per slice / fp32 GEMM rate)",
               "gemm_before": gemm_rate(args.gemm_n), "methods": {}}
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        results["methods"][name] = bench_method(name, args.quick, args.repeats, args.batch, device, not args.no_naive)
        print(name, json.dumps(results["methods"][name]["per_k"]))
    results["gemm_after"] = gemm_rate(args.gemm_n)
    results["gemm_gflops_used"] = machine_gemm_rate(results["gemm_before"], results["gemm_after"])
    results["load_average_at_end"] = list(os.getloadavg())
    add_bounds(results, results["gemm_gflops_used"])
    suffix = "quick" if args.quick else device.type
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"methods_{suffix}.json"
    write_results(path, results)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
