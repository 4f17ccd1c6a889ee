"""Per-stage measurements of the optimised path against the naive one, in the same process.

Stages: I/O (DICOM decode + windowing + resize), backbone, text features, reference encoding,
adapters (TA + VA), prompt-query adapter with its 1-NN search, fusion.  The backbone dominates and
does not depend on k, while the PQA/1-NN cost does not depend on the backbone's depth, so each is
measured once per batch size (or per batch size and k) and the pipeline time is their sum; the
end-to-end measurements in :func:`end_to_end` check that sum.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from adaptclip_med.methods.adaptclip.network import AdaptCLIP, ReferenceMemory
from adaptclip_med.model.backbone import VisionFeatures, _block_forward
from adaptclip_med.methods.adaptclip.fusion import fuse
from adaptclip_med.model.nn_search import nearest_neighbours
from adaptclip_med.model.precision import apply_precision, resolve_precision
from adaptclip_med.preprocess import slices_to_model_input

from benchmarks.measure import compare, measure
from benchmarks.workloads import BRAIN_WINDOW, phantom_images
from tests.support.naive import (
    _prompt_query_layer,
    naive_block,
    naive_encode_image,
    naive_learned_text,
    naive_nearest_neighbours,
    naive_predict,
    naive_static_text,
)

#: Slices per reference scan that the volume scorer pools for each query slice (bank default).
SLICES_PER_SCAN = 3


def _slice_features(features: VisionFeatures, count: int) -> VisionFeatures:
    return VisionFeatures([t[:count] for t in features.taps], features.global_token[:count], features.grid)


@torch.no_grad()
def io_stage(size: int, slices: int = 32, side: int = 512) -> dict[str, Any]:
    """Per-slice cost of reading a DICOM CT series, windowing it and making network input."""
    from adaptclip_med.demo.phantom import make_head_ct_phantom, write_dicom_series
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.slice_preprocessing import SlicePreprocessing, prepare_volume

    hu, _ = make_head_ct_phantom(1, (slices, side, side))
    with tempfile.TemporaryDirectory() as folder:
        write_dicom_series(hu, Path(folder) / "series")
        load = measure(lambda: load_study(Path(folder) / "series"), 2, torch.device("cpu"))
        volume, _ = load_study(Path(folder) / "series")
    prepare = measure(lambda: prepare_volume(volume, SlicePreprocessing(window=BRAIN_WINDOW)), 3, torch.device("cpu"))
    prepared = prepare_volume(volume, SlicePreprocessing(window=BRAIN_WINDOW))
    to_input = measure(lambda: slices_to_model_input(prepared.slices01, size), 3, torch.device("cpu"))
    per_slice = {name: m["median_s"] / slices for name, m in (("dicom_load", load), ("window_and_background", prepare),
                                                               ("resize_normalise", to_input))}
    return {"slices": slices, "side": side, "per_slice_s": per_slice, "total_per_slice_s": sum(per_slice.values()),
            "raw": {"dicom_load": load, "window_and_background": prepare, "resize_normalise": to_input}}


@torch.no_grad()
def block_ablation(model: AdaptCLIP, repeats: int, device: torch.device) -> dict[str, Any]:
    """One two-stream block at the workload's token count, one optimisation added at a time.

    Cheap enough to repeat on ViT-L, and it isolates each backbone optimisation; the precision
    variants show why autocast is slow (weights re-cast on every call) and what bf16 costs or
    gains on this machine."""
    backbone = model.backbone
    block = backbone.clip.visual.transformer.resblocks[backbone.vv_start_layer - 1]
    grid = model.config.image_size // backbone.patch_size
    width = block.attn.embed_dim
    x = torch.randn(1, grid * grid + 1, width, device=device)
    bf16_block = copy.deepcopy(block)
    bf16_block.attn.to(torch.bfloat16)  # what model/precision.py converts: the matmul weights only
    bf16_block.mlp.to(torch.bfloat16)

    def autocast_block() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            _block_forward(block, x, True)

    compiled = torch.compile(_block_forward, dynamic=False)
    started = time.perf_counter()
    compiled(block, x, True)
    compile_seconds = time.perf_counter() - started
    variants = {
        "naive (math attention, separate value projection)": lambda: naive_block(block, x, True),
        "+ fused SDPA": lambda: naive_block(block, x, True, attention=F.scaled_dot_product_attention),
        "+ shared in-projection (optimised fp32)": lambda: _block_forward(block, x, True),
        "last block, CLS-only original stream": lambda: _block_forward(block, x, True, cls_only=True),
        "bf16 weights converted once (fp32 residual/LN)": lambda: _block_forward(bf16_block, x, True),
        "fp32 weights under torch.autocast(bf16)": autocast_block,
        "torch.compile (inductor) of the optimised block": lambda: compiled(block, x, True),
    }
    results: dict[str, Any] = compare(variants, repeats, device, warmup=1)
    results["torch_compile_seconds"] = round(compile_seconds, 1)
    results["autocast_weight_casts_per_call"] = _autocast_weight_casts(block, x, device)
    naive = results["naive (math attention, separate value projection)"]["median_s"]
    for name in variants:
        results[name]["speedup_vs_naive"] = round(naive / results[name]["median_s"], 3)
    return results


def _autocast_weight_casts(block: torch.nn.Module, x: torch.Tensor, device: torch.device) -> dict[str, int]:
    """Count the casts autocast makes in two consecutive calls, with frozen and with trainable
    weights: its cast cache only keeps copies of weights that require grad."""
    from torch.profiler import profile

    counts = {}
    for label, requires_grad in (("frozen_weights", False), ("trainable_weights", True)):
        probe = copy.deepcopy(block).requires_grad_(requires_grad)
        with profile() as prof, torch.autocast(device.type, dtype=torch.bfloat16):
            for _ in range(2):
                _block_forward(probe, x, True)
        counts[label] = sum(event.count for event in prof.key_averages() if event.key == "aten::_to_copy")
    return counts


@torch.no_grad()
def backbone_stage(model: AdaptCLIP, images: torch.Tensor, repeats: int, device: torch.device,
                   fast: AdaptCLIP | None = None) -> dict[str, Any]:
    """Whole vision tower: optimised forward (``fast``: the model at the benchmarked precision)
    vs the naive fp32 one, same images."""
    fast = fast or model
    out: dict[str, Any] = compare({"optimised": lambda: fast.encode(images),
                                   "naive": lambda: naive_encode_image(model.backbone, images)}, repeats, device)
    out["speedup"] = round(out["naive"]["median_s"] / out["optimised"]["median_s"], 3)
    return out


def at_precision(model: AdaptCLIP, mode: str) -> tuple[AdaptCLIP, str]:
    """The model to benchmark as "optimised": ``model`` itself for fp32, else a converted copy
    (the naive path keeps the fp32 original)."""
    chosen, _ = resolve_precision(mode, next(model.parameters()).device)
    if chosen == "fp32":
        return model, chosen
    model.backbone.static_text_features()  # fill the text caches first, so the copy shares the
    model.textual.text_features(model.backbone)  # "computed once" state of the model it copies
    fast = copy.deepcopy(model)
    apply_precision(fast, chosen)
    return fast, chosen


@torch.no_grad()
def precision_stage(model: AdaptCLIP, images: torch.Tensor, repeats: int, device: torch.device) -> dict[str, Any]:
    """Whole vision tower in fp32, bf16 (weights converted once) and fp32 under autocast."""
    def autocast() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            model.encode(images)

    bf16_model = copy.deepcopy(model)
    apply_precision(bf16_model, "bf16")
    out: dict[str, Any] = compare({"fp32": lambda: model.encode(images), "bf16": lambda: bf16_model.encode(images),
                                   "autocast_bf16": autocast}, repeats, device)
    out["batch"] = images.shape[0]
    out["bf16_speedup"] = round(out["fp32"]["median_s"] / out["bf16"]["median_s"], 3)
    out["autocast_speedup"] = round(out["fp32"]["median_s"] / out["autocast_bf16"]["median_s"], 3)
    return out


@torch.no_grad()
def text_stage(model: AdaptCLIP, repeats: int, device: torch.device) -> dict[str, Any]:
    """Text features per batch: cached lookups (optimised, microseconds, so no ratio is quoted)
    vs re-encoding the 231 static sentences and the 2 learned prompts (naive)."""
    backbone = model.backbone

    def cached() -> None:
        model.textual.text_features(backbone)
        backbone.static_text_features()

    cached()  # first call fills the caches (a checkpoint normally ships the static text)
    optimised = measure(cached, max(repeats, 3), device)
    naive = measure(lambda: (naive_static_text(backbone), naive_learned_text(model)), 1, device)
    return {"optimised": optimised, "naive": naive, "optimised_us": round(min(optimised["runs_s"]) * 1e6, 1)}


@torch.no_grad()
def adapters_stage(model: AdaptCLIP, features: VisionFeatures, batch: int, repeats: int, device: torch.device) -> dict[str, Any]:
    """TA + VA branch maps (identical code in both paths: no optimisation, measured for the sum)."""
    feats = _slice_features(features, batch)
    size = (model.config.image_size,) * 2
    return measure(lambda: model.branches(feats, None, size), repeats, device)


def shared_memory(features: VisionFeatures, shots: int) -> ReferenceMemory:
    """Reference memory of ``shots`` images taken from a feature batch (2-D few-shot setting)."""
    return ReferenceMemory.from_features(_slice_features(features, shots))


@torch.no_grad()
def prompt_query_stage(model: AdaptCLIP, features: VisionFeatures, batch: int, shots: int, repeats: int,
                       device: torch.device) -> dict[str, Any]:
    """PQA over the four taps, chunked 1-NN (optimised) vs full similarity matrix (naive)."""
    feats = _slice_features(features, batch)
    memory = shared_memory(features, shots)
    size = (model.config.image_size,) * 2
    pqa = model.prompt_query

    def optimised() -> None:
        for layer, tokens in enumerate(feats.taps):
            pqa.forward_layer(layer, tokens, memory.layers[layer], feats.grid, size)

    def naive() -> None:
        for layer, tokens in enumerate(feats.taps):
            _prompt_query_layer(model, layer, tokens, memory.layers[layer], feats.grid, size)

    out: dict[str, Any] = compare({"optimised": optimised, "naive": naive}, repeats, device)
    out["speedup"] = round(out["naive"]["median_s"] / out["optimised"]["median_s"], 3)
    return out


@torch.no_grad()
def fusion_stage(batch: int, shots: int, size: int, repeats: int, device: torch.device) -> dict[str, Any]:
    """Fusion + Gaussian smoothing on (B, H, W) maps (same code in both paths)."""
    generator = torch.Generator().manual_seed(0)
    maps = [torch.rand(batch, size, size, generator=generator).to(device) + 0.01 for _ in range(7)]
    scores = [torch.rand(batch, generator=generator).to(device) for _ in range(3)]
    if shots == 0:
        return measure(lambda: fuse(maps[0], maps[1], scores[0], scores[1]), repeats, device)
    return measure(lambda: fuse(maps[0], maps[1], scores[0], scores[1], maps[2], scores[2], maps[3:]), repeats, device)


@torch.no_grad()
def nn_cost_by_k(model: AdaptCLIP, features: VisionFeatures, batch: int, shots_list: list[int], repeats: int,
                 device: torch.device) -> list[dict[str, Any]]:
    """1-NN cost per tapped layer as a function of k, for the two memory layouts in use:
    2-D few-shot (one memory of k*N patches shared by the batch) and the volume scorer (one memory
    of k*3*N patches per query slice).  Chunked search vs the full similarity matrix."""
    query = F.normalize(_slice_features(features, batch).taps[-1], dim=-1)[:, 1:]
    patches, dim = query.shape[1], query.shape[2]
    generator = torch.Generator().manual_seed(1)
    rows = []
    for shots in shots_list:
        for layout, memories, per_query in (("shared (2-D, k images)", 1, shots), (f"per slice (volume, k scans x {SLICES_PER_SCAN})", batch, shots * SLICES_PER_SCAN)):
            memory = F.normalize(torch.randn(memories, per_query * patches, dim, generator=generator), dim=-1).to(device)
            pair = compare({"chunked": lambda: nearest_neighbours(query, memory),
                            "full": lambda: naive_nearest_neighbours(query, memory)}, repeats, device)
            chunked, full = pair["chunked"], pair["full"]
            gflop = 2 * batch * patches * memory.shape[1] * dim / 1e9
            rows.append({"k": shots, "layout": layout, "batch": batch, "memory_patches": memory.shape[1],
                         "gflop_per_layer": round(gflop, 2), "chunked": chunked, "full": full,
                         "chunked_gflops": round(gflop / chunked["median_s"], 1),
                         "chunked_peak_increase_mib": chunked["peak_rss_mib"] - chunked["start_rss_mib"],
                         "full_peak_increase_mib": full["peak_rss_mib"] - full["start_rss_mib"]})
    return rows


@torch.no_grad()
def pqa_head_layout(model: AdaptCLIP, batch: int, repeats: int, device: torch.device) -> dict[str, Any]:
    """The PQA pixel head on (B, D, G, G): default (contiguous) vs channels-last memory format."""
    grid = model.config.image_size // model.backbone.patch_size
    fused = torch.randn(batch, model.backbone.embed_dim, grid, grid, device=device)
    head = model.prompt_query.pixel_head
    last_head = copy.deepcopy(head).to(memory_format=torch.channels_last)
    fused_last = fused.contiguous(memory_format=torch.channels_last)
    out: dict[str, Any] = compare({"contiguous": lambda: head(fused), "channels_last": lambda: last_head(fused_last)},
                                  repeats, device, warmup=1)
    out["batch"] = batch
    out["channels_last_speedup"] = round(out["contiguous"]["median_s"] / out["channels_last"]["median_s"], 3)
    return out


@torch.no_grad()
def end_to_end(model: AdaptCLIP, images: torch.Tensor, references: torch.Tensor | None, repeats: int,
               device: torch.device, fast: AdaptCLIP | None = None) -> dict[str, Any]:
    """Full predict: optimised (``fast`` at the benchmarked precision, cached text, reference
    memory encoded once) vs naive fp32 (everything recomputed per call), plus the largest
    map/score difference between them."""
    fast = fast or model
    memory = fast.encode_references(references) if references is not None else None
    outputs = {}
    pair = compare({"optimised": lambda: outputs.update(fast=fast.predict(images, memory)),
                    "naive": lambda: outputs.update(slow=naive_predict(model, images, references))}, repeats, device)
    optimised, naive = pair["optimised"], pair["naive"]
    fast, slow = outputs["fast"], outputs["slow"]
    return {"batch": images.shape[0], "k": 0 if references is None else references.shape[0],
            "optimised": optimised, "naive": naive, "speedup": round(naive["median_s"] / optimised["median_s"], 3),
            "max_abs_map_diff": float((fast.anomaly_map - slow.anomaly_map).abs().max()),
            "max_abs_score_diff": float((fast.score - slow.score).abs().max())}


def compose(stages: dict[str, Any], batch: int, shots: int, io_per_slice: float) -> dict[str, Any]:
    """Pipeline seconds per batch as the sum of the measured stages; slices/s with and without I/O.

    Naive references are re-encoded per batch with the naive backbone (the same call as the naive
    backbone stage at batch k, so that measurement is reused).  ``speedup_compute_only`` leaves
    out what caching saves (text and reference encoding) and compares the per-slice compute."""
    def seconds(entry: dict[str, Any]) -> float:
        return entry["median_s"]

    backbone = stages["backbone"][str(batch)]
    shared = {"adapters": seconds(stages["adapters"][str(batch)]), "fusion": seconds(stages["fusion"][f"{batch}/{shots}"])}
    opt = shared | {"backbone": seconds(backbone["optimised"]), "text": seconds(stages["text"]["optimised"])}
    naive = shared | {"backbone": seconds(backbone["naive"]), "text": seconds(stages["text"]["naive"])}
    if shots:
        pqa = stages["prompt_query"][f"{batch}/{shots}"]
        opt["prompt_query"], naive["prompt_query"] = seconds(pqa["optimised"]), seconds(pqa["naive"])
        naive["references"] = seconds(stages["backbone"][str(shots)]["naive"])
    opt_s, naive_s = sum(opt.values()), sum(naive.values())
    cached = ("text", "references")
    opt_compute = sum(v for k, v in opt.items() if k not in cached)
    naive_compute = sum(v for k, v in naive.items() if k not in cached)
    io = io_per_slice * batch
    return {"batch": batch, "k": shots, "optimised_parts_s": {k: round(v, 4) for k, v in opt.items()},
            "naive_parts_s": {k: round(v, 4) for k, v in naive.items()},
            "optimised_slices_per_s": round(batch / opt_s, 4), "naive_slices_per_s": round(batch / naive_s, 4),
            "optimised_slices_per_s_with_io": round(batch / (opt_s + io), 4),
            "naive_slices_per_s_with_io": round(batch / (naive_s + io), 4),
            "speedup": round(naive_s / opt_s, 3), "speedup_compute_only": round(naive_compute / opt_compute, 3)}


def run_stages(model: AdaptCLIP, batches: list[int], shots_list: list[int], repeats: dict[int, int],
               device: torch.device, log, fast: AdaptCLIP | None = None) -> dict[str, Any]:
    """All stage measurements for one workload; ``repeats`` maps batch size -> repetitions.
    ``fast`` is the model at the benchmarked precision for the optimised backbone (default: ``model``)."""
    size = model.config.image_size
    biggest = max(batches + shots_list)
    images = phantom_images(biggest, size, device)
    results: dict[str, Any] = {"backbone": {}, "adapters": {}, "prompt_query": {}, "fusion": {}}
    started = time.time()
    log("io")
    results["io"] = io_stage(size)
    log("block ablation")
    results["block_ablation"] = block_ablation(model, 3, device)
    log("text")
    results["text"] = text_stage(model, 1, device)
    for batch in sorted(set(batches) | {s for s in shots_list if s}):
        log(f"backbone batch {batch}")
        results["backbone"][str(batch)] = backbone_stage(model, images[:batch], repeats.get(batch, 1), device, fast)
    features = model.encode(images)
    for batch in batches:
        results["adapters"][str(batch)] = adapters_stage(model, features, batch, 3, device)
        for shots in shots_list:
            results["fusion"][f"{batch}/{shots}"] = fusion_stage(batch, shots, size, 3, device)
            if shots:
                log(f"prompt-query batch {batch} k {shots}")
                results["prompt_query"][f"{batch}/{shots}"] = prompt_query_stage(model, features, batch, shots, 2, device)
    log("1-NN cost by k")
    results["nn_by_k"] = nn_cost_by_k(model, features, 4 if 4 <= biggest else biggest, [1, 2, 4, 8], 2, device)
    results["pqa_head_layout"] = pqa_head_layout(model, 4 if 4 <= biggest else biggest, 3, device)
    results["pipeline"] = [compose(results, b, k, results["io"]["total_per_slice_s"]) for b in batches for k in shots_list]
    results["stage_seconds"] = round(time.time() - started, 1)
    return results


def precision_effect(model: AdaptCLIP, device: torch.device, slices: int = 2, shots: int = 1) -> dict[str, Any]:
    """bf16 vs fp32 on phantom slices with synthetic lesions: map/score differences and the effect
    on pixel AUROC of the final map (random weights: the AUROC itself is not meaningful, its change is)."""
    from sklearn.metrics import roc_auc_score

    from benchmarks.workloads import phantom_slices

    size = model.config.image_size
    volume, mask = phantom_slices(max(24, slices + shots + 8), lesions=3, seed=4)
    lesion_rows = [z for z in np.argsort(-mask.reshape(mask.shape[0], -1).sum(1)) if mask[z].any()][:slices]
    normal_rows = [z for z in range(mask.shape[0]) if not mask[z].any()][:shots]
    queries = slices_to_model_input(volume[lesion_rows], size).to(device)
    references = slices_to_model_input(volume[normal_rows], size).to(device)
    truth = F.interpolate(torch.from_numpy(mask[lesion_rows]).float().unsqueeze(1), size=(size, size), mode="nearest")
    truth = truth.squeeze(1).numpy().ravel() > 0.5
    bf16_model = copy.deepcopy(model)
    apply_precision(bf16_model, "bf16")
    out = {"slices": len(lesion_rows), "k": shots}
    with torch.no_grad():
        preds = {name: m.predict(queries, m.encode_references(references)) for name, m in (("fp32", model), ("bf16", bf16_model))}
    a, b = preds["fp32"], preds["bf16"]
    out["max_abs_map_diff"] = float((a.anomaly_map - b.anomaly_map).abs().max())
    out["mean_abs_map_diff"] = float((a.anomaly_map - b.anomaly_map).abs().mean())
    out["max_abs_score_diff"] = float((a.score - b.score).abs().max())
    out["branch_max_abs_diff"] = {k: float((a.branch_maps[k] - b.branch_maps[k]).abs().max()) for k in a.branch_maps}
    out["mask_pixels_flipped_at_0.5"] = float(((a.anomaly_map >= 0.5) != (b.anomaly_map >= 0.5)).float().mean())
    out["pixel_auroc"] = {name: float(roc_auc_score(truth, p.anomaly_map.cpu().numpy().ravel())) for name, p in preds.items()}
    return out
