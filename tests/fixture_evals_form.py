"""A small DuckDB world for the Evals form: earlier evals with known limits and n-shots.

* ``BASE`` was evaluated on the offline suite the way ``--limit 30`` cuts it: 30 of each
  larger task's documents, every document of ``fw_unknown`` (20 in all), and
  ``fw_humaneval`` at the suite's own cap of 10; each task at its own n-shot (5 on
  ``fw_target_facts_5shot``, else 0).
* ``CKPT_DONE`` has a full eval; ``CKPT_QUICK`` only a quick check (a partial eval, so
  it still counts as not evaluated); ``CKPT_NONE`` none.
* ``LONER``'s base ``LONER_BASE`` was never evaluated; ``LONER`` itself ran every
  document (as far as the suite's caps allow) 5-shot.
"""

from __future__ import annotations

from pathlib import Path

from forgetwatch import db

BASE = "/fx/base"
FINAL = "/fx/run"
CKPT_DONE = "/fx/run/checkpoint-100"
CKPT_QUICK = "/fx/run/checkpoint-200"
CKPT_NONE = "/fx/run/checkpoint-300"
LONER = "/fx/loner"
LONER_BASE = "/fx/loner-base"

# task -> (documents in the task, documents the base's eval scored, n-shot)
BASE_TASKS = {
    "fw_target_facts": (40, 30, "0"),
    "fw_knowledge_facts": (60, 30, "0"),
    "fw_arithmetic": (100, 30, "0"),
    "fw_code_funcs": (40, 30, "0"),
    "fw_humaneval": (164, 10, "0"),
    "fw_instructions": (40, 30, "0"),
    "fw_unknown": (20, 20, "0"),
    "fw_target_facts_5shot": (40, 30, "5"),
}
MODELS = [  # model_id, kind, run_id, step, base_model_id
    (BASE, "base", None, None, None),
    (FINAL, "final", "run-1", None, BASE),
    (CKPT_DONE, "checkpoint", "run-1", 100, BASE),
    (CKPT_QUICK, "checkpoint", "run-1", 200, BASE),
    (CKPT_NONE, "checkpoint", "run-1", 300, BASE),
    (LONER_BASE, "base", None, None, None),
    (LONER, "final", None, None, LONER_BASE),
]


def _eval(con: db.duckdb.DuckDBPyConnection, eval_id: str, model: str, tasks: dict) -> None:
    shots = {t: s for t, (_, _, s) in tasks.items()}
    con.execute(
        """INSERT INTO evals (eval_id, model_id, n_shot, evaluated_at, ingested_at, source_file)
           VALUES (?, ?, map(?::VARCHAR[], ?::VARCHAR[]), '2024-01-01', '2024-01-01', ?)""",
        [eval_id, model, list(shots), list(shots.values()), f"/fx/evals/{eval_id}.json"],
    )
    con.executemany(
        "INSERT INTO scores (eval_id, task, metric, filter, value, n_samples, n_original) "
        "VALUES (?, ?, 'acc', 'none', 0.5, ?, ?)",
        [[eval_id, t, scored, total] for t, (total, scored, _) in tasks.items()],
    )


def build_form_db(path: Path) -> Path:
    """Write the world above to a fresh DuckDB file at ``path``."""
    with db.connect(path) as con, db.transaction(con):
        con.execute(
            "INSERT INTO runs (run_id, experiment_id, run_name, status) "
            "VALUES ('run-1', '1', 'fx-run', 'FINISHED')"
        )
        con.executemany(
            "INSERT INTO models (model_id, kind, path, run_id, step, base_model_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(m, kind, m, run, step, base) for m, kind, run, step, base in MODELS],
        )
        _eval(con, "e-base", BASE, BASE_TASKS)
        _eval(con, "e-final", FINAL, BASE_TASKS)
        _eval(con, "e-ckpt-100", CKPT_DONE, BASE_TASKS)
        _eval(con, "e-ckpt-200-quick", CKPT_QUICK, BASE_TASKS)
        con.execute(
            "INSERT INTO partial_evals (source_file, kind) "
            "VALUES ('/fx/evals/e-ckpt-200-quick.json', 'quick')"
        )
        # Every document, except where the suite itself caps the task (fw_humaneval: 10).
        everything = {t: (n, min(n, 10) if t == "fw_humaneval" else n, "5")
                      for t, (n, _, _) in BASE_TASKS.items()}  # fmt: skip
        _eval(con, "e-loner", LONER, everything)
    return path
