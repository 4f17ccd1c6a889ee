"""The batch loop: discover studies, score each one that is not finished, keep the journal, write
the worklist.

Guarantees (each has a test):

* resumable - a study is skipped only when the journal says done AND ``<out>/<key>/study.json``
  exists; anything else is redone from scratch;
* nothing partial - outputs are staged and published whole (:mod:`.staging`), CSVs are rewritten
  atomically from journal records, so a SIGKILL at any instant leaves no half-written file and
  no duplicate row;
* the run goes on - a study that cannot be read, has no eligible series, or whose PACS stopped
  answering is recorded as failed with a one-line reason; only a full disk stops the run (every
  following study would fail the same way) with a message saying that nothing partial was left;
* scale-out - under torchrun each rank scores its own shard and rank 0 writes the one worklist.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from adaptclip_med.utils import distributed
from adaptclip_med.batch.discovery import Discovery, FileError
from adaptclip_med.batch.file_index import write_file_index
from adaptclip_med.batch.journal import DONE, FAILED, Journal, StudyRecord, read_journals
from adaptclip_med.batch.staging import is_disk_full, reset_scratch, reset_staging
from adaptclip_med.batch.worker import BatchOptions, DiskFullError, StudySource, StudyWorker
from adaptclip_med.batch.worklist import ERRORS, WORKLIST, write_errors, write_worklist
from adaptclip_med.errors import AdaptClipError
from adaptclip_med.utils.ownership import mark_owned, require_owned
from adaptclip_med.utils.atomic import ensure_writable_folder
from adaptclip_med.utils.keys import is_safe_key
from adaptclip_med.utils.progress import progress_enabled
from adaptclip_med.utils.redact import describe_path, header_warnings_silenced
from adaptclip_med.outputs.layout import STUDY_JSON
from adaptclip_med.volume.options import ScoringOptions
from adaptclip_med.volume.pipeline import make_scorer
from adaptclip_med.volume.scoring import VolumeScorer

log = logging.getLogger(__name__)

PENDING = "pending"
EXIT_SOME_FAILED = 4
EXIT_NOTHING_SCORED = 2


@dataclass
class BatchSummary:
    studies: int
    scored: int
    already_done: int
    failed: int
    file_errors: int
    seconds: float
    ranks: int
    is_main: bool
    worklist: Path
    errors: Path
    total_done: int = 0  # studies with results after this run (scored now or before)
    total_failed: int = 0  # studies without results after this run

    @property
    def exit_code(self) -> int:
        """0: every study scored; 4: some failed; 2: nothing scored (see ``batch --help``)."""
        if self.total_done == 0:
            return EXIT_NOTHING_SCORED
        return EXIT_SOME_FAILED if self.total_failed else 0

    @property
    def studies_per_hour(self) -> float:
        return 3600.0 * self.scored / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (f"{self.studies} studies: {self.scored} scored, {self.already_done} already done, {self.failed} failed"
                f"{f', {self.file_errors} unreadable files' if self.file_errors else ''} in {self.seconds:.1f} s "
                f"({self.studies_per_hour:.0f} studies/hour, {self.ranks} rank{'s' if self.ranks > 1 else ''})")


def is_finished(record: StudyRecord | None, out_dir: Path, retry_failed: bool) -> bool:
    if record is None:
        return False
    if record.status == DONE:
        return is_safe_key(record.key) and (Path(out_dir) / record.key / STUDY_JSON).is_file()
    return record.status == FAILED and not retry_failed


def _discover(source: StudySource, ranks: distributed.Ranks) -> Discovery:
    """Rank 0 discovers and every rank gets the same list (or the same error)."""
    outcome: tuple[str, object] = ("", None)
    if ranks.is_main:
        try:
            with header_warnings_silenced():
                outcome = ("ok", source.discover())
        except AdaptClipError as exc:
            outcome = ("error", str(exc))
    outcome = distributed.broadcast_from_main(outcome, ranks)
    if outcome[0] == "error":
        raise AdaptClipError(str(outcome[1]))
    assert isinstance(outcome[1], Discovery)
    return outcome[1]


def _write_tables(out_dir: Path, keys: list[str], records: dict[str, StudyRecord], file_errors: list[FileError]) -> None:
    rows = [records.get(key) or StudyRecord(key, PENDING) for key in keys]
    write_worklist(out_dir, rows)
    write_errors(out_dir, rows, file_errors)


def run_batch(source: StudySource, scoring: ScoringOptions, options: BatchOptions) -> BatchSummary:
    """Score every study of ``source`` into ``options.out_dir``; see the module docstring."""
    started = time.time()
    ranks = distributed.init_ranks(scoring.model.device)
    try:
        return _run(source, scoring.with_model(device=distributed.rank_device(scoring.model.device, ranks)), options, ranks,
                    started)
    finally:
        distributed.shutdown(ranks)


@contextmanager
def _disk_full_stops_the_run(out_dir: Path) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if is_disk_full(exc) and not isinstance(exc, DiskFullError):
            raise DiskFullError(f"disk full while writing to {describe_path(out_dir)}: free space and run the same "
                                f"command again (finished studies are kept; nothing partial was left)") from exc
        raise


@contextmanager
def _os_errors_in_one_line(out_dir: Path) -> Iterator[None]:
    """A folder that turns read-only (or a journal that cannot be opened) mid-run: one line, not a traceback."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        if is_disk_full(exc):
            raise
        reason = getattr(exc, "strerror", None) or str(exc).split("\n")[0] or type(exc).__name__
        raise AdaptClipError(f"{describe_path(out_dir)}: cannot write the batch results ({reason}); "
                             "finished studies are kept, run the same command again once it is writable") from exc


