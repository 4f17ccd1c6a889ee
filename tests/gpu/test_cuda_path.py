"""The CUDA path: exact fp32 (TF32 off) against the CPU, bf16/fp16 tolerances against that fp32,
fused attention kernels, and ``--batch-size auto`` on a real GPU.

Every test here needs a CUDA GPU and is skipped without one (``pytest -m cuda`` selects them; the
prepared device run is benchmarks/gpu/run_device.sh).  The device-independent parts (precision
choice, batch-size arithmetic, device selection) have CPU tests in tests/perf/test_precision.py,
tests/volume/test_batch_size.py and tests/batch/test_ranks_devices.py.
"""

from __future__ import annotations

import copy

import pytest
import torch

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible to torch)")]

#: Same tolerances as the CPU bf16 test (tests/perf/test_precision.py, documented in
#: docs/performance.md): final map and slice score against exact fp32.
MAP_TOLERANCE = {"bf16": 2e-2, "fp16": 2e-2}
SCORE_TOLERANCE = {"bf16": 5e-3, "fp16": 5e-3}
#: CPU fp32 vs CUDA fp32 with TF32 off: only summation order differs.
CPU_GPU_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def cpu_model(tiny_model):
    """The shared tiny AdaptCLIP (tests/conftest.py + tests/support/tiny_models.py: saved backbone file, randomised adapters)."""
    return tiny_model


def _on_cuda(model, precision: str):
    from adaptclip_med.model.precision import apply_precision

    moved = copy.deepcopy(model).to("cuda")
    assert apply_precision(moved, precision) == precision
    return moved


def _predict(model, images):
    with torch.no_grad():
        references = model.encode_references(images[3:])
        return model.predict(images[:3], references)


def test_fp32_on_cuda_is_exact_with_tf32_off(cpu_model, images):
    gpu = _on_cuda(cpu_model, "fp32")
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    cpu = _predict(cpu_model, images)
    cuda = _predict(gpu, images.cuda())
    assert (cuda.anomaly_map.cpu() - cpu.anomaly_map).abs().max() < CPU_GPU_TOLERANCE
    assert (cuda.score.cpu() - cpu.score).abs().max() < CPU_GPU_TOLERANCE


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precisions_stay_within_tolerance_of_fp32(cpu_model, images, precision):
    reference = _predict(_on_cuda(cpu_model, "fp32"), images.cuda())
    half = _predict(_on_cuda(cpu_model, precision), images.cuda())
    assert torch.isfinite(half.anomaly_map).all()
    assert (half.anomaly_map - reference.anomaly_map).abs().max() <= MAP_TOLERANCE[precision]
    assert (half.score - reference.score).abs().max() <= SCORE_TOLERANCE[precision]


@pytest.mark.parametrize("precision, backend", [("bf16", "FLASH_ATTENTION"), ("fp16", "FLASH_ATTENTION"),
                                                ("fp32", "EFFICIENT_ATTENTION")])
def test_attention_runs_on_fused_kernels(cpu_model, images, precision, backend):
    """Restricted to one fused SDPA kernel, the forward must still run (it raises if the kernel
    cannot take these inputs, instead of silently falling back to the unfused maths)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = _on_cuda(cpu_model, precision)
    _predict(model, images.cuda())  # text features (causal-masked text tower) computed and cached first
    with sdpa_kernel([getattr(SDPBackend, backend)]):
        prediction = _predict(model, images.cuda())
    assert torch.isfinite(prediction.anomaly_map).all()


def test_auto_precision_on_this_gpu_is_bf16_where_native():
    from adaptclip_med.model.precision import resolve_precision

    major, _ = torch.cuda.get_device_capability()
    assert resolve_precision("auto", torch.device("cuda"))[0] == ("bf16" if major >= 8 else "fp32")


def test_batch_size_auto_fits_and_runs(tiny_spec):
    from adaptclip_med.methods.base import MethodSpec
    from adaptclip_med.methods.registry import load_method
    from adaptclip_med.volume.batch_size import MAX_AUTO_BATCH, resolve_batch_size

    method = load_method(MethodSpec(backbone=tiny_spec, image_size=56, device="cuda"))
    chosen = resolve_batch_size("auto", method)
    assert 1 <= chosen <= MAX_AUTO_BATCH
    free_before, _ = torch.cuda.mem_get_info()
    torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated()
    with torch.no_grad():
        images = torch.zeros(chosen, 3, 56, 56, device="cuda")
        encoded = method.encode(images)
        method.predict_encoded(encoded, method.memory_from_rows([method.memory_rows(encoded)]))
    assert torch.cuda.max_memory_allocated() - start < free_before
