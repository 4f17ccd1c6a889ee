"""Parity of our WinCLIP (``--method winclip``) with anomalib 2.7.0's ``WinClipModel``.

Both sides use identical random weights for open_clip ``ViT-B-16-plus-240`` and the same 518x518
PNG files, pre-processed each in its own way (anomalib: ``read_image`` + ``WinClip``'s default
pre-processor; ours: ``image_input`` on PIL RGB images), and are compared for k = 0, 1, 2 normal
references on anomaly_map and score.

anomalib pins open_clip <= 2.24 for WinCLIP (spec quirk 1), which conflicts with this project's
open_clip 3.x, so anomalib runs in its own virtual environment as a subprocess of this script::

    python -m venv /tmp/anomalib-venv
    /tmp/anomalib-venv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/anomalib-venv/bin/pip install anomalib==2.7.0 open_clip_torch==2.24.0
    python benchmarks/parity_winclip.py --anomalib-python /tmp/anomalib-venv/bin/python

This file only *imports* anomalib; the only intervention is that anomalib's backbone factory is
called with ``pretrained=None`` (no download) and the saved random state dict is then loaded into
``WinClipModel.clip``.  Results go to ``benchmarks/results/parity_winclip.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from benchmarks.measure import write_results

ARCH = "ViT-B-16-plus-240"
TOLERANCE = 1e-3
SHOTS = (0, 1, 2)
IMAGE_SIZE = 518
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- inputs (both sides read the same files)
def make_images(folder: Path, seed: int) -> dict[str, list[str]]:
    """Two queries (one with a bright lesion-like blob) and two normal references: smooth
    grey-ish fields with slightly different channels, 518x518 RGB PNG."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = {"queries": ["query_0.png", "query_1.png"], "references": ["reference_0.png", "reference_1.png"]}
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    for i, name in enumerate(names["queries"] + names["references"]):
        coarse = Image.fromarray((rng.random((9, 9)) * 255).astype(np.uint8)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC)
        base = np.asarray(coarse, dtype=np.float32) * 0.7 + rng.normal(0, 12, (IMAGE_SIZE, IMAGE_SIZE))
        if i == 1:
            base += 120 * np.exp(-((yy - 300) ** 2 + (xx - 180) ** 2) / (2 * 30.0 ** 2))
        rgb = np.stack([base, base * 0.95 + 8, base * 0.9 + 15], axis=-1)
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").save(folder / name)
    return names


# ---------------------------------------------------------------- anomalib side (runs in the anomalib venv)
def run_anomalib(workdir: Path, seed: int, class_name: str) -> None:
    try:
        import anomalib
        import open_clip
        from anomalib.data.utils import read_image
        from anomalib.models.image.winclip import WinClip
        from anomalib.models.image.winclip.torch_model import WinClipModel
    except ImportError as exc:
        print(f"ANOMALIB NOT INSTALLED in {sys.executable}: {exc}", file=sys.stderr)
        sys.exit(3)
    import torch
    import torchvision

    torch.manual_seed(seed)
    clip = open_clip.create_model(ARCH, pretrained=None)
    state = clip.state_dict()
    torch.save(state, workdir / "state.pt")

    factory = open_clip.create_model_and_transforms

    def without_download(name, pretrained=None, **kwargs):  # anomalib asks for laion400m_e31
        return factory(name, pretrained=None, **kwargs)

    open_clip.create_model_and_transforms = without_download
    try:
        model = WinClipModel()
    finally:
        open_clip.create_model_and_transforms = factory
    model.clip.load_state_dict(state)
    model.eval()

    transform = WinClip.configure_pre_processor().transform
    names = json.loads((workdir / "images.json").read_text())

    def load(files):
        return torch.stack([transform(read_image(workdir / "images" / f, as_tensor=True)).as_subclass(torch.Tensor) for f in files])

    queries, references = load(names["queries"]), load(names["references"])
    outputs = {"queries_input": queries.numpy()}
    with torch.no_grad():
        model.setup(class_name)
        outputs["text"] = model.text_embeddings.numpy()
        for k in SHOTS:
            if k:
                model.setup(reference_images=references[:k])
            else:
                model.k_shot = 0
            result = model(queries)
            outputs[f"map_k{k}"] = result.anomaly_map.numpy()
            outputs[f"score_k{k}"] = result.pred_score.numpy()
    np.savez(workdir / "anomalib.npz", **outputs)
    versions = {"anomalib": anomalib.__version__, "open_clip": metadata.version("open_clip_torch"), "torch": torch.__version__,
                "torchvision": torchvision.__version__, "python": sys.version.split()[0]}
    (workdir / "anomalib_versions.json").write_text(json.dumps(versions))


