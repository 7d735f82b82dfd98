"""Eval jobs: a queue in the ``jobs`` table, detached worker processes, progress files, cancel.

Design, forced by DuckDB's one-process-per-file lock (see forgetwatch.db):

* **State lives in the ``jobs`` row**, written only on state changes: queued at
  submit, running at launch, succeeded / failed / cancelled at the end. The
  page and ``forgetwatch jobs`` find jobs there after a reload or restart.
* **Progress lives in a file**, ``<db stem>-jobs/<job_id>/progress.json``, which
  the worker rewrites atomically after every chunk of requests; readers never
  touch the database for it. Next to it: ``spec.json`` (what to run, so the
  worker starts without the database), ``job.log`` (stdout + stderr),
  ``partial/`` (lm-eval output while running) and ``output/`` (renamed from
  ``partial/`` only on success, then ingested: nothing partial is ingested).
* **Workers are detached**: ``python -m forgetwatch.evals.job_main JOB_ID --db PATH`` from an
  argument list, ``start_new_session=True``, so a page reload or a closed
  browser does not stop them, and cancel kills the whole process group.
* **One job runs at a time** (``MAX_RUNNING``). ``start_next`` runs under an
  ``flock`` on ``<db stem>-jobs/launch.lock``, so launchers in any process (the
  dashboard, the CLI, a finishing worker) never start two jobs at once.
* **Dead workers are detected on read**: a ``running`` row whose pid is gone (or a
  zombie, or reused by another program) is marked failed with the log tail.
* **Backends** (``forgetwatch.evals.backends``): the above is ``local``, the default.
  A ``ray`` job is submitted to a Ray cluster instead (``forgetwatch.evals.ray_backend``);
  Ray queues and runs it, and ``list_jobs`` reads its state from Ray. The same row,
  job folder, progress, cancel and auto-ingest serve both. Each row records its
  backend and who launched it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from forgetwatch import db, settings
from forgetwatch.errors import BadInputError, DatabaseMissingError, ForgetwatchError
from forgetwatch.evals import backends
from forgetwatch.evals.backends import LOCAL, Placement

MAX_RUNNING = 1
ACTIVE = ("queued", "running")
LOG_TAIL_CHARS = 3000
# A worker whose folder the launcher may not see (Ray) also prints each progress update.
LOG_PROGRESS_ENV = "FORGETWATCH_JOB_LOG_PROGRESS"
PROGRESS_MARK = "FORGETWATCH_PROGRESS "


@dataclass(frozen=True)
class JobSpec:
    """What one job evaluates and how; stored as the row's ``spec`` JSON and in spec.json."""

    pretrained: str
    suite: str  # absolute path of the suite YAML
    adapter: str | None = None
    label: str = ""
    limit: int | None = None
    num_fewshot: int | None = None
    batch_size: int = 16
    device: str = "cpu"
    dtype: str = "float32"
    allow_code_exec: bool = False
    trust_remote_code: bool = False
    # full: every item; quick: the quick check (forgetwatch.evals.quick_job);
    # repeat-base: the base again under another batch size and seed (the noise floor).
    mode: str = "full"
    seed: int | None = None  # lm-eval's random / numpy / torch seeds (None: lm-eval's own)

    def model_args(self) -> str:
        """lm-eval ``hf`` model_args; collectors link results to runs by pretrained/peft."""
        args = f"pretrained={self.pretrained}"
        if self.adapter:
            args += f",peft={self.adapter}"
        args += f",dtype={self.dtype}"
        return args + (",trust_remote_code=True" if self.trust_remote_code else "")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> JobSpec:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Job:
    """A jobs row plus what its files say now, as the page and the CLI show it."""

    job_id: str
    status: str
    spec: JobSpec
    pid: int | None
    progress: float
    stage: str
    log_path: Path
    output_dir: Path
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    backend: str = "local"
    launched_by: str | None = None
    backend_address: str | None = None  # the Ray cluster it was submitted to

    @property
    def elapsed_s(self) -> float:
        if self.started_at is None:
            return 0.0
        return ((self.finished_at or _now()) - self.started_at).total_seconds()

    @property
    def job_dir(self) -> Path:
        return self.log_path.parent

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        return log_tail(self.log_path, chars)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def jobs_root(db_path: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding every job's files: ``FORGETWATCH_JOBS_DIR``, else next to the database."""
    if settings.get("jobs_dir").strip():
        return Path(settings.get("jobs_dir").strip()).resolve()
    db_file = settings.db_path(db_path).resolve()
    return db_file.parent / f"{db_file.stem}-jobs"


def log_tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    """The end of a log file (bytes, decoded leniently); empty if it does not exist."""
    with contextlib.suppress(OSError), path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - chars))
        return fh.read().decode("utf-8", errors="replace")
    return ""


