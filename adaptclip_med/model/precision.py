"""Numeric precision of the frozen vision tower: ``fp32``, ``bf16`` or ``auto``.

Why not ``torch.autocast``: autocast only caches its low-precision copy of a weight when the
weight requires grad, so with our frozen backbone it re-casts every ViT weight on every call, and
it runs LayerNorms and residual adds on bf16 activations.  Instead the matmul weights of the
vision blocks are converted to bf16 ONCE, and :func:`~adaptclip_med.model.backbone._block_forward`
keeps the residual streams, LayerNorms, ``ln_post`` and the projections in fp32, casting only the
inputs of the matmuls and attentions (whose kernels accumulate in fp32), so rounding does not
accumulate over the blocks.  The text tower, adapters and 1-NN search stay fp32: they are cheap
(text is computed once) and their outputs are what is scored.  Measured speed (docs/performance.md):
1.45x on the ViT-L tower on an AVX512-BF16 CPU without AMX, where torch's fused attention gains
nothing from bf16.

``fp16`` is for GPUs (same weight conversion, fp32 residuals/LayerNorms): on CUDA its matmuls
and flash attention run on the tensor cores like bf16, with 3 more mantissa bits and a narrower
range (the fp32 residual stream keeps the range problem away from the blocks' sums).  On CPUs it
is emulated and refused by ``auto``.  ``fp32`` on CUDA is exact: TF32 tensor-core rounding of
matmuls and convolutions is switched OFF (:func:`exact_fp32_on_cuda`), so CPU and GPU results
agree to fp32 rounding and the bf16/fp16 tolerances are measured against true fp32.

``auto`` picks bf16 only where the hardware has native bf16 matmuls (Intel AMX or AVX512-BF16 on
CPUs, compute capability >= 8.0 on NVIDIA GPUs).  Elsewhere bf16 is emulated and much SLOWER than
fp32 (4-6x on the ViT tower of an AVX2-only machine), so ``auto`` keeps fp32 there.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn

from adaptclip_med.errors import AdaptClipError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
#: /proc/cpuinfo flags of CPUs with native bf16 dot products (oneDNN uses them for bf16 matmuls).
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU feature flags Linux reports (empty where /proc/cpuinfo does not exist)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16(device: torch.device, flags: frozenset[str] | None = None) -> tuple[bool, str]:
    """Whether ``device`` runs bf16 matmuls natively, and why (for the log line)."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return major >= 8, f"CUDA compute capability {major}.{minor}"
    if device.type == "cpu":
        found = sorted(set(BF16_CPU_FLAGS) & (cpu_flags() if flags is None else flags))
        if found:
            return True, f"CPU has {', '.join(found)}"
        return False, f"CPU has no {' or '.join(BF16_CPU_FLAGS)} (torch capability {torch.backends.cpu.get_cpu_capability()})"
    return False, f"device type {device.type}"


def resolve_precision(mode: str, device: torch.device, flags: frozenset[str] | None = None) -> tuple[str, str]:
    """(chosen precision, reason): ``auto`` becomes bf16 only on hardware with native bf16."""
    if mode not in PRECISIONS:
        raise AdaptClipError(f"precision '{mode}' is not one of {', '.join(PRECISIONS)}")
    native, reason = native_bf16(device, flags)
    if mode == "auto":
        return ("bf16" if native else "fp32"), f"auto: {reason}"
    if mode == "bf16" and not native:
        log.warning("bf16 requested but %s: bf16 matmuls are emulated there and slower than fp32", reason)
    if mode == "fp16" and device.type != "cuda":
        log.warning("fp16 requested on %s: fp16 matmuls are meant for GPUs and are slow (emulated) elsewhere", device.type)
    return mode, "requested"


def exact_fp32_on_cuda() -> None:
    """Turn TF32 off for CUDA matmuls and cuDNN convolutions (the patch embedding): ``fp32`` means
    fp32.  Process-wide, like the flags themselves; called when an fp32 model is placed on CUDA."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def _block_matmul_modules(backbone) -> list[nn.Module]:
    """The vision blocks' attention and MLP: the matmuls that dominate the cost."""
    return [module for block in backbone.clip.visual.transformer.resblocks for module in (block.attn, block.mlp)]


def current_precision(model) -> str:
    """The precision the vision blocks currently compute in."""
    dtype = model.backbone.clip.visual.transformer.resblocks[0].attn.in_proj_weight.dtype
    return next(name for name, value in _DTYPES.items() if value == dtype)


def apply_precision(model, mode: str = "auto") -> str:
    """Set the vision tower of a built :class:`~adaptclip_med.methods.adaptclip.network.AdaptCLIP` to
    ``mode`` (fp32, bf16 or auto), log the choice and return the precision chosen.

    Converting is one-way: bf16 weights cannot give back the fp32 ones, so asking for fp32 on a
    model already in bf16 is refused (build the model again instead)."""
    device = next(model.parameters()).device
    chosen, reason = resolve_precision(mode, device)
    current = current_precision(model)
    if chosen != current and current != "fp32":
        raise AdaptClipError(f"the backbone was already converted to {current} and cannot become {chosen}: build the model again")
    if chosen == "fp32" and device.type == "cuda":
        exact_fp32_on_cuda()
    if chosen != current:
        for module in _block_matmul_modules(model.backbone):
            module.to(_DTYPES[chosen])
    log.info("inference precision %s (%s)", chosen, reason)
    return chosen
