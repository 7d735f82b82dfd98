"""MLflow sync speed against a real ``mlflow server``, as ratios to a baseline from the same run.

Starts ``mlflow server`` (sqlite backend, one worker, 127.0.0.1) in a temporary
folder and seeds it fast: experiments and runs (name, tags, start time) are
created through MLflow's client over http, one ``create_run`` each; then params,
end times and metric points are written straight into the server's sqlite
``params``, ``runs``, ``metrics`` and ``latest_metrics`` tables. Logging points
through the client (``log_batch``) runs at ~3k points/s, so 10M points would
take ~45 minutes to seed.

Runs get start times spread over the past 30 days, as in a store that has
collected runs for a while (a re-sync's windows then hold only recent runs).

Measured in the same run:

a. **baseline**: ``MlflowClient.get_metric_history`` per (run, key), one call
   after another, the way MLflow's API offers histories. At ~8k points/s all
   points would take many minutes, so it is timed on a random sample of keys
   (``--sample``) and its total time is extrapolated from that rate;
b. **full sync**: ``mlflow_runs.sync`` from the server (REST metadata, histories
   from the backend store) into a fresh DuckDB file;
c. **REST-only sync**: the same, histories over REST (concurrent
   ``get_metric_history``), on one experiment's runs (``--rest-runs``);
d. **re-sync**: ``mlflow_runs.sync`` again into (b)'s file, with nothing changed.

Targets: (b) at least 5x the baseline's points/s; (d) at most 1 s for 1000 runs.

    python bench/bench_sync.py [--runs 1000 --metrics 10 --steps 1000]
    python bench/bench_sync.py --runs 40 --metrics 4 --steps 200   # smoke run
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

from mlflow.tracking import MlflowClient  # noqa: E402

from forgetwatch import db  # noqa: E402
from forgetwatch.collectors import mlflow_runs  # noqa: E402
from tests.conftest import start_mlflow  # noqa: E402

DAY_MS = 86_400_000


def _create_run(client: MlflowClient, exp: str, index: int, now: int) -> str:
    start = now - random.Random(index).randint(DAY_MS, 30 * DAY_MS)
    tags = {"team": "nlp"}
    return client.create_run(
        exp, start_time=start, tags=tags, run_name=f"run-{index:05d}"
    ).info.run_id


def seed(client: MlflowClient, store: Path, args: argparse.Namespace) -> list[tuple[str, str]]:
    """Experiments of ``--rest-runs`` runs each; returns (experiment name, run id) per run."""
    now = int(time.time() * 1000)
    per_exp = max(1, args.rest_runs)
    names = [f"bench-{e}" for e in range((args.runs + per_exp - 1) // per_exp)]
    exp_ids = [client.create_experiment(name) for name in names]
    with ThreadPoolExecutor(4) as pool:
        run_ids = list(
            pool.map(lambda i: _create_run(client, exp_ids[i // per_exp], i, now), range(args.runs))
        )
    runs = [(names[i // per_exp], run_id) for i, run_id in enumerate(run_ids)]
    _write_rows(store, run_ids, args.metrics, args.steps, now)
    return runs


def _write_rows(store: Path, run_ids: list[str], keys: int, steps: int, now: int) -> None:
    """Params, the end of each run and its metric rows, straight into the server's tables
    (see the module docstring for why): one create_run request per run is all the
    seeding asks of the server."""
    con = sqlite3.connect(store, timeout=60)
    con.execute("PRAGMA synchronous = OFF")
    with con:
        for i, run_id in enumerate(run_ids):
            con.executemany(
                "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                [("_name_or_path", "/models/base", run_id), ("learning_rate", f"{i}e-5", run_id)],
            )
            con.execute(
                "UPDATE runs SET status = 'FINISHED', end_time = start_time + 3600000 "
                "WHERE run_uuid = ?",
                [run_id],
            )
            for k in range(keys):
                key = f"metric_{k}"
                con.executemany(
                    "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                    "VALUES (?, ?, ?, ?, ?, 0)",
                    ((key, 1.0 / (s + 1 + k), now + s, run_id, s) for s in range(steps)),
                )
                con.execute(
                    "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                    "VALUES (?, ?, ?, ?, 0, ?)",
                    [key, 1.0 / (steps + k), now + steps - 1, steps - 1, run_id],
                )
    con.close()


def _timed(fn) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def baseline(client: MlflowClient, runs: list[tuple[str, str]], keys: int, sample: int) -> float:
    """Points/s of one get_metric_history call after another, on ``sample`` random keys."""
    rng = random.Random(0)
    pairs = [(rng.choice(runs)[1], f"metric_{rng.randrange(keys)}") for _ in range(sample)]
    seconds, points = _timed(lambda: sum(len(client.get_metric_history(r, k)) for r, k in pairs))
    return points / seconds  # type: ignore[operator]


STRUCTURE_SECONDS: list[float] = []


def _time_structure() -> None:
    """Record how long each sync spends in the structure collector (LoggedModels,
    registered versions, artifacts), so the re-sync figure can be split."""
    inner = mlflow_runs.sync_structure

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            STRUCTURE_SECONDS.append(time.perf_counter() - started)

    mlflow_runs.sync_structure = timed  # type: ignore[assignment]


def _points(path: Path) -> int:
    with db.connect(path, read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM run_metrics").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=200, help="baseline: keys timed")
    parser.add_argument("--rest-runs", type=int, default=100, help="runs per experiment (c)")
    args = parser.parse_args()
    # A SIGTERM (e.g. `timeout`) still stops the server through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    total = args.runs * args.metrics * args.steps
    _time_structure()

    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        root = Path(tmp)
        server = start_mlflow(root)
        try:
            client = MlflowClient(server.url)
            seed_s, runs = _timed(lambda: seed(client, root / "mlflow.db", args))
            print(f"seeded {args.runs} runs, {total:,} points in {seed_s:.0f} s", flush=True)
            base_rate = baseline(client, runs, args.metrics, args.sample)  # type: ignore[arg-type]
            store = f"sqlite:///{root / 'mlflow.db'}"
            full_db, rest_db = root / "full.duckdb", root / "rest.duckdb"
            full_s, _ = _timed(
                lambda: mlflow_runs.sync(server.url, full_db, backend_store_uri=store)
            )
            full_points = _points(full_db)
            rest_exp = runs[0][0]  # type: ignore[index]
            rest_s, _ = _timed(
                lambda: mlflow_runs.sync(server.url, rest_db, experiments=[rest_exp])
            )
            rest_points = _points(rest_db)
            resync_s, report = _timed(
                lambda: mlflow_runs.sync(server.url, full_db, backend_store_uri=store)
            )
        finally:
            server.stop()

    assert full_points == total, (full_points, total)
    rows = [
        ("a. get_metric_history per key (baseline)", total, total / base_rate, base_rate),
        ("b. full sync, backend-store histories", full_points, full_s, full_points / full_s),
        ("c. sync, REST histories (one experiment)", rest_points, rest_s, rest_points / rest_s),
    ]
    print(f"\n{'path':<44} {'points':>12} {'seconds':>9} {'points/s':>10} {'x baseline':>10}")
    for name, points, seconds, rate in rows:
        print(f"{name:<44} {points:>12,} {seconds:>9.1f} {rate:>10,.0f} {rate / base_rate:>10.1f}")
    print(f"   (a) timed on {args.sample} random keys; its total is extrapolated from that rate.")
    print(
        f"d. re-sync, nothing changed ({args.runs} runs): {resync_s:.2f} s, of which "
        f"{STRUCTURE_SECONDS[-1]:.2f} s in sync_structure -> {report.summary()}"  # type: ignore[attr-defined]
    )
    print(
        f"targets: full sync >= 5x baseline: {full_points / full_s / base_rate:.1f}x; "
        f"re-sync <= 1 s: {resync_s:.2f} s"
    )


if __name__ == "__main__":
    main()
