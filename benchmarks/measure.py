"""Timing, peak memory and machine description for the benchmarks.

Times are medians of a few repetitions (the ViT-L grid is expensive on a small CPU; the spread is
recorded so a noisy run shows).  Peak memory is the process's peak resident set size (VmHWM),
reset before each measurement through ``/proc/self/clear_refs`` so every stage gets its own peak
in one process; a sampling thread also records the peak of anonymous memory (RssAnon), which
excludes memory-mapped file pages (reference banks) that the kernel can drop at any time.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_SAMPLE_SECONDS = 0.01


def _status_mib(field: str) -> float:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    return int(match.group(1)) / 1024 if match else float("nan")


def rss_mib() -> float:
    return _status_mib("VmRSS")


def synchronise(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock times are real."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    median_s: float
    runs_s: list[float]

    def to_json(self) -> dict[str, Any]:
        return {"median_s": round(self.median_s, 5), "runs_s": [round(t, 5) for t in self.runs_s]}


def time_call(fn: Callable[[], Any], repeats: int, device: torch.device, warmup: int = 0) -> Timing:
    """Median wall time of ``fn`` over ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
        synchronise(device)
    runs = []
    for _ in range(repeats):
        synchronise(device)
        start = time.perf_counter()
        fn()
        synchronise(device)
        runs.append(time.perf_counter() - start)
    return Timing(statistics.median(runs), runs)


class PeakMemory:
    """Context manager: peak RSS and peak anonymous RSS (MiB) while the block runs.

    On CUDA the peak allocated device memory is recorded too."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device or torch.device("cpu")
        self.start_rss = self.peak_rss = self.peak_anon = float("nan")
        self.peak_cuda: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(_SAMPLE_SECONDS):
            self.peak_anon = max(self.peak_anon, _status_mib("RssAnon"))

    def __enter__(self) -> "PeakMemory":
        self.start_rss = rss_mib()
        try:
            _CLEAR_REFS.write_text("5")  # resets VmHWM to the current RSS
        except OSError:
            pass
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.peak_anon = _status_mib("RssAnon")
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_rss = _status_mib("VmHWM")
        self.peak_anon = max(self.peak_anon, _status_mib("RssAnon"))
        if self.device.type == "cuda":
            self.peak_cuda = torch.cuda.max_memory_allocated(self.device) / 2**20

    def to_json(self) -> dict[str, Any]:
        out = {"start_rss_mib": round(self.start_rss), "peak_rss_mib": round(self.peak_rss),
               "peak_anon_mib": round(self.peak_anon)}
        if self.peak_cuda is not None:
            out["peak_cuda_mib"] = round(self.peak_cuda)
        return out


def measure(fn: Callable[[], Any], repeats: int, device: torch.device, warmup: int = 0) -> dict[str, Any]:
    """Time ``fn`` and record the peak memory over all its calls."""
    with PeakMemory(device) as memory:
        timing = time_call(fn, repeats, device, warmup)
    return timing.to_json() | memory.to_json()


def compare(fns: dict[str, Callable[[], Any]], repeats: int, device: torch.device, warmup: int = 0) -> dict[str, dict[str, Any]]:
    """Time several variants of the same work, interleaved call by call (A B A B ...), so a change
    of machine load during the measurement hits every variant alike and their ratios stay fair."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
            synchronise(device)
    runs: dict[str, list[float]] = {name: [] for name in fns}
    memory: dict[str, list[PeakMemory]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            with PeakMemory(device) as peak:
                timing = time_call(fn, 1, device)
            runs[name].append(timing.runs_s[0])
            memory[name].append(peak)
    out = {}
    for name in fns:
        peaks = memory[name]
        out[name] = Timing(statistics.median(runs[name]), runs[name]).to_json() | {
            "start_rss_mib": round(min(p.start_rss for p in peaks)), "peak_rss_mib": round(max(p.peak_rss for p in peaks)),
            "peak_anon_mib": round(max(p.peak_anon for p in peaks))}
        cuda = [p.peak_cuda for p in peaks if p.peak_cuda is not None]
        if cuda:
            out[name]["peak_cuda_mib"] = round(max(cuda))
    return out


def _lscpu() -> dict[str, str]:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    wanted = ("Model name", "Vendor ID", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "L2 cache",
              "L3 cache", "Hypervisor vendor", "Flags")
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in wanted:
            fields[key.strip()] = value.strip()
    return fields


def machine_description() -> dict[str, Any]:
    """What the figures were measured on (the table in docs/performance.md quotes it)."""
    from adaptclip_med.model.precision import BF16_CPU_FLAGS, cpu_flags

    cpu = _lscpu()
    flags = cpu.pop("Flags", "").split()
    memory_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu, "cpu_model": cpu.get("Model name"), "cpu_flags": flags,
        "simd": [f for f in flags if f.startswith(("avx", "amx", "fma", "sse4_2"))],
        "bf16_flags": sorted(set(BF16_CPU_FLAGS) & cpu_flags()), "memory_gib": round(memory_kib / 2**20, 1),
        "torch": torch.__version__, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(), "os_cpu_count": os.cpu_count(), "python": platform.python_version(),
        "gpu": gpu, "load_average_at_start": os.getloadavg(),
    }


def write_results(path: Path, payload: dict[str, Any], indent: int = 1) -> Path:
    """The one writer of benchmarks/results/*.json: atomic, and every file records what it was
    measured on (lscpu model name and every CPU flag, threads, load) under ``machine`` (a
    description taken at the start of a run, if the payload has one, is kept)."""
    import json

    from adaptclip_med.utils.atomic import atomic_write_text

    record = dict(payload)
    machine = record.get("machine")
    if not isinstance(machine, dict) or "cpu_flags" not in machine:
        record["machine"] = {**(machine if isinstance(machine, dict) else {}), **machine_description()}
    record["machine"].setdefault("load_average_at_write", list(os.getloadavg()))
    return atomic_write_text(path, json.dumps(record, indent=indent, default=str) + "\n")
