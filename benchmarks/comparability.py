"""Does the comparability guard flag what it should, and only that?  Measured with the packaged
demo model (``--adapters demo``, brain window) on:

* the demo phantoms (``adaptclip_med.demo.dataset``: 16 x 256 x 256 heads with three lesions) and
  the benchmark phantoms (``adaptclip_med.demo.phantom.make_demo_dataset``: 24 x 128 x 128 heads
  with 2-3 lesions), per seed: a bank of 3 normal heads, a study with lesions and a held-out
  normal head.  Goal: 0 lesion slices flagged; <= 2 % of the normal held-out slices flagged
  (the held-out normal head plus the lesion study's slices without lesion voxels);
* pydicom's test files CT_small (one body CT slice) and MR_small (one MR slice) against the demo
  head bank: goal "not comparable" (MR_small: refused by the modality check; also scored with
  ``--allow-other-modality`` to show the distribution check flags it too);
* head studies shifted out of the bank's coverage (``adaptclip_med.demo.off_coverage``: trunk
  slices below the lower part of a normal head): goal "partly comparable", every trunk slice
  flagged, no head slice flagged.

    python benchmarks/comparability.py --seeds 0 1 2 --out benchmarks/results/comparability.json
    python benchmarks/comparability.py --alignment-only   # adds the coverage alignment's cost at scale

``--alignment-only`` times the coverage alignment (``volume/coverage.py``: pairwise descriptor
costs, then every candidate shift) for a 300-slice study against a 4 x 300-slice bank, on random
32 x 32 descriptors (the cost does not depend on the content), and merges it into the results file.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.measure import write_results

os.environ.setdefault("ADAPTCLIP_MED_PROGRESS", "0")


def _flagged(result) -> set[int]:
    return set(result.comparability.outside_coverage) | set(result.comparability.out_of_distribution)


def _study_figures(result, lesion_slices: set[int]) -> dict:
    body = [s.index for s in result.slices if not (s.skip_reason or "").startswith("background")]
    flagged = _flagged(result)
    lesion = [z for z in body if z in lesion_slices]
    normal = [z for z in body if z not in lesion_slices]
    distances = [s.reference_distance for s in result.slices if s.index in lesion and s.reference_distance == s.reference_distance]
    return {"status": result.comparability.status, "body_slices": len(body), "lesion_slices": len(lesion),
            "lesion_slices_flagged": sum(z in flagged for z in lesion), "normal_slices": len(normal),
            "normal_slices_flagged": sum(z in flagged for z in normal),
            "largest_lesion_slice_distance": max(distances, default=None),
            "largest_distance": result.comparability.distribution.get("largest_distance")
            if result.comparability.distribution else None}


def _held_out(kind: str, seed: int, method, work: Path) -> dict:
    """Bank of 3 normals, the lesion study and a held-out normal of one phantom family and seed."""
    import nibabel as nib

    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.volume.pipeline import make_scorer
    from adaptclip_med.volume.bank_builder import build_reference_bank

    folder = work / f"{kind}-{seed}"
    if kind == "demo":
        from adaptclip_med.demo.dataset import make_ct_demo_dataset

        data = make_ct_demo_dataset(folder / "data", seed=seed, normals=4)
        normals, study, truth = data.normal_dirs, data.study_dir, data.labels
    else:
        from adaptclip_med.demo.phantom import make_demo_dataset

        paths = make_demo_dataset(folder / "data", seed=seed, n_references=4)
        normals, study = paths.reference_dirs, paths.study_dir
        truth = np.asarray(nib.load(str(paths.ground_truth_nifti)).dataobj)
    bank_started = time.perf_counter()
    bank = build_reference_bank("bench", normals[:3], method, demo_options().preprocessing(), folder / "banks")
    bank_seconds = time.perf_counter() - bank_started
    scorer = make_scorer(demo_options(bank), method)
    lesion_volume, _ = load_study(study)
    if truth.shape != lesion_volume.array.shape:
        raise SystemExit(f"{kind} seed {seed}: label map {truth.shape} is not in the study's geometry {lesion_volume.array.shape}")
    lesion_slices = {int(z) for z in np.flatnonzero(truth.reshape(truth.shape[0], -1).any(axis=1))}
    lesion = scorer.score(lesion_volume)
    normal = scorer.score(load_study(normals[3])[0])
    calibration = json.loads((bank / "bank.json").read_text())["comparability"]["distribution"]
    return {"bank_seconds": bank_seconds, "bound": calibration["bound"], "calibration_max": calibration["max"],
            "lesion_study": _study_figures(lesion, lesion_slices), "normal_study": _study_figures(normal, set())}


def _foreign(method, bank: Path) -> dict:
    from pydicom.data import get_testdata_file

    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.errors import AdaptClipError
    from adaptclip_med.io.loader import load_study
    from adaptclip_med.volume.pipeline import make_scorer

    rows = {}
    for name in ("CT_small.dcm", "MR_small.dcm"):
        volume, _ = load_study(Path(get_testdata_file(name)))
        row: dict = {"modality": volume.modality, "slices": int(volume.array.shape[0])}
        try:
            result = make_scorer(demo_options(bank), method).score(volume)
            row.update(status=result.comparability.status, line=result.comparability.line(),
                       study_score=None if result.score != result.score else result.score,
                       score_before_the_guard=result.comparability.score_all_slices,
                       distance=[s.reference_distance for s in result.scored()])
        except AdaptClipError as exc:
            row.update(status="not comparable (refused)", line=str(exc))
            forced = make_scorer(demo_options(bank).with_references(allow_other_modality=True), method).score(volume)
            row["with_allow_other_modality"] = {"status": forced.comparability.status, "line": forced.comparability.line(),
                                                "distance": [s.reference_distance for s in forced.scored()]}
        rows[name.removesuffix(".dcm")] = row
    return rows


def _shifted(method, bank: Path, seeds: list[int], below: list[int]) -> list[dict]:
    from adaptclip_med.demo.ct_head import PIXEL_MM, SLICE_MM
    from adaptclip_med.demo.off_coverage import shifted_head_hu
    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.io.volume import Volume
    from adaptclip_med.volume.pipeline import make_scorer

    scorer = make_scorer(demo_options(bank), method)
    rows = []
    for seed in seeds:
        for count in below:
            hu = shifted_head_hu(1500 + seed, below=count)
            volume = Volume(hu, (SLICE_MM, PIXEL_MM, PIXEL_MM), "CT", np.arange(hu.shape[0]) * SLICE_MM, "nifti", "shifted head")
            result = scorer.score(volume)
            flagged = _flagged(result)
            rows.append({"seed": seed, "trunk_slices": count, "status": result.comparability.status,
                         "line": result.comparability.line(), "shift_mm": result.comparability.coverage["shift_mm"],
                         "trunk_slices_flagged": sum(z in flagged for z in range(count)),
                         "trunk_slices_outside_coverage": sum(z in result.comparability.outside_coverage for z in range(count)),
                         "head_slices_flagged": sum(z in flagged for z in range(count, hu.shape[0]))})
    return rows


def alignment_cost(slices: int = 300, scans: int = 4, repeats: int = 3) -> dict:
    """Seconds of the coverage alignment at clinical size (no network involved)."""
    from types import SimpleNamespace

    import torch

    from adaptclip_med.volume import coverage

    size = coverage.DESCRIPTOR_SIZE ** 2
    generator = torch.Generator().manual_seed(0)
    query = torch.rand(slices, size, generator=generator)
    described = [torch.rand(slices, size, generator=generator) for _ in range(scans)]
    bank = SimpleNamespace(scans=[SimpleNamespace(relative_position=np.linspace(0, 1, slices)) for _ in range(scans)])
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        costs = coverage._pair_costs(query, described)
        extent, step = float(slices - 1), 0.5
        for shift in np.arange(-extent, extent + step, max(step, 2 * extent / coverage.MAX_SHIFTS)):
            coverage._placement_cost((np.arange(slices) + shift) / extent, bank, costs)
        timings.append(time.perf_counter() - started)
    return {"study_slices": slices, "bank_scans": scans, "bank_slices_per_scan": slices,
            "shifts_tried": int(coverage.MAX_SHIFTS), "seconds_median": float(np.median(timings)),
            "seconds_all": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/comparability.json"))
    parser.add_argument("--alignment-only", action="store_true", help="only time the coverage alignment and merge it in")
    args = parser.parse_args()
    if args.alignment_only:
        previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
        previous["alignment_cost"] = {**alignment_cost(), "load_average": list(os.getloadavg())}
        write_results(args.out, previous)
        print(json.dumps(previous["alignment_cost"], indent=1))
        return
    from adaptclip_med.demo.run import demo_options
    from adaptclip_med.volume.pipeline import model_for

    started = time.perf_counter()
    method = model_for(demo_options())
    work = Path(tempfile.mkdtemp(prefix="comparability-"))
    held_out = {kind: {seed: _held_out(kind, seed, method, work) for seed in args.seeds} for kind in ("demo", "benchmark")}
    head_bank = work / f"demo-{args.seeds[0]}" / "banks" / "bench"
    foreign = _foreign(method, head_bank)
    shifted = _shifted(method, head_bank, args.seeds, [2, 4, 6])
    summary = {}
    for kind, per_seed in held_out.items():
        studies = [s[name] for s in per_seed.values() for name in ("lesion_study", "normal_study")]
        normal_total = sum(s["normal_slices"] for s in studies)
        normal_flagged = sum(s["normal_slices_flagged"] for s in studies)
        summary[kind] = {"lesion_slices": sum(s["lesion_slices"] for s in studies),
                         "lesion_slices_flagged": sum(s["lesion_slices_flagged"] for s in studies),
                         "normal_slices": normal_total, "normal_slices_flagged": normal_flagged,
                         "normal_flagged_percent": 100.0 * normal_flagged / max(normal_total, 1),
                         "statuses": sorted({s["status"] for s in studies})}
    summary["CT_small"] = foreign["CT_small"]["status"]
    summary["MR_small"] = foreign["MR_small"]["status"]
    summary["shifted_statuses"] = sorted({r["status"] for r in shifted})
    summary["shifted_trunk_slices_flagged"] = f"{sum(r['trunk_slices_flagged'] for r in shifted)} of {sum(r['trunk_slices'] for r in shifted)}"
    summary["shifted_head_slices_flagged"] = sum(r["head_slices_flagged"] for r in shifted)
    result = {"what": "comparability guard on demo and benchmark phantoms, pydicom test files and shifted heads "
                      "(packaged demo model)", "seeds": args.seeds, "held_out": held_out, "foreign": foreign,
              "shifted": shifted, "summary": summary, "seconds": time.perf_counter() - started}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, result)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
