#!/usr/bin/env bash
# The whole GPU check in ONE device call (about 6-8 minutes on an H200), for a session whose task
# is lent a GPU machine.  That machine gets a copy of the working tree and has no internet; its
# image has torch/numpy/scipy/timm/... but not open_clip, pydicom, nibabel, ftfy, wcwidth, so:
#
#   here:   benchmarks/gpu/fetch_wheels.sh            (PyPI -> .whl/, ~7 MiB, git-ignored)
#   device: run(command="bash benchmarks/gpu/run_device.sh", carry=[".whl"], timeout_s=540)
#
# Steps (each bounded by its own timeout so a hang cannot eat the lease; results under $OUT,
# at most 8 files come back):
#   1. install the carried wheels into /tmp/site (no index, no deps)          -> env.txt
#   2. the CUDA tests (tests/gpu, marker cuda) + the CPU tests of the same path -> pytest_cuda.log
#   3. the benchmark (benchmarks/gpu/bench_cuda.py)                            -> gpu_bench.json, bench.log
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/adaptclip-gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 ADAPTCLIP_MED_PROGRESS=0 TOKENIZERS_PARALLELISM=false

if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed" | tee "$OUT/env.txt"; exit 3; }
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
{
  nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version,clocks.max.sm --format=csv 2>&1
  "$PY" - <<'PY'
import torch, open_clip, pydicom, nibabel
gpu = (torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0)) if torch.cuda.is_available() else "no CUDA GPU"
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", gpu, "open_clip", open_clip.__version__)
PY
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

timeout 200 "$PY" -m pytest -q -p no:cacheprovider -o addopts="-ra" \
  tests/gpu tests/volume/test_batch_size.py tests/perf/test_precision.py tests/batch/test_ranks_devices.py \
  > "$OUT/pytest_cuda.log" 2>&1
echo "pytest exit code $?" >> "$OUT/pytest_cuda.log"
tail -n 25 "$OUT/pytest_cuda.log"

timeout 330 "$PY" -m benchmarks.gpu.bench_cuda --out "$OUT" --budget-s 270 > "$OUT/bench.log" 2>&1
echo "bench exit code $?" >> "$OUT/bench.log"
tail -n 40 "$OUT/bench.log"
