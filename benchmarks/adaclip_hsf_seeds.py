"""How much AdaCLIP's image score depends on the KMeans initialisation of its HSF step.

The score is computed with KMeans(random_state=111) (a fresh run of the authors' test.py), so a
study always gets the same score; this script re-scores the same images with seeds 0..19 and
reports the spread.  Tiny random model (the 5-block test architecture at 224 px, random prompts);
results: benchmarks/results/adaclip_hsf_seeds.json.

    python -m benchmarks.adaclip_hsf_seeds [--images 4]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.workloads import phantom_slices
from benchmarks.measure import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args()
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.methods.registry import get_method
    from adaptclip_med.model.backbone_source import BackboneSpec

    method = get_method("adaclip").load(MethodSpec(method="adaclip", backbone=BackboneSpec("adaclip-tiny-vit", "random:0", offline=True),
                                                   image_size=224, class_name="brain"))
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for tensor in method.network.parts.state_dict().values():
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.2)
    slices, _ = phantom_slices(max(8, args.images), seed=2, lesions=0)
    x = method.slice_input(slices[:args.images])
    names = [method.class_name] * args.images
    scores = np.array([[float(s) for s in method.network(x, names, aggregation=True, seed=seed).image_probs[:, 1]]
                       for seed in range(20)])  # (seeds, images)
    default = [float(s) for s in method.network(x, names, aggregation=True).image_probs[:, 1]]
    result = {"model": "adaclip-tiny-vit (random) at 224 px, random trainable parts", "seeds": list(range(20)),
              "default_seed_111": default, "std_per_image": scores.std(axis=0).round(6).tolist(),
              "max_minus_min_per_image": (scores.max(axis=0) - scores.min(axis=0)).round(6).tolist()}
    path = Path(__file__).resolve().parent / "results" / "adaclip_hsf_seeds.json"
    write_results(path, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
