"""Inference speed and memory benchmarks (issue 8): ``python -m benchmarks.run --help``."""
