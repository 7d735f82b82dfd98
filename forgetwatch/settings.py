"""Every setting forgetwatch reads, declared once, with its type.

Each ``Setting`` names its environment variable, default, help text and kind.
The CLI prints this table in ``--help``; code reads values through ``get``
(text), ``integer`` and ``number``, which parse and check the value, so
``FORGETWATCH_LOCK_TIMEOUT=abc`` fails with an error that names the variable
and says what to write, never a bare ``ValueError``. MLflow's own variables
(``MLFLOW_TRACKING_URI`` and friends) are reused, not renamed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from forgetwatch.errors import BadInputError


@dataclass(frozen=True)
class Setting:
    env: str
    default: str
    help: str
    kind: str = "text"  # text, int or float; numbers must be >= ``minimum``
    minimum: float | None = None


SETTINGS: dict[str, Setting] = {
    "db": Setting(
        "FORGETWATCH_DB",
        "forgetwatch.duckdb",
        "DuckDB file that collectors write and the dashboard reads.",
    ),
    "tracking_uri": Setting(
        "MLFLOW_TRACKING_URI",
        "",
        "MLflow tracking URI to sync from (http://host:5000, sqlite:///mlflow.db, ...).",
    ),
    "mlflow_backend_uri": Setting(
        "FORGETWATCH_MLFLOW_BACKEND_URI",
        "",
        "The MLflow server's sqlite:/// backend store, read read-only for fast metric "
        "histories (unset: histories over REST).",
    ),
    "sync_slack_minutes": Setting(
        "FORGETWATCH_SYNC_SLACK_MINUTES",
        "10",
        "Minutes an incremental sync reaches back before its watermarks, for client clocks.",
        kind="float",
        minimum=0,
    ),
    "full_sweep_hours": Setting(
        "FORGETWATCH_FULL_SWEEP_HOURS",
        "24",
        "Hours between full sweeps that notice deleted and restored MLflow runs.",
        kind="float",
        minimum=0,
    ),
    "history_threads": Setting(
        "FORGETWATCH_HISTORY_THREADS",
        "8",
        "Concurrent get_metric_history calls when histories are read over REST.",
        kind="int",
        minimum=1,
    ),
    "demo_dir": Setting(
        "FORGETWATCH_DEMO_DIR",
        "demo-workspace",
        "Folder where `forgetwatch demo` builds the embedded demo world.",
    ),
    "suite": Setting(
        "FORGETWATCH_SUITE",
        "offline",
        "Suite (bundled name or YAML path) that maps lm-eval tasks to capabilities.",
    ),
    "mlflow_timeout": Setting(
        "FORGETWATCH_MLFLOW_TIMEOUT",
        "30",
        "Seconds one MLflow request may take during a sync (unless MLFLOW_HTTP_REQUEST_TIMEOUT "
        "is set).",
        kind="int",
        minimum=0,
    ),
    "mlflow_retries": Setting(
        "FORGETWATCH_MLFLOW_RETRIES",
        "1",
        "Retries of a failed MLflow request during a sync (unless "
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES is set).",
        kind="int",
        minimum=0,
    ),
    "lock_timeout": Setting(
        "FORGETWATCH_LOCK_TIMEOUT",
        "30",
        "Seconds to wait for another process's DuckDB lock before giving up.",
        kind="float",
        minimum=0,
    ),
    "allow_code_exec": Setting(
        "FORGETWATCH_ALLOW_CODE_EXEC",
        "0",
        "Set to 1 to allow tasks that execute model-written code (sandboxed subprocess).",
    ),
    "budget": Setting(
        "FORGETWATCH_BUDGET",
        "",
        "Forgetting budget YAML for `forgetwatch check` (default: the bundled example).",
    ),
    "stats_seed": Setting(
        "FORGETWATCH_STATS_SEED",
        "20240229",
        "Seed of the paired bootstrap, so the same data always gives the same CI and p-value.",
        kind="int",
        minimum=0,
    ),
    "bootstrap_resamples": Setting(
        "FORGETWATCH_BOOTSTRAP_RESAMPLES",
        "4999",
        "Resamples of each paired bootstrap (CI and p-value of a continuous delta).",
        kind="int",
        minimum=100,
    ),
    "job_backend": Setting(
        "FORGETWATCH_JOB_BACKEND",
        "local",
        "Where eval jobs run: local (a detached process on this machine) or ray (a Ray "
        "cluster's Jobs API at RAY_ADDRESS; needs forgetwatch[ray]).",
    ),
    "ray_address": Setting(
        "RAY_ADDRESS",
        "",
        "The Ray cluster's dashboard address for job submission (http://head:8265).",
    ),
    "ray_num_gpus": Setting(
        "FORGETWATCH_RAY_GPUS",
        "0",
        "GPUs each Ray eval job requests (entrypoint_num_gpus) unless --gpus says otherwise.",
        kind="float",
        minimum=0,
    ),
    "ray_num_cpus": Setting(
        "FORGETWATCH_RAY_CPUS",
        "1",
        "CPUs each Ray eval job requests (entrypoint_num_cpus) unless --cpus says otherwise.",
        kind="float",
        minimum=0,
    ),
    "ray_runtime_env": Setting(
        "FORGETWATCH_RAY_RUNTIME_ENV",
        "",
        "Extra Ray runtime_env for eval jobs, as JSON (pip, env_vars, ...), merged with "
        "forgetwatch's own.",
    ),
    "jobs_dir": Setting(
        "FORGETWATCH_JOBS_DIR",
        "",
        "Folder of job files (spec, progress, log, output); on Ray a path that workers see at "
        "the same place (unset: next to the database).",
    ),
    "auth": Setting(
        "FORGETWATCH_AUTH",
        "",
        "How the dashboard knows its users: proxy (a trusted reverse proxy's header) or oidc "
        "(st.login); required with --allow-remote (unset: none, loopback only).",
    ),
    "auth_header": Setting(
        "FORGETWATCH_AUTH_HEADER",
        "X-Forwarded-Email",
        "With FORGETWATCH_AUTH=proxy: the request header that names the signed-in user.",
    ),
    "trusted_proxies": Setting(
        "FORGETWATCH_TRUSTED_PROXIES",
        "127.0.0.1,::1",
        "With FORGETWATCH_AUTH=proxy: comma-separated addresses or networks of the proxies "
        "whose user header is trusted.",
    ),
    "operators": Setting(
        "FORGETWATCH_OPERATORS",
        "",
        "Comma-separated users (names or emails) who may launch or cancel evals and start "
        "syncs when auth is on; everyone else is a viewer.",
    ),
}


def get(name: str) -> str:
    """Value of setting ``name``: its environment variable, else its default."""
    setting = SETTINGS[name]
    return os.environ.get(setting.env, setting.default)


def _parsed(name: str, parse: type[int] | type[float], what: str) -> float:
    setting = SETTINGS[name]
    raw = get(name).strip()
    try:
        value = parse(raw)
    except ValueError:
        value = None
    if value is None or value != value or (setting.minimum is not None and value < setting.minimum):
        floor = "" if setting.minimum is None else f" >= {setting.minimum:g}"
        raise BadInputError(
            f"{setting.env}={raw!r} is not {what}{floor}",
            f"Set {setting.env} to {what}{floor} (for example {setting.env}={setting.default}), "
            f"or unset it for the default {setting.default}. It sets: {setting.help}",
            where=setting.env,
        )
    return value


def integer(name: str) -> int:
    """Setting ``name`` as a whole number, checked; a bad value names its variable."""
    return int(_parsed(name, int, "a whole number"))


def number(name: str) -> float:
    """Setting ``name`` as a number, checked; a bad value names its variable."""
    return float(_parsed(name, float, "a number"))


def choice(name: str, options: tuple[str, ...], explicit: str | None = None) -> str:
    """Setting ``name`` (or ``explicit``, a command-line value) as one of ``options``."""
    setting = SETTINGS[name]
    raw = (explicit if explicit is not None else get(name)).strip().lower()
    if raw not in options:
        raise BadInputError(
            f"{setting.env}={raw!r} is not one of {', '.join(options)}",
            f"Set {setting.env} to one of {', '.join(options)}. It sets: {setting.help}",
            where=setting.env,
        )
    return raw


def items(name: str) -> list[str]:
    """A comma-separated setting as its non-empty, stripped items."""
    return [item.strip() for item in get(name).split(",") if item.strip()]


def db_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The DuckDB file to use: an explicit ``--db`` wins over ``FORGETWATCH_DB``."""
    return Path(explicit) if explicit else Path(get("db"))


def code_exec_allowed() -> bool:
    """True only when the user explicitly opted in to running model-written code."""
    return get("allow_code_exec").strip().lower() in {"1", "true", "yes"}


def help_table() -> str:
    """The settings as text for ``--help`` epilogs."""
    rows = [f"  {s.env:<28} {s.help} (default: {s.default or 'unset'})" for s in SETTINGS.values()]
    return "environment:\n" + "\n".join(rows)


@contextmanager
def temporary_env(**values: str) -> Iterator[None]:
    """Set environment variables for a block, then restore them.

    Libraries we drive (the HF Trainer's MLflow callback, MLflow's HTTP client,
    the code sandbox) read their settings from the environment at call time.
    """
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
