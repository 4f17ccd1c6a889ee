#!/usr/bin/env bash
# Run HERE (the machine with PyPI), before the device call: the lent GPU machine has no internet,
# and its image lacks these packages (KINDS.md lists what it has: torch, numpy, scipy, timm, ...).
# Wheels for its Python (3.12, x86-64 manylinux) go to .whl/ in the repository root (ignored by
# git; pass carry [".whl"] to the run, about 6 MiB).  Versions are those this project is tested
# with; --no-deps because every other dependency is already on the device image.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .whl \
  open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.7.0 pydicom==3.0.2 nibabel==5.4.2
ls -l .whl
