"""How much does an eval job (the Evals button's code path) cost over a plain ``lm_eval`` call?

Per repetition, in alternating order, it times:

* **job**: ``targets.prepare`` + ``jobs.submit`` + ``jobs.wait``, i.e. a detached
  ``python -m forgetwatch.evals.job_main`` worker that evaluates through ``ProgressLM`` in
  chunks, writes progress files, moves its output into place and ingests it
  into a scratch DuckDB file; measured from submit until the row says succeeded;
* **cli**: ``python -m lm_eval`` with the same model, task, limit, batch size and
  ``--log_samples`` output, measured from start to exit.

It prints both medians and ``overhead = job / cli - 1`` (target <= 5%).

    python bench/bench_job_overhead.py [--model DIR] [--task fw_arithmetic] [--limit 40] [--reps 3]

Without ``--model`` it trains a small base model with ``forgetwatch.demo`` (~30 s)
into the temp folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from forgetwatch.evals import jobs, targets
from forgetwatch.suite import load_suite

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "evals" / "tasks"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def tiny_model(cache: Path) -> Path:
    """A small base model from the demo's own pretraining code, built once."""
    from forgetwatch.demo.build import docs_by_skill
    from forgetwatch.demo.tinymodel import PretrainPlan, build_base_model

    model = cache / "base-model"
    if not (model / "config.json").is_file():
        build_base_model(model, docs_by_skill(), PretrainPlan(steps=100, batch_size=32), print)
    return model


def time_job(model: Path, suite: Path, args: argparse.Namespace, work: Path) -> float:
    spec = targets.prepare(
        str(model), load_suite(str(suite)), hub_ok=False, limit=args.limit, batch_size=args.batch
    )
    start = time.perf_counter()
    job_id = jobs.submit(spec, work / "bench.duckdb")
    job = jobs.wait(job_id, work / "bench.duckdb", poll_s=0.1)
    elapsed = time.perf_counter() - start
    if job.status != "succeeded":
        raise SystemExit(f"job failed: {job.error}")
    return elapsed


def time_cli(model: Path, args: argparse.Namespace, work: Path) -> float:
    cmd = [
        sys.executable, "-m", "lm_eval",
        "--model", "hf",
        "--model_args", f"pretrained={model},dtype=float32",
        "--tasks", args.task,
        "--include_path", str(TASKS),
        "--limit", str(args.limit),
        "--batch_size", str(args.batch),
        "--device", "cpu",
        "--output_path", str(work / "cli-out"),
        "--log_samples",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description="eval job overhead vs the lm_eval CLI")
    parser.add_argument("--model", type=Path, help="model folder (default: build a tiny one)")
    parser.add_argument("--task", default="fw_arithmetic", help="a bundled offline task")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    model = (args.model or tiny_model(Path(tempfile.gettempdir()) / "forgetwatch-bench")).resolve()
    with tempfile.TemporaryDirectory(prefix="fw-bench-") as tmp:
        work = Path(tmp)
        suite = work / "suite.yaml"
        suite.write_text(
            f"name: bench\ninclude_path: {TASKS}\n"
            f"tasks:\n  - {{task: {args.task}, capability: knowledge, metric: acc}}\n"
        )
        times: dict[str, list[float]] = {"job": [], "cli": []}
        for rep in range(args.reps):
            order = ("job", "cli") if rep % 2 == 0 else ("cli", "job")
            for kind in order:
                seconds = (
                    time_job(model, suite, args, work)
                    if kind == "job"
                    else time_cli(model, args, work)
                )
                times[kind].append(seconds)
                print(f"rep {rep + 1} {kind}: {seconds:.2f} s", flush=True)
    job, cli = statistics.median(times["job"]), statistics.median(times["cli"])
    print(f"median job {job:.2f} s, median lm_eval CLI {cli:.2f} s")
    ratio = job / cli
    print(f"overhead ratio job/cli = {ratio:.3f} ({(ratio - 1) * 100:+.1f}%; target <= +5%)")


if __name__ == "__main__":
    main()