def write_progress(job_dir: Path, **fields: Any) -> None:
    """Atomically replace progress.json, so readers never see half a file."""
    tmp = job_dir / "progress.json.tmp"
    tmp.write_text(json.dumps({**fields, "updated_at": time.time()}))
    os.replace(tmp, job_dir / "progress.json")
    if os.environ.get(LOG_PROGRESS_ENV):
        print(PROGRESS_MARK + json.dumps({**fields, "updated_at": time.time()}), flush=True)


def read_progress(job_dir: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, json.JSONDecodeError):
        return json.loads((job_dir / "progress.json").read_text())
    return {}


# --- SQL: every statement on the jobs table -------------------------------------------

COLUMNS = "job_id, spec, status, pid, progress, log_path, output_dir, error, created_at, " + (
    "started_at, finished_at, coalesce(backend, 'local'), launched_by, backend_address"
)
# Local rows only: the pid checks and the one-at-a-time queue are the local backend's.
LOCAL_ROWS = "coalesce(backend, 'local') = 'local'"


def _insert_job(
    con: duckdb.DuckDBPyConnection,
    job_id: str,
    spec: JobSpec,
    job_dir: Path,
    where: Placement = LOCAL,
    launched_by: str | None = None,
) -> None:
    con.execute(
        "INSERT INTO jobs (job_id, spec, status, progress, log_path, output_dir, created_at, "
        "backend, launched_by, backend_address) VALUES (?, ?, 'queued', 0, ?, ?, ?, ?, ?, ?)",
        [
            job_id, spec.to_json(), str(job_dir / "job.log"), str(job_dir / "output"), _now(),
            where.backend, launched_by, where.address,
        ],
    )  # fmt: skip


def _select_jobs(con: duckdb.DuckDBPyConnection, where: str = "", params: list | None = None):
    sql = f"SELECT {COLUMNS} FROM jobs {where} ORDER BY created_at DESC, job_id DESC"
    return con.execute(sql, params or []).fetchall()


def _mark_running(con: duckdb.DuckDBPyConnection, job_id: str, pid: int | None) -> None:
    con.execute(
        "UPDATE jobs SET status = 'running', pid = ?, started_at = ? WHERE job_id = ?",
        [pid, _now(), job_id],
    )


mark_running = _mark_running  # the Ray backend marks a job running when Ray starts it


def mark_finished(
    con: duckdb.DuckDBPyConnection,
    job_id: str,
    status: str,
    error: str | None = None,
) -> bool:
    """Move an active job to ``status``; False if something else already finished it."""
    row = con.execute(
        "UPDATE jobs SET status = ?, error = ?, finished_at = ?, "
        "progress = CASE WHEN ? = 'succeeded' THEN 1 ELSE progress END "
        "WHERE job_id = ? AND status IN ('queued', 'running') RETURNING job_id",
        [status, error, _now(), status, job_id],
    ).fetchone()
    return row is not None


# --- reading ------------------------------------------------------------------------


def _to_job(row: tuple) -> Job:
    job_id, spec, status, pid, progress, log_path, output_dir, error, created, started = row[:10]
    ended, backend, launched_by, address = row[10:14]
    job_dir = Path(log_path).parent
    stage = status
    if status == "running" or (status == "queued" and backend != "local"):
        info = read_progress(job_dir)
        progress = float(info.get("fraction", progress or 0.0))
        stage = str(info.get("stage", "starting"))
    return Job(
        job_id=job_id,
        status=status,
        spec=JobSpec.from_json(spec),
        pid=pid,
        progress=float(progress or 0.0),
        stage=stage,
        log_path=Path(log_path),
        output_dir=Path(output_dir),
        error=error,
        created_at=created,
        started_at=started,
        finished_at=ended,
        backend=backend,
        launched_by=launched_by,
        backend_address=address,
    )


