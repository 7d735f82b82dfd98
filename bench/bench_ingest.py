"""Samples ingest speed, as ratios to two baselines measured in the same run.

Writes lm-eval-shaped output (one results file plus samples JSONL files holding
``--rows`` per-sample lines in total), then times:

* **raw read_json**: DuckDB's own reader loading the same columns into a table,
  the floor any JSON ingest can reach;
* **forgetwatch ingest**: ``collectors.lm_eval_results.ingest`` (validation,
  unpivot of metric columns, one transaction per eval);
* **json.loads + pandas**: the usual Python loop, then one bulk insert.

    python bench/bench_ingest.py [--rows 1000000] [--tasks 4]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors import lm_eval_results  # noqa: E402
from collectors.lm_eval_fields import SAMPLE_COLUMNS  # noqa: E402

STAMP = "2026-01-01T00-00-00.000000"


def sample_line(rng: random.Random, doc_id: int) -> str:
    """One line shaped like lm-eval 0.4's samples JSONL for a multiple-choice task."""
    correct = rng.random() < 0.6
    return json.dumps(
        {
            "doc_id": doc_id,
            "doc": {"question": f"What is the capital of country {doc_id}?", "answer": doc_id % 4},
            "target": doc_id % 4,
            "arguments": {
                f"gen_args_{i}": {"arg_0": "Q: ...", "arg_1": f" choice {i}."} for i in range(4)
            },  # fmt: skip
            "resps": [[[str(-rng.random() * 10), "False"]] for _ in range(4)],
            "filtered_resps": [[str(-rng.random() * 10), "False"] for _ in range(4)],
            "filter": "none",
            "metrics": ["acc"],
            "doc_hash": f"{doc_id:064x}",
            "prompt_hash": f"{doc_id * 7:064x}",
            "target_hash": f"{doc_id % 4:064x}",
            "acc": 1.0 if correct else 0.0,
        }
    )


def write_outputs(root: Path, rows: int, tasks: int) -> list[Path]:
    rng = random.Random(0)
    folder = root / "__models__bench"
    folder.mkdir(parents=True)
    names = [f"bench_task_{i}" for i in range(tasks)]
    per_task = rows // tasks
    files = []
    for name in names:
        path = folder / f"samples_{name}_{STAMP}.jsonl"
        with path.open("w") as out:
            out.writelines(sample_line(rng, i) + "\n" for i in range(per_task))
        files.append(path)
    results = {
        "results": {n: {"alias": n, "acc,none": 0.6, "acc_stderr,none": 0.001} for n in names},
        "n-samples": {n: {"original": per_task, "effective": per_task} for n in names},
        "config": {"model_args": "pretrained=/models/bench", "limit": None},
        "lm_eval_version": "0.4.13",
        "date": 1767225600.0,
    }
    (folder / f"results_{STAMP}.json").write_text(json.dumps(results))
    return files


def time_raw_read_json(files: list[Path], db: Path) -> float:
    columns = {**SAMPLE_COLUMNS, "acc": "JSON"}
    spec = ", ".join(f"'{k}': '{v}'" for k, v in columns.items())
    started = time.perf_counter()
    with duckdb.connect(str(db)) as con:
        con.execute(
            f"CREATE TABLE raw AS SELECT * FROM read_json(?, format='newline_delimited', "
            f"columns={{{spec}}})",
            [[str(f) for f in files]],
        )
    return time.perf_counter() - started


def time_ingest(root: Path, db: Path) -> float:
    started = time.perf_counter()
    report = lm_eval_results.ingest([root], db)
    assert report.ok and report.inserted == 1, report.summary()
    return time.perf_counter() - started


def time_python_loop(files: list[Path], db: Path) -> float:
    started = time.perf_counter()
    rows = []
    for path in files:
        with path.open() as handle:
            for line in handle:
                rec = json.loads(line)
                rows.append((path.stem, rec["doc_id"], rec["filter"], "acc", float(rec["acc"]),
                             str(rec["target"]), json.dumps(rec["filtered_resps"][0]),
                             rec["doc_hash"], rec["prompt_hash"],
                             rec["target_hash"]))  # fmt: skip
    columns = ["task", "doc_id", "filter", "metric", "value", "target", "response",
               "doc_hash", "prompt_hash", "target_hash"]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    with duckdb.connect(str(db)) as con:
        con.register("frame", frame)
        con.execute("CREATE TABLE loop AS SELECT * FROM frame")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = write_outputs(root / "out", args.rows, args.tasks)
        rows = args.rows // args.tasks * args.tasks
        raw = time_raw_read_json(files, root / "raw.duckdb")
        ours = time_ingest(root / "out", root / "fw.duckdb")
        loop = time_python_loop(files, root / "loop.duckdb")
    print(f"{rows:,} sample rows in {len(files)} files")
    for name, secs in (("raw read_json", raw), ("forgetwatch ingest", ours),
                       ("json.loads + pandas", loop)):  # fmt: skip
        print(f"  {name:20} {secs:7.2f} s  {rows / secs:>10,.0f} rows/s")
    print(f"forgetwatch / raw read_json speed: {raw / ours:.2f}x (target >= 0.8)")
    print(f"forgetwatch / json.loads+pandas speed: {loop / ours:.1f}x (target >= 8)")


if __name__ == "__main__":
    main()