# ---------------------------------------------------------------- our side and comparison
def run_ours(workdir: Path, class_name: str) -> dict:
    import open_clip
    import torch
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.methods.registry import load_method
    from adaptclip_med.model.backbone_source import BackboneSpec

    method = load_method(MethodSpec(method="winclip", backbone=BackboneSpec(ARCH, str(workdir / "state.pt")), class_name=class_name))
    names = json.loads((workdir / "images.json").read_text())

    def load(files):
        return method.image_input([Image.open(workdir / "images" / f).convert("RGB") for f in files])

    queries, references = load(names["queries"]), load(names["references"])
    theirs = np.load(workdir / "anomalib.npz")
    report: dict = {"class_name": class_name, "tolerance": TOLERANCE, "image_size_on_disk": IMAGE_SIZE,
                    "model_input": method.image_size, "ours": {"open_clip": metadata.version("open_clip_torch"), "torch": torch.__version__},
                    "anomalib_side": json.loads((workdir / "anomalib_versions.json").read_text()),
                    "input_max_abs_diff": float(np.abs(queries.cpu().numpy() - theirs["queries_input"]).max()),
                    "text_max_abs_diff": float(np.abs(method.text_embeddings().cpu().numpy() - theirs["text"]).max()),
                    "shots": {}}
    with torch.no_grad():
        encoded = method.encode(queries)
        for k in SHOTS:
            memory = method.encode_normals(references[:k]) if k else None
            pred = method.predict_encoded(encoded, memory)
            ours_map, ours_score = pred.anomaly_map.cpu().numpy(), pred.score.cpu().numpy()
            ref_map, ref_score = theirs[f"map_k{k}"], theirs[f"score_k{k}"]
            report["shots"][str(k)] = {
                "map_max_abs_diff": float(np.abs(ours_map - ref_map).max()),
                "score_max_abs_diff": float(np.abs(ours_score - ref_score).max()),
                "anomalib_map_range": [float(ref_map.min()), float(ref_map.max())],
                "anomalib_scores": [float(s) for s in ref_score],
                "our_scores": [float(s) for s in ours_score],
            }
    worst = max(max(v["map_max_abs_diff"], v["score_max_abs_diff"]) for v in report["shots"].values())
    report["max_abs_diff"] = worst
    report["pass"] = bool(worst <= TOLERANCE)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anomalib-python", default="/tmp/anomalib-venv/bin/python",
                        help="python of a virtualenv with anomalib 2.7.0 and open_clip 2.24")
    parser.add_argument("--class-name", default="chest x-ray")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "parity_winclip.json")
    parser.add_argument("--side", choices=("all", "anomalib"), default="all", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="winclip-parity-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.side == "anomalib":
        run_anomalib(workdir, args.seed, args.class_name)
        return 0

    names = make_images(workdir / "images", args.seed)
    (workdir / "images.json").write_text(json.dumps(names))
    if not Path(args.anomalib_python).exists():
        print(f"ANOMALIB NOT INSTALLED: no python at {args.anomalib_python}; create the venv shown in this script's docstring", file=sys.stderr)
        return 3
    done = subprocess.run([args.anomalib_python, __file__, "--side", "anomalib", "--workdir", str(workdir),
                           "--seed", str(args.seed), "--class-name", args.class_name])
    if done.returncode:
        print("anomalib side failed (see above): no parity figures written", file=sys.stderr)
        return done.returncode
    report = run_ours(workdir, args.class_name)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_results(args.out, report, indent=2)
    print(json.dumps(report, indent=2))
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