def list_jobs(db_path: str | os.PathLike[str] | None = None) -> list[Job]:
    """All jobs, newest first; a running job whose process died is marked failed first."""
    try:
        with db.connect(db_path, read_only=True) as con:
            rows = _select_jobs(con)
    except (DatabaseMissingError, duckdb.CatalogException):
        return []  # no database, or one written before jobs existed: no jobs yet
    local_dead = any(
        r[2] == "running" and r[11] == "local" and not pid_alive(r[3], r[0]) for r in rows
    )
    on_ray = [_to_job(r) for r in rows if r[2] in ACTIVE and r[11] == "ray"]
    if local_dead:
        start_next(db_path)  # reconciles the dead job, then starts whatever is queued
    if on_ray:
        from forgetwatch.evals import ray_backend

        with _launch_lock(db_path):  # re-read under the lock: another reader may be done
            with db.connect(db_path, read_only=True) as con:
                active = _select_jobs(con, f"WHERE status IN {ACTIVE} AND backend = 'ray'")
            ray_backend.refresh([_to_job(r) for r in active], settings.db_path(db_path))
    if local_dead or on_ray:
        with db.connect(db_path, read_only=True) as con:
            rows = _select_jobs(con)
    return [_to_job(r) for r in rows]


def get_job(job_id: str, db_path: str | os.PathLike[str] | None = None) -> Job:
    for job in list_jobs(db_path):
        if job.job_id == job_id:
            return job
    raise BadInputError(f"No job {job_id!r}", "list jobs with `forgetwatch jobs`")


# --- processes ----------------------------------------------------------------------


def _proc_state(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) of ``pid`` from /proc, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[2])


def pid_alive(pid: int | None, job_id: str) -> bool:
    """True if ``pid`` is a live (not zombie) worker for ``job_id``."""
    if not pid:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if this process launched it
    state = _proc_state(pid)
    if state is None or state[0] in "ZX":
        return False
    with contextlib.suppress(OSError):
        return job_id.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return False


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        state = _proc_state(int(entry.name)) if entry.name.isdigit() else None
        if state and state[1] == pgid and state[0] not in "ZX":
            members.append(int(entry.name))
    return members


