"""Benchmark harness: ``python -m benchmarks.run`` (``--help`` for the grid options).

Each workload (backbone@size) is measured in several fresh processes (stages; scorer overheads;
one per whole-study memory run) so no peak-memory figure inherits another measurement's freed
memory; the parts are merged into ``benchmarks/results/<workload>_<device>.json``.
``python -m benchmarks.report`` then renders the tables in docs/performance.md.

Every optimisation is quoted as a ratio against the naive fp32 path (tests/support/naive.py)
measured in the same process, so machine load shifts both sides of a ratio together.  Run it on
an otherwise idle machine (``nice`` it if it must share): absolute figures are only as good as
the load allows, and the load average at start is recorded.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from adaptclip_med.model.precision import apply_precision, resolve_precision
from adaptclip_med.utils.atomic import atomic_write_text

from benchmarks import stages, volume
from benchmarks.measure import PeakMemory, machine_description, write_results
from benchmarks.workloads import WORKLOADS, Workload, build_loaded, phantom_images, write_synthetic_bank

RESULTS = Path(__file__).parent / "results"
#: Default repetitions per batch size (median taken): a ViT-L batch of 8 takes ~80 s on 2 cores.
DEFAULT_REPEATS = {1: 3, 4: 2, 8: 1}


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--workload", nargs="+", default=list(WORKLOADS), help="backbone@size, e.g. ViT-L-14-336@518")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--shots", nargs="+", type=int, default=[0, 1, 4])
    parser.add_argument("--repeats", type=int, default=None, help="repetitions for every timing (default: 3/2/1 for batch 1/4/8)")
    parser.add_argument("--e2e", nargs="*", default=["1/0", "4/1"], help="batch/k pairs measured end to end (naive and optimised)")
    parser.add_argument("--precision-batch", type=int, default=1, help="batch for the whole-backbone fp32/bf16/autocast comparison (0: skip)")
    parser.add_argument("--precision-effect", type=int, default=2, help="lesion slices for the bf16 accuracy check (0: skip)")
    parser.add_argument("--study-slices", type=int, default=300, help="slices of the peak-memory study (0: skip)")
    parser.add_argument("--study-shots", type=int, default=4)
    parser.add_argument("--study-batch", type=int, default=4)
    parser.add_argument("--bank-rows", type=int, default=300, help="body slices per synthetic reference scan")
    parser.add_argument("--real-study-slices", type=int, default=8, help="slices scored with the real backbone to check the stubbed study (0: skip)")
    parser.add_argument("--flatness", nargs="*", type=int, default=[4, 8, 16], help="study lengths for time-per-slice (real backbone)")
    parser.add_argument("--skipping", default="4/4", help="body/air slices for the background-skipping check ('' to skip)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["fp32", "bf16", "auto"],
                        help="precision of the optimised path (the naive reference is always fp32)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--small-row-cache", type=int, default=0,
                        help="also measure the study with the bank row cache limited to this many rows (0: skip)")
    parser.add_argument("--only", nargs="*", default=None, help="re-run only these parts (stages, volume, study, "
                        "study_small_row_cache, study_real) and merge them into the existing result file")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bank-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--row-cache", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--real", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _pairs(items: list[str]) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in item.split("/")) for item in items]  # type: ignore[misc]


def run_stages_part(args: argparse.Namespace, loaded, device: torch.device, workload: Workload) -> dict[str, Any]:
    """Stage grid, precision comparison, bf16 accuracy and end-to-end checks."""
    repeats = {b: args.repeats for b in args.batches + args.shots} if args.repeats else DEFAULT_REPEATS
    model = loaded.model
    result: dict[str, Any] = {"repeats": {str(k): v for k, v in repeats.items()}, "grid": {"batches": args.batches, "shots": args.shots}}
    fast, chosen = stages.at_precision(model, args.precision)
    result["optimised_precision"] = chosen
    result["stages"] = stages.run_stages(model, args.batches, args.shots, repeats, device, lambda m: _log(f"{workload.name}: {m}"), fast)
    if args.precision_batch:
        _log(f"{workload.name}: precision")
        images = phantom_images(args.precision_batch, workload.image_size, device)
        result["precision"] = stages.precision_stage(model, images, 1, device)
    if args.precision_effect:
        _log(f"{workload.name}: bf16 effect on maps")
        result["precision_effect"] = stages.precision_effect(model, device, args.precision_effect)
    result["end_to_end"] = []
    for batch, shots in _pairs(args.e2e):
        _log(f"{workload.name}: end to end batch {batch} k {shots}")
        images = phantom_images(batch + shots, workload.image_size, device)
        refs = images[batch:] if shots else None
        result["end_to_end"].append(stages.end_to_end(model, images[:batch], refs, 1, device, fast))
    return result


def _bank(args: argparse.Namespace, loaded, workload: Workload) -> Path:
    """The synthetic bank shared by the volume parts (written once, by the first part needing it)."""
    folder = args.bank_dir / "synthetic"
    if not (folder / "bank.json").is_file():
        _log(f"{workload.name}: writing a synthetic bank ({args.study_shots} scans x {args.bank_rows} rows)")
        write_synthetic_bank(args.bank_dir, loaded, args.study_shots, args.bank_rows)
    return folder


def run_volume_part(args: argparse.Namespace, loaded, device: torch.device, workload: Workload) -> dict[str, Any]:
    """Scorer overheads, time per slice against study length, background skipping."""
    bank = _bank(args, loaded, workload)
    out: dict[str, Any] = {"bank": {"scans": args.study_shots, "rows_per_scan": args.bank_rows,
                                    "bytes": sum(p.stat().st_size for p in bank.iterdir())}}
    out["outside_network"] = volume.outside_network(loaded, bank, args.study_shots, args.study_batch, device)
    if args.flatness:
        _log(f"{workload.name}: time per slice vs study length")
        out["flatness"] = volume.throughput_by_slices(loaded, bank, args.flatness, 1, args.study_batch, device)
    if args.skipping:
        body, air = (int(v) for v in args.skipping.split("/"))
        _log(f"{workload.name}: background skipping")
        out["skipping"] = volume.background_skipping(loaded, body, air, args.study_batch, device)
    return out


def run_study_part(args: argparse.Namespace, loaded, device: torch.device, workload: Workload) -> dict[str, Any]:
    """One whole-study peak-memory run (fresh process): stubbed backbone unless ``--real``."""
    from adaptclip_med.volume.bank import reader as bank_reader

    bank = _bank(args, loaded, workload)
    if args.row_cache:
        bank_reader._ROW_CACHE = args.row_cache  # measures a smaller bank row cache without editing the bank
    slices = args.real_study_slices if args.real else args.study_slices
    _log(f"{workload.name}: {slices}-slice study, {'real' if args.real else 'stub'} backbone, row cache {bank_reader._ROW_CACHE}")
    out = volume.study_memory(loaded, bank, slices, args.study_shots, args.study_batch, device, not args.real)
    out["bank_row_cache"] = bank_reader._ROW_CACHE
    return out


PARTS = {"stages": run_stages_part, "volume": run_volume_part, "study": run_study_part}


def _child(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    workload = Workload.parse(args.workload[0])
    with PeakMemory(device) as build_memory:
        loaded = build_loaded(workload, device)
    result = {"model_build": build_memory.to_json()}
    if args.part != "stages":  # the volume parts measure the scorer as users run it
        result["optimised_precision"] = apply_precision(loaded.model, args.precision)
    started = time.time()
    result.update(PARTS[args.part](args, loaded, device, workload))
    result["seconds"] = round(time.time() - started, 1)
    return result


def _parts(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(result key, extra child arguments) for every process one workload needs."""
    parts = [("stages", ["--part", "stages"])]
    if args.flatness or args.skipping:
        parts.append(("volume", ["--part", "volume"]))
    if args.study_slices:
        parts.append(("study", ["--part", "study"]))
        if args.small_row_cache:
            parts.append(("study_small_row_cache", ["--part", "study", "--row-cache", str(args.small_row_cache)]))
    if args.real_study_slices:
        parts.append(("study_real", ["--part", "study", "--real"]))
    return parts


