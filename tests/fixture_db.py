"""A small DuckDB world with hand-picked scores, so tests can assert exact deltas.

One base model, three runs:

* ``run-full``: final model evaluated twice (the later eval wins) plus a checkpoint
  at step 50; loses general capability and hallucinates more.
* ``run-lora``: final model evaluated twice on the same ``evaluated_at`` (the later
  ``ingested_at`` wins); only knowledge among the general capabilities.
* ``run-new``: still running, never evaluated, with a 5,000-point loss history.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from forgetwatch import analysis, db

BASE = "/models/tiny-base"
FULL_FINAL = "/runs/full"
FULL_CKPT = "/runs/full/checkpoint-50"
LORA_FINAL = "/runs/lora"
NEW_FINAL = "/runs/new"

SUITE = [  # task, capability, metric, filter
    ("facts_new", "target", "acc", "none"),
    ("facts_old", "knowledge", "acc", "none"),
    ("arith", "knowledge", "acc", "none"),
    ("code_small", "code", "pass@1", "create_test"),
    ("instruct", "instructions", "prompt_level_strict_acc", "none"),
    ("unknowns", "hallucination", "acc", "none"),
]

# eval_id -> (model_id, evaluated_at, ingested_at, {task: primary score})
EVALS: dict[str, tuple[str, str, str, dict[str, float]]] = {
    "e-base": (
        BASE,
        "2024-01-01",
        "2024-01-01",
        {
            "facts_new": 0.20,
            "facts_old": 0.80,
            "arith": 0.60,
            "code_small": 0.30,
            "instruct": 0.50,
            "unknowns": 0.90,
        },
    ),
    "e-full-old": (FULL_FINAL, "2024-01-10", "2024-03-01", {"facts_new": 0.50}),
    "e-full-new": (
        FULL_FINAL,
        "2024-02-01",
        "2024-02-01",
        {
            "facts_new": 0.90,
            "facts_old": 0.60,
            "arith": 0.40,
            "code_small": 0.20,
            "instruct": 0.30,
            "unknowns": 0.50,
        },
    ),
    "e-full-ckpt": (
        FULL_CKPT,
        "2024-01-20",
        "2024-01-20",
        {
            "facts_new": 0.40,
            "facts_old": 0.80,
            "arith": 0.60,
            "unknowns": 0.90,
        },
    ),
    "e-lora-a": (LORA_FINAL, "2024-03-01", "2024-03-02", {"facts_new": 0.10}),
    "e-lora-b": (
        LORA_FINAL,
        "2024-03-01",
        "2024-03-05",
        {
            "facts_new": 0.60,
            "facts_old": 0.80,
            "arith": 0.50,
            "unknowns": 0.80,
        },
    ),
}

RUNS = [  # run_id, name, status, start, method, output_dir, params
    (
        "run-full",
        "full-lr3e-3",
        "FINISHED",
        "2024-01-05",
        "full",
        FULL_FINAL,
        {"learning_rate": "0.003", "num_train_epochs": "50", "max_steps": "-1"},
    ),
    (
        "run-lora",
        "lora-r8",
        "FINISHED",
        "2024-02-20",
        "lora",
        LORA_FINAL,
        {
            "learning_rate": "0.003",
            "num_train_epochs": "50",
            "peft_config": "{'default': LoraConfig(lora_alpha=16, r=8, fan_in_fan_out=True)}",
        },
    ),
    (
        "run-new",
        "full-fresh",
        "RUNNING",
        "2024-04-01",
        "full",
        NEW_FINAL,
        {"learning_rate": "0.0001", "max_steps": "5000"},
    ),
]

MODELS = [  # model_id, kind, run_id, step, base_model_id
    (BASE, "base", None, None, None),
    (FULL_FINAL, "final", "run-full", None, BASE),
    (FULL_CKPT, "checkpoint", "run-full", 50, BASE),
    (LORA_FINAL, "final", "run-lora", None, BASE),
    (NEW_FINAL, "final", "run-new", None, BASE),
]

LONG_HISTORY = 5000

# lm-eval stderr of every primary score except code_small's (lm-eval's "N/A" -> NULL).
STDERR = 0.05
NO_STDERR_TASKS = {"code_small"}
# The full fine-tune's final eval ran facts_old 5-shot and on a newer lm-eval: a
# settings mismatch the comparison must flag. Every other eval is 0-shot on 0.4.13.
MISMATCHED_EVAL = "e-full-new"
MISMATCHED_TASK = "facts_old"


def build_known_db(path: Path) -> Path:
    """Write the known world to a fresh DuckDB file at ``path`` and return it."""
    with db.connect(path) as con, db.transaction(con):
        con.executemany("INSERT INTO suite_tasks VALUES (?, 'tiny', ?, ?, ?)", SUITE)
        for run_id, name, status, start, method, out, params in RUNS:
            con.execute(
                """INSERT INTO runs (run_id, experiment_id, experiment_name, run_name, status,
                       start_time, base_model, method, output_dir, params, tags)
                   VALUES (?, '1', 'tiny-world', ?, ?, ?, ?, ?, ?,
                           map(?::VARCHAR[], ?::VARCHAR[]), map())""",
                [
                    run_id,
                    name,
                    status,
                    start,
                    BASE,
                    method,
                    out,
                    list(params),
                    list(params.values()),
                ],
            )
        con.executemany(
            """INSERT INTO models (model_id, kind, path, run_id, step, base_model_id)
               VALUES (?, ?, ?, ?, ?, ?)""",
            [(m, kind, m, run, step, base) for m, kind, run, step, base in MODELS],
        )
        _insert_evals(con)
        _insert_metrics(con)
    analyse(path)
    return path


def _insert_evals(con: duckdb.DuckDBPyConnection) -> None:
    primary = {task: (metric, filt) for task, _, metric, filt in SUITE}
    for eval_id, (model_id, evaluated, ingested, scores) in EVALS.items():
        mismatched = eval_id == MISMATCHED_EVAL
        n_shot = {task: "5" if mismatched and task == MISMATCHED_TASK else "0" for task in scores}
        con.execute(
            """INSERT INTO evals (eval_id, model_id, lm_eval_version, n_shot, evaluated_at,
                   ingested_at, source_file)
               VALUES (?, ?, ?, map(?::VARCHAR[], ?::VARCHAR[]), ?, ?, ?)""",
            [
                eval_id,
                model_id,
                "0.4.14" if mismatched else "0.4.13",
                list(n_shot),
                list(n_shot.values()),
                evaluated,
                ingested,
                f"/evals/{eval_id}/results.json",
            ],
        )
        for task, value in scores.items():
            metric, filt = primary[task]
            stderr = None if task in NO_STDERR_TASKS else STDERR
            con.execute(
                "INSERT INTO scores (eval_id, task, metric, filter, value, stderr) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [eval_id, task, metric, filt, value, stderr],
            )
            # A non-primary metric that must never leak into deltas.
            con.execute(
                "INSERT INTO scores (eval_id, task, metric, filter, value) "
                "VALUES (?, ?, 'acc_norm', 'none', 0.99)",
                [eval_id, task],
            )
            con.execute(
                "INSERT INTO samples (eval_id, task, doc_id, filter, metric, value) "
                "VALUES (?, ?, 0, ?, ?, 1.0)",
                [eval_id, task, filt, metric],
            )


def _insert_metrics(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """INSERT INTO run_metrics
           SELECT 'run-full', 'loss', s * 10, TIMESTAMP '2024-01-05' + to_seconds(s), 3.0 - s * 0.1
           FROM range(10) t(s)
           UNION ALL
           SELECT 'run-full', 'eval_loss', s * 30, TIMESTAMP '2024-01-05' + to_seconds(s),
                  3.2 - s * 0.2
           FROM range(3) t(s)
           UNION ALL
           SELECT 'run-full', 'learning_rate', s * 10, NULL, 0.003 FROM range(10) t(s)
           UNION ALL
           SELECT 'run-new', 'loss', s, NULL, 1.0 / (s + 1) FROM range(?) t(s)""",
        [LONG_HISTORY],
    )


# Per-sample results for the paired tests: PAIRED_DOCS docs per (eval, task) after the
# placeholder doc 0, with the first round(score * PAIRED_DOCS) right, so a drop from .8
# to .6 is exactly 20 right->wrong pairs. Tasks in UNPAIRED_TASKS get no samples in the
# paired world (build_paired_db), so their deltas fall back to stderr (instruct) or to
# no evidence at all (code_small, which has no stderr either).
PAIRED_DOCS = 100
UNPAIRED_TASKS = ("code_small", "instruct")


def add_paired_samples(con: duckdb.DuckDBPyConnection) -> None:
    """Append PAIRED_DOCS 0/1 samples per (eval, task) outside UNPAIRED_TASKS."""
    primary = {task: (metric, filt) for task, _, metric, filt in SUITE}
    rows = [
        (eval_id, task, doc, primary[task][1], primary[task][0],
         1.0 if doc <= round(score * PAIRED_DOCS) else 0.0, f"h{task}{doc}")
        for eval_id, (_, _, _, scores) in EVALS.items()
        for task, score in scores.items()
        if task not in UNPAIRED_TASKS
        for doc in range(1, PAIRED_DOCS + 1)
    ]  # fmt: skip
    con.executemany(
        "INSERT INTO samples (eval_id, task, doc_id, filter, metric, value, doc_hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def build_paired_db(path: Path) -> Path:
    """The known world plus per-sample results, for paired significance and budgets.

    The known world's placeholder doc-0 samples are removed first, so each task's
    samples reproduce its score exactly (as lm-eval's do), and UNPAIRED_TASKS have
    no per-sample results on either side.
    """
    build_known_db(path)
    with db.connect(path) as con, db.transaction(con):
        con.execute("DELETE FROM samples")
        add_paired_samples(con)
    analyse(path)
    return path


def analyse(path: Path) -> None:
    """Store the paired tests, as every collector does after writing (pages read them).

    The world above is written by hand for exact scores, so it runs the same
    analysis step a sync or ingest ends with. Everything is redone: these
    builders rewrite samples under existing eval ids, which a real collector
    never does (an eval id is the digest of its results file).
    """
    analysis.refresh(path, everything=True)
