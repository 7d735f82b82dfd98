"""Watch a folder and ingest lm-eval result folders as they appear, once complete.

lm-eval writes ``results_<ts>.json`` first and the ``samples_<task>_<ts>.jsonl``
files after it (appending line by line), so a results file alone is not a
finished eval. A results file is ingested once:

* it parses (a half-written JSON file does not);
* every samples file it promises exists: ``task_hashes`` is filled only when
  lm-eval ran with ``--log_samples``, and then names each task with a samples file;
* the results file and all its samples files kept the same sizes and mtimes
  for ``settle`` seconds.

A folder that never completes (a crashed run) is ingested after ``give_up``
stable seconds, so its problem is reported once instead of waited on forever.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from forgetwatch.collectors.lm_eval_parse import RESULTS_GLOB, parse_results
from forgetwatch.collectors.lm_eval_results import ingest
from forgetwatch.collectors.report import Progress, SyncReport, no_progress
from forgetwatch.errors import BadInputError
from forgetwatch.suite import Suite

Signature = tuple[tuple[str, int, int], ...]


@dataclass
class _Pending:
    signature: Signature
    stable_since: float


@dataclass
class WatchState:
    """What the watcher has seen: files waiting to settle and files already handled."""

    pending: dict[Path, _Pending] = field(default_factory=dict)
    done: set[Path] = field(default_factory=set)


def _signature(results: Path) -> Signature:
    """Size and mtime of the results file and every samples file of the same run."""
    stamp = results.stem.removeprefix("results_")
    files = [results, *sorted(results.parent.glob(f"samples_*_{stamp}.jsonl"))]
    stats = []
    for path in files:
        try:
            info = path.stat()
        except OSError:
            continue  # vanished between glob and stat: the next tick sees the truth
        stats.append((path.name, info.st_size, info.st_mtime_ns))
    return tuple(stats)


def is_complete(results: Path) -> bool:
    """The results file parses and every samples file it promises exists."""
    try:
        return not parse_results(results).missing_samples
    except (BadInputError, OSError):
        return False


def ready_files(root: Path, state: WatchState, now: float, settle: float, give_up: float) -> list:
    """Results files under ``root`` that are complete (or hopeless) and settled."""
    ready: list[Path] = []
    for results in sorted(root.rglob(RESULTS_GLOB)):
        if results in state.done:
            continue
        signature = _signature(results)
        seen = state.pending.get(results)
        if seen is None or seen.signature != signature:
            state.pending[results] = _Pending(signature, now)
            continue
        stable_for = now - seen.stable_since
        if (stable_for >= settle and is_complete(results)) or stable_for >= give_up:
            ready.append(results)
    return ready


def watch(
    directory: str | os.PathLike[str],
    db_path: str | os.PathLike[str] | None = None,
    *,
    interval: float = 2.0,
    settle: float = 5.0,
    give_up: float | None = None,
    stop: Callable[[], bool] = lambda: False,
    suite: Suite | None = None,
    progress: Progress = no_progress,
    on_report: Callable[[SyncReport], None] = lambda report: None,
) -> SyncReport:
    """Poll ``directory`` every ``interval`` s until ``stop()``; ingest each finished eval once.

    Returns the totals; ``on_report`` receives each batch's report as it lands.
    """
    root = Path(directory)
    give_up = max(60.0, 10 * settle) if give_up is None else give_up
    state = WatchState()
    total = SyncReport(source="lm-eval watch")
    first = True
    while not stop():
        if root.is_dir():
            batch = ready_files(root, state, time.monotonic(), settle, give_up)
            if batch:
                report = ingest(batch, db_path, suite=suite if first else None, progress=progress)
                first = False
                state.done.update(batch)
                _add(total, report)
                on_report(report)
        _sleep_until_stop(interval, stop)
    return total


def _add(total: SyncReport, report: SyncReport) -> None:
    total.inserted += report.inserted
    total.updated += report.updated
    total.skipped += report.skipped
    total.errors.extend(report.errors)


def _sleep_until_stop(seconds: float, stop: Callable[[], bool]) -> None:
    """Sleep in short slices so ``stop`` (and Ctrl-C) is noticed quickly."""
    deadline = time.monotonic() + seconds
    while not stop() and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))
