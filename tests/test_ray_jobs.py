"""Eval jobs on a real local Ray head: a tiny-model eval end to end, cancel, a failing model,
a job pending for a GPU, an unreachable address, and Ray missing.

The head is ``ray start --head --block`` on 127.0.0.1 (dashboard and Jobs API on a
free loopback port, one CPU, no GPU) in its own process group, stopped with it
(``tests.procs``). Jobs run the real worker (``python -m forgetwatch.evals.job_main
--job-dir``) through Ray's Jobs API; the job folders sit next to the test database,
a path the head (same machine) sees at the same place, as shared storage would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from forgetwatch import db
from forgetwatch.errors import BadInputError
from forgetwatch.evals import backends, jobs
from forgetwatch.evals.backends import Placement
from tests.procs import Server, cancel_active_jobs, free_port, start_server
from tests.test_jobs import TASKS, counts, spec_for, wait_for

ROOT = Path(__file__).resolve().parent.parent
needs_ray = pytest.mark.skipif(not backends.ray_installed(), reason="no forgetwatch[ray]")


@pytest.fixture(scope="module")
def ray_head() -> Iterator[Server]:
    """A real single-node Ray cluster on loopback; the whole process group ends with it."""
    if not backends.ray_installed():
        pytest.skip("forgetwatch[ray] not installed")
    # Ray's socket paths must stay under 107 characters: a short folder of its own.
    temp = Path(tempfile.mkdtemp(prefix="fwray", dir="/tmp"))
    port, dashboard = free_port(), free_port()
    bin_dir = Path(sys.executable).parent
    cmd = [
        str(bin_dir / "ray"), "start", "--head", "--block",
        "--node-ip-address", "127.0.0.1", "--port", str(port),
        "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
        "--num-cpus", "1", "--num-gpus", "0", "--temp-dir", str(temp),
    ]  # fmt: skip
    server = start_server(
        cmd,
        url=f"http://127.0.0.1:{dashboard}",
        health_path="/api/version",
        log=temp / "head.log",
        # The job's `python` is this venv's, as a cluster's image would have forgetwatch.
        env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "RAY_USAGE_STATS_ENABLED": "0"},
        cwd=temp,
        timeout=120,
    )
    yield server
    server.stop()
    for _ in range(5):  # a dying raylet may still write its last log lines
        shutil.rmtree(temp, ignore_errors=True)
        if not temp.exists():
            break
        time.sleep(0.5)


@pytest.fixture
def ray_db(demo_db: Path, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "ray.duckdb"
    shutil.copy(demo_db, path)
    yield path
    cancel_active_jobs(path)


@pytest.fixture
def one_task_suite(tmp_path: Path) -> Path:
    """One cheap task, as in test_jobs: cancel and failure tests start fast."""
    path = tmp_path / "arith.yaml"
    path.write_text(
        f"name: arith\ninclude_path: {TASKS}\n"
        "tasks:\n  - {task: fw_arithmetic, capability: knowledge, metric: acc}\n"
    )
    return path


def on(head: Server, **resources: float) -> Placement:
    return backends.placement("ray", head.url, **resources)


def backend_columns(path: Path, job_id: str) -> tuple:
    with db.connect(path, read_only=True) as con:
        row = con.execute(
            "SELECT backend, launched_by, backend_address FROM jobs WHERE job_id = ?", [job_id]
        ).fetchone()
    assert row is not None
    return row


@pytest.mark.slow
def test_ray_job_runs_reports_progress_and_ingests(quick_world, ray_head, ray_db) -> None:
    before = counts(ray_db)
    spec = spec_for(quick_world.base_model_dir, "offline", limit=2, allow_code_exec=True)
    started = time.monotonic()
    job_id = jobs.submit(spec, ray_db, launched_by="ada@example.org", where=on(ray_head))
    seen: list[tuple[str, str, float]] = []

    def finished() -> bool:
        job = jobs.get_job(job_id, ray_db)
        seen.append((job.status, job.stage, job.progress))
        return job.status not in jobs.ACTIVE

    wait_for(finished, timeout=300)
    job = jobs.get_job(job_id, ray_db)
    print(f"ray job end to end: {time.monotonic() - started:.1f} s (running {job.elapsed_s:.1f} s)")
    assert job.status == "succeeded", job.error
    assert job.backend == "ray" and job.launched_by == "ada@example.org"
    assert backend_columns(ray_db, job_id) == ("ray", "ada@example.org", ray_head.url)
    evaluating = ("loglikelihood", "generate_until")
    assert any(s == "running" and st.startswith(evaluating) for s, st, _ in seen), seen
    assert any(0 < fraction < 1 for _, _, fraction in seen), seen
    assert counts(ray_db)["evals"] == before["evals"] + 1  # ingested here, on success
    assert "FORGETWATCH_PROGRESS" in job.log_tail(100_000)  # the log came back from Ray


@pytest.mark.slow
def test_ray_cancel_stops_the_job(quick_world, ray_head, ray_db, one_task_suite) -> None:
    before = counts(ray_db)
    spec = spec_for(quick_world.base_model_dir, one_task_suite)
    job_id = jobs.submit(spec, ray_db, where=on(ray_head))
    wait_for(lambda: jobs.get_job(job_id, ray_db).status == "running", timeout=120)
    assert jobs.cancel(job_id, ray_db)
    job = jobs.get_job(job_id, ray_db)
    assert job.status == "cancelled" and "stop_job" in (job.error or ""), job.error
    from forgetwatch.evals import ray_backend

    assert ray_backend.poll(job_id, ray_head.url).status == "STOPPED"
    assert counts(ray_db) == before
    assert not jobs.cancel(job_id, ray_db)


@pytest.mark.slow
def test_ray_failing_model_fails_with_the_log_tail(ray_head, ray_db, one_task_suite, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # passes validation, fails in transformers
    before = counts(ray_db)
    job_id = jobs.submit(spec_for(broken, one_task_suite, limit=2), ray_db, where=on(ray_head))
    job = jobs.wait(job_id, ray_db, poll_s=0.5)
    assert job.status == "failed"
    assert job.error and "Ray reports the job failed" in job.error and "Log tail" in job.error
    assert "Traceback" in job.error  # the worker's own traceback, read back from Ray's logs
    assert counts(ray_db) == before


@pytest.mark.slow
def test_ray_job_without_a_free_gpu_is_pending_with_the_reason(ray_head, ray_db, quick_world):
    spec = spec_for(quick_world.base_model_dir, "offline", limit=2, allow_code_exec=True)
    job_id = jobs.submit(spec, ray_db, where=on(ray_head, gpus=1, cpus=0))
    time.sleep(2)
    job = jobs.get_job(job_id, ray_db)
    assert job.status == "queued"
    assert job.stage.startswith("pending: waiting for 1 GPU"), job.stage
    assert jobs.cancel(job_id, ray_db)
    assert jobs.get_job(job_id, ray_db).status == "cancelled"


@pytest.mark.slow
def test_a_lost_cluster_fails_its_jobs_within_5_s(ray_head, ray_db, quick_world) -> None:
    """Last of the head's tests: it stops the head (the module's fixture is then done)."""
    spec = spec_for(quick_world.base_model_dir, "offline", limit=2, allow_code_exec=True)
    job_id = jobs.submit(spec, ray_db, where=on(ray_head, gpus=1, cpus=0))  # stays pending
    assert jobs.get_job(job_id, ray_db).status == "queued"
    ray_head.stop()
    started = time.monotonic()
    job = jobs.get_job(job_id, ray_db)
    assert time.monotonic() - started < 5
    assert job.status == "failed" and "did not answer" in (job.error or ""), job.error
    assert "Log tail" in (job.error or "")


@needs_ray
def test_unreachable_ray_fails_the_job_within_5_s(tmp_path: Path) -> None:
    from forgetwatch.evals import ray_backend

    path = tmp_path / "fw.duckdb"
    spec = jobs.JobSpec(pretrained=str(tmp_path), suite="offline")
    started = time.monotonic()
    with pytest.raises(ray_backend.RayUnavailableError, match="did not answer"):
        jobs.submit(spec, path, where=backends.placement("ray", f"127.0.0.1:{free_port()}"))
    assert time.monotonic() - started < 5
    (job,) = jobs.list_jobs(path)
    assert job.status == "failed" and "RAY_ADDRESS" in (job.error or "")


def test_placement_checks_its_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert backends.placement() == backends.LOCAL
    with pytest.raises(BadInputError, match="apply to the ray"):
        backends.placement("local", gpus=1)
    monkeypatch.setenv("FORGETWATCH_JOB_BACKEND", "slurm")
    with pytest.raises(BadInputError, match="FORGETWATCH_JOB_BACKEND='slurm'"):
        backends.placement()
    if backends.ray_installed():
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
        with pytest.raises(BadInputError, match="needs the cluster's address"):
            backends.placement("ray")
        where = backends.placement("ray", "head:8265", gpus=2)
        assert (where.address, where.num_gpus, where.num_cpus) == ("http://head:8265", 2, 1)


def test_ray_backend_without_ray_says_how_to_install(tmp_path: Path) -> None:
    """``forgetwatch eval --backend ray`` where Ray is missing: exit 2 and the install line.

    Ray is installed in the test venv, so a stand-in ``ray`` package without its Jobs
    API shadows it for this one subprocess: the one way to see what a user without the
    extra sees, short of a second virtual environment.
    """
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "FORGETWATCH_JOB_BACKEND": "ray"}
    proc = subprocess.run(
        [sys.executable, "-m", "forgetwatch", "eval", "--db", str(tmp_path / "fw.duckdb"),
         "--model", str(model), "--allow-code-exec"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'forgetwatch[ray]'" in proc.stderr
    assert "Traceback" not in proc.stderr
