"""Start real servers for tests in their own process group, and kill the whole group.

Servers (``mlflow server``, ``streamlit run``) fork workers; killing only the
parent leaves them behind. Each server here is a session leader, so one
``os.killpg`` ends it and every child, and nothing outlives the test suite.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running server process group and where to reach it."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        """Terminate the whole process group, then kill whatever is left."""
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                # Children may outlive the leader; sweep the group once more.
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                continue
            return


def start_server(
    cmd: Sequence[str],
    *,
    url: str,
    health_path: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 90,
    expect: str | None = None,
) -> Server:
    """Start ``cmd`` in a new session and poll ``url + health_path`` until it answers."""
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("wb")
    proc = subprocess.Popen(
        list(cmd),
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )
    server = Server(proc=proc, url=url, log=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            server.stop()
            raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(url + health_path, timeout=2) as resp:
                body = resp.read().decode(errors="replace")
                if resp.status == 200 and (expect is None or expect in body):
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"{cmd[0]} did not become healthy in {timeout}s:\n{server.log_tail()}")


def start_dashboard(db_path: Path, log: Path, *, theme: str | None = None) -> Server:
    """``streamlit run dashboard/app.py`` on a free loopback port, reading ``db_path``
    (in ``theme``, "light" or "dark", when given; else the project's config)."""
    root = Path(__file__).resolve().parent.parent
    port = free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(root / "dashboard" / "app.py"),
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        *(["--theme.base", theme] if theme else []),
    ]  # fmt: skip
    return start_server(
        cmd,
        url=f"http://127.0.0.1:{port}",
        health_path="/_stcore/health",
        expect="ok",
        log=log,
        env={"FORGETWATCH_DB": str(Path(db_path).resolve())},
        cwd=root,
    )


def cancel_active_jobs(db_path: Path) -> None:
    """Kill any eval job a failed test left running: workers are detached on purpose."""
    from forgetwatch.evals import jobs

    for job in jobs.list_jobs(db_path):
        if job.status in jobs.ACTIVE:
            jobs.cancel(job.job_id, db_path)
