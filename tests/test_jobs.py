"""Eval jobs for real: detached workers on the tiny model, progress, ingest, cancel, kill -9, queue.

Each test copies the session ``demo_db`` (other tests read it) and runs real
``python -m forgetwatch.evals.job_main`` processes; nothing is mocked.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from forgetwatch import db, queries
from forgetwatch.errors import BadInputError
from forgetwatch.evals import jobs, targets
from forgetwatch.suite import load_suite
from tests.procs import cancel_active_jobs

TASKS = Path(__file__).resolve().parent.parent / "evals" / "tasks"


@pytest.fixture
def job_db(demo_db: Path, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "jobs.duckdb"
    shutil.copy(demo_db, path)
    yield path
    cancel_active_jobs(path)


@pytest.fixture
def one_task_suite(tmp_path: Path) -> Path:
    """A user-written suite of one cheap task, so cancel/kill/queue tests start fast."""
    path = tmp_path / "arith.yaml"
    path.write_text(
        f"name: arith\ninclude_path: {TASKS}\n"
        "tasks:\n  - {task: fw_arithmetic, capability: knowledge, metric: acc}\n"
    )
    return path


def counts(path: Path) -> dict[str, int]:
    with db.connect(path, read_only=True) as con:
        return queries.db_summary(con)


def wait_for(check: Callable[[], bool], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def spec_for(model: Path, suite: str | Path, **options: object) -> jobs.JobSpec:
    return targets.prepare(str(model), load_suite(str(suite)), hub_ok=False, **options)


@pytest.mark.slow
def test_job_runs_detached_reports_progress_and_ingests(quick_world, job_db: Path) -> None:
    before = counts(job_db)
    spec = spec_for(quick_world.base_model_dir, "offline", limit=2, allow_code_exec=True)
    job_id = jobs.submit(spec, job_db)
    seen: list[tuple[str, float]] = []

    def finished() -> bool:
        job = jobs.get_job(job_id, job_db)
        seen.append((job.stage, job.progress))
        return job.status not in jobs.ACTIVE

    wait_for(finished)
    job = jobs.get_job(job_id, job_db)
    assert job.status == "succeeded", job.error
    assert job.progress == 1.0 and not (job.job_dir / "partial").exists()
    assert any(stage.startswith(("loglikelihood", "generate_until")) for stage, _ in seen), seen
    assert any(0 < fraction < 1 for _, fraction in seen), seen
    assert counts(job_db)["evals"] == before["evals"] + 1
    with db.connect(job_db, read_only=True) as con:
        model_ids = [r[0] for r in con.execute("SELECT model_id FROM evals").fetchall()]
        assert not queries.runs_overview(con).empty
    assert model_ids.count(str(quick_world.base_model_dir.resolve())) >= 2


def test_bad_inputs_are_refused_before_launch(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="Field model") as err:
        targets.validate_model(str(tmp_path / "missing"))
    assert "config.json" in err.value.next_step
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no config.json"):
        targets.validate_model(str(tmp_path / "empty"))
    with pytest.raises(BadInputError, match="adapter_config.json"):
        targets.validate_adapter(str(tmp_path / "empty"))
    assert targets.validate_model("org/name") == "org/name"
    with pytest.raises(BadInputError, match="hub is unreachable"):
        targets.prepare("org/name", load_suite("offline"), hub_ok=False)
    with pytest.raises(BadInputError, match="allow code execution"):
        targets.check_suite(load_suite("offline"), allow_code_exec=False, hub_ok=False)
    with pytest.raises(BadInputError, match="mmlu"):
        targets.check_suite(load_suite("standard"), allow_code_exec=True, hub_ok=False)


@pytest.mark.slow
def test_broken_model_fails_and_ingests_nothing(job_db: Path, one_task_suite: Path, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # passes validation, fails in transformers
    before = counts(job_db)
    job_id = jobs.submit(spec_for(broken, one_task_suite, limit=2), job_db)
    job = jobs.wait(job_id, job_db, poll_s=0.5)
    assert job.status == "failed"
    assert job.error and "Log tail" in job.error
    assert counts(job_db) == before
    assert not (job.job_dir / "output").exists() and not (job.job_dir / "partial").exists()


def _running(job_id: str, path: Path, stage_prefix: str = "") -> Callable[[], bool]:
    def check() -> bool:
        job = jobs.get_job(job_id, path)
        return job.status == "running" and job.stage.startswith(stage_prefix)

    return check


@pytest.mark.slow
def test_cancel_kills_the_whole_group(quick_world, job_db: Path, one_task_suite: Path) -> None:
    job_id = jobs.submit(spec_for(quick_world.base_model_dir, one_task_suite), job_db)
    wait_for(_running(job_id, job_db, "loading"))
    pid = jobs.get_job(job_id, job_db).pid
    assert pid and jobs.group_members(pid)
    assert jobs.cancel(job_id, job_db)
    job = jobs.get_job(job_id, job_db)
    assert job.status == "cancelled"
    assert jobs.group_members(pid) == []
    assert not jobs.cancel(job_id, job_db)  # already finished


@pytest.mark.slow
def test_sigkill_mid_eval_is_detected_and_nothing_partial_is_ingested(
    quick_world, job_db: Path, one_task_suite: Path
) -> None:
    before = counts(job_db)
    spec = spec_for(quick_world.base_model_dir, one_task_suite, batch_size=1)
    job_id = jobs.submit(spec, job_db)
    wait_for(_running(job_id, job_db, "loglikelihood"))
    pid = jobs.get_job(job_id, job_db).pid
    assert pid
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: jobs.get_job(job_id, job_db).status != "running", timeout=30)
    job = jobs.get_job(job_id, job_db)
    assert job.status == "failed"
    assert job.error and "ended without reporting" in job.error
    assert counts(job_db) == before
    assert not (job.job_dir / "output").exists()


@pytest.mark.slow
def test_second_job_queues_until_the_first_ends(
    quick_world, job_db: Path, one_task_suite: Path
) -> None:
    spec = spec_for(quick_world.base_model_dir, one_task_suite, limit=2)
    first = jobs.submit(spec, job_db)
    second = jobs.submit(spec, job_db)
    # Many launchers racing (threads here; other processes take the same flock) start nothing.
    racers = [threading.Thread(target=jobs.start_next, args=(job_db,)) for _ in range(4)]
    for thread in racers:
        thread.start()
    for thread in racers:
        thread.join()
    statuses = {j.job_id: j.status for j in jobs.list_jobs(job_db)}
    assert statuses == {first: "running", second: "queued"}
    jobs.cancel(first, job_db)  # the canceller starts the next queued job
    assert jobs.get_job(second, job_db).status == "running"
    assert jobs.wait(second, job_db, poll_s=0.5).status == "succeeded"
