"""kill -9 in the middle of a sync, an ingest or an analysis never damages the database.

Each trial runs the real collector in a child process (``tests/crash_driver.py``)
against a fresh DuckDB file, SIGKILLs it after a seeded random delay, then checks:

* the file opens read-write (as a collector does) and read-only (as a page does);
* no key occurs twice, in the tables with a primary key and in the key-less
  ``run_metrics`` (run_id, key, step) and ``samples`` (eval_id, task, doc_id, filter, metric);
* running the collector again converges to exactly the rows of a clean run into
  a fresh file (wall-clock columns such as ``synced_at`` left out).

The seed is ``FORGETWATCH_CRASH_SEED`` (default below); every failure message names
it and the trial's delay so a failing kill can be replayed.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import crash_driver
from tests.conftest import start_mlflow
from tests.crash_driver import Kill, run_and_kill, timed_clean_run
from tests.procs import Server

SEED = int(os.environ.get("FORGETWATCH_CRASH_SEED", "20261123"))
TRIALS = 10  # per collector: 20 kills in all
ANALYSIS_TRIALS = 5  # kills of `forgetwatch analyse` filling in a file's stored tests
DOCS = 4000  # per task: 4 models x 2 tasks x 2 metrics -> 64k sample rows
RUNS = 30  # one page of the sync: 30 runs x 2 metrics x 50 steps
EXPERIMENT = "crash-safety"


def check_after_kill(db_file: Path, kill: Kill, trial: int) -> None:
    where = f"seed {SEED}, trial {trial}, killed after {kill.delay:.2f}s"
    if not db_file.exists():
        return  # killed before the first open: nothing to damage
    assert crash_driver.opens_both_ways(db_file) > 0, where
    assert crash_driver.duplicate_keys(db_file) == {}, where


@dataclass
class Scenario:
    """One collector's inputs, its clean reference file and how long a clean run takes."""

    args: list[str]  # driver arguments after the db path placeholder
    reference: Path
    duration: float


@pytest.fixture(scope="module")
def crash_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A dedicated server: the session one is shared, and these runs would leak into it."""
    root = tmp_path_factory.mktemp("crash-mlflow")
    crash_driver.seed_mlflow_store(root / "mlflow.db", EXPERIMENT, runs=RUNS, keys=2, steps=50)
    server = start_mlflow(root)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sync_scenario(crash_mlflow: Server, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    reference = tmp_path_factory.mktemp("sync-ref") / "clean.duckdb"
    args = ["sync", crash_mlflow.url, "{db}", EXPERIMENT]
    duration = timed_clean_run([a.format(db=reference) for a in args])
    return Scenario(args, reference, duration)


@pytest.fixture(scope="module")
def ingest_scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    root = tmp_path_factory.mktemp("ingest")
    crash_driver.write_lm_eval_outputs(root / "outputs", models=4, tasks=2, docs=DOCS)
    reference = root / "clean.duckdb"
    outputs = root / "outputs"
    args = ["ingest", "{db}", "--suite", str(outputs / "suite.yaml"), str(outputs)]
    duration = timed_clean_run([a.format(db=reference) for a in args])
    return Scenario(args, reference, duration)


def rerun(scenario: Scenario, db_file: Path) -> None:
    """The user's recovery: run the same collector again, in-process this time."""
    if scenario.args[0] == "sync":
        from forgetwatch.collectors import mlflow_runs

        report = mlflow_runs.sync(scenario.args[1], db_file, experiments=[EXPERIMENT])
    else:
        from forgetwatch.collectors import lm_eval_results
        from forgetwatch.suite import load_suite

        report = lm_eval_results.ingest(
            scenario.args[4:], db_file, suite=load_suite(scenario.args[3])
        )
    assert report.ok, report.summary()


def trial(scenario: Scenario, tmp_path: Path, number: int) -> Kill:
    rng = random.Random(f"{SEED}-{scenario.args[0]}-{number}")
    db_file = tmp_path / "killed.duckdb"
    kill = run_and_kill(
        [a.format(db=db_file) for a in scenario.args], rng.uniform(0, scenario.duration)
    )
    check_after_kill(db_file, kill, number)
    rerun(scenario, db_file)
    where = f"seed {SEED}, trial {number}, killed after {kill.delay:.2f}s"
    assert crash_driver.duplicate_keys(db_file) == {}, where
    assert crash_driver.table_differences(db_file, scenario.reference) == {}, where
    return kill


@pytest.mark.slow
@pytest.mark.parametrize("number", range(TRIALS))
def test_kill9_during_sync_then_resync_converges(
    sync_scenario: Scenario, tmp_path: Path, number: int
) -> None:
    trial(sync_scenario, tmp_path, number)


@pytest.mark.slow
@pytest.mark.parametrize("number", range(TRIALS))
def test_kill9_during_ingest_then_reingest_converges(
    ingest_scenario: Scenario, tmp_path: Path, number: int
) -> None:
    trial(ingest_scenario, tmp_path, number)


@pytest.fixture(scope="module")
def unanalysed(ingest_scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The ingest reference with its stored tests removed, as a file written before
    the analysis step existed: ``forgetwatch analyse`` must fill it in."""
    import duckdb

    from forgetwatch import analysis

    start = tmp_path_factory.mktemp("analyse") / "unanalysed.duckdb"
    shutil.copy(ingest_scenario.reference, start)
    with duckdb.connect(str(start)) as con:
        for table in analysis.TABLES:
            con.execute(f"DELETE FROM {table}")
    args = ["analyse", "{db}"]
    probe = start.with_name("probe.duckdb")
    shutil.copy(start, probe)
    duration = timed_clean_run([a.format(db=probe) for a in args])
    return Scenario(args, start, duration)


@pytest.mark.slow
@pytest.mark.parametrize("number", range(ANALYSIS_TRIALS))
def test_kill9_during_analysis_then_rerun_converges(
    unanalysed: Scenario, ingest_scenario: Scenario, tmp_path: Path, number: int
) -> None:
    rng = random.Random(f"{SEED}-analyse-{number}")
    db_file = tmp_path / "killed.duckdb"
    shutil.copy(unanalysed.reference, db_file)
    kill = run_and_kill(
        [a.format(db=db_file) for a in unanalysed.args], rng.uniform(0, unanalysed.duration)
    )
    check_after_kill(db_file, kill, number)
    from forgetwatch import analysis

    analysis.refresh(db_file)  # the recovery: the next sync, ingest or analyse
    where = f"seed {SEED}, trial {number}, killed after {kill.delay:.2f}s"
    assert crash_driver.duplicate_keys(db_file) == {}, where
    assert crash_driver.table_differences(db_file, ingest_scenario.reference) == {}, where


def test_reference_files_hold_data(sync_scenario: Scenario, ingest_scenario: Scenario) -> None:
    """The clean runs the trials compare against really collected something."""
    import duckdb

    with duckdb.connect(str(sync_scenario.reference), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (RUNS,)
        assert con.execute("SELECT count(*) FROM run_metrics").fetchone() == (RUNS * 2 * 50,)
    with duckdb.connect(str(ingest_scenario.reference), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM evals").fetchone() == (4,)
        assert con.execute("SELECT count(*) FROM samples").fetchone() == (4 * 2 * DOCS * 2,)
        # Three adapters paired with their base, two suite-less tasks each.
        assert con.execute("SELECT count(*) FROM analysis_state").fetchone() == (4,)
