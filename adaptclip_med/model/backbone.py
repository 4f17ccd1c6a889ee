"""Frozen open_clip ViT CLIP with AdaptCLIP's two-stream ("value-value") vision forward.

Spec §1: from ``vv_start_layer`` on, every block also updates a *value stream*
``v = v + Proj(Attn_vv(LN1(x)))`` where q = k = v = the block's value projection of the ORIGINAL
stream's LN1 output and the MLP is skipped.  Tapped layers return the value stream through
``ln_post`` and the projection; the global feature is the original stream's CLS times the
projection WITHOUT ``ln_post`` (a release quirk the checkpoints depend on).

The backbone never trains: parameters are frozen, the module stays in eval mode, and all calls
run without autograd graphs for the backbone itself (gradients still flow *through* the text
tower into the textual adapter's learned tokens, which is why text calls do not use no_grad).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from adaptclip_med.errors import AdaptClipError, CheckpointMismatchError
from adaptclip_med.model import prompts
from adaptclip_med.model.backbone_source import BackboneIdentity

#: First two-stream block (1-based) used by the release for its two backbones (spec §1.1).
_RELEASE_VV_START = {24: 6, 12: 4}
_TEXT_CHUNK = 64


def default_tap_layers(depth: int) -> tuple[int, ...]:
    """Four evenly spaced taps ending at the last block: 6/12/18/24 for 24 blocks (spec default)."""
    taps = sorted({max(1, round(depth * i / 4)) for i in (1, 2, 3, 4)})
    return tuple(taps)


def default_vv_start_layer(depth: int) -> int:
    """First two-stream block: the release's choice for 24/12 blocks, else the first tap."""
    return _RELEASE_VV_START.get(depth, default_tap_layers(depth)[0])


@dataclass
class VisionFeatures:
    """Backbone image features.

    taps: one (B, N+1, D) tensor per tapped layer (value stream, ln_post, projection; CLS at 0).
    global_token: (B, D) original-stream CLS times the projection (no ln_post).
    grid: (G_h, G_w) patch grid of this forward.
    """

    taps: list[torch.Tensor]
    global_token: torch.Tensor
    grid: tuple[int, int]


