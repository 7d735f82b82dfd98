"""Run model-written Python in a locked-down subprocess, only when the user opted in.

Code tasks score a completion by executing it against tests. That code is
untrusted, so it never runs in our process: it runs as ``python -I`` (isolated
mode: no site dirs, no PYTHON* env) in a fresh temp folder, with a minimal
environment, a wall-time limit, ``resource`` limits on memory, CPU time, open
files and file size, and, where ``unshare -rn`` works, without network. It is
defence in depth for small tests, not a security boundary against a determined
attacker.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from forgetwatch import settings
from forgetwatch.errors import EvalError

OPT_IN_HINT = (
    "set FORGETWATCH_ALLOW_CODE_EXEC=1 (or pass allow_code_exec=True) to allow executing "
    "model-written code in the sandboxed subprocess, or drop the code tasks from the suite"
)


@dataclass(frozen=True)
class Limits:
    wall_s: float = 5.0
    cpu_s: int = 5
    memory_mb: int = 512
    max_files: int = 32
    file_size_mb: int = 8


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    returncode: int | None
    timed_out: bool
    output: str


def require_opt_in() -> None:
    """Raise unless the user explicitly allowed executing model-written code."""
    if not settings.code_exec_allowed():
        raise EvalError("Refusing to execute model-written code without opt-in", OPT_IN_HINT)


@functools.cache
def _no_network_prefix() -> tuple[str, ...]:
    """``unshare -rn`` if it works here (a new user + network namespace), else nothing."""
    exe = shutil.which("unshare")
    if not exe:
        return ()
    try:
        ok = subprocess.run([exe, "-rn", "true"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return (exe, "-rn") if ok else ()


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: SIGKILL the child if its parent dies (e.g. a cancelled eval job).

    The child has its own process group, so killing the job's group misses it;
    without this, code that sleeps would outlive the job (RLIMIT_CPU can't stop it).
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _apply_limits(limits: Limits) -> None:
    """Runs in the child between fork and exec (so limits bind only the child)."""
    _die_with_parent()
    mem = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.max_files, limits.max_files))
    size = limits.file_size_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_python(code: str, limits: Limits | None = None) -> SandboxResult:
    """Execute ``code``; ``passed`` means it exited 0 within the limits."""
    require_opt_in()
    limits = limits or Limits()
    with tempfile.TemporaryDirectory(prefix="fw-sandbox-") as tmp:
        Path(tmp, "main.py").write_text(code, encoding="utf-8")
        argv = [*_no_network_prefix(), sys.executable, "-I", "-B", "main.py"]
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": tmp, "TMPDIR": tmp}
        proc = subprocess.Popen(
            argv,
            cwd=tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout kills all of it
            preexec_fn=functools.partial(_apply_limits, limits),  # noqa: PLW1509
        )
        try:
            out, _ = proc.communicate(timeout=limits.wall_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            timed_out = True
    text = out.decode("utf-8", errors="replace")[-2000:]
    ok = not timed_out and proc.returncode == 0
    return SandboxResult(passed=ok, returncode=proc.returncode, timed_out=timed_out, output=text)
