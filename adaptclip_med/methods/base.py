"""The one contract every anomaly-detection method implements.

Everything downstream (2-D predict, volume scoring and calibration, reference banks, batch, the
bundle, the dashboard, training and evaluation) speaks only this contract, so a new method is one
new folder under ``methods/`` plus one :func:`~adaptclip_med.methods.registry.register_method` call.

The shape follows segment-anything's predictor and anomalib's torch model: the expensive part
(the vision tower) runs once per image in :meth:`AnomalyMethod.encode`; the cheap parts (text
heads, nearest-neighbour search against references, fusion) run in
:meth:`AnomalyMethod.predict_encoded`, so a volume scorer can encode a batch once, read its global
embedding to choose reference slices, and then predict.

References travel in two forms:

* **memory rows** (:meth:`memory_rows`): a ``dict[str, Tensor]`` of per-image features, every tensor
  with the images on dim 0.  This is what a reference bank stores on disk, one row per slice.
* **memory** (:meth:`memory_from_rows`): the method's own object built from the rows of the k
  images a query is compared with (k reference images, or the matched slices of every bank scan).

A method without a reference branch (``references = "unused"``) returns ``{}`` rows and ``None``
memories; it still works with banks, which then serve calibration only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping, Sequence

import numpy as np
import torch

from adaptclip_med.methods.catalog import WeightsCatalog

if TYPE_CHECKING:
    from PIL import Image

    from adaptclip_med.model.backbone_source import BackboneSpec

ReferenceUse = Literal["required", "optional", "unused"]
#: Names a bank file keeps for itself; memory rows must not use them.
RESERVED_ROW_NAMES = frozenset({"global", "thumbs", "rows", "relative_position"})


@dataclass(frozen=True)
class MethodSpec:
    """What the user asked for; each method resolves the ``None`` fields to its own defaults.

    ``backbone``: None = the method's default backbone (architecture + open_clip tag).
    ``weights``: the method's trainable weights (a file); None = untrained/fresh (training, tests,
    the demo) or nothing to load (training-free methods).
    """

    method: str = "adaptclip"
    backbone: "BackboneSpec | None" = None
    weights: str | None = None
    image_size: int | None = None
    device: str = "cpu"
    precision: str = "fp32"
    class_name: str | None = None
    #: vision-tower runtime: torch, onnxruntime, openvino or auto (adaptclip_med/runtime/);
    #: None = torch, or the int8 runtime when ``precision`` is int8
    runtime: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (the backbone as a nested record), as the dashboard configuration stores it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MethodSpec":
        """The inverse of :meth:`to_dict`; names this version does not know are ignored."""
        from adaptclip_med.model.backbone_source import BackboneSpec

        values = {f.name: data[f.name] for f in fields(cls) if f.name in data and f.name != "backbone"}
        backbone = data.get("backbone")
        if isinstance(backbone, Mapping):
            backbone = BackboneSpec(**{f.name: backbone[f.name] for f in fields(BackboneSpec) if f.name in backbone})
        return cls(backbone=backbone if isinstance(backbone, BackboneSpec) else None, **values)


@dataclass
class SlicePrediction:
    """What every method returns for a batch of B images at the model input size S.

    anomaly_map: (B, S, S) float32 in [0, 1], the method's final map (smoothed where the method
    smooths); score: (B,) image scores; extra_maps / extra_scores: named per-branch outputs for
    display and debugging (e.g. AdaptCLIP's ``ta``/``va``/``pq`` maps)."""

    anomaly_map: torch.Tensor
    score: torch.Tensor
    extra_maps: dict[str, torch.Tensor] = field(default_factory=dict)
    extra_scores: dict[str, torch.Tensor] = field(default_factory=dict)


class AnomalyMethod(ABC):
    """A loaded, ready-to-run anomaly detector (eval mode, on its device).

    Class attributes say what the method needs; instances say who they are (:meth:`identity`)."""

    #: registry name (``--method NAME``)
    name: ClassVar[str]
    #: how outputs name the method (DICOM SEG algorithm name, plots)
    display_name: ClassVar[str] = ""
    #: one line for ``--help`` and docs
    summary: ClassVar[str] = ""
    #: whether normal references are required, optional (few-shot branch) or unused (zero-shot only)
    references: ClassVar[ReferenceUse] = "optional"
    #: whether the text side depends on a class name / prompt
    uses_class_name: ClassVar[bool] = False
    #: the class name used when none is given (radiology default)
    default_class_name: ClassVar[str | None] = None
    #: whether the method has trainable parts (``--adapters`` / ``train``)
    trainable: ClassVar[bool] = False
    #: (architecture, open_clip tag) used when no backbone is given
    default_backbone: ClassVar[tuple[str, str]] = ("ViT-L-14-336", "openai")
    #: precisions this method implements (``--precision``)
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    #: dtype of float memory rows stored in reference banks (halves disk and page cache)
    bank_storage_dtype: ClassVar[torch.dtype] = torch.float16
    #: the method's own weights for ``weights status`` / ``fetch`` / ``import`` (default: none, the
    #: backbone is fetched by tag); built-ins keep theirs in ``methods/NAME/catalog.py`` (torch-free)
    weights_catalog: ClassVar[WeightsCatalog] = WeightsCatalog()
    #: the authors' training recipe, defined once here (optimizer, lr, betas, eps, weight_decay,
    #: epochs, batch_size, seed, ...): the defaults of ``train`` and of the bundle's training
    training_recipe: ClassVar[dict[str, Any]] = {}

    image_size: int
    device: torch.device
    class_name: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("display_name") and getattr(cls, "name", None):
            cls.display_name = cls.name

    # ------------------------------------------------------------------ construction
    @classmethod
    @abstractmethod
    def load(cls, spec: MethodSpec) -> "AnomalyMethod":
        """Build backbone + trainable parts from ``spec`` (the real loading paths: open_clip tags and
        hub cache, local files, checksums); raise :class:`~adaptclip_med.errors.AdaptClipError`
        with one line for anything the user can fix."""

    @classmethod
    def validate(cls, spec: MethodSpec, *, weights_required: bool = True, untrained: bool = False) -> None:
        """Refuse, in one line naming the flag, a spec this method cannot load: a trainable method
        without weights (unless ``untrained``, fresh weights asked for, or ``weights_required`` is
        False), weights for a training-free method, a precision it does not implement.  Every
        surface validates before loading; a method with further limits extends this."""
        from adaptclip_med.errors import AdaptClipError

        if cls.trainable and spec.weights is None and weights_required and not untrained:
            raise AdaptClipError(
                f"method '{cls.name}' needs trained weights: pass --adapters FILE (a project .safetensors, or the authors' "
                f"released .pth; see 'adaptclip-med weights status'), or --adapters untrained for fresh ones (no diagnostic value)")
        if not cls.trainable and (spec.weights is not None or untrained):
            raise AdaptClipError(f"method '{cls.name}' is training-free: --adapters does not apply (drop it)")
        if spec.precision not in cls.precisions:
            raise AdaptClipError(f"precision '{spec.precision}' is not one of {', '.join(cls.precisions)} "
                                 f"(the precisions method '{cls.name}' supports)")

    # ------------------------------------------------------------------ identity
    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """Everything that changes this method's outputs, JSON-serialisable: at least ``method``,
        ``backbone``, ``weights``, ``weights_sha256``, ``image_size``, ``preprocessing`` and
        ``class_name``.  Reference-bank keys and every output record it."""

    def describe(self) -> str:
        """One line for command output."""
        ident = self.identity()
        backbone = ident.get("backbone") or {}
        parts = [self.name, f"{backbone.get('architecture', '?')} [{backbone.get('weights', '?')}, {backbone.get('activation', '?')}]"]
        if self.trainable:
            parts.append(f"weights {ident.get('weights') or 'untrained'}")
        if self.uses_class_name:
            parts.append(f"class '{self.class_name}'")
        return ", ".join(parts)

    # ------------------------------------------------------------------ preprocessing
    @abstractmethod
    def image_input(self, images: "Sequence[Image.Image]") -> torch.Tensor:
        """RGB PIL images -> (B, 3, S, S) model input on the method's device, exactly as the
        method's reference implementation preprocesses image files."""

    def slice_input(self, slices01: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, H, W) windowed slices in [0, 1] -> (B, 3, S, S) model input (grey replicated)."""
        from adaptclip_med.preprocess import slices_to_model_input

        return slices_to_model_input(slices01, self.image_size).to(self.device)

    def display_image(self, image: "Image.Image") -> np.ndarray:
        """The picture as the method saw it, (S, S, 3) uint8, for overlays."""
        from PIL import Image as PILImage

        size = (self.image_size, self.image_size)
        shown = image.resize(size, PILImage.BICUBIC) if image.size != size else image
        return np.asarray(shown.convert("RGB"), dtype=np.uint8)

    # ------------------------------------------------------------------ inference
    @abstractmethod
    def encode(self, images: torch.Tensor) -> Any:
        """The expensive part, once per image batch: an opaque object for :meth:`predict_encoded`."""

    def global_embedding(self, encoded: Any) -> torch.Tensor | None:
        """(B, D) image-level embedding used to retrieve similar reference slices; None if the
        method has none (retrieval matching then falls back to position)."""
        return None

    def memory_rows(self, encoded: Any) -> dict[str, torch.Tensor]:
        """Per-image reference features to store (images on dim 0); ``{}`` without a reference branch."""
        return {}

    def comparison_features(self, rows: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """(B, N, D) local features of B images, from their memory rows, for the comparability
        guard (``volume/distribution_check.py``): how far a whole slice is from its matched normal
        slices.  Default: the first float memory row with a token axis, i.e. (B, N, D).  None
        when the rows hold no such tensor (the guard then uses :meth:`global_embedding`).
        Override when another row describes the image better."""
        for tensor in rows.values():
            if tensor.is_floating_point() and tensor.dim() == 3:
                return tensor
        return None

    def memory_from_rows(self, rows: Sequence[dict[str, torch.Tensor]]) -> Any:
        """Pool the rows of the k reference images one query is compared with into a memory."""
        return None

    @abstractmethod
    def predict_encoded(self, encoded: Any, memory: Any = None) -> SlicePrediction:
        """Final outputs for an encoded batch.  ``memory``: None (zero-shot), one memory shared by
        the batch, or a list with one memory per query (e.g. matched slices).  A list is CONSUMED:
        a method may free its memories while stacking them (the volume scorer builds fresh ones
        per batch); pass a shared memory, not a list, to reuse it."""

    # ------------------------------------------------------------------ conveniences
    @torch.no_grad()
    def encode_normals(self, images: torch.Tensor) -> Any:
        """Encode k normal reference images (k, 3, S, S) once into one memory (None if unused)."""
        if self.references == "unused":
            return None
        rows = self.memory_rows(self.encode(images))
        return self.memory_from_rows([rows])

    @torch.no_grad()
    def predict(self, images: torch.Tensor, memory: Any = None) -> SlicePrediction:
        return self.predict_encoded(self.encode(images), memory)

    # ------------------------------------------------------------------ trainable parts
    def trainable_module(self) -> torch.nn.Module | None:
        """The module whose parameters training optimises (None for training-free methods)."""
        return None

    def weights_module(self) -> torch.nn.Module | None:
        """The module whose ``state_dict()`` is exactly the trainable tensors (no frozen backbone):
        what a MONAI bundle's ``models/model.pt`` holds and ``CheckpointLoader`` loads back.
        Default: :meth:`trainable_module`; override when that module also holds frozen parts."""
        return self.trainable_module()

    def record_loaded_weights(self, label: str, sha256: str) -> None:
        """Called after a caller replaced the trainable tensors in place (the bundle's
        ``CheckpointLoader`` loading ``models/model.pt`` into :meth:`weights_module`): from now on
        :meth:`identity` names those weights, so banks and study.json record what really ran."""
        base = type(self).identity

        def identity() -> dict[str, Any]:
            return {**base(self), "weights": label, "weights_sha256": sha256,
                    "weights_provenance": {"loaded_as": "state dict", "file": label}}

        self.identity = identity  # type: ignore[method-assign]

    def training_loss(self, images: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor,
                      class_names: Sequence[str], references: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The method's own training objective for one batch, as a dict of named loss terms whose
        ``"total"`` is back-propagated by the shared trainer.

        images (B, 3, S, S) model input; masks (B, S, S) float in {0, 1}; labels (B,) 0 normal /
        1 anomalous; class_names one per image; references (B*k, 3, S, S) normal images
        query-major, or None.  The trainer owns the loop, optimiser, checkpoints and resume."""
        from adaptclip_med.errors import AdaptClipError

        raise AdaptClipError(f"method '{self.name}' is training-free: there is nothing to train")

    def optimizer_settings(self) -> dict[str, Any]:
        """The authors' optimiser recipe (name, lr, betas, weight decay, epochs, batch size): the
        :attr:`training_recipe` without its seed."""
        return {k: v for k, v in self.training_recipe.items() if k != "seed"}

    @classmethod
    def train(cls, spec: MethodSpec, index: Any, out_dir: Path, request: Any, resume: Path | None = None,
              on_epoch: Any = None) -> list[Any]:
        """``adaptclip-med train``: train this method's trainable parts on ``index`` (a
        :class:`~adaptclip_med.data.samples.DatasetIndex`) with its recipe, the user's
        :class:`~adaptclip_med.training.request.TrainingRequest` over it, through the shared loop
        (:func:`adaptclip_med.training.loop.fit`); checkpoints ``epoch_N.safetensors`` in ``out_dir``.
        Returns one :class:`~adaptclip_med.training.loop.EpochResult` per epoch run.

        Default: load with fresh weights (or ``resume``'s), then the generic plan that steps through
        :meth:`training_loss`.  A method overrides this to plug its own plan into the same loop."""
        from adaptclip_med.errors import AdaptClipError
        from adaptclip_med.training.method_trainer import train_through_contract

        if not cls.trainable:
            raise AdaptClipError(f"method '{cls.name}' is training-free: there is nothing to train")
        return train_through_contract(cls, spec, index, Path(out_dir), request, resume, on_epoch)

    def save_weights(self, path: Any, provenance: dict[str, Any] | None = None) -> Any:
        """Write the trainable parts in the project format (atomically)."""
        from adaptclip_med.errors import AdaptClipError

        raise AdaptClipError(f"method '{self.name}' has no trainable weights to save")

    def release_memory(self) -> None:
        """Drop caches (text features per class name etc.); called when a model is evicted."""
