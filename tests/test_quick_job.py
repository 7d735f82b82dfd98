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
from forgetwatch.evals import jobs, targets
from forgetwatch.evals.partials import repeat_settings
from forgetwatch.queries import partial
from forgetwatch.review.partial import base_noise_line
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
    job = jobs.wait(jobs.submit(spec, job_db), job_db)
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


def test_repeat_of_the_base_stores_a_noise_floor(job_db: Path, tmp_path: Path) -> None:
    with db.connect(job_db, read_only=True) as con:
        _, base = _checkpoint(con)
        tests_before = _one(con, "SELECT * FROM task_tests ORDER BY ALL", [])
    path = tmp_path / "two.yaml"  # two tasks keep the repeat short
    path.write_text("\n".join(SUITE.format(tasks=TASKS).splitlines()[:4] + [
        "  - {task: fw_arithmetic, capability: knowledge, metric: acc}"]) + "\n")  # fmt: skip
    suite = load_suite(str(path))
    # The demo's evals ran at batch size 16; repeat_settings(1) picks 8 (and seed 4321).
    spec = targets.prepare(base, suite, hub_ok=False, mode="repeat-base", **repeat_settings(1))
    job = jobs.wait(jobs.submit(spec, job_db), job_db)
    assert job.status == "succeeded", job.error
    with db.connect(job_db, read_only=True) as con:
        floors = partial.noise_floors(con, [base])
        assert _one(con, "SELECT * FROM task_tests ORDER BY ALL", []) == tests_before
    assert set(floors["task"]) == {t.task for t in suite.tasks}
    assert (floors["n_pairs"] > 0).all()
    # Zero flips (the CPU is deterministic) is a measurement, stored as 0, not missing.
    assert floors["flip_rate"].notna().all() and (floors["flip_rate"] >= 0).all()
    assert (floors["settings"] == "batch size 8, seed 4321").all()
    # The Run page reads the floor of a model's base in the one wording.
    with db.connect(job_db, read_only=True) as con:
        model, _ = _checkpoint(con)
        line = base_noise_line(con, model)
    assert line is not None and line.startswith("Base evaluated twice, ")
    assert "base vs base flips" in line


def test_no_change_is_significant_inside_the_noise_floor(job_db: Path) -> None:
    from forgetwatch.queries import significance

    with db.connect(job_db, read_only=True) as con:
        before = significance.paired_task_deltas(con, [m[0] for m in con.execute(
            "SELECT model_id FROM models WHERE base_model_id IS NOT NULL").fetchall()])  # fmt: skip
    hit = before[before["significant"]].iloc[0]
    floor = abs(float(hit["delta"]))
    with db.connect(job_db) as con:  # a base that flips as many items as the delta is large
        con.execute(
            "INSERT INTO noise_floor VALUES (?, ?, ?, ?, 30, 9, ?, 0.3, 'ref', 'rep', 'x', now())",
            [hit["base_model_id"], hit["task"], hit["metric"], hit["filter"], floor],
        )
    with db.connect(job_db, read_only=True) as con:
        after = significance.paired_task_deltas(con, list(before["model_id"].unique()))
    key = ["model_id", "task"]
    merged = before.merge(after, on=key, suffixes=("", "_after"))
    inside = (
        (merged["base_model_id"] == hit["base_model_id"])
        & (merged["task"] == hit["task"])
        & (merged["delta"].abs() <= floor)
    )
    assert not merged.loc[inside, "significant_after"].any()
    assert (merged.loc[~inside, "significant"] == merged.loc[~inside, "significant_after"]).all()
