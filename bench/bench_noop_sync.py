"""A no-op ``forgetwatch sync`` of a 1,000-run store, end to end, as ratios to baselines
measured in the same run.

``bench/world.py`` writes a world through MLflow's own client (``--runs`` runs with
the HF Trainer's params and histories, plus lm-eval outputs for ``--models``
evaluated models). The benchmark syncs it once and ingests the evals (so the
stored analysis is real), then times, as fresh processes, each the median of
``--repeat`` runs:

a. ``python -c pass``: the interpreter's own start-up;
b. ``python -c "import mlflow"``: what any sync through MLflow's client pays first;
c. ``python -c "import pandas"``;
d. ``forgetwatch sync`` with nothing changed (the target: at most 1 s for 1,000 runs);
e. ``forgetwatch sync --full``: the same store read in full (a full sweep), for scale.

    python bench/bench_noop_sync.py [--runs 1000 --models 12 --repeat 5]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import world  # noqa: E402

TARGET_S = 1.0


def wall(cmd: Sequence[str], env: dict[str, str]) -> tuple[float, str]:
    """Seconds one run of ``cmd`` takes, start to exit, and its stdout; a failure stops."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def median_wall(cmd: Sequence[str], env: dict[str, str], repeat: int) -> tuple[float, str]:
    runs = [wall(cmd, env) for _ in range(repeat)]
    return statistics.median(s for s, _ in runs), runs[-1][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--models", type=int, default=12, help="evaluated models (lm-eval)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    env.pop("MLFLOW_TRACKING_URI", None)
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-noop-") as tmp:
        started = time.perf_counter()
        info = world.build(
            Path(tmp) / "world", runs=args.runs, bases=3, models=args.models, tasks=6, docs=40
        )
        print(f"world: {info.runs:,} runs, {info.metric_points:,} points, {info.evals} evals "
              f"in {time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
        fw = [py, "-m", "forgetwatch"]
        db = ["--db", str(Path(tmp) / "fw.duckdb")]
        sync = [*fw, "sync", "--tracking-uri", info.tracking_uri, *db]
        first_s, _ = wall(sync, env)
        suite = ["--suite", str(info.suite_path)]
        ingest_s, _ = wall([*fw, "ingest", str(info.lm_eval_dir), *suite, *db], env)
        wall(sync, env)  # the ingest's links settle; from here on nothing changes
        rows = [
            (f"{label}. python -c {code!r}", median_wall([py, "-c", code], env, args.repeat)[0])
            for label, code in (("a", "pass"), ("b", "import mlflow"), ("c", "import pandas"))
        ]
        noop_s, noop_out = median_wall(sync, env, args.repeat)
        full_s, _ = median_wall([*sync, "--full"], env, max(1, args.repeat // 2))
    rows += [
        (f"d. forgetwatch sync, no-op ({args.runs:,} runs)", noop_s),
        (f"e. forgetwatch sync --full ({args.runs:,} runs)", full_s),
    ]
    base, mlflow_s = rows[0][1], rows[1][1]
    print(f"\nfirst sync {first_s:.1f} s, ingest of {info.evals} evals {ingest_s:.1f} s")
    print(f"no-op output: {' | '.join(noop_out.strip().splitlines())}")
    print(f"\n{'command':<44} {'seconds':>8} {'x python':>9} {'x import mlflow':>16}")
    for name, seconds in rows:
        print(f"{name:<44} {seconds:>8.3f} {seconds / base:>9.1f} {seconds / mlflow_s:>16.2f}")
    verdict = "met" if noop_s <= TARGET_S else "MISSED"
    print(f"target: no-op re-sync <= {TARGET_S:.0f} s: {noop_s:.2f} s ({verdict})")


if __name__ == "__main__":
    main()
