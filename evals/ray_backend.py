"""Eval jobs on a Ray cluster, through Ray's Jobs API (``JobSubmissionClient``).

Ray schedules; forgetwatch keeps the same ``jobs`` row, job folder, progress and
auto-ingest as the local backend:

* **Submit.** The entrypoint is ``python -m forgetwatch.evals.job_main JOB_ID
  --job-dir DIR``: lm-eval on the cluster, writing ``DIR/output``, never the
  database. The submission id is the job id; the resources are
  ``entrypoint_num_gpus`` / ``entrypoint_num_cpus``.
* **State on read.** ``refresh`` (called by ``jobs.list_jobs``) asks Ray for each
  active Ray job: pending stays ``queued`` with Ray's reason as its stage,
  running becomes ``running`` with the progress the worker writes (the shared
  ``progress.json``, else the last progress line in the job's logs), and a
  terminal status finishes the row: succeeded is ingested here (only then), failed
  keeps Ray's message and the log tail, stopped reads as cancelled.
* **Failures in 5 s.** Every request has a ``REQUEST_TIMEOUT_S`` timeout, so an
  unreachable address or a lost cluster fails the job with a clear message
  instead of hanging the page.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgetwatch import db, settings
from forgetwatch.errors import BadInputError, ForgetwatchError
from forgetwatch.evals import jobs
from forgetwatch.evals.backends import Placement

# Connecting gives up fast (an unreachable address or a dead head fails within 5 s); a
# live but busy head gets longer to answer a submit or a stop, and a poll that is slow
# to answer is retried on the next read instead of failing the job.
CONNECT_TIMEOUT_S = 3.0
SUBMIT_TIMEOUT_S = 60.0
POLL_TIMEOUT_S = 4.0
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class RayUnavailableError(ForgetwatchError):
    """The Ray cluster could not be reached, or refused the request."""


@dataclass(frozen=True)
class RayState:
    """What Ray says about one job now."""

    status: str  # PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED
    message: str
    logs: str


def _client(address: str, read_timeout_s: float = SUBMIT_TIMEOUT_S) -> Any:
    """A ``JobSubmissionClient`` whose requests time out (connect, then read)."""
    from ray.job_submission import JobSubmissionClient

    class TimedClient(JobSubmissionClient):
        def _do_request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", (CONNECT_TIMEOUT_S, read_timeout_s))
            return super()._do_request(method, endpoint, **kwargs)

    try:
        return TimedClient(address)
    except Exception as exc:  # noqa: BLE001 - requests, Ray and auth errors alike
        raise _unavailable(address, exc) from exc


def _unavailable(address: str, exc: BaseException) -> RayUnavailableError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return RayUnavailableError(
        f"The Ray cluster at {address} did not answer: {first[:300]}",
        "Check RAY_ADDRESS (the Ray dashboard, port 8265 by default) and that the cluster "
        "is up (`ray status` on the head node).",
        where=address,
    )


def entrypoint(job_id: str, job_dir: Path) -> str:
    """The shell command Ray runs: the job's own worker, in evaluate-only mode."""
    cmd = ["python", "-m", "forgetwatch.evals.job_main", job_id, "--job-dir", str(job_dir)]
    return shlex.join(cmd)


def runtime_env() -> dict[str, Any]:
    """forgetwatch's runtime env (unbuffered output, progress in the logs) plus the user's."""
    extra_text = settings.get("ray_runtime_env").strip()
    try:
        extra = json.loads(extra_text) if extra_text else {}
    except json.JSONDecodeError as exc:
        extra = None
        error: Exception | None = exc
    else:
        error = None if isinstance(extra, dict) else TypeError("not an object")
    if error is not None or not isinstance(extra, dict):
        raise BadInputError(
            f"FORGETWATCH_RAY_RUNTIME_ENV is not a JSON object: {error}",
            'Write a JSON object, e.g. {"pip": ["forgetwatch"], "env_vars": {"HF_HOME": "/data"}}',
            where="FORGETWATCH_RAY_RUNTIME_ENV",
        )
    env_vars = {"PYTHONUNBUFFERED": "1", jobs.LOG_PROGRESS_ENV: "1"}
    return {**extra, "env_vars": {**env_vars, **extra.get("env_vars", {})}}


def submit(job_id: str, job_dir: Path, where: Placement, launched_by: str | None) -> None:
    """Submit the job to Ray; raises ``RayUnavailableError`` if the cluster cannot take it."""
    assert where.address is not None
    client = _client(where.address)
    try:
        client.submit_job(
            entrypoint=entrypoint(job_id, job_dir),
            submission_id=job_id,
            runtime_env=runtime_env(),
            entrypoint_num_cpus=where.num_cpus,
            entrypoint_num_gpus=where.num_gpus,
            metadata={
                "forgetwatch_job": job_id,
                "launched_by": launched_by or "",
                "num_cpus": f"{where.num_cpus:g}",
                "num_gpus": f"{where.num_gpus:g}",
            },
        )
    except BadInputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(where.address, exc) from exc


