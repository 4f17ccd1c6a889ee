"""Vision-tower runtimes against the exact fp32 torch path: accuracy on labelled phantoms and
speed per slice, in one process with the calls interleaved (torch, ORT, OpenVINO, int8, naive, ...).

For each variant (``runtime:precision``) the same random-weight model (one set of weights; only
the attached runtime changes) scores a labelled phantom set with a k = 1 reference memory encoded
by the same variant (as its bank would be).  Reported against torch fp32: final-map and score
max |diff|, pixel and image AUROC.  Speed: one slice end to end (encode + heads against the
memory), median of ``--repeats`` interleaved calls, beside the fp32 GEMM bound of this machine
(benchmarks/flops.py) and the naive fp32 path (tests/support/naive.py: end to end, which re-encodes
text and the reference per call, and its vision tower alone).  Random weights: AUROC means little
here (the adapters are untrained); the map / score differences are the accuracy figure.

    python -m benchmarks.runtimes [--workload ViT-L-14-336@518] [--variants torch:fp32,onnxruntime:fp32,...]
                                  [--repeats 3] [--volumes 2] [--per-volume 4] [--no-naive]

Results: benchmarks/results/runtimes_<workload>_cpu.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.flops import bound_fraction, count_flops, gemm_rate, machine_gemm_rate
from benchmarks.measure import machine_description, write_results
from benchmarks.workloads import Workload, build_loaded, labelled_phantom_set, phantom_slices

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_VARIANTS = "torch:fp32,onnxruntime:fp32,openvino:fp32,onnxruntime:int8"


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message} (load {os.getloadavg()[0]:.1f})", flush=True)


def _attach(model, runtime: str, precision: str, cache: Path) -> dict[str, Any]:
    """Attach a runtime to the model's backbone (None for torch); returns how long its graph took."""
    from adaptclip_med.runtime.cache import ensure_graph
    from adaptclip_med.runtime.choice import load_backends
    from adaptclip_med.runtime.registry import get_runtime

    backbone = model.backbone
    if runtime == "torch":
        return {"runtime": None, "graph_s": 0.0}
    load_backends()
    cls = get_runtime(runtime)
    size = int(model.config.image_size)
    started = time.perf_counter()
    graph = ensure_graph(backbone, size, precision, cls, cache)
    graph_s = time.perf_counter() - started
    started = time.perf_counter()
    instance = cls(graph, precision, size, len(backbone.tap_layers), (size // backbone.patch_size,) * 2, torch.get_num_threads())
    return {"runtime": instance, "graph_s": round(graph_s, 1), "session_s": round(time.perf_counter() - started, 1),
            "graph_mib": round(graph.stat().st_size / 2**20, 1)}


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < labels.size else None


def _accuracy(out: dict[str, Any], exact: dict[str, Any], masks: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Map / score differences against the exact variant, and AUROCs on the labelled set."""
    diff = (out["map"] - exact["map"]).abs()
    side = masks.shape[-1]
    small = F.interpolate(out["map"][:, None], size=(side, side), mode="bilinear", align_corners=False)[:, 0]
    return {"map_max_abs_diff": float(diff.max()), "map_mean_abs_diff": float(diff.mean()),
            "score_max_abs_diff": float((out["score"] - exact["score"]).abs().max()),
            "mask_pixels_flipped_at_0.5": int(((out["map"] > 0.5) != (exact["map"] > 0.5)).sum()),
            "pixel_auroc": _auroc(masks.reshape(-1), small.numpy().reshape(-1)),
            "image_auroc": _auroc(labels, out["score"].numpy())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runtimes", description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="ViT-L-14-336@518")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--volumes", type=int, default=2, help="labelled phantom volumes (2-3 lesions each)")
    parser.add_argument("--per-volume", type=int, default=4, help="slices per volume: half with lesions, half without")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive fp32 path")
    parser.add_argument("--naive-e2e-repeats", type=int, default=None,
                        help="repetitions of the (expensive) naive end-to-end call (default: --repeats)")
    parser.add_argument("--gemm-n", type=int, default=4096)
    parser.add_argument("--cache-dir", type=Path, default=None, help="graph cache (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    machine = machine_description()
    workload = Workload.parse(args.workload)
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="runtime-graphs-"))
    _log(f"{workload.name}: GEMM rate")
    gemm_before = gemm_rate(args.gemm_n)
    loaded = build_loaded(workload, torch.device("cpu"))
    from adaptclip_med.methods.adaptclip.method import AdaptCLIPMethod

    method = AdaptCLIPMethod.from_loaded(loaded)
    model = loaded.model
    model.backbone.static_text_features()  # once per model, as in the product (not part of a slice)
    slices, masks, labels = labelled_phantom_set(args.volumes, args.per_volume)
    reference_slice, _ = phantom_slices(1, side=slices.shape[-1], seed=99)
    queries = method.slice_input(slices)
    reference = method.slice_input(reference_slice)

    variants = [tuple(v.split(":")) for v in args.variants.split(",") if v]
    variants_names = [f"{r}:{p}" for r, p in variants]
    if variants_names[0] != "torch:fp32":
        parser.error("the first variant must be torch:fp32 (the exact reference)")
    attached: dict[str, dict[str, Any]] = {}
    outputs: dict[str, dict[str, Any]] = {}
    accuracy: dict[str, Any] = {}
    for runtime, precision in variants:
        name = f"{runtime}:{precision}"
        _log(f"{name}: graph + accuracy pass")
        attached[name] = _attach(model, runtime, precision, cache)
        model.backbone.vision_runtime = attached[name]["runtime"]
        memory = method.encode_normals(reference)
        maps, scores = [], []
        for index in range(queries.shape[0]):
            prediction = method.predict(queries[index:index + 1], memory)
            maps.append(prediction.anomaly_map)
            scores.append(prediction.score)
        outputs[name] = {"map": torch.cat(maps), "score": torch.cat(scores), "memory": memory}
        accuracy[name] = _accuracy(outputs[name], outputs[variants_names[0]], masks, labels)
        _log(f"{name}: {accuracy[name]}")

    # speed: one slice end to end, interleaved
    one = queries[:1]
    fns = {}
    for name in outputs:
        def run(name: str = name) -> None:
            model.backbone.vision_runtime = attached[name]["runtime"]
            method.predict_encoded(method.encode(one), outputs[name]["memory"])
        fns[name] = run
    if not args.no_naive:
        from tests.support.naive import naive_encode_image, naive_predict

        def naive_e2e() -> None:
            model.backbone.vision_runtime = None
            naive_predict(model, one, reference)

        def naive_tower() -> None:
            naive_encode_image(model.backbone, one)
        fns["naive:e2e"] = naive_e2e
        fns["naive:tower"] = naive_tower
    model.backbone.vision_runtime = None
    _log("FLOP count (torch exact path, one slice end to end)")
    flops = count_flops(fns["torch:fp32"])
    runs: dict[str, list[float]] = {name: [] for name in fns}
    naive_e2e_repeats = args.repeats if args.naive_e2e_repeats is None else args.naive_e2e_repeats
    for repeat in range(args.repeats):
        for name, fn in fns.items():
            if name == "naive:e2e" and repeat >= naive_e2e_repeats:
                continue
            started = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - started)
            _log(f"repeat {repeat}: {name} {runs[name][-1]:.2f} s")
    gemm_after = gemm_rate(args.gemm_n)
    gflops = machine_gemm_rate(gemm_before, gemm_after)
    medians = {name: statistics.median(r) for name, r in runs.items()}
    speed: dict[str, Any] = {}
    for name, median in medians.items():
        speed[name] = {"per_slice_s": round(median, 3), "runs_s": [round(r, 3) for r in runs[name]],
                       "vs_torch_fp32": round(medians["torch:fp32"] / median, 3)}
        if not name.startswith("naive"):
            speed[name].update(bound_fraction(median, flops, gflops))
            if "naive:e2e" in medians:
                speed[name]["vs_naive_e2e"] = round(medians["naive:e2e"] / median, 3)
                speed[name]["vs_naive_tower_only"] = round(medians["naive:tower"] / median, 3)
        print(name, speed[name], flush=True)
    result = {"workload": workload.name, "k": 1, "batch": 1, "repeats": args.repeats, "machine": machine,
              "load_average_at_end": list(os.getloadavg()), "gemm_before": gemm_before, "gemm_after": gemm_after,
              "gemm_gflops_used": gflops, "flops_per_slice_end_to_end": flops,
              "labelled_set": {"volumes": args.volumes, "slices": int(len(labels)), "lesion_slices": int(labels.sum()),
                               "mask_pixels": int(masks.sum())},
              "graphs": {name: {k: v for k, v in a.items() if k != "runtime"} for name, a in attached.items()},
              "accuracy_vs_torch_fp32": accuracy, "speed": speed,
              "note": "random backbone weights and untrained adapters: AUROC has no diagnostic meaning; "
                      "map/score differences against torch fp32 are the accuracy figure"}
    path = args.out or RESULTS / f"runtimes_{workload.name}_cpu.json"
    write_results(path, result)
    _log(f"-> {path}")


if __name__ == "__main__":
    main()
