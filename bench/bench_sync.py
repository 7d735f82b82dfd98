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

With ``--store sqlite`` there is no server: a local ``sqlite:///`` tracking URI is
seeded in bulk (``seed_sqlite_store``: 10,000 runs x 10 keys x 26 steps = 2.6M
points, 20 params each, a few LoggedModels and a registered version) and the same
run measures

a. **baseline**: ``get_metric_history`` per (run, key) through that store, sampled
   and extrapolated as above;
e. **full sync**: ``mlflow_runs.sync`` of the tracking URI into a fresh DuckDB file
   (absolute time and ratio to (a); ``--profile N`` prints its N costliest calls);
f. **re-syncs** with nothing changed, incremental and full sweep.

Target: (e) at most 60 s.

    python bench/bench_sync.py [--runs 1000 --metrics 10 --steps 1000]
    python bench/bench_sync.py --runs 40 --metrics 4 --steps 200   # smoke run
    python bench/bench_sync.py --store sqlite [--runs 10000 --metrics 10 --steps 26]
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
from forgetwatch.collectors import mlflow_runs, mlflow_structure  # noqa: E402
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


def seed_sqlite_store(store: Path, args: argparse.Namespace) -> list[tuple[str, str]]:
    """A local ``sqlite:///`` store of ``--runs`` runs, written in bulk (no server at all).

    MLflow's client creates the schema, the experiments, a few LoggedModels and a
    registered version, so those tables hold what MLflow writes; runs, tags, params,
    metrics and latest_metrics are then inserted in bulk with the columns MLflow
    fills (``create_run`` through a sqlite store costs ~20 ms a run). One run in a
    hundred is still RUNNING. Returns (experiment name, run id) per run.
    """
    from mlflow.entities import LoggedModelStatus

    client = MlflowClient(f"sqlite:///{store}")
    now = int(time.time() * 1000)
    per_exp = max(1, args.rest_runs)
    names = [f"bench-{e}" for e in range((args.runs + per_exp - 1) // per_exp)]
    art = store.parent / "artifacts"
    exp_ids = [client.create_experiment(n, artifact_location=str(art / n)) for n in names]
    rng = random.Random(0)
    run_ids = [f"{rng.getrandbits(128):032x}" for _ in range(args.runs)]
    con = sqlite3.connect(store, timeout=60)
    con.execute("PRAGMA synchronous = OFF")
    with con:
        con.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
            "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
            "artifact_uri, experiment_id) VALUES (?, ?, 'UNKNOWN', '', '', 'bench', ?, ?, ?, "
            "'', 'active', ?, ?)",
            (
                (
                    run_id,
                    f"run-{i:05d}",
                    "RUNNING" if i % 100 == 99 else "FINISHED",
                    start,
                    None if i % 100 == 99 else start + 3_600_000,
                    str(art / names[i // per_exp] / run_id / "artifacts"),
                    int(exp_ids[i // per_exp]),
                )
                for i, run_id in enumerate(run_ids)
                for start in [now - random.Random(i).randint(DAY_MS, 30 * DAY_MS)]
            ),
        )
        con.executemany(
            "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
            (
                (key, value, run_id)
                for i, run_id in enumerate(run_ids)
                for key, value in (("mlflow.runName", f"run-{i:05d}"), ("team", "nlp"))
            ),
        )
        con.executemany(
            "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
            (
                (key, value, run_id)
                for i, run_id in enumerate(run_ids)
                for key, value in _params(i, args.params)
            ),
        )
        _insert_points(con, run_ids, args.metrics, args.steps, now)
    con.close()
    for i in range(min(args.logged_models, args.runs)):
        model = client.create_logged_model(
            exp_ids[i // per_exp], name=f"checkpoint-{(i + 1) * 10}", source_run_id=run_ids[i]
        )
        client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        if i == 0:
            client.create_registered_model("bench-model")
            client.create_model_version(
                "bench-model", model.artifact_location, run_ids[i], model_id=model.model_id
            )
    return [(names[i // per_exp], run_id) for i, run_id in enumerate(run_ids)]


def _params(index: int, count: int) -> list[tuple[str, str]]:
    """What an HF Trainer run logs, in miniature: the base, where it wrote, and settings."""
    fixed = [
        ("_name_or_path", "/models/base"),
        ("output_dir", f"/outputs/run-{index:05d}"),
        ("learning_rate", f"{index}e-5"),
    ]
    return fixed + [(f"setting_{p}", str(p * index)) for p in range(max(0, count - len(fixed)))]


def _insert_points(
    con: sqlite3.Connection, run_ids: list[str], keys: int, steps: int, now: int
) -> None:
    """Every run's ``keys`` x ``steps`` points and their latest point, as MLflow stores them."""
    con.executemany(
        "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
        "VALUES (?, ?, ?, ?, ?, 0)",
        (
            (f"metric_{k}", 1.0 / (s + 1 + k), now + s, run_id, s)
            for run_id in run_ids
            for k in range(keys)
            for s in range(steps)
        ),
    )
    con.executemany(
        "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
        "VALUES (?, ?, ?, ?, 0, ?)",
        (
            (f"metric_{k}", 1.0 / (steps + k), now + steps - 1, steps - 1, run_id)
            for run_id in run_ids
            for k in range(keys)
        ),
    )


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
    inner = mlflow_structure.sync_structure

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            STRUCTURE_SECONDS.append(time.perf_counter() - started)

    mlflow_structure.sync_structure = timed  # type: ignore[assignment]


def _points(path: Path) -> int:
    with db.connect(path, read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM run_metrics").fetchone()[0])


def _count(path: Path, table: str) -> int:
    with db.connect(path, read_only=True) as con:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _profiled(fn, top: int):  # type: ignore[no-untyped-def]
    """``fn()`` under cProfile when ``top`` > 0, printing the ``top`` costliest calls."""
    if top <= 0:
        return fn()
    import cProfile
    import pstats

    profile = cProfile.Profile()
    result = profile.runcall(fn)
    pstats.Stats(profile).sort_stats("cumulative").print_stats(top)
    return result


def bench_sqlite(args: argparse.Namespace) -> None:
    """(e) A full sync of a local ``sqlite:///`` tracking URI, and its baseline, in one run."""
    total = args.runs * args.metrics * args.steps
    _time_structure()
    with tempfile.TemporaryDirectory(prefix="bench-sync-sqlite-") as tmp:
        root = Path(tmp)
        store = root / "mlflow.db"
        seed_s, runs = _timed(lambda: seed_sqlite_store(store, args))
        print(f"seeded {args.runs:,} runs, {total:,} points in {seed_s:.0f} s", flush=True)
        uri = f"sqlite:///{store}"
        base_rate = baseline(MlflowClient(uri), runs, args.metrics, args.sample)  # type: ignore[arg-type]
        path = root / "full.duckdb"
        full_s, first = _timed(lambda: _profiled(lambda: mlflow_runs.sync(uri, path), args.profile))
        full_structure = STRUCTURE_SECONDS[-1]
        points, stored_runs = _points(path), _count(path, "runs")
        again_s, again = _timed(lambda: mlflow_runs.sync(uri, path))
        sweep_s, sweep = _timed(lambda: mlflow_runs.sync(uri, path, full=True))
    assert (points, stored_runs) == (total, args.runs), (points, stored_runs)
    assert first.inserted == args.runs, first.summary()  # type: ignore[attr-defined]
    rate = points / full_s
    print(f"\n{'path':<44} {'points':>12} {'seconds':>9} {'points/s':>10} {'x baseline':>10}")
    for name, seconds in (
        ("a. get_metric_history per key (baseline)", total / base_rate),
        ("e. full sync of a sqlite:/// tracking URI", full_s),
    ):
        print(
            f"{name:<44} {total:>12,} {seconds:>9.1f} {total / seconds:>10,.0f} "
            f"{total / seconds / base_rate:>10.1f}"
        )
    print(f"   (a) timed on {args.sample} random keys; its total is extrapolated from that rate.")
    print(f"   (e) {args.runs:,} runs, {full_structure:.1f} s of it in sync_structure")
    for label, seconds, report in (
        ("incremental", again_s, again),
        ("full sweep", sweep_s, sweep),
    ):
        print(
            f"f. re-sync, nothing changed ({label}): {seconds:.2f} s -> "
            f"{report.summary().splitlines()[0]}"
        )  # type: ignore[attr-defined]
    print(f"targets: full sync <= 60 s: {full_s:.1f} s ({rate / base_rate:.1f}x baseline)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--store",
        choices=("server", "sqlite"),
        default="server",
        help="server: an http mlflow server (a-d); sqlite: a sqlite:/// tracking URI (e-f)",
    )
    parser.add_argument("--runs", type=int, help="default 1000 (server), 10000 (sqlite)")
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--steps", type=int, help="default 1000 (server), 26 (sqlite)")
    parser.add_argument("--sample", type=int, default=200, help="baseline: keys timed")
    parser.add_argument("--rest-runs", type=int, default=100, help="runs per experiment (c)")
    parser.add_argument("--params", type=int, default=20, help="params per run (sqlite)")
    parser.add_argument("--logged-models", type=int, default=20, help="LoggedModels (sqlite)")
    parser.add_argument("--profile", type=int, default=0, help="cProfile (e): top N calls")
    args = parser.parse_args()
    # A SIGTERM (e.g. `timeout`) still stops the server through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sqlite_mode = args.store == "sqlite"
    args.runs = args.runs or (10_000 if sqlite_mode else 1000)
    args.steps = args.steps or (26 if sqlite_mode else 1000)
    if sqlite_mode:
        bench_sqlite(args)
    else:
        bench_server(args)


def bench_server(args: argparse.Namespace) -> None:
    """(a)-(d) against an http ``mlflow server``."""
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
