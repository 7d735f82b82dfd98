"""Start-up cost of the ``forgetwatch`` command, as ratios to ``python -c pass`` in the same run.

Every figure is the median wall time of a fresh process, run as a user runs it:

a. **baseline**: ``python -c pass`` (the interpreter's own start-up);
b. ``forgetwatch --help``: the parser alone; heavy packages must stay unimported;
c. **no-op re-sync**: ``forgetwatch sync`` of a local ``sqlite:///`` store of ``--runs``
   runs (seeded in bulk by ``bench_sync.seed_sqlite_store``) into a database that
   already holds them all, so nothing is written but the watermarks.

Targets: (b) at most 0.5 s; (c) at most 1 s for 1,000 runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sync import seed_sqlite_store  # noqa: E402  (a sibling script, not a package)

FORGETWATCH = [sys.executable, "-m", "forgetwatch"]


def wall(cmd: Sequence[str], env: dict[str, str]) -> float:
    """Seconds one run of ``cmd`` takes, start to exit; a failing command stops the bench."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds


def median_wall(cmd: Sequence[str], env: dict[str, str], repeat: int) -> float:
    return statistics.median(wall(cmd, env) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs in the MLflow store")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per command")
    args = parser.parse_args()
    env = {**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    env.pop("MLFLOW_TRACKING_URI", None)
    base = median_wall([sys.executable, "-c", "pass"], env, args.repeat)
    help_s = median_wall([*FORGETWATCH, "--help"], env, args.repeat)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        store = Path(tmp) / "mlflow.db"
        seed = argparse.Namespace(
            runs=args.runs, rest_runs=100, params=20, metrics=10, steps=26, logged_models=20
        )
        seed_sqlite_store(store, seed)
        sync = [*FORGETWATCH, "sync", "--tracking-uri", f"sqlite:///{store}"]
        sync += ["--db", str(Path(tmp) / "fw.duckdb")]
        first_s = wall(sync, env)
        resync_s = median_wall(sync, env, args.repeat)
    print(f"\n{'command':<44} {'seconds':>8} {'x python -c pass':>17}")
    for name, seconds in (
        ("a. python -c pass (baseline)", base),
        ("b. forgetwatch --help", help_s),
        (f"c. forgetwatch sync, no-op ({args.runs:,} runs)", resync_s),
    ):
        print(f"{name:<44} {seconds:>8.3f} {seconds / base:>17.1f}")
    print(f"   first sync of the same store (not a target): {first_s:.2f} s")
    print(f"targets: --help <= 0.5 s: {help_s:.2f} s; no-op re-sync <= 1 s: {resync_s:.2f} s")


if __name__ == "__main__":
    main()
