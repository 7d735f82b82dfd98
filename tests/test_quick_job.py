"""Live partial eval jobs on the demo model: a quick check and a repeat of the base.

Real detached workers (``python -m forgetwatch.evals.job_main``) over a copy of the
session ``demo_db``, real lm-eval ``samples=`` runs on the tiny model; nothing mocked.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from forgetwatch import db
from forgetwatch.cli.eval import repeat_settings
from forgetwatch.evals import jobs, targets
from forgetwatch.queries import partial
from forgetwatch.suite import load_suite
from tests.procs import cancel_active_jobs

TASKS = Path(__file__).resolve().parent.parent / "evals" / "tasks"
SUITE = """name: quick-demo
include_path: {tasks}
tasks:
  - {{task: fw_target_facts, capability: target, metric: acc}}
  - {{task: fw_knowledge_facts, capability: knowledge, metric: acc}}
  - {{task: fw_arithmetic, capability: knowledge, metric: acc}}
  - {{task: fw_unknown, capability: hallucination, metric: acc}}
"""


@pytest.fixture
def job_db(demo_db: Path, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "quick.duckdb"
    shutil.copy(demo_db, path)
    yield path
    cancel_active_jobs(path)


@pytest.fixture
def suite_path(tmp_path: Path) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(tasks=TASKS))
    return path


def _one(con, sql: str, params: list) -> list[tuple]:
    return con.execute(sql, params).fetchall()


def _checkpoint(con) -> tuple[str, str]:
    row = con.execute(
        "SELECT model_id, base_model_id FROM models WHERE kind = 'checkpoint' "
        "AND model_id IN (SELECT model_id FROM evals) ORDER BY model_id LIMIT 1"
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_quick_check_runs_chosen_items_and_matches_the_full_run(
    job_db: Path, suite_path: Path
) -> None:
    with db.connect(job_db, read_only=True) as con:
        model, base = _checkpoint(con)
        tests_before = _one(
            con, "SELECT * FROM task_tests WHERE model_id = ? ORDER BY ALL", [model]
        )
    suite = load_suite(str(suite_path))
    spec = targets.prepare(model, suite, hub_ok=False, mode="quick")
    job = jobs.wait(jobs.submit(spec, job_db))
    assert job.status == "succeeded", job.error

    with db.connect(job_db, read_only=True) as con:
        (source, kind, items_json), = _one(
            con, "SELECT source_file, kind, items FROM partial_evals WHERE job_id = ?", [job.job_id]
        )  # fmt: skip
        assert kind == "quick"
        items = json.loads(items_json)
        checks = partial.quick_checks(con, [job.job_id])
        full = partial.latest_full_evals(
            con, model, [(t.task, t.metric, t.filter) for t in suite.tasks]
        )
        quick_eval = partial.eval_of_source(con, source)
        # Each quick item's outcome equals the model's full run on the same item.
        for row in full.itertuples():
            mine = dict(_one(con, "SELECT doc_id, value FROM samples WHERE eval_id = ? AND "
                            "task = ? AND metric = 'acc'", [quick_eval, row.task]))  # fmt: skip
            theirs = dict(_one(con, "SELECT doc_id, value FROM samples WHERE eval_id = ? AND "
                              "task = ? AND metric = 'acc'", [row.eval_id, row.task]))  # fmt: skip
            assert sorted(mine) == items[row.task]
            assert set(mine) <= set(theirs)
            assert {d: theirs[d] for d in mine} == mine
        # The partial eval never replaces the full one in the deltas and tests.
        assert quick_eval not in set(full["eval_id"])
        assert _one(con, "SELECT * FROM task_tests WHERE model_id = ? ORDER BY ALL", [model]) == (
            tests_before
        )
    assert set(checks["capability"]) == {"target", "knowledge", "hallucination"}
    assert set(checks["outcome"]) <= {"met", "fail", "full"}
    assert (checks["base_model_id"] == base).all()
    # Capabilities settled early ran fewer items than the task holds.
    early = checks[checks["outcome"] != "full"]
    assert (early["n_used"] < early["n_items"]).all()


def test_repeat_of_the_base_stores_a_noise_floor(job_db: Path, suite_path: Path) -> None:
    with db.connect(job_db, read_only=True) as con:
        _, base = _checkpoint(con)
        tests_before = _one(con, "SELECT * FROM task_tests ORDER BY ALL", [])
    suite = load_suite(str(suite_path))
    spec = targets.prepare(base, suite, hub_ok=False, mode="repeat-base", **repeat_settings(16))
    job = jobs.wait(jobs.submit(spec, job_db))
    assert job.status == "succeeded", job.error
    with db.connect(job_db, read_only=True) as con:
        floors = partial.noise_floors(con, [base])
        assert _one(con, "SELECT * FROM task_tests ORDER BY ALL", []) == tests_before
    assert set(floors["task"]) == {t.task for t in suite.tasks}
    assert (floors["n_pairs"] > 0).all()
    # Zero flips (the CPU is deterministic) is a measurement, stored as 0, not missing.
    assert floors["flip_rate"].notna().all() and (floors["flip_rate"] >= 0).all()
    assert (floors["settings"] == "batch size 1, seed 4321").all()