@contextmanager
def _removed_after(folder: Path) -> Iterator[None]:
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class _ShardOutcome:
    records: list[StudyRecord]  # latest record of every study of this rank's shard that has one
    scored: int = 0
    already_done: int = 0
    failed: int = 0


def _score_shard(source: StudySource, scorer: VolumeScorer, scoring: ScoringOptions, options: BatchOptions,
                 ranks: distributed.Ranks, discovery: Discovery) -> _ShardOutcome:
    out_dir = options.out_dir
    keys = [task.key for task in discovery.studies]
    mine = distributed.shard(discovery.studies, ranks)
    with Journal(out_dir, ranks.rank) as journal:
        wanted = set(keys)
        records = {k: r for k, r in read_journals(out_dir).items() if k in wanted}
        pending = [t for t in mine if not is_finished(records.get(t.key), out_dir, options.retry_failed)]
        outcome = _ShardOutcome([], already_done=len(mine) - len(pending))
        scratch_root = reset_scratch(out_dir, options.scratch_dir, ranks.rank)
        worker = StudyWorker(source, scorer, replace(options, scratch_dir=scratch_root), scoring.output,
                             reset_staging(out_dir, ranks.rank))
        solo = not ranks.distributed
        last_tables = time.time()
        bar = tqdm(total=len(mine), initial=outcome.already_done, unit="study", dynamic_ncols=True,
                   desc="batch" if solo else f"batch rank {ranks.rank}/{ranks.world}",
                   disable=not progress_enabled() or not ranks.is_main)
        with bar, _removed_after(scratch_root):
            for task in pending:
                record = journal.record(worker.run(task))
                records[task.key] = record
                outcome.scored += record.status == DONE
                outcome.failed += record.status == FAILED
                if record.status == DONE:
                    log.info("study %s: score %.4f (%.1f s); %s", task.key, record.score, record.seconds,
                             record.comparability or "comparability not assessed")
                else:
                    log.warning("study %s failed: %s", task.key, record.reason)
                bar.update(1)
                if solo and time.time() - last_tables > options.worklist_interval_seconds:
                    _write_tables(out_dir, keys, records, discovery.file_errors)
                    last_tables = time.time()
    outcome.records = [records[t.key] for t in mine if t.key in records]
    return outcome


def _run(source: StudySource, scoring: ScoringOptions, options: BatchOptions, ranks: distributed.Ranks,
         started: float) -> BatchSummary:
    out_dir = Path(options.out_dir)
    options = replace(options, out_dir=out_dir)
    if options.stow and not hasattr(source, "store"):
        raise AdaptClipError("storing results back (--stow) needs a DICOMweb source (--dicomweb URL)")
    require_owned(out_dir, "output folder")  # worklist.csv / errors.csv are rewritten there
    ensure_writable_folder(out_dir, "output folder")
    mark_owned(out_dir)
    if options.scratch_dir is not None:
        ensure_writable_folder(Path(options.scratch_dir), "scratch folder")
    scorer = make_scorer(scoring)  # fail fast on a bad model or bank, before scanning a whole tree
    discovery = _discover(source, ranks)
    if ranks.is_main and discovery.file_index:
        with _disk_full_stops_the_run(out_dir), _os_errors_in_one_line(out_dir):
            write_file_index(out_dir, discovery.file_index)
    with _disk_full_stops_the_run(out_dir), _os_errors_in_one_line(out_dir):
        mine = _score_shard(source, scorer, scoring, options, ranks, discovery)
    outcomes: list[_ShardOutcome] = distributed.gather_to_main(mine, ranks)
    if ranks.is_main:
        merged = {r.key: r for outcome in outcomes for r in outcome.records}
        with _disk_full_stops_the_run(out_dir), _os_errors_in_one_line(out_dir):
            _write_tables(out_dir, [t.key for t in discovery.studies], merged, discovery.file_errors)
        keys = [t.key for t in discovery.studies]
    else:
        outcomes = [mine]
        merged = {r.key: r for r in mine.records}
        keys = list(merged)
    total_done = sum(1 for key in keys if key in merged and merged[key].status == DONE)
    return BatchSummary(studies=len(discovery.studies), scored=sum(o.scored for o in outcomes),
                        already_done=sum(o.already_done for o in outcomes), failed=sum(o.failed for o in outcomes),
                        file_errors=len(discovery.file_errors), seconds=time.time() - started, ranks=ranks.world,
                        is_main=ranks.is_main, worklist=out_dir / WORKLIST, errors=out_dir / ERRORS,
                        total_done=total_done, total_failed=len(keys) - total_done)
