"""Samples ingest speed, as ratios to two baselines measured in the same run.

Writes lm-eval-shaped output (one results file plus samples JSONL files holding
``--rows`` per-sample rows in total, over several task shapes: multiple-choice
``acc``, a generate_until task with two filters, and an IFEval-like task with a
list-valued metric), then times:

* **raw read_json**: DuckDB's own reader loading the same columns, with their
  types, from all files into a table of a database file: the floor any JSON
  ingest can reach;
* **forgetwatch ingest**: ``forgetwatch.collectors.lm_eval_results.ingest`` (validation,
  unpivot of metric columns, one transaction per batch of evals), split into its parse
  phase (rows staged in an in-memory DuckDB, no database open) and its write
  phase (the file attached and the rows copied in; the database lock is held);
* **json.loads + pandas**: the usual Python loop, then one bulk insert.

    python bench/bench_ingest.py [--rows 1000000] [--tasks 4]

This is the few-large-files case; ``bench/bench_ingest_layout.py`` times the layout
lm-eval writes for a sweep (one small samples file per task per eval).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from forgetwatch.collectors import lm_eval_results  # noqa: E402
from forgetwatch.collectors.lm_eval_fields import SAMPLE_COLUMNS  # noqa: E402

STAMP = "2026-01-01T00-00-00.000000"

# Task shapes: (name prefix, filters, metric name, metric kind)
SHAPES = (
    ("mc", ("none",), "acc", "binary"),
    ("gen", ("strict-match", "flexible-extract"), "exact_match", "binary"),
    ("ifeval", ("none",), "inst_level_strict_acc", "list"),
)


def _metric_value(rng: random.Random, kind: str) -> object:
    if kind == "list":
        return [rng.random() < 0.6 for _ in range(rng.randint(1, 4))]
    return 1.0 if rng.random() < 0.6 else 0.0


def _sha256(text: str) -> str:
    """lm-eval's hashes are sha256 hex digests: 64 characters that barely compress."""
    return hashlib.sha256(text.encode()).hexdigest()


def sample_line(rng: random.Random, doc_id: int, filt: str, metric: str, kind: str) -> str:
    """One line shaped like lm-eval 0.4's samples JSONL (strings as the tracker writes them)."""
    return json.dumps(
        {
            "doc_id": doc_id,
            "doc": {"question": f"What is the capital of country {doc_id}?", "answer": doc_id % 4},
            "target": str(doc_id % 4),
            "arguments": {
                f"gen_args_{i}": {"arg_0": "Q: ...", "arg_1": f" choice {i}."} for i in range(4)
            },  # fmt: skip
            "resps": [[[str(-rng.random() * 10), "False"]] for _ in range(4)],
            "filtered_resps": [[str(-rng.random() * 10), "False"] for _ in range(4)],
            "filter": filt,
            "metrics": [metric],
            "doc_hash": _sha256(f"doc {doc_id}"),
            "prompt_hash": _sha256(f"prompt {doc_id}"),
            "target_hash": _sha256(str(doc_id % 4)),
            metric: _metric_value(rng, kind),
        }
    )


def write_outputs(root: Path, rows: int, tasks: int) -> list[Path]:
    """``tasks`` samples files cycling through SHAPES, ``rows`` sample rows in total."""
    rng = random.Random(0)
    folder = root / "__models__bench"
    folder.mkdir(parents=True)
    per_task = rows // tasks
    files, results, n_samples = [], {}, {}
    for i in range(tasks):
        prefix, filters, metric, kind = SHAPES[i % len(SHAPES)]
        name = f"bench_{prefix}_{i}"
        path = folder / f"samples_{name}_{STAMP}.jsonl"
        docs = per_task // len(filters)
        with path.open("w") as out:
            out.writelines(
                sample_line(rng, d, f, metric, kind) + "\n" for d in range(docs) for f in filters
            )
        files.append(path)
        results[name] = {"alias": name} | {f"{metric},{f}": 0.6 for f in filters}
        n_samples[name] = {"original": docs, "effective": docs}
    summary = {
        "results": results,
        "n-samples": n_samples,
        "task_hashes": {name: "0" * 64 for name in results},
        "config": {"model_args": "pretrained=/models/bench", "limit": None},
        "lm_eval_version": "0.4.13",
        "date": 1767225600.0,
    }
    (folder / f"results_{STAMP}.json").write_text(json.dumps(summary))
    return files


def count_rows(files: list[Path]) -> int:
    return sum(sum(1 for _ in path.open()) for path in files)


