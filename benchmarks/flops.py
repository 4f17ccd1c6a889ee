"""The machine's limit: its fp32 GEMM rate, and the FLOPs of one slice, so that every per-slice
time can be quoted as a fraction of the FLOP bound (time / (FLOPs / GEMM rate)).

* GEMM rate: median over a few fp32 ``torch.matmul`` calls of an n x n x n product (n = 4096:
  large enough that torch's BLAS runs at its peak on a CPU), 2 n^3 / t.
* FLOPs: counted while the real code runs, with ``torch.utils.flop_counter.FlopCounterMode``
  (matmuls, linears, convolutions).  Its table has no entry for the fused CPU attention kernel
  (``_scaled_dot_product_flash_attention_for_cpu``), which would make attention free; we add
  4 * B * heads * L_q * L_k * d for it (QK^T and PV) below.  Elementwise work (softmax,
  LayerNorm, GELU) is not counted: it is a few percent and not GEMM-bound anyway.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

_aten = torch.ops.aten
_REGISTERED = False


def _register_cpu_attention() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    target = getattr(_aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if target is not None:
        @register_flop_formula(target, get_raw=True)
        def _cpu_attention_flops(query, key, value, *args, out_val=None, **kwargs) -> int:  # noqa: ANN001
            batch, heads, queries, head_dim = query.shape
            keys = key.shape[-2]
            return 4 * batch * heads * queries * keys * head_dim
    native = getattr(_aten, "_native_multi_head_attention", None)
    if native is not None:
        # nn.MultiheadAttention's inference fast path (open_clip's own blocks, used by AdaCLIP and
        # WinCLIP): one fused op for in-projection, attention and out-projection, unknown to the counter.
        @register_flop_formula(native, get_raw=True)
        def _native_mha_flops(query, key, value, embed_dim, *args, out_val=None, **kwargs) -> int:  # noqa: ANN001
            width = int(embed_dim)
            batch = query.numel() // (query.shape[-2] * width)
            queries, keys = query.shape[-2], key.shape[-2]
            projections = 2 * batch * width * width * (queries + 2 * keys + queries)  # q, k, v in; out
            return projections + 4 * batch * queries * keys * width
    _REGISTERED = True


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (matmul-type work, attention included)."""
    _register_cpu_attention()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def gemm_rate(n: int = 4096, repeats: int = 5, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """Median GFLOP/s of an n^3 matmul on this machine (after one warm-up call)."""
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        runs.append(time.perf_counter() - start)
    flops = 2 * n ** 3
    return {"n": n, "dtype": str(dtype).removeprefix("torch."), "runs_s": [round(r, 4) for r in runs],
            "gflops_median": round(flops / statistics.median(runs) / 1e9, 1),
            "gflops_best": round(flops / min(runs) / 1e9, 1), "threads": torch.get_num_threads()}


def bound_fraction(seconds: float, flops: int, gflops: float) -> dict[str, float]:
    """The FLOP bound of ``flops`` at ``gflops`` and how far ``seconds`` is from it (1.0 = at the bound)."""
    bound = flops / (gflops * 1e9)
    return {"flops": flops, "tflop": round(flops / 1e12, 4), "bound_s": round(bound, 4),
            "time_over_bound": round(seconds / bound, 3)}


def machine_gemm_rate(*measurements: dict[str, Any]) -> float:
    """The machine's rate from GEMM measurements taken before and after a run: the highest median.
    On a shared machine a measurement taken while other jobs ran is low, and would make every
    time look closer to the bound than it is; the highest is the limit the code could reach."""
    return max(m["gflops_median"] for m in measurements)
