"""A trainable method is one class plus a registration: a toy method defined in THIS file (a 1x1
convolution on grey pixels, its own recipe, loss, weights file and weights catalog) trains with
``adaptclip-med train`` (resume included) and shows up in ``weights status`` / ``fetch`` / ``import``
with no change anywhere in the package (docs/adding-a-method.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from adaptclip_med.methods.base import AnomalyMethod, MethodSpec, SlicePrediction

from adaptclip_med.methods.registry import register_method
from adaptclip_med.methods.catalog import WeightsCatalog
from adaptclip_med.methods.registry import unregister_method
from adaptclip_med.model.weights_store import WeightsStatus
from adaptclip_med.utils.home import home

TOY = "toy-trainable"
SIZE = 24
runner = CliRunner()


class ToyWeights(WeightsCatalog):
    """Trained toy weights live in ``<project data folder>/toy``; a "release" is a torch-saved dict."""

    @staticmethod
    def folder() -> Path:
        return home() / "toy"

    def status(self, cache_dir: str | None) -> list[WeightsStatus]:
        found = sorted(self.folder().glob("*.safetensors")) if self.folder().is_dir() else []
        return [WeightsStatus("toy", f"toy {p.stem}", p) for p in found] or [WeightsStatus("toy", "toy trained head", None)]

    def missing_hint(self, rows: list[WeightsStatus]) -> str | None:
        return f"toy weights: train them ('adaptclip-med train DATASET --method {TOY}') or import a toy release."

    def fetch(self, method: str, backbone: str, tag: str, release: str | None, cache_dir: str | None, echo) -> None:
        echo("toy weights are trained here, never downloaded")

    def import_release(self, method: str, source: Path, out: Path | None, backbone: Any) -> str:
        state = torch.load(source, map_location="cpu", weights_only=True)
        target = out or self.folder() / f"{source.stem}.safetensors"
        target.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(target), metadata={"provenance": "{}"})
        return f"imported -> {target}"


class ToyTrainable(AnomalyMethod):
    """sigmoid(a * grey + b) per pixel; a and b are learned."""

    name = TOY
    summary = "toy: a learned 1x1 convolution on grey pixels"
    references = "unused"
    trainable = True
    weights_catalog = ToyWeights()
    training_recipe = {"optimizer": "adam", "lr": 0.05, "betas": (0.9, 0.999), "epochs": 2, "batch_size": 2, "seed": 7}

    def __init__(self, size: int, weights: str | None) -> None:
        self.image_size = size
        self.device = torch.device("cpu")
        self.head = torch.nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.head.weight.fill_(0.5)
            self.head.bias.fill_(-0.5)
        if weights:
            self.head.load_state_dict(load_file(weights))
        self.weights = weights
        self.head.eval()

    @classmethod
    def load(cls, spec: MethodSpec) -> "ToyTrainable":
        return cls(spec.image_size or SIZE, spec.weights)

    def identity(self) -> dict[str, Any]:
        return {"method": self.name, "backbone": None, "weights": self.weights, "weights_sha256": None,
                "image_size": self.image_size, "preprocessing": "grey, bilinear resize", "class_name": None}

    def image_input(self, images: Sequence[Any]) -> torch.Tensor:
        arrays = [np.asarray(img.convert("L"), dtype=np.float32) / 255.0 for img in images]
        x = torch.as_tensor(np.stack(arrays)).unsqueeze(1)
        return F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def predict_encoded(self, encoded: torch.Tensor, memory: Any = None) -> SlicePrediction:
        anomaly_map = torch.sigmoid(self.head(encoded))[:, 0]
        return SlicePrediction(anomaly_map=anomaly_map, score=anomaly_map.flatten(1).amax(dim=1))

    def trainable_module(self) -> torch.nn.Module:
        return self.head

    def training_loss(self, images, masks, labels, class_names, references=None) -> dict[str, torch.Tensor]:
        logits = self.head(images)[:, 0]
        return {"total": F.binary_cross_entropy_with_logits(logits, masks)}

    def save_weights(self, path: Any, provenance: dict[str, Any] | None = None) -> Path:
        path = Path(path)
        save_file({k: v.detach().contiguous() for k, v in self.head.state_dict().items()}, str(path),
                  metadata={"provenance": json.dumps(provenance or {})})
        return path


@pytest.fixture(autouse=True, scope="module")
def toy_registered():
    register_method(ToyTrainable)
    yield
    unregister_method(TOY)


@pytest.fixture(autouse=True)
def quiet_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTCLIP_MED_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ADAPTCLIP_MED_PROGRESS", "0")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """MVTec layout: bright squares (annotated) on dark noise, and plain normals."""
    root = tmp_path_factory.mktemp("toy-train") / "set"
    rng = np.random.default_rng(0)

    def save(path: Path, array: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array.astype(np.uint8)).save(path)

    for i in range(3):
        save(root / "cls" / "train" / "good" / f"{i:03d}.png", rng.uniform(20, 60, (SIZE, SIZE)))
        save(root / "cls" / "test" / "good" / f"{i:03d}.png", rng.uniform(20, 60, (SIZE, SIZE)))
    for i in range(5):
        image, mask = rng.uniform(20, 60, (SIZE, SIZE)), np.zeros((SIZE, SIZE))
        image[4 + i:12 + i, 6:14], mask[4 + i:12 + i, 6:14] = 230, 255
        save(root / "cls" / "test" / "bright" / f"{i:03d}.png", image)
        save(root / "cls" / "ground_truth" / "bright" / f"{i:03d}_mask.png", mask)
    return root


def _cli(args: list[str]):
    from adaptclip_med.cli.main import app

    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def _head(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_train_uses_the_toy_recipe_loss_and_weights_file(dataset, tmp_path):
    result = _cli(["train", str(dataset), "--method", TOY, "--out", str(tmp_path / "run"), "--image-size", str(SIZE)])
    assert "epoch 1: loss" in result.output and "epoch 2: loss" in result.output  # the recipe's 2 epochs
    last = tmp_path / "run" / "epoch_2.safetensors"
    assert (tmp_path / "run" / "epoch_2.optim.pt").is_file()
    with safe_open(str(last), framework="pt") as handle:
        provenance = json.loads(handle.metadata()["provenance"])
    assert provenance["method"] == TOY and provenance["seed"] == 7 and provenance["training"]["lr"] == 0.05
    assert provenance["training"]["optimizer"] == "adam" and [h["epoch"] for h in provenance["history"]] == [1, 2]
    first, second = provenance["history"][0]["losses"]["total"], provenance["history"][1]["losses"]["total"]
    assert second < first  # the toy head learns to light up the bright squares
    trained = _head(last)
    assert not torch.equal(trained["weight"], torch.full_like(trained["weight"], 0.5))
    # the trained file loads back through the contract as the method's weights
    loaded = ToyTrainable.load(MethodSpec(method=TOY, weights=str(last), image_size=SIZE))
    assert torch.equal(loaded.head.weight, trained["weight"])


def test_resume_through_the_shared_loop_is_exact(dataset, tmp_path):
    _cli(["train", str(dataset), "--method", TOY, "--out", str(tmp_path / "straight"), "--epochs", "3", "--image-size", str(SIZE)])
    _cli(["train", str(dataset), "--method", TOY, "--out", str(tmp_path / "split"), "--epochs", "1", "--image-size", str(SIZE)])
    resumed = _cli(["train", str(dataset), "--method", TOY, "--out", str(tmp_path / "split"), "--epochs", "3",
                    "--image-size", str(SIZE), "--resume", str(tmp_path / "split" / "epoch_1.safetensors")])
    assert "epoch 1:" not in resumed.output and "epoch 3: loss" in resumed.output
    straight, split = _head(tmp_path / "straight" / "epoch_3.safetensors"), _head(tmp_path / "split" / "epoch_3.safetensors")
    assert all(torch.equal(straight[k], split[k]) for k in straight)


def test_weights_status_fetch_and_import_ask_the_toy_catalog(tmp_path):
    status = _cli(["weights", "status", "--cache-dir", str(tmp_path / "cache")])
    line = next(l for l in status.output.splitlines() if "toy trained head" in l)
    assert line.startswith("toy") and "MISSING" in line and f"--method {TOY}" in status.output
    assert "never downloaded" in _cli(["weights", "fetch", "--method", TOY]).output
    release = tmp_path / "toy_release.pt"
    torch.save({"weight": torch.full((1, 1, 1, 1), 2.0), "bias": torch.zeros(1)}, release)
    assert "imported ->" in _cli(["weights", "import", str(release), "--method", TOY]).output
    status = _cli(["weights", "status", "--cache-dir", str(tmp_path / "cache")])
    line = next(l for l in status.output.splitlines() if "toy toy_release" in l)
    assert "present" in line


def test_a_training_free_method_still_refuses_to_train(dataset, tmp_path):
    from adaptclip_med.cli.main import app

    result = runner.invoke(app, ["train", str(dataset), "--method", "winclip", "--out", str(tmp_path / "w")])
    assert result.exit_code != 0 and "training-free" in result.output
