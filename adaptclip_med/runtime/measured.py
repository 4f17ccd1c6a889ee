"""Measured facts the runtime choice relies on (plain data: the CLI's --help reads it).

Figures come from ``python -m benchmarks.runtimes`` (results in benchmarks/results/runtimes_*.json,
discussed in docs/performance.md).  ``auto`` only leaves torch fp32 for a runtime where one was
MEASURED faster at fp32 tolerance on that kind of CPU; kinds never measured keep torch.
"""

from __future__ import annotations

#: CPU kind -> the runtime measured fastest at fp32 (outputs within ~1e-5 of torch). Kinds not
#: listed (AVX-512, AVX512-BF16, AMX: not measured) keep torch, whose ``auto`` precision picks bf16
#: where the CPU has native bf16.
FP32_WINNERS: dict[str, str] = {}

#: The runtime ``--precision int8`` uses when ``--runtime auto`` (the only one with an int8 graph).
INT8_RUNTIME = "onnxruntime"

#: fp32 runtime vs torch fp32, ViT-L-14-336@518 random weights: max |diff| of the tower outputs.
FP32_TOLERANCE = "max |diff| <= 1e-5 on features, maps and scores"

#: int8 (onnxruntime) vs exact fp32 torch, measured on phantom volumes (see docs/performance.md).
INT8_TOLERANCE = "int8 is NOT exact: measured final-map max |diff| TBD, score TBD (ViT-L-14-336@518, random weights)"


def cpu_kind(flags: frozenset[str]) -> str:
    """The CPU classes whose kernels differ for this model: amx, avx512_bf16, avx512, avx2, other."""
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags and "fma" in flags:
        return "avx2"
    return "other"