def _kill_group(pgid: int, grace_s: float = 5.0) -> None:
    """SIGTERM the group, then SIGKILL whatever is left after ``grace_s``."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pgid, os.WNOHANG)
            if not group_members(pgid):
                return
            time.sleep(0.1)


def _spawn(job_id: str, db_file: Path, job_dir: Path) -> int:
    cmd = [sys.executable, "-m", "forgetwatch.evals.job_main", job_id, "--db", str(db_file)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", settings.SETTINGS["db"].env: str(db_file)}
    with (job_dir / "job.log").open("ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=job_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the page; cancel kills the whole group
        )
    return proc.pid


@contextlib.contextmanager
def _launch_lock(db_path: str | os.PathLike[str] | None) -> Iterator[None]:
    """Serialise launch/cancel across threads and processes (the DB lock is too short-lived)."""
    root = jobs_root(db_path)
    root.mkdir(parents=True, exist_ok=True)
    with (root / "launch.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _reconcile(con: duckdb.DuckDBPyConnection) -> None:
    """Mark running jobs whose worker is gone as failed; runs inside a write connection."""
    for row in _select_jobs(con, f"WHERE status = 'running' AND {LOCAL_ROWS}"):
        job_id, pid, log_path = row[0], row[3], Path(row[5])
        if not pid_alive(pid, job_id):
            error = (
                f"The job process (pid {pid}) ended without reporting: it was killed "
                "(kill -9, out of memory) or crashed. Log tail:\n" + log_tail(log_path, 1500)
            )
            mark_finished(con, job_id, "failed", error)
            shutil.rmtree(log_path.parent / "partial", ignore_errors=True)


# --- actions ------------------------------------------------------------------------


def start_next(db_path: str | os.PathLike[str] | None = None) -> str | None:
    """Start the oldest queued job if fewer than ``MAX_RUNNING`` run; return its id."""
    db_file = settings.db_path(db_path).resolve()
    with _launch_lock(db_file), db.connect(db_file) as con:
        _reconcile(con)
        running = con.execute(
            f"SELECT count(*) FROM jobs WHERE status = 'running' AND {LOCAL_ROWS}"
        ).fetchone()
        queued = con.execute(
            f"SELECT job_id, log_path FROM jobs WHERE status = 'queued' AND {LOCAL_ROWS} "
            "ORDER BY created_at, job_id LIMIT 1"
        ).fetchone()
        if queued is None or (running and running[0] >= MAX_RUNNING):
            return None
        job_id, log_path = queued
        _mark_running(con, job_id, _spawn(job_id, db_file, Path(log_path).parent))
        return job_id


def submit(
    spec: JobSpec,
    db_path: str | os.PathLike[str] | None = None,
    *,
    launched_by: str | None = None,
    where: Placement | None = None,
) -> str:
    """Queue ``spec`` (already validated) and start it if nothing else runs; return its id.

    ``where`` defaults to the configured backend (``FORGETWATCH_JOB_BACKEND``); on Ray
    the job goes to the cluster at once, and a cluster that cannot take it leaves a
    failed row and raises its error. ``launched_by`` is recorded on the row.
    """
    where = where or backends.placement()
    if where.backend == "ray" and getattr(spec, "mode", "full") != "full":
        raise BadInputError(
            "Quick checks and base repeats run on the local job backend",
            "Run them with FORGETWATCH_JOB_BACKEND=local (or --backend local).",
            where="--backend",
        )
    job_id = f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    job_dir = jobs_root(db_path) / job_id
    job_dir.mkdir(parents=True)
    (job_dir / "spec.json").write_text(spec.to_json())
    write_progress(job_dir, stage="queued", fraction=0.0)
    with db.connect(db_path) as con:
        _insert_job(con, job_id, spec, job_dir, where, launched_by)
    if where.backend == "ray":
        _submit_to_ray(job_id, job_dir, where, launched_by, db_path)
    else:
        start_next(db_path)
    return job_id


def _submit_to_ray(
    job_id: str,
    job_dir: Path,
    where: Placement,
    launched_by: str | None,
    db_path: str | os.PathLike[str] | None,
) -> None:
    """Hand the job to Ray; if the cluster cannot take it, the row fails with the reason."""
    from forgetwatch.evals import ray_backend

    try:
        ray_backend.submit(job_id, job_dir, where, launched_by)
    except ForgetwatchError as exc:
        with db.connect(db_path) as con:
            mark_finished(con, job_id, "failed", exc.message)
        raise


def cancel(job_id: str, db_path: str | os.PathLike[str] | None = None) -> bool:
    """Cancel a queued or running job (killing its process group); False if already done."""
    job = get_job(job_id, db_path)
    if job.status not in ACTIVE:
        return False
    if job.backend == "ray":
        from forgetwatch.evals import ray_backend

        with _launch_lock(db_path):
            return ray_backend.cancel(job, settings.db_path(db_path))
    with _launch_lock(db_path):
        # Re-read under the lock (without list_jobs, which may take this lock itself):
        # a launcher may have started this queued job meanwhile.
        with db.connect(db_path, read_only=True) as con:
            job = next(_to_job(r) for r in _select_jobs(con) if r[0] == job_id)
        if job.status not in ACTIVE:
            return False
        if job.status == "running" and job.pid is not None and pid_alive(job.pid, job_id):
            _kill_group(job.pid)
        with db.connect(db_path) as con:
            done = mark_finished(con, job_id, "cancelled", "Cancelled by the user.")
    shutil.rmtree(job.job_dir / "partial", ignore_errors=True)
    start_next(db_path)
    return done


def wait(job_id: str, db_path: str | os.PathLike[str] | None = None, poll_s: float = 1.0) -> Job:
    """Block until ``job_id`` is no longer queued or running; return its final state."""
    while (job := get_job(job_id, db_path)).status in ACTIVE:
        time.sleep(poll_s)
    return job