def time_raw_read_json(files: list[Path], db: Path) -> float:
    """DuckDB's reader, same columns with their real types, into a file table."""
    columns = {**SAMPLE_COLUMNS, "acc": "DOUBLE", "exact_match": "DOUBLE",
               "inst_level_strict_acc": "DOUBLE[]"}  # fmt: skip
    spec = ", ".join(f"'{k}': '{v}'" for k, v in columns.items())
    started = time.perf_counter()
    with duckdb.connect(str(db)) as con:
        con.execute(
            f"CREATE TABLE raw AS SELECT * FROM read_json(?, format='newline_delimited', "
            f"columns={{{spec}}})",
            [[str(f) for f in files]],
        )
    return time.perf_counter() - started


def time_ingest(root: Path, db: Path) -> tuple[float, lm_eval_results.PhaseTimes]:
    phases = lm_eval_results.PhaseTimes()
    started = time.perf_counter()
    report = lm_eval_results.ingest([root], db, timings=phases)
    assert report.ok and report.inserted == 1, report.summary()
    return time.perf_counter() - started, phases


def _metric(rec: dict) -> tuple[str, float]:
    name = rec["metrics"][0]
    value = rec[name]
    return name, sum(value) / len(value) if isinstance(value, list) else float(value)


def time_python_loop(files: list[Path], db: Path) -> float:
    started = time.perf_counter()
    rows = []
    for path in files:
        with path.open() as handle:
            for line in handle:
                rec = json.loads(line)
                metric, value = _metric(rec)
                rows.append((path.stem, rec["doc_id"], rec["filter"], metric, value,
                             str(rec["target"]), json.dumps(rec["filtered_resps"][0]),
                             rec["doc_hash"], rec["prompt_hash"], rec["target_hash"],
                             rec["arguments"]["gen_args_0"]["arg_0"]))  # fmt: skip
    columns = ["task", "doc_id", "filter", "metric", "value", "target", "response",
               "doc_hash", "prompt_hash", "target_hash", "prompt"]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    with duckdb.connect(str(db)) as con:
        con.register("frame", frame)
        con.execute("CREATE TABLE loop AS SELECT * FROM frame")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = write_outputs(root / "out", args.rows, args.tasks)
        rows = count_rows(files)
        timed: dict[str, list[float]] = {k: [] for k in ("raw", "ours", "parse", "write", "loop")}
        for round_no in range(args.repeat):  # interleaved, so load spikes hit every method
            timed["raw"].append(time_raw_read_json(files, root / f"raw{round_no}.duckdb"))
            ours_s, phases = time_ingest(root / "out", root / f"fw{round_no}.duckdb")
            timed["ours"].append(ours_s)
            timed["parse"].append(phases.parse)
            timed["write"].append(phases.write)
            with duckdb.connect(str(root / f"fw{round_no}.duckdb"), read_only=True) as con:
                stored = con.execute("SELECT count(*) FROM samples").fetchone()[0]
            assert stored == rows, (stored, rows)
            timed["loop"].append(time_python_loop(files, root / f"loop{round_no}.duckdb"))
        raw, ours, loop = (statistics.median(timed[k]) for k in ("raw", "ours", "loop"))
        phases = lm_eval_results.PhaseTimes(
            statistics.median(timed["parse"]), statistics.median(timed["write"])
        )
    cores = len(os.sched_getaffinity(0))
    print(f"{rows:,} sample rows in {len(files)} files; medians of {args.repeat} rounds")
    print(f"{cores} cores: DuckDB uses them all, the json.loads + pandas loop uses one")
    for name, secs in (("raw read_json", raw), ("forgetwatch ingest", ours),
                       ("  parse (no lock)", phases.parse), ("  write (lock held)", phases.write),
                       ("json.loads + pandas", loop)):  # fmt: skip
        print(f"  {name:20} {secs:7.2f} s  {rows / secs:>10,.0f} rows/s")
    print(f"forgetwatch / raw read_json speed: {raw / ours:.2f}x (target >= 0.8)")
    print(f"forgetwatch / json.loads+pandas speed: {loop / ours:.1f}x (target >= 8)")
    print(f"raw read_json / json.loads+pandas speed: {loop / raw:.1f}x (what storing these "
          "columns with DuckDB's reader alone reaches on these cores)")  # fmt: skip
    print(f"database lock held for {phases.write / ours:.0%} of the ingest")


if __name__ == "__main__":
    main()