def run_workload(args: argparse.Namespace, name: str, device: torch.device, argv: list[str] | None) -> dict[str, Any]:
    """Run every part of one workload in its own process and merge their results."""
    workload = Workload.parse(name)
    chosen, reason = resolve_precision("auto", device)
    result: dict[str, Any] = {"workload": workload.name, "device": str(device), "machine": machine_description(),
                              "auto_precision": {"chosen": chosen, "reason": reason}}
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="adaptclip-bench-") as folder:
        for key, extra in _parts(args):
            if args.only and key not in args.only:
                continue
            out = Path(folder) / f"{key}.json"
            cmd = [sys.executable, "-m", "benchmarks.run", *_forwarded(argv), "--workload", name, "--child-out", str(out),
                   "--bank-dir", str(Path(folder) / "bank"), *extra]
            _log(f"{workload.name}: part {key}")
            if subprocess.call(cmd):
                raise SystemExit(f"benchmark part {key} of {name} failed")
            part = json.loads(out.read_text())
            if key == "stages":
                result.update(part)
            else:
                result.setdefault("volume", {})[key] = part
    result["seconds"] = round(time.time() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device(args.device)
    if args.part:
        atomic_write_text(args.child_out, json.dumps(_child(args, device)))
        return 0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.workload:
        result = run_workload(args, name, device, argv)
        target = args.out_dir / f"{Workload.parse(name).name}_{device.type}.json"
        if args.only and target.is_file():  # a partial re-run updates the parts it measured
            previous = json.loads(target.read_text())
            previous.setdefault("volume", {}).update(result.pop("volume", {}))
            previous.update(result)
            result = previous
        write_results(target, result)
        _log(f"wrote {target}")
    return 0


def _forwarded(argv: list[str] | None) -> list[str]:
    """The command line minus the workload list and --only (each child gets one workload, one part)."""
    args = list(sys.argv[1:] if argv is None else argv)
    out, skipping = [], False
    for item in args:
        if item in ("--workload", "--only"):
            skipping = True
            continue
        if skipping and not item.startswith("--"):
            continue
        skipping = False
        out.append(item)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
