"""Ingest speed on the layout lm-eval really writes: many evals, one small file per task.

``lm_eval --output_path OUT --log_samples`` writes, per evaluated model,
``OUT/<model path with / as __>/results_<ts>.json`` plus one
``samples_<task>_<ts>.jsonl`` per task. A sweep of ``--evals`` checkpoints over
``--tasks`` tasks is then ``evals x tasks`` small samples files. This script
writes that layout in lm-eval 0.4.13's exact format, with the committed 0.4.13
fixtures (``tests/fixtures/lm_eval/0.4.13/``) as the template: the same results
keys, per-task ``configs``, one MMLU-like group, and samples lines with
``doc_id, doc, target, arguments, resps, filtered_resps, filter, metrics,
doc_hash, prompt_hash, target_hash`` and one key per metric. Tasks cycle through
the fixture shapes: multiple-choice ``acc`` (MMLU-like subtasks, 0/1), a
TruthfulQA-mc2-like continuous ``acc``, a generate_until task with two filters,
and an IFEval-like task with a bool and a list-valued metric.

``--docs`` is the number of sample rows per task (a task with two filters or two
metrics has half as many docs), so the run stores ``evals x tasks x docs`` rows.
Then it times, in the same run:

* **raw read_json**: DuckDB's own reader loading the same columns, with their
  types, from all samples files into a table of a database file;
* **forgetwatch ingest**: ``lm_eval_results.ingest`` over the output folder,
  split into parse (no database open) and write (database attached, lock held).

    python bench/bench_ingest_layout.py [--evals 100] [--tasks 200] [--docs 50]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from forgetwatch.collectors import lm_eval_results  # noqa: E402
from forgetwatch.collectors.lm_eval_fields import SAMPLE_COLUMNS  # noqa: E402

TEMPLATE = ROOT / "tests" / "fixtures" / "lm_eval" / "0.4.13"
GROUP = "bench_mmlu"
# Fixture task -> name prefix of the generated tasks; MMLU-like subtasks are the most common.
CYCLE = ("fx_mmlu_geo", "fx_mmlu_lang", "fx_mmlu_geo", "fx_mmlu_lang", "fx_mmlu_geo",
         "fx_mc2", "fx_gen", "fx_ifeval")  # fmt: skip
GROUPED = frozenset({"fx_mmlu_geo", "fx_mmlu_lang"})
RAW_TYPES = {"acc": "DOUBLE", "exact_match": "DOUBLE", "prompt_level_strict_acc": "DOUBLE",
             "inst_level_strict_acc": "DOUBLE[]"}  # fmt: skip
CHECKPOINTS_PER_RUN = 10


@dataclass
class Shape:
    """One fixture task: its results entry, config, and samples lines split by filter."""

    name: str
    config: dict[str, Any]
    version: Any
    higher_is_better: dict[str, bool]
    metrics: list[str]
    filters: list[str]
    blocks: dict[str, list[dict[str, Any]]]  # filter -> template lines, file order


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def load_shapes() -> tuple[dict[str, Any], dict[str, Shape]]:
    """(a whole 0.4.13 results document, the fixture tasks by name)."""
    shapes: dict[str, Shape] = {}
    template: dict[str, Any] = {}
    for results in sorted(TEMPLATE.rglob("results_*.json")):
        data = json.loads(results.read_text())
        template = template or data
        stamp = results.stem.removeprefix("results_")
        for task, config in data["configs"].items():
            lines = [json.loads(x) for x in results.with_name(f"samples_{task}_{stamp}.jsonl")
                     .read_text().splitlines()]  # fmt: skip
            blocks: dict[str, list[dict[str, Any]]] = {}
            for line in lines:
                blocks.setdefault(line["filter"], []).append(line)
            shapes[task] = Shape(
                name=task,
                config=config,
                version=data["versions"][task],
                higher_is_better=data["higher_is_better"][task],
                metrics=list(lines[0]["metrics"]),
                filters=list(blocks),
                blocks=blocks,
            )
    return template, shapes


@dataclass
class Task:
    """One generated task: its name, shape, and pre-serialised lines (metrics left out)."""

    name: str
    shape: Shape
    docs: int
    heads: list[str]  # one per line: the JSON object without its closing brace


def make_tasks(shapes: dict[str, Shape], tasks: int, rows_per_task: int) -> list[Task]:
    """Lines are the same docs for every eval (as in a real sweep); only metrics vary."""
    made = []
    for i in range(tasks):
        shape = shapes[CYCLE[i % len(CYCLE)]]
        name = f"{shape.name.removeprefix('fx_')}_{i:03d}"
        docs = max(1, rows_per_task // (len(shape.filters) * len(shape.metrics)))
        heads = []
        for block in shape.blocks.values():
            for d in range(docs):
                line = copy.deepcopy(block[d % len(block)])
                for metric in shape.metrics:
                    del line[metric]
                line["doc_id"] = d
                line["doc_hash"] = _sha256(f"{name} doc {d}")
                line["prompt_hash"] = _sha256(f"{name} prompt {d}")
                line["target_hash"] = _sha256(f"{name} target {line['target']}")
                heads.append(json.dumps(line, ensure_ascii=False)[:-1])
        made.append(Task(name, shape, docs, heads))
    return made


def _metric_value(rng: random.Random, template: Any) -> Any:
    """A value of the same JSON type as the fixture's: 0/1 floats, continuous, bools, lists."""
    if isinstance(template, list):
        return [rng.random() < 0.6 for _ in template]
    if isinstance(template, bool):
        return rng.random() < 0.6
    if template in (0.0, 1.0):
        return 1.0 if rng.random() < 0.6 else 0.0
    return rng.random()


