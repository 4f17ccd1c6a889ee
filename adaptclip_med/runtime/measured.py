"""Measured facts the runtime choice relies on (plain data: the CLI's --help reads it).

Figures come from ``python -m benchmarks.runtimes`` (results in benchmarks/results/runtimes_*.json,
discussed in docs/performance.md).  ``auto`` only leaves torch fp32 for a runtime where one was
MEASURED faster at fp32 tolerance on that kind of CPU; kinds never measured keep torch.
"""

from __future__ import annotations

#: CPU kind -> the runtime measured fastest at fp32 (outputs within ~1e-5 of torch). Kinds not
#: listed keep torch, whose ``auto`` precision picks bf16 where the CPU has native bf16.
#: avx2 (Zen 3, 2 cores, ViT-L-14-336@518, 2026-12-02): torch 12.24 s/slice, onnxruntime 12.56 s,
#: openvino 11.93 s -- within the run-to-run spread (+-0.3 s), so no runtime is "measured faster"
#: and avx2 stays on torch.  AVX-512 / AVX512-BF16 / AMX: not measured with the runtimes.
FP32_WINNERS: dict[str, str] = {}

#: The runtime ``--precision int8`` uses when ``--runtime auto`` (the only one with an int8 graph).
INT8_RUNTIME = "onnxruntime"

#: fp32 runtimes vs torch fp32, ViT-L-14-336@518, random weights, phantom slices: final map max |diff|
#: 2.6e-7 (onnxruntime) / 3.3e-7 (openvino), score 6e-8; tower features ~4e-6 (rel. 1e-6).
FP32_TOLERANCE = "max |diff| vs torch measured 3.3e-7 on maps, 6e-8 on scores, ~4e-6 on features"

#: int8 (onnxruntime) vs exact fp32 torch: ViT-L-14-336@518, random weights, 2 phantom slices
#: (benchmarks/results/runtimes_ViT-L-14-336@518_cpu.json); 1.45x faster than fp32 on AVX2.
#: On the packaged demo model (formula-weighted tiny ViT + trained adapters, 2026-12-02) int8 did NOT
#: keep the result: slice scores flattened (lesion slices 0.118-0.140 vs the rest 0.026-0.063 at fp32;
#: 0.035-0.104 with no lesion slice on top at int8, bank also built at int8), so the tolerance is a
#: property of the weights: validate int8 against fp32 on the model and data it will serve.
INT8_TOLERANCE = ("measured vs exact fp32: final map max |diff| 1.1e-3 (mean 3.3e-4), slice score 5.8e-4, "
                  "pixel AUROC -1.3e-4, ViT-L/14@518 random weights; on the demo model it lost the lesion "
                  "slices: validate against fp32 on your model before relying on it")
#: Logged whenever int8 is chosen (the tolerance depends on the weights, see above).
INT8_WARNING = ("int8 fast mode is NOT exact and its error depends on the weights (measured 1.1e-3 on ViT-L maps, "
                "but it lost the lesion slices of the demo model): compare with --precision fp32 on your data")


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
