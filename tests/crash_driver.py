"""Run one collector in a child process that a test (or bench) may SIGKILL at any moment.

Usage::

    python tests/crash_driver.py sync TRACKING_URI DB [EXPERIMENT]
    python tests/crash_driver.py ingest DB PATH...

The child prints ``ready`` once its imports are done, so the parent can time its
kill from the moment real work starts instead of guessing at interpreter
start-up. It imports only the collector it drives: start-up stays cheap enough
for dozens of trials on two cores.

The module also holds the helpers that make inputs big enough for a sync or an
ingest to take seconds (an MLflow store seeded with ``log_batch``, lm-eval-shaped
output folders), and the checks every trial runs on the database afterwards.
Those helpers import only the standard library at module level.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Wall-clock columns: when a row was written, not what was collected.
WALL_CLOCK = {
    "runs": ("synced_at",),
    "evals": ("ingested_at",),
    "sync_state": ("synced_at", "last_full_sweep", "detail"),
    "analysis_state": ("analysed_at",),
}
# Primary keys (enforced by DuckDB) and the natural keys of the key-less tables.
KEYS = {
    "schema_info": ("key",),
    "runs": ("run_id",),
    "run_metrics": ("run_id", "key", "step"),
    "run_metric_latest": ("run_id", "key"),
    "logged_models": ("logged_model_id",),
    "registered_versions": ("name", "version"),
    "models": ("model_id",),
    "evals": ("eval_id",),
    "scores": ("eval_id", "task", "metric", "filter"),
    "samples": ("eval_id", "task", "doc_id", "filter", "metric"),
    "suite_tasks": ("task",),
    "sync_state": ("source",),
    "jobs": ("job_id",),
    "analysis_state": ("model_id",),
    "task_tests": ("model_id", "task", "metric", "filter"),
    "capability_tests": ("model_id", "capability"),
    "settings_mismatches": ("model_id", "task", "setting"),
}


# --- inputs ---------------------------------------------------------------------------


def _model_args(m: int) -> str:
    """Model 0 is the base; the others are LoRA adapters on it, so each has a base to
    be paired with and an ingest ends with real analysis work."""
    if m == 0:
        return "pretrained=/models/model-0"
    return f"pretrained=/models/model-0,peft=/models/adapter-{m}"


def write_lm_eval_outputs(
    root: Path, *, models: int, tasks: int, docs: int, metrics: Sequence[str] = ("acc", "em")
) -> int:
    """lm-eval-shaped ``--output_path`` folders: one results file per model, one samples
    file per task. Returns the number of sample rows an ingest will store.

    The layout and keys follow lm-eval 0.4's EvaluationTracker output (see NOTES.md);
    only the values are synthetic, so any size can be made in seconds.
    """
    stamp = "2026-01-01T00-00-00.000000"
    for m in range(models):
        folder = root / f"__models__model-{m}"
        folder.mkdir(parents=True, exist_ok=True)
        names = [f"task_{t}" for t in range(tasks)]
        score = sum(1 for d in range(docs) if (d + m) % 3 != 0) / docs  # as the samples say
        results = {
            "results": {
                n: {"alias": n, **{f"{k},none": score for k in metrics}}
                | {f"{k}_stderr,none": "N/A" for k in metrics}
                for n in names
            },
            "n-samples": {n: {"original": docs, "effective": docs} for n in names},
            "higher_is_better": {n: dict.fromkeys(metrics, True) for n in names},
            "n-shot": dict.fromkeys(names, 0),
            "config": {"model": "hf", "model_args": _model_args(m), "limit": None},
            "lm_eval_version": "0.4.13",
            "task_hashes": {n: f"hash-{n}" for n in names},
            "date": 1767225600.0 + m,
        }
        (folder / f"results_{stamp}.json").write_text(json.dumps(results))
        for n in names:
            with (folder / f"samples_{n}_{stamp}.jsonl").open("w") as out:
                for d in range(docs):
                    line = {
                        "doc_id": d,
                        "filter": "none",
                        "target": "A",
                        "filtered_resps": ["A" if (d + m) % 3 else "B"],
                        "doc_hash": f"d{d}",
                        "prompt_hash": f"p{d}",
                        "target_hash": "t",
                        **{k: int((d + m) % 3 != 0) for k in metrics},
                    }
                    out.write(json.dumps(line) + "\n")
    capabilities = ["target", "knowledge", "code", "instructions", "hallucination"]
    suite = ["name: crash", "description: the crash world's tasks", "tasks:"] + [
        f"  - {{task: task_{t}, capability: {capabilities[t % 5]}, metric: {metrics[0]}}}"
        for t in range(tasks)
    ]
    (root / "suite.yaml").write_text("\n".join(suite) + "\n")
    return models * tasks * docs * len(metrics)


def seed_mlflow_store(store: Path, experiment: str, *, runs: int, keys: int, steps: int) -> int:
    """Fill a sqlite MLflow backend (``store``) with ``runs`` finished runs of
    ``keys`` metrics x ``steps`` points, before ``mlflow server`` is started on it.

    MLflow's client creates the schema, the experiment and one template run; the
    other runs are cloned from it in SQL. Logging each run through the client
    costs ~0.2 s a run on these machines, cloning costs nothing, and the sync
    under test still reads every run through the server's REST API.
    Returns the number of metric points stored.
    """
    import sqlite3
    import uuid

    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    exp_id = client.create_experiment(experiment, artifact_location=str(store.parent / "artifacts"))
    now = int(time.time() * 1000)
    template = client.create_run(exp_id, start_time=now, run_name="crash-0000").info.run_id
    points = [
        Metric(f"metric_{k}", float(s) / (k + 1), now + s, s)
        for k in range(keys)
        for s in range(steps)
    ]
    params = [Param("_name_or_path", "/models/base"), Param("learning_rate", "0.001")]
    client.log_batch(template, params=params)
    for start in range(0, len(points), 1000):
        client.log_batch(template, metrics=points[start : start + 1000])
    client.set_terminated(template, end_time=now + 10_000)
    with sqlite3.connect(store) as con:
        for r in range(1, runs):
            new = uuid.uuid4().hex
            con.execute(
                "INSERT INTO runs SELECT ?, ?, source_type, source_name, entry_point_name, "
                "user_id, status, start_time + ?, end_time + ?, source_version, "
                "lifecycle_stage, replace(artifact_uri, run_uuid, ?), experiment_id, "
                "deleted_time FROM runs WHERE run_uuid = ?",
                [new, f"crash-{r:04d}", r, r, new, template],
            )
            for table in ("metrics", "latest_metrics", "params"):
                cols = [c[1] for c in con.execute(f"PRAGMA table_info({table})")]
                picks = ", ".join("?" if c == "run_uuid" else c for c in cols)
                con.execute(
                    f"INSERT INTO {table} ({', '.join(cols)}) SELECT {picks} FROM {table} "
                    "WHERE run_uuid = ?",
                    [new, template],
                )
            con.execute(
                "INSERT INTO tags (key, value, run_uuid) SELECT key, "
                "CASE key WHEN 'mlflow.runName' THEN ? ELSE value END, ? "
                "FROM tags WHERE run_uuid = ?",
                [f"crash-{r:04d}", new, template],
            )
    return runs * keys * steps


# --- killing a child ---------------------------------------------------------------


@dataclass
class Kill:
    """What one killed child did: whether the kill landed before it finished, and when."""

    delay: float
    killed: bool
    output: str


def run_and_kill(args: list[str], delay: float, *, timeout: float = 300) -> Kill:
    """Start the driver, wait for its ``ready``, sleep ``delay`` s, then SIGKILL its group."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        first = proc.stdout.readline() if proc.stdout else ""
        assert first.strip() == "ready", f"driver failed to start: {first}{proc.stdout.read()}"
        time.sleep(delay)
        killed = proc.poll() is None
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
        rest = proc.stdout.read() if proc.stdout else ""
        return Kill(delay, killed, rest)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def timed_clean_run(args: list[str]) -> float:
    """Run the driver to completion; returns seconds from ``ready`` to exit."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    out = proc.stdout.read()
    assert proc.wait(timeout=600) == 0, out
    proc.stdout.close()
    return time.monotonic() - started


# --- checks ---------------------------------------------------------------------------


def duplicate_keys(path: Path) -> dict[str, int]:
    """Rows per table whose key occurs more than once (should be empty after any crash)."""
    import duckdb

    dupes: dict[str, int] = {}
    with duckdb.connect(str(path), read_only=True) as con:
        for table, key in KEYS.items():
            cols = ", ".join(key)
            n = con.execute(f"SELECT count(*) - count(DISTINCT ({cols})) FROM {table}").fetchone()[
                0
            ]
            if n:
                dupes[table] = int(n)
    return dupes


def table_differences(actual: Path, expected: Path) -> dict[str, tuple[int, int]]:
    """Tables whose contents differ (as multisets, wall-clock columns left out).

    Returns ``{table: (rows only in actual, rows only in expected)}``; empty means
    the two files hold exactly the same data. Compared in SQL, so millions of
    sample rows never reach Python.
    """
    import duckdb

    diffs: dict[str, tuple[int, int]] = {}
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{actual}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{expected}' AS e (READ_ONLY)")
        for table in KEYS:
            skip = WALL_CLOCK.get(table)
            cols = f"* EXCLUDE ({', '.join(skip)})" if skip else "*"
            # The generation counts write-opens, which a killed and resumed run has more of;
            # analysis_inputs is a cache (the inputs' digest when a refresh last found
            # nothing stale), written only by a refresh that happened to find nothing to do.
            where = (
                " WHERE key NOT IN ('generation', 'analysis_inputs')"
                if table == "schema_info" else ""
            )  # fmt: skip
            a = f"SELECT {cols} FROM a.{table}{where}"
            e = f"SELECT {cols} FROM e.{table}{where}"
            extra = con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {e})").fetchone()[0]
            missing = con.execute(f"SELECT count(*) FROM ({e} EXCEPT ALL {a})").fetchone()[0]
            if extra or missing:
                diffs[table] = (int(extra), int(missing))
    return diffs


def opens_both_ways(path: Path) -> int:
    """Open read-write (as a collector would) and read-only (as a page would).

    Returns the number of tables the read-only open sees; raises if either fails.
    """
    from forgetwatch import db

    with db.connect(path, timeout=5) as con:
        con.execute("CHECKPOINT")
    with db.connect(path, read_only=True, timeout=5) as con:
        return len(con.execute("SHOW TABLES").fetchall())


# --- child entry point ----------------------------------------------------------------


def _main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    mode = argv[0]
    if mode == "sync":
        from forgetwatch.collectors import mlflow_runs

        uri, db_file, *experiments = argv[1:]
        print("ready", flush=True)
        report = mlflow_runs.sync(uri, db_file, experiments=experiments or None)
    elif mode == "ingest":
        from forgetwatch.collectors import lm_eval_results
        from forgetwatch.suite import load_suite

        db_file, *paths = argv[1:]  # ingest DB [--suite FILE] PATH...
        suite = None
        if paths[:1] == ["--suite"]:
            suite, paths = load_suite(paths[1]), paths[2:]
        print("ready", flush=True)
        report = lm_eval_results.ingest(paths, db_file, suite=suite)
    elif mode == "analyse":
        from forgetwatch import analysis

        (db_file,) = argv[1:]
        print("ready", flush=True)
        # One model per transaction, so a kill lands between batches as well as inside one.
        print(analysis.refresh(db_file, batch_size=1).summary(), flush=True)
        return 0
    else:
        print(f"unknown mode {mode!r}", file=sys.stderr)
        return 2
    print(report.summary(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
