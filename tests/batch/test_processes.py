"""Real processes: a run killed with SIGKILL and resumed, and a 2-rank torchrun run (gloo on CPU)."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adaptclip_med.batch.discovery import FolderSource
from adaptclip_med.batch.journal import journal_path
from adaptclip_med.batch.runner import run_batch
from adaptclip_med.batch.worker import BatchOptions

from tests.support.dicom_studies import CLI_SHIM, good_study, tiny_cli_args

pytestmark = pytest.mark.slow
N_STUDIES = 5


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def done_in_journal(out: Path, rank: int = 0) -> list[str]:
    path = journal_path(out, rank)
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    try:
        return [key for (key,) in db.execute("SELECT key FROM studies WHERE status = 'done'")]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


@pytest.fixture(scope="module")
def source_and_reference(tmp_path_factory, scoring):
    root = tmp_path_factory.mktemp("processes")
    for i in range(N_STUDIES):
        good_study(root / "src", f"study{i}", seed=10 + i)
    reference = run_batch(FolderSource(root / "src"), scoring, BatchOptions(out_dir=root / "reference"))
    assert reference.scored == N_STUDIES
    return root / "src", rows(root / "reference" / "worklist.csv")


def same_worklist(actual: list[dict[str, str]], expected: list[dict[str, str]]) -> None:
    assert [r["study_key"] for r in actual] == [r["study_key"] for r in expected]
    assert len({r["study_key"] for r in actual}) == len(actual)
    for got, want in zip(actual, expected):
        assert got["status"] == want["status"] == "done"
        assert abs(float(got["score"]) - float(want["score"])) < 1e-4 and got["top_slice"] == want["top_slice"]


def child_env() -> dict[str, str]:
    return {**os.environ, "ADAPTCLIP_MED_PROGRESS": "0", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def test_sigkill_mid_run_then_resume_gives_the_exact_worklist(tmp_path, source_and_reference, scoring):
    src, expected = source_and_reference
    out = tmp_path / "out"
    command = [sys.executable, str(CLI_SHIM), "batch", str(src), "--out", str(out), *tiny_cli_args()]
    process = subprocess.Popen(command, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while len(done_in_journal(out)) < 2 and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the run finished before it could be killed: " + process.stderr.read().decode()[-2000:]
        time.sleep(0.2)  # somewhere inside the next study
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    finished = done_in_journal(out)
    assert 2 <= len(finished) < N_STUDIES
    published = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert all((p / "study.json").is_file() for p in published)  # a killed run never leaves half a study

    summary = run_batch(FolderSource(src), scoring, BatchOptions(out_dir=out))
    assert summary.already_done == len(finished) and summary.scored == N_STUDIES - len(finished)
    same_worklist(rows(out / "worklist.csv"), expected)
    assert not list((out / ".batch").glob("staging-rank-*/*"))


def test_two_rank_torchrun_shards_studies_and_rank0_merges_the_worklist(tmp_path, source_and_reference):
    src, expected = source_and_reference
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(CLI_SHIM),
               "batch", str(src), "--out", str(out), *tiny_cli_args()]
    result = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("batch: 5 studies: 5 scored, 0 already done, 0 failed") == 1  # rank 0 reports once
    assert "2 ranks" in result.stdout
    keys = sorted(r["study_key"] for r in expected)
    assert sorted(done_in_journal(out, 0)) == keys[0::2]  # deterministic round-robin shards
    assert sorted(done_in_journal(out, 1)) == keys[1::2]
    same_worklist(rows(out / "worklist.csv"), expected)
    assert all((out / key / "study.json").is_file() for key in keys)