class ClipBackbone(nn.Module):
    """A frozen open_clip CLIP exposing exactly what AdaptCLIP needs.

    It only runs a CLIP it is given; where the weights come from (tag, file, random, demo) is
    decided by :func:`adaptclip_med.model.build.build_backbone`."""

    def __init__(self, clip: nn.Module, identity: BackboneIdentity, tokenizer,
                 tap_layers: tuple[int, ...] | None = None, vv_start_layer: int | None = None) -> None:
        super().__init__()
        self.clip = clip
        self.identity = identity
        self.tokenizer = tokenizer
        visual = clip.visual
        self._check_supported(visual)
        depth = len(visual.transformer.resblocks)
        self.tap_layers = tuple(tap_layers) if tap_layers else default_tap_layers(depth)
        self.vv_start_layer = vv_start_layer or default_vv_start_layer(depth)
        if not all(1 <= t <= depth for t in self.tap_layers) or not 1 <= self.vv_start_layer <= depth:
            raise AdaptClipError(f"tapped layers {self.tap_layers} / value-stream start {self.vv_start_layer} do not fit a {depth}-block backbone")
        for p in self.clip.parameters():
            p.requires_grad_(False)
        self.clip.eval()
        self._pos_cache: dict[tuple, torch.Tensor] = {}
        self._static_text: torch.Tensor | None = None
        #: an attached :class:`~adaptclip_med.runtime.base.VisionRuntime` (None: torch runs the tower)
        self.vision_runtime = None

    def _apply(self, fn, *args, **kwargs):
        """``.to(device)`` / ``.cuda()`` also move what is cached outside the parameters: the static
        text features (expensive to recompute, kept fp32) follow the text tower's device, and
        position embeddings are recomputed for the new device/dtype on next use."""
        result = super()._apply(fn, *args, **kwargs)
        self._pos_cache = {}
        if self._static_text is not None:
            self._static_text = self._static_text.to(self.clip.token_embedding.weight.device, torch.float32)
        return result

    @staticmethod
    def _check_supported(visual: nn.Module) -> None:
        if not hasattr(visual, "transformer") or getattr(visual, "attn_pool", None) is not None:
            raise AdaptClipError("AdaptCLIP needs a plain ViT vision tower (no attentional pooling)")
        block = visual.transformer.resblocks[0]
        if not isinstance(getattr(block, "attn", None), nn.MultiheadAttention):
            raise AdaptClipError("AdaptCLIP needs ViT blocks with standard multi-head attention")

    # ------------------------------------------------------------------ properties
    @property
    def embed_dim(self) -> int:
        return int(self.clip.visual.proj.shape[1])

    @property
    def text_width(self) -> int:
        return int(self.clip.token_embedding.weight.shape[1])

    @property
    def context_length(self) -> int:
        return int(self.clip.positional_embedding.shape[0])

    @property
    def patch_size(self) -> int:
        return int(self.clip.visual.conv1.kernel_size[0])

    @property
    def depth(self) -> int:
        return len(self.clip.visual.transformer.resblocks)

    def train(self, mode: bool = True) -> "ClipBackbone":
        """The backbone is frozen: it stays in eval mode whatever the enclosing model does."""
        super().train(False)
        return self

    # ------------------------------------------------------------------ vision
    def positional_embedding(self, grid: tuple[int, int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Position embedding for a patch grid: the patch part resized bilinearly (align_corners
        False), CLS kept.  Computed per grid and cached, never written back into the parameter."""
        key = (grid, dtype, device)
        cached = self._pos_cache.get(key)
        if cached is not None:
            return cached
        pos = self.clip.visual.positional_embedding
        cls_pos, patch_pos = pos[:1], pos[1:]
        native = int(round(patch_pos.shape[0] ** 0.5))
        if (native, native) != grid:
            width = patch_pos.shape[1]
            patch_pos = patch_pos.reshape(1, native, native, width).permute(0, 3, 1, 2)
            patch_pos = F.interpolate(patch_pos, size=grid, mode="bilinear", align_corners=False)
            patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], width)
        result = torch.cat([cls_pos, patch_pos], dim=0).to(device=device, dtype=dtype)
        self._pos_cache[key] = result
        return result

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor) -> VisionFeatures:
        """images: (B, 3, H, W) CLIP-normalised, H and W multiples of the patch size.

        Runs in torch, or in the inference runtime attached by :mod:`adaptclip_med.runtime`
        (``vision_runtime``) when one is: that runtime executes an exported copy of
        :meth:`encode_image_torch` and returns the same features."""
        height, width = images.shape[-2:]
        if height % self.patch_size or width % self.patch_size:
            raise CheckpointMismatchError(f"input size {height}x{width} is not a multiple of the patch size {self.patch_size}")
        runtime = self.vision_runtime
        if runtime is not None and runtime.accepts(images):
            return runtime(images)
        grid = (height // self.patch_size, width // self.patch_size)
        return self.encode_image_torch(images, self.positional_embedding(grid, torch.float32, images.device))

    def encode_image_torch(self, images: torch.Tensor, position: torch.Tensor) -> VisionFeatures:
        """The torch two-stream vision forward with a given (N+1, W) position embedding (the
        exporters pass it as a constant, so the exported graph has no resizing logic)."""
        visual = self.clip.visual
        x = visual.conv1(images.to(visual.conv1.weight.dtype))
        grid = (images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size)
        x = x.flatten(2).transpose(1, 2)
        cls_token = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls_token, x], dim=1)
        x = x + position.to(x.dtype)
        x = visual.ln_pre(x)

        taps: list[torch.Tensor] = []
        value_stream: torch.Tensor | None = None
        depth = len(visual.transformer.resblocks)
        for index, block in enumerate(visual.transformer.resblocks, start=1):
            two_stream = index >= self.vv_start_layer
            if two_stream and value_stream is None:
                value_stream = x
            # After the last block only the original stream's CLS token is read (global feature).
            x, vv_update = _block_forward(block, x, two_stream, cls_only=index == depth)
            if two_stream:
                value_stream = value_stream + vv_update
            if index in self.tap_layers:
                taps.append(value_stream if value_stream is not None else x)
        projected = [visual.ln_post(t) @ visual.proj for t in taps]
        global_token = x[:, 0] @ visual.proj
        return VisionFeatures(taps=projected, global_token=global_token, grid=grid)

    # ------------------------------------------------------------------ text
    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts)

    def token_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.clip.token_embedding(tokens.long()).float()

    def encode_text_embeddings(self, embeddings: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        """Text tower on token embeddings (n, context, W): causal mask, ln_final at the EOT
        position, projection.  Differentiable w.r.t. ``embeddings`` (the textual adapter learns them)."""
        clip = self.clip
        x = embeddings + clip.positional_embedding.to(embeddings.dtype)
        x = clip.transformer(x, attn_mask=clip.attn_mask)
        x = clip.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot_index]
        projection = clip.text_projection
        return projection(x) if isinstance(projection, nn.Linear) else x @ projection

    @torch.no_grad()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Raw (unnormalised) text features (n, D)."""
        device = self.clip.token_embedding.weight.device
        outputs = []
        for start in range(0, len(texts), _TEXT_CHUNK):
            tokens = self.tokenize(texts[start:start + _TEXT_CHUNK]).to(device)
            outputs.append(self.encode_text_embeddings(self.token_embeddings(tokens), tokens.argmax(dim=-1)))
        return torch.cat(outputs, dim=0)

    def static_text_features(self) -> torch.Tensor:
        """(2, D) raw features: mean over the 147 normal and the 84 abnormal sentences (spec §1.2).
        Computed once per backbone; checkpoints carry a copy so loading skips the text tower."""
        if self._static_text is None:
            normal = self.encode_text(prompts.normal_sentences()).mean(dim=0)
            abnormal = self.encode_text(prompts.abnormal_sentences()).mean(dim=0)
            self._static_text = torch.stack([normal, abnormal], dim=0)
        return self._static_text

    def set_static_text_features(self, features: torch.Tensor) -> None:
        expected = (2, self.embed_dim)
        if tuple(features.shape) != expected:
            raise CheckpointMismatchError(f"cached text features have shape {tuple(features.shape)}, expected {expected}")
        self._static_text = features.to(self.clip.token_embedding.weight.device, torch.float32)

    def fingerprint(self) -> str:
        """Cheap content hash of the tensors that define text features and projections; detects a
        checkpoint's cached text features being reused with different backbone weights."""
        import hashlib

        digest = hashlib.sha256()
        for tensor in (self.clip.token_embedding.weight, self.clip.text_projection if isinstance(self.clip.text_projection, torch.Tensor) else self.clip.text_projection.weight,
                       self.clip.ln_final.weight, self.clip.visual.proj, self.clip.visual.conv1.weight):
            digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]


def _block_forward(block: nn.Module, x: torch.Tensor, two_stream: bool,
                   cls_only: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One pre-LN ViT block; with ``two_stream`` also the value-value attention update.

    The in-projection is computed once: its value part feeds both the ordinary attention and the
    value-value attention (q = k = v = V), so the second stream costs one extra attention and one
    out-projection, not a second in-projection.  Both attentions use the fused
    ``scaled_dot_product_attention`` kernel (about 4x faster than an explicit softmax(QK^T)V on a
    CPU, see docs/performance.md).

    ``cls_only`` returns only the CLS token of the original stream, (B, 1, W): the last block's
    patch tokens are never read, so their out-projection and MLP (a third of that block) are skipped.

    Matmuls run in the dtype of the block's weights (bf16 after ``model/precision.py`` converted
    them); the residual streams and LayerNorms stay in the dtype of ``x`` (fp32), so bf16 rounding
    does not accumulate over the blocks.  In fp32 every ``.to`` below is a no-op.
    """
    attn: nn.MultiheadAttention = block.attn
    compute = attn.in_proj_weight.dtype
    batch, tokens, width = x.shape
    heads = attn.num_heads
    head_dim = width // heads
    y = block.ln_1(x).to(compute)
    qkv = F.linear(y, attn.in_proj_weight, attn.in_proj_bias)
    qkv = qkv.view(batch, tokens, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    residual = x[:, :1] if cls_only else x
    attended = F.scaled_dot_product_attention(q[:, :, :1] if cls_only else q, k, v)
    attended = attended.transpose(1, 2).reshape(batch, residual.shape[1], width)
    x_out = residual + block.ls_1(attn.out_proj(attended).to(x.dtype))
    x_out = x_out + block.ls_2(block.mlp(block.ln_2(x_out).to(compute)).to(x.dtype))
    if not two_stream:
        return x_out, None
    vv = F.scaled_dot_product_attention(v, v, v)
    vv = vv.transpose(1, 2).reshape(batch, tokens, width)
    return x_out, block.ls_1(attn.out_proj(vv).to(x.dtype))