class RaySlowError(ForgetwatchError):
    """The head accepted the connection but did not answer in time: ask again later."""


def poll(job_id: str, address: str) -> RayState:
    """Ray's status, its message (a pending job's reason) and the job's logs so far."""
    import requests

    client = _client(address, POLL_TIMEOUT_S)
    try:
        info = client.get_job_info(job_id)
        logs = client.get_job_logs(job_id)
    except requests.exceptions.ReadTimeout as exc:
        raise RaySlowError(
            f"The Ray cluster at {address} is slow to answer", where=address
        ) from exc
    except Exception as exc:  # noqa: BLE001
        if "does not exist" in str(exc):
            return RayState("FAILED", "the Ray cluster no longer knows this job (restarted?)", "")
        raise _unavailable(address, exc) from exc
    status = str(getattr(info.status, "value", info.status))
    message = info.message or ""
    if status == "PENDING":
        asked = info.metadata or {}
        message = (
            f"waiting for {asked.get('num_gpus', '0')} GPU and {asked.get('num_cpus', '1')} "
            f"CPU on the cluster. Ray says: {message}"
        )
    return RayState(status, message, logs or "")


def stop(job_id: str, address: str, wait_s: float = 5.0) -> str:
    """``stop_job``, then wait up to ``wait_s`` for Ray to report the job ended; its status."""
    client = _client(address)
    try:
        client.stop_job(job_id)
        deadline = time.monotonic() + wait_s
        while (status := str(client.get_job_status(job_id).value)) not in TERMINAL:
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    except Exception as exc:  # noqa: BLE001
        raise _unavailable(address, exc) from exc
    return status


# --- the launcher side: turn Ray's answers into the jobs row ---------------------------


def _progress_from_logs(job_dir: Path, logs: str) -> None:
    """Copy the newest progress line of the logs into progress.json, if it is newer."""
    lines = [ln for ln in logs.splitlines() if ln.startswith(jobs.PROGRESS_MARK)]
    if not lines:
        return
    try:
        latest = json.loads(lines[-1][len(jobs.PROGRESS_MARK) :])
    except json.JSONDecodeError:
        return
    if latest.get("updated_at", 0) > jobs.read_progress(job_dir).get("updated_at", 0):
        tmp = job_dir / "progress.json.tmp"
        tmp.write_text(json.dumps(latest))
        tmp.replace(job_dir / "progress.json")


def _failed(job: jobs.Job, why: str) -> str:
    return f"{why}\n\nLog tail:\n{jobs.log_tail(job.log_path, 1500)}"


def _apply(job: jobs.Job, state: RayState, db_path: str | Path) -> None:
    """Move one job's row (and files) to what Ray says; writes only on a change."""
    job.job_dir.mkdir(parents=True, exist_ok=True)
    if state.logs:
        job.log_path.write_text(state.logs)
    if state.status == "PENDING":
        jobs.write_progress(job.job_dir, stage=f"pending: {state.message}", fraction=0.0)
        return
    _progress_from_logs(job.job_dir, state.logs)
    if state.status == "RUNNING":
        if job.status == "queued":
            with db.connect(db_path) as con:
                jobs.mark_running(con, job.job_id, None)
        return
    if state.status == "SUCCEEDED":
        from forgetwatch.evals import job_main  # ingests: only when a job succeeded

        status, error = job_main.ingest_output(job.job_id, db_path)
    elif state.status == "STOPPED":
        status, error = "cancelled", "Stopped on the Ray cluster."
    else:
        status, error = "failed", _failed(job, f"Ray reports the job failed: {state.message}")
    with db.connect(db_path) as con:
        jobs.mark_finished(con, job.job_id, status, error)


def refresh(active: list[jobs.Job], db_path: str | Path) -> None:
    """Bring every active Ray job's row up to date; a cluster that does not answer fails it."""
    for job in active:
        address = job.backend_address or ""
        try:
            state = poll(job.job_id, address)
        except RaySlowError:
            continue  # the row keeps its state; the next read asks again
        except RayUnavailableError as exc:
            with db.connect(db_path) as con:
                jobs.mark_finished(con, job.job_id, "failed", _failed(job, exc.message))
            continue
        _apply(job, state, db_path)


def cancel(job: jobs.Job, db_path: str | Path) -> bool:
    """``stop_job`` on the cluster, then record the job as cancelled (the row says so)."""
    try:
        status = stop(job.job_id, job.backend_address or "")
    except RayUnavailableError as exc:
        with db.connect(db_path) as con:
            return jobs.mark_finished(con, job.job_id, "failed", _failed(job, exc.message))
    if status in ("SUCCEEDED", "FAILED"):  # it ended before the stop: record that instead
        _apply(job, poll(job.job_id, job.backend_address or ""), db_path)
        return False
    note = "Cancelled by the user (Ray stop_job"
    note += ")." if status == "STOPPED" else f"; Ray still reports {status})."
    with db.connect(db_path) as con:
        return jobs.mark_finished(con, job.job_id, "cancelled", note)
