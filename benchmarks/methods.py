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

    python -m benchmarks.methods [--methods adaptclip,adaclip,winclip] [--repeats 3] [--batch 2] [--quick]

``--quick`` uses the tiny test architectures (a smoke run of the harness, seconds).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.measure import PeakMemory, machine_description, time_call, write_results
from benchmarks.workloads import phantom_slices

RESULTS = Path(__file__).resolve().parent / "results"
STUDY_SLICES = 300
REAL = {"adaptclip": ("ViT-L-14-336", 518), "adaclip": ("ViT-L-14-336", 518), "winclip": ("ViT-B-16-plus-240", 240)}
QUICK = {"adaptclip": ("adaptclip-tiny-vit", 56), "adaclip": ("adaclip-tiny-vit", 56), "winclip": ("winclip-tiny-vit", 84)}


def _spec(name: str, quick: bool, device: str):
    from adaptclip_med.methods import MethodSpec
    from adaptclip_med.model.backbone_source import BackboneSpec

    architecture, size = (QUICK if quick else REAL)[name]
    return MethodSpec(method=name, backbone=BackboneSpec(architecture, "random:0", offline=True), image_size=size, device=device,
                      class_name="brain")


def bench_method(name: str, quick: bool, repeats: int, batch: int, device: torch.device) -> dict[str, Any]:
    from adaptclip_med.methods import get_method

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

    out: dict[str, Any] = {"architecture": spec.backbone.architecture, "image_size": method.image_size, "build_s": round(build_s, 2),
                           "references": method.references, "per_k": {}}
    for k in shots:
        with PeakMemory(device) as memory:
            timing = time_call(lambda: run(k), repeats, device, warmup=1)
        per_slice = timing.median_s / batch
        out["per_k"][str(k)] = {"batch_median_s": round(timing.median_s, 4), "runs_s": [round(r, 4) for r in timing.runs_s],
                                "per_slice_s": round(per_slice, 4),
                                "study_300_slices_min_extrapolated": round(per_slice * STUDY_SLICES / 60, 2), **memory.to_json()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="adaptclip,adaclip,winclip")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny test architectures (harness smoke run)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_grad_enabled(False)
    results = {"machine": machine_description(), "batch": args.batch, "repeats": args.repeats, "quick": args.quick,
               "note": f"per-study minutes = per-slice x {STUDY_SLICES} body slices (extrapolated, not measured)",
               "methods": {}}
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        results["methods"][name] = bench_method(name, args.quick, args.repeats, args.batch, device)
        print(name, json.dumps(results["methods"][name]["per_k"]))
    suffix = "quick" if args.quick else device.type
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"methods_{suffix}.json"
    write_results(path, results)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
