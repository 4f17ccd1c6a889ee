"""The demonstration model by one name: ``--adapters demo``.

``demo`` resolves to the adapter checkpoint shipped in the package (trained with the project's
own trainer on the AUXILIARY synthetic abdomen slices of :mod:`adaptclip_med.demo.body`, see
``scripts/train_demo_model.py`` and ``docs/demo-model.md``) on the formula-weighted tiny
backbone of :mod:`adaptclip_med.model.demo_backbone`, at 256 px, read through the brain window.
Every surface (``demo``, ``dashboard --demo``, the bundle demo config, ``references build`` /
``score`` / ``batch`` with ``--adapters demo``) gets the same model from here.
SYNTHETIC TRAINING DATA, NO DIAGNOSTIC VALUE.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from adaptclip_med.model.demo_backbone import DEMO_ARCHITECTURE, DEMO_WEIGHTS

if TYPE_CHECKING:
    from adaptclip_med.methods.base import MethodSpec

#: The name that selects the demo model on the command line (``--adapters demo``).
DEMO_MODEL = "demo"
DEMO_IMAGE_SIZE = 256
#: The window the demo model was trained with (level 40, width 80 HU).
DEMO_WINDOW = "brain"
DEMO_CHECKPOINT = Path(__file__).parent / "weights" / "demo_adapters.safetensors"
DEMO_MODEL_LABEL = ("demo model: formula-weighted tiny ViT + adapters trained on SYNTHETIC abdomen phantoms - "
                    "no diagnostic value")


def is_demo_model(weights: str | None) -> bool:
    return weights == DEMO_MODEL


def demo_checkpoint() -> Path:
    """The packaged checkpoint; a one-line error when an installation lacks it."""
    from adaptclip_med.errors import MissingWeightsError

    if not DEMO_CHECKPOINT.is_file():
        raise MissingWeightsError("the demo model's checkpoint is missing from this installation: reinstall adaptclip-med "
                                  "or rebuild it with 'python scripts/train_demo_model.py'")
    return DEMO_CHECKPOINT


def resolve_demo_spec(spec: "MethodSpec") -> "MethodSpec":
    """``--adapters demo`` -> the packaged checkpoint, the demo backbone unless another was named,
    and the demo image size unless another was given."""
    from adaptclip_med.model.backbone_source import BackboneSpec

    if not is_demo_model(spec.weights):
        return spec
    given = spec.backbone or BackboneSpec("", None)
    backbone = BackboneSpec(given.architecture or DEMO_ARCHITECTURE,
                            DEMO_WEIGHTS if given.weights is None else given.weights,
                            given.activation, given.cache_dir, given.offline)
    return replace(spec, backbone=backbone, weights=str(demo_checkpoint()), image_size=spec.image_size or DEMO_IMAGE_SIZE)