def _mean(values: list[Any]) -> float:
    flat = [sum(v) / len(v) if isinstance(v, list) else float(v) for v in values]
    return sum(flat) / len(flat)


def write_samples(folder: Path, task: Task, stamp: str, rng: random.Random) -> dict[str, Any]:
    """One samples file; returns its results entry (means of what was written)."""
    shape = task.shape
    templates = {m: shape.blocks[shape.filters[0]][0][m] for m in shape.metrics}
    written: dict[tuple[str, str], list[Any]] = {}
    parts = []
    per_filter = task.docs
    for number, head in enumerate(task.heads):
        filt = shape.filters[number // per_filter]
        values = {m: _metric_value(rng, templates[m]) for m in shape.metrics}
        for metric, value in values.items():
            written.setdefault((metric, filt), []).append(value)
        tail = ", ".join(f"{json.dumps(m)}: {json.dumps(v)}" for m, v in values.items())
        parts.append(f"{head}, {tail}}}\n")
    (folder / f"samples_{task.name}_{stamp}.jsonl").write_text("".join(parts))
    entry: dict[str, Any] = {"name": task.name, "alias": task.name, "sample_len": task.docs}
    for (metric, filt), values in written.items():
        entry[f"{metric},{filt}"] = _mean(values)
        entry[f"{metric}_stderr,{filt}"] = "N/A" if metric.startswith("inst_level") else 0.01
    return entry


def _stamp(number: int) -> str:
    minutes, seconds = divmod(number, 60)
    return f"2026-11-23T{10 + minutes // 60:02d}-{minutes % 60:02d}-{seconds:02d}.{number:06d}"


def write_eval(
    root: Path, number: int, template: dict[str, Any], tasks: list[Task], rng: random.Random
) -> int:
    """One checkpoint's output folder, named as lm-eval names it; returns its sample rows."""
    run, step = divmod(number, CHECKPOINTS_PER_RUN)
    model = f"/data/sweeps/run-{run:03d}/checkpoint-{(step + 1) * 100}"
    sanitised = model.replace("/", "__")
    folder = root / sanitised
    folder.mkdir(parents=True, exist_ok=True)
    stamp = _stamp(number)
    results = {t.name: write_samples(folder, t, stamp, rng) for t in tasks}
    subtasks = [t.name for t in tasks if t.shape.name in GROUPED]
    doc = copy.deepcopy(template)
    configs = {}
    for t in tasks:
        config = copy.deepcopy(t.shape.config)
        config["task"] = t.name
        config["metadata"] = config.get("metadata", {}) | {"pretrained": model}
        configs[t.name] = config
    size = sum(results[s]["sample_len"] for s in subtasks)
    group = {"alias": GROUP, "name": GROUP, "sample_len": size}
    if subtasks:
        group["acc,none"] = _mean([results[s]["acc,none"] for s in subtasks])
        group["acc_stderr,none"] = 0.01
        group["sample_count"] = {"acc,none": size}
        results[GROUP] = group
    n_samples = {t.name: {"original": t.docs * 2, "effective": t.docs} for t in tasks}
    doc.update(
        results=results,
        groups={GROUP: group} if subtasks else {},
        group_subtasks={GROUP: subtasks} if subtasks else {},
        configs=configs,
        versions={t.name: t.shape.version for t in tasks},
        **{"n-shot": {t.name: 0 for t in tasks}, "n-samples": n_samples},
        higher_is_better={t.name: t.shape.higher_is_better for t in tasks},
        date=1795457065.9 + number,
        task_hashes={t.name: _sha256(f"task {t.name}") for t in tasks},
        model_name=model,
        model_name_sanitized=sanitised,
        total_evaluation_time_seconds=str(60 + rng.random() * 30),
    )
    doc["config"] = copy.deepcopy(template["config"]) | {
        "model_args": {"pretrained": model, "dtype": "float32"}
    }
    (folder / f"results_{stamp}.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False))
    return sum(len(t.heads) * len(t.shape.metrics) for t in tasks)


def write_layout(root: Path, evals: int, tasks: int, docs: int) -> tuple[list[Path], int]:
    """(every samples file, sample rows an ingest stores)."""
    template, shapes = load_shapes()
    made = make_tasks(shapes, tasks, docs)
    rng = random.Random(0)
    rows = sum(write_eval(root, n, template, made, rng) for n in range(evals))
    return sorted(root.rglob("samples_*.jsonl")), rows


def time_raw_read_json(files: list[Path], db: Path) -> float:
    """DuckDB's reader, the same columns with their types, from every file into a file table."""
    columns = {**SAMPLE_COLUMNS, **RAW_TYPES}
    spec = ", ".join(f"'{k}': '{v}'" for k, v in columns.items())
    started, cpu = time.perf_counter(), time.process_time()
    with duckdb.connect(str(db)) as con:
        con.execute(
            f"CREATE TABLE raw AS SELECT * FROM read_json(?, format='newline_delimited', "
            f"filename=true, columns={{{spec}}})",
            [[str(f) for f in files]],
        )
    return time.perf_counter() - started, time.process_time() - cpu


def time_ingest(
    root: Path, db: Path, evals: int
) -> tuple[float, float, lm_eval_results.PhaseTimes]:
    """(wall seconds, CPU seconds of this process and its DuckDB threads, phases)."""
    phases = lm_eval_results.PhaseTimes()
    started, cpu = time.perf_counter(), time.process_time()
    report = lm_eval_results.ingest([root], db, timings=phases)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert report.ok and report.inserted == evals, report.summary()
    print("  " + "\n  ".join(report.notes))
    return elapsed, cpu, phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--docs", type=int, default=50, help="sample rows per task")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; medians are reported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        files, rows = write_layout(root / "out", args.evals, args.tasks, args.docs)
        written = time.perf_counter() - started
        size = sum(f.stat().st_size for f in files)
        print(f"wrote {args.evals} evals x {args.tasks} tasks: {len(files):,} samples files, "
              f"{size / 2**20:,.0f} MiB, {rows:,} sample rows in {written:.0f} s")  # fmt: skip
        names = ("raw", "ours", "parse", "write", "raw_cpu", "ours_cpu")
        timed: dict[str, list[float]] = {k: [] for k in names}
        for round_no in range(args.repeat):  # interleaved, so load spikes hit both
            raw_s, raw_cpu = time_raw_read_json(files, root / f"raw{round_no}.duckdb")
            db_file = root / f"fw{round_no}.duckdb"
            ours_s, ours_cpu, phases = time_ingest(root / "out", db_file, args.evals)
            for name, value in zip(names, (raw_s, ours_s, phases.parse, phases.write,
                                           raw_cpu, ours_cpu), strict=True):  # fmt: skip
                timed[name].append(value)
            with duckdb.connect(str(db_file), read_only=True) as con:
                row = con.execute("SELECT count(*) FROM samples").fetchone()
            assert row is not None and row[0] == rows, (row, rows)
        raw, ours, parse, write, raw_cpu, ours_cpu = (statistics.median(timed[k]) for k in names)
    cores = len(os.sched_getaffinity(0))
    print(f"{rows:,} sample rows in {len(files):,} files; medians of {args.repeat} rounds, "
          f"{cores} cores")  # fmt: skip
    for name, secs in (("raw read_json", raw), ("forgetwatch ingest", ours),
                       ("  parse (no lock)", parse), ("  write (lock held)", write)):  # fmt: skip
        print(f"  {name:20} {secs:7.2f} s  {rows / secs:>10,.0f} rows/s")
    print(f"forgetwatch / raw read_json speed: {raw / ours:.2f}x (target >= 0.8)")
    print(f"CPU seconds (load-independent): raw {raw_cpu:.1f}, forgetwatch {ours_cpu:.1f} "
          f"-> {raw_cpu / ours_cpu:.2f}x; {rows / ours_cpu:,.0f} rows per CPU second")  # fmt: skip
    print(f"forgetwatch rows/s: {rows / ours:,.0f} (target >= 100,000)")
    print(f"database lock held for {write / ours:.0%} of the ingest")


if __name__ == "__main__":
    main()
