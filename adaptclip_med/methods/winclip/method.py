"""WinCLIP (Jeong et al., CVPR 2023) behind the method contract, computed as anomalib 2.7.0 does
(``/work/shared/spec/winclip.md``): training-free, zero-shot from a prompt ensemble, few-shot from
a memory of normal images.

The numbers live in ``model.py`` (forwards, scoring), ``windows.py`` (enumeration, harmonic
aggregation) and ``prompts.py`` (text ensemble); this class loads the backbone, preprocesses
exactly like anomalib's default pipeline and maps the contract's memory rows onto the few-shot
memory.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from adaptclip_med.errors import AdaptClipError
from adaptclip_med.methods.base import AnomalyMethod, MethodSpec, SlicePrediction
from adaptclip_med.methods.registry import register_method
from adaptclip_med.methods.winclip import model as wc
from adaptclip_med.methods.winclip.prompts import ensemble_text_embeddings

PREPROCESSING = ("uint8 RGB /255, bicubic antialiased resize to SxS on the float tensor (skipped when already SxS), "
                 "no clamp, CLIP mean/std")


def _row_name(scale: int) -> str:
    return f"windows{scale}"


@register_method
class WinCLIPMethod(AnomalyMethod):
    """WinCLIP on an open_clip ViT.

    Default class name ``"medical scan"``: the word goes into every prompt ("a photo of a
    flawless medical scan."), so it should name what the pictures are; it is modality-neutral
    (CT, MR and radiograph slices alike) where an organ word such as "brain" is wrong for a chest
    study, and unlike anomalib's fallback "object" it tells CLIP the domain.  Pass
    ``--class-name`` (e.g. "chest x-ray", "brain MRI") for a specific study.
    """

    name = "winclip"
    summary = "WinCLIP (Jeong et al., CVPR 2023): window-level CLIP prompt ensemble, zero-shot or few-shot with normal references; training-free."
    references = "optional"
    uses_class_name = True
    default_class_name = "medical scan"
    trainable = False
    default_backbone = ("ViT-B-16-plus-240", "laion400m_e31")
    precisions = ("fp32",)

    def __init__(self, backbone, image_size: int, class_name: str, device: str | torch.device = "cpu") -> None:
        from adaptclip_med.model.backbone import ClipBackbone

        self.backbone: ClipBackbone = backbone
        self.device = torch.device(device)
        self.backbone.to(self.device)
        self.image_size = int(image_size)
        self.class_name = class_name
        visual = backbone.clip.visual
        self.patch_size = backbone.patch_size
        if self.image_size % self.patch_size:
            raise AdaptClipError(f"WinCLIP image size {self.image_size} is not a multiple of the backbone's patch size {self.patch_size}: choose another --image-size")
        self.grid = self.image_size // self.patch_size
        if self.grid < max(wc.SCALES):
            raise AdaptClipError(f"WinCLIP needs a patch grid of at least {max(wc.SCALES)}x{max(wc.SCALES)}; image size {self.image_size} gives {self.grid}x{self.grid}")
        with torch.no_grad():
            self._positions = wc.resized_position_table(visual.positional_embedding.detach(), self.grid).to(self.device)
        self._fingerprint = backbone.fingerprint()
        self._text_cache: dict[tuple[str, str], torch.Tensor] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, spec: MethodSpec) -> "WinCLIPMethod":
        """Backbone from the spec (or ViT-B-16-plus-240 / laion400m_e31).  The image size is the
        backbone's native one unless ``spec.image_size`` asks otherwise (the position table is
        then resized bicubically; anomalib itself never does this)."""
        from adaptclip_med.methods.backbones import backbone_spec_or_default
        from adaptclip_med.model.build import build_backbone

        if spec.weights is not None:
            raise AdaptClipError("WinCLIP is training-free: --adapters does not apply")
        if spec.precision not in cls.precisions:
            raise AdaptClipError(f"WinCLIP runs in fp32 only: precision '{spec.precision}' does not apply")
        from adaptclip_med.runtime.choice import require_torch_runtime

        require_torch_runtime(cls.name, spec.runtime)
        backbone = build_backbone(backbone_spec_or_default(cls, spec))
        native = backbone.clip.visual.image_size
        native = int(native[0] if isinstance(native, (tuple, list)) else native)
        return cls(backbone, spec.image_size or native, spec.class_name or cls.default_class_name, spec.device)

    # ------------------------------------------------------------------ identity
    def identity(self) -> dict[str, Any]:
        return {"method": self.name, "backbone": self.backbone.identity.to_json(), "weights": None,
                "weights_sha256": None, "image_size": self.image_size, "preprocessing": PREPROCESSING,
                "class_name": self.class_name, "scales": list(wc.SCALES), "temperature": wc.TEMPERATURE}

    # ------------------------------------------------------------------ preprocessing
    def _resize_normalise(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float in [0, 1] -> model input: torch bicubic antialiased resize (what
        torchvision v2 Resize does on float tensors), no clamp, CLIP normalisation."""
        from adaptclip_med.preprocess import CLIP_MEAN, CLIP_STD

        size = (self.image_size, self.image_size)
        if tuple(batch.shape[-2:]) != size:
            batch = F.interpolate(batch, size=size, mode="bicubic", antialias=True, align_corners=False)
        mean = torch.tensor(CLIP_MEAN, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
        return (batch - mean) / std

    def image_input(self, images: Sequence[Any]) -> torch.Tensor:
        """RGB PIL images -> (B, 3, S, S), as anomalib's default pre-processor does (spec §2)."""
        inputs = []
        for image in images:
            array = np.asarray(image.convert("RGB"), dtype=np.uint8)
            tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).to(torch.float32) * (1.0 / 255.0)
            inputs.append(self._resize_normalise(tensor[None])[0])
        return torch.stack(inputs).to(self.device)

    def slice_input(self, slices01: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, H, W) windowed slices in [0, 1] -> (B, 3, S, S): the same resize as image files
        (no clamp, unlike the shared default), grey replicated."""
        tensor = torch.as_tensor(np.asarray(slices01, dtype=np.float32) if isinstance(slices01, np.ndarray) else slices01).float()
        batch = tensor[:, None].expand(-1, 3, -1, -1).contiguous()
        return self._resize_normalise(batch).to(self.device)

    # ------------------------------------------------------------------ text
    def text_embeddings(self, class_name: str | None = None) -> torch.Tensor:
        """(2, D) [normal, anomalous] ensemble embeddings, cached per (backbone, class name)."""
        name = class_name or self.class_name or self.default_class_name
        key = (self._fingerprint, name)
        if key not in self._text_cache:
            self._text_cache[key] = ensemble_text_embeddings(self.backbone, name)
        return self._text_cache[key]

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> wc.WinClipEncoded:
        images = images.to(self.device, torch.float32)
        if tuple(images.shape[-2:]) != (self.image_size, self.image_size):
            raise AdaptClipError(f"WinCLIP input is {tuple(images.shape[-2:])}, expected {self.image_size}x{self.image_size}: use image_input/slice_input")
        return wc.encode_images(self.backbone.clip.visual, images, self._positions, self.patch_size)

    def global_embedding(self, encoded: wc.WinClipEncoded) -> torch.Tensor:
        return encoded.image_embedding

    def memory_rows(self, encoded: wc.WinClipEncoded) -> dict[str, torch.Tensor]:
        rows = {"patches": encoded.patch_embeddings}
        rows.update({_row_name(s): w for s, w in encoded.window_embeddings.items()})
        return rows

    def memory_from_rows(self, rows: Sequence[dict[str, torch.Tensor]]) -> wc.WinClipMemory | None:
        """All positions of all images in ``rows`` pooled into one memory (k = total images)."""
        rows = [r for r in rows if r]
        if not rows:
            return None

        def pooled(key: str) -> torch.Tensor:
            parts = [r[key].to(self.device, torch.float32) for r in rows]
            return torch.cat(parts, dim=0).reshape(-1, parts[0].shape[-1])

        shots = sum(int(r["patches"].shape[0]) for r in rows)
        return wc.WinClipMemory(pooled("patches"), {s: pooled(_row_name(s)) for s in wc.SCALES}, shots)

    @torch.no_grad()
    def predict_encoded(self, encoded: wc.WinClipEncoded, memory: Any = None) -> SlicePrediction:
        """k = 0 (memory None or empty): zero-shot map and s_img.  k >= 1: (zero-shot + few-shot)/2
        and (s_img + max of the few-shot grid map)/2 (spec §7)."""
        image_score, zs_grid = wc.zero_shot(encoded, self.text_embeddings().to(self.device))
        memories = memory if isinstance(memory, list) else [memory] * image_score.shape[0]
        if len(memories) != image_score.shape[0]:
            raise ValueError(f"{len(memories)} memories for {image_score.shape[0]} queries")
        size = encoded.input_size
        extra_maps = {"zero_shot": wc.upsample(zs_grid, size)}
        if all(m is None or m.shots == 0 for m in memories):
            return SlicePrediction(anomaly_map=extra_maps["zero_shot"], score=image_score, extra_maps=extra_maps,
                                   extra_scores={"image_zero_shot": image_score})
        fs_grid = torch.zeros_like(zs_grid)
        grid_map = zs_grid.clone()
        score = image_score.clone()
        for i, mem in enumerate(memories):
            if mem is None or mem.shots == 0:
                continue
            one = _select(encoded, i)
            fs = wc.few_shot(one, mem.to(self.device))[0]
            fs_grid[i] = fs
            grid_map[i] = (zs_grid[i] + fs) / 2
            score[i] = (image_score[i] + fs.max()) / 2
        extra_maps["few_shot"] = wc.upsample(fs_grid, size)
        return SlicePrediction(anomaly_map=wc.upsample(grid_map, size), score=score, extra_maps=extra_maps,
                               extra_scores={"image_zero_shot": image_score})

    def release_memory(self) -> None:
        self._text_cache.clear()


def _select(encoded: wc.WinClipEncoded, index: int) -> wc.WinClipEncoded:
    """The encoded features of query ``index`` alone (batch of one)."""
    sl = slice(index, index + 1)
    return wc.WinClipEncoded(encoded.image_embedding[sl], encoded.patch_embeddings[sl],
                             {s: w[sl] for s, w in encoded.window_embeddings.items()}, encoded.grid, encoded.input_size)
