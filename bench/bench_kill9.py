"""kill -9 a sync or an ingest at random points, many times, and summarise what survived.

Each trial runs the real collector in a child process (``tests/crash_driver.py``)
on a fresh DuckDB file, SIGKILLs it after a seeded random delay within a clean
run's duration, then checks that the file opens read-write and read-only, that
no key is duplicated, and that running the collector again converges to the
rows of a clean run into a fresh file. It also times that recovery run, as a
ratio to the clean run measured at the start of this same bench.

    python bench/bench_kill9.py [--trials 50] [--seed 20261123] [--runs 60] [--docs 4000]

Half the trials kill a sync (against a real ``mlflow server`` seeded with
``--runs`` runs), half an ingest (of generated lm-eval outputs).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import crash_driver  # noqa: E402
from tests.conftest import start_mlflow  # noqa: E402

EXPERIMENT = "kill9-bench"


@dataclass
class Tally:
    """Outcomes of one collector's trials."""

    name: str
    clean_s: float
    killed: int = 0
    finished_first: int = 0
    opened: int = 0
    duplicate_free: int = 0
    converged: int = 0
    recovery_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def line(self, trials: int) -> str:
        ratio = statistics.median(self.recovery_s) / self.clean_s if self.recovery_s else 0.0
        return (
            f"{self.name:<7} {trials:>6} {self.killed:>7} {self.finished_first:>9} "
            f"{self.opened:>7} {self.duplicate_free:>9} {self.converged:>10} "
            f"{self.clean_s:>8.1f}s {ratio:>9.2f}x"
        )


def one_trial(
    tally: Tally,
    args: list[str],
    rerun: Callable[[Path], None],
    reference: Path,
    work: Path,
    delay: float,
    label: str,
) -> None:
    db_file = work / f"{label}.duckdb"
    kill = crash_driver.run_and_kill([a.format(db=db_file) for a in args], delay)
    tally.killed += kill.killed
    tally.finished_first += not kill.killed
    try:
        if db_file.exists():
            crash_driver.opens_both_ways(db_file)
        tally.opened += 1
        if not db_file.exists() or not crash_driver.duplicate_keys(db_file):
            tally.duplicate_free += 1
        started = time.monotonic()
        rerun(db_file)
        tally.recovery_s.append(time.monotonic() - started)
        diffs = crash_driver.table_differences(db_file, reference)
        dupes = crash_driver.duplicate_keys(db_file)
        if diffs or dupes:
            tally.failures.append(f"{label} (delay {delay:.2f}s): diffs {diffs}, dupes {dupes}")
        else:
            tally.converged += 1
    except Exception as exc:  # a bench reports every failure, then carries on
        root = exc
        while root.__cause__ is not None or root.__context__ is not None:
            root = root.__cause__ or root.__context__
        cause = f" (root cause {type(root).__name__}: {root})" if root is not exc else ""
        tally.failures.append(f"{label} (delay {delay:.2f}s): {type(exc).__name__}: {exc}{cause}")


def run_trials(
    name: str, args: list[str], rerun: Callable[[Path], None], trials: int, seed: int, work: Path
) -> Tally:
    reference = work / f"{name}-clean.duckdb"
    clean = crash_driver.timed_clean_run([a.format(db=reference) for a in args])
    tally = Tally(name, clean)
    for number in range(trials):
        delay = random.Random(f"{seed}-{name}-{number}").uniform(0, clean)
        one_trial(tally, args, rerun, reference, work, delay, f"{name}-{number}")
        print(f"  {name} trial {number + 1}/{trials} done", file=sys.stderr, flush=True)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50, help="in all, split over both")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--runs", type=int, default=60, help="MLflow runs to sync")
    parser.add_argument("--docs", type=int, default=4000, help="docs per task to ingest")
    opts = parser.parse_args()

    from forgetwatch.collectors import lm_eval_results, mlflow_runs

    with tempfile.TemporaryDirectory(prefix="kill9-") as tmp:
        work = Path(tmp)
        outputs = work / "outputs"
        rows = crash_driver.write_lm_eval_outputs(outputs, models=4, tasks=2, docs=opts.docs)
        points = crash_driver.seed_mlflow_store(
            work / "mlflow.db", EXPERIMENT, runs=opts.runs, keys=2, steps=50
        )
        server = start_mlflow(work)
        try:

            def resync(path: Path) -> None:
                report = mlflow_runs.sync(server.url, path, experiments=[EXPERIMENT])
                assert report.ok, report.summary()

            def reingest(path: Path) -> None:
                report = lm_eval_results.ingest([outputs], path)
                assert report.ok, report.summary()

            half = opts.trials // 2
            tallies = [
                run_trials(
                    "sync", ["sync", server.url, "{db}", EXPERIMENT], resync,
                    half, opts.seed, work,
                ),
                run_trials(
                    "ingest", ["ingest", "{db}", str(outputs)], reingest,
                    opts.trials - half, opts.seed, work,
                ),
            ]  # fmt: skip
        finally:
            server.stop()

    print(f"\nkill -9 bench: seed {opts.seed}, {opts.trials} trials")
    print(f"sync: {opts.runs} runs, {points:,} metric points; ingest: {rows:,} sample rows")
    print(
        "collector trials  killed  finished  opened  no-dupes  converged  clean-run  recovery/clean"
    )
    for tally, n in zip(tallies, (half, opts.trials - half), strict=True):
        print(tally.line(n))
    failures = [f for t in tallies for f in t.failures]
    print("failures:" if failures else "failures: none")
    for failure in failures:
        print(f"  - {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
