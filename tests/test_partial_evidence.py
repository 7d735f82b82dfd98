"""Partial evidence never breaks a view: random holes in a real DuckDB, every face rendered.

Real lm-eval folders are often incomplete: a capability evaluated on the
fine-tune but not on its base (or the other way round), tasks without
per-sample results, metrics without a stderr. Hypothesis draws such worlds into
a real DuckDB file (rows written the way the collectors write them; drawing
thousands of lm-eval folders would cost minutes per example, which is why this
one test writes rows directly) and then builds every view model, renders every
export format and writes the ``check`` comment. None may raise, and a missing
delta must say why it is missing.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forgetwatch import db, exports, queries, review
from forgetwatch.exports.check_report import verdict_markdown
from forgetwatch.review import budget, checkpoints, flips, run, runs, trust
from tests.fixture_db import analyse

BASE, FINAL, CKPT = "/m/base", "/r/out", "/r/out/checkpoint-10"
TASKS = {  # task -> capability; two tasks for knowledge, so a capability can be half-evaluated
    "t_target": "target", "t_know_a": "knowledge", "t_know_b": "knowledge",
    "t_code": "code", "t_instr": "instructions", "t_halluc": "hallucination",
}  # fmt: skip
DOCS = 12
_counter = itertools.count()

evidence = st.fixed_dictionaries(
    {
        # Per model, the tasks it was evaluated on.
        "base_tasks": st.sets(st.sampled_from(sorted(TASKS))),
        "final_tasks": st.sets(st.sampled_from(sorted(TASKS)), min_size=1),
        "ckpt_tasks": st.sets(st.sampled_from(sorted(TASKS))),
        # Tasks whose per-sample results were logged, and tasks with a stderr.
        "sampled": st.sets(st.sampled_from(sorted(TASKS))),
        "with_stderr": st.sets(st.sampled_from(sorted(TASKS))),
        "scores": st.lists(st.integers(0, DOCS), min_size=18, max_size=18),
    }
)


def write_world(path: Path, drawn: dict[str, object]) -> None:
    scores = iter(drawn["scores"])  # type: ignore[call-overload]
    with db.connect(path) as con, db.transaction(con):
        con.executemany(
            "INSERT INTO suite_tasks VALUES (?, 'fuzz', ?, 'acc', 'none')", list(TASKS.items())
        )
        con.execute(
            """INSERT INTO runs (run_id, experiment_id, experiment_name, run_name, status,
                   start_time, base_model, method, output_dir, params, tags)
               VALUES ('run-1', '1', 'fuzz', 'fuzz-run', 'FINISHED', '2024-01-01', ?, 'full',
                       '/r/out', map(), map())""",
            [BASE],
        )
        con.executemany(
            "INSERT INTO models (model_id, kind, path, run_id, step, base_model_id, display_name)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (BASE, "base", BASE, None, None, None, "base"),
                (FINAL, "final", FINAL, "run-1", None, BASE, "out"),
                (CKPT, "checkpoint", CKPT, "run-1", 10, BASE, "out/checkpoint-10"),
            ],
        )
        for model, key in ((BASE, "base_tasks"), (FINAL, "final_tasks"), (CKPT, "ckpt_tasks")):
            tasks = sorted(drawn[key])  # type: ignore[call-overload]
            if not tasks:
                continue
            eval_id = f"e{next(_counter)}"
            con.execute(
                "INSERT INTO evals (eval_id, model_id, lm_eval_version, evaluated_at, "
                "ingested_at, source_file) VALUES (?, ?, '0.4.13', '2024-02-01', "
                "'2024-02-01', ?)",
                [eval_id, model, f"/evals/{eval_id}/results.json"],
            )
            for task in tasks:
                right = next(scores, DOCS // 2)
                stderr = 0.05 if task in drawn["with_stderr"] else None  # type: ignore[operator]
                con.execute(
                    "INSERT INTO scores (eval_id, task, metric, filter, value, stderr) "
                    "VALUES (?, ?, 'acc', 'none', ?, ?)",
                    [eval_id, task, right / DOCS, stderr],
                )
                if task in drawn["sampled"]:  # type: ignore[operator]
                    con.executemany(
                        "INSERT INTO samples (eval_id, task, doc_id, filter, metric, value, "
                        "doc_hash, target, response) VALUES (?, ?, ?, 'none', 'acc', ?, ?, "
                        "'a', 'b')",
                        [
                            (eval_id, task, doc, 1.0 if doc < right else 0.0, f"h{task}{doc}")
                            for doc in range(DOCS)
                        ],
                    )


def render_everything(path: Path) -> None:
    """Every view model, every export format and the check comment, for the drawn world."""
    plan = budget.load_budget(budget.default_budget_path())
    with db.connect(path, read_only=True) as con:
        comparison = review.build_comparison(con, review.CompareSpec())
        for fmt in exports.FORMATS:
            assert exports.render(comparison.report("fuzz"), fmt)
        table = comparison.table.frame
        if "missing" in table.columns:
            empty = table[list(comparison.labels().values())].isna().any(axis=1)
            assert (table.loc[empty, "missing"] != "").all()
        overview = runs.runs_overview(con)
        assert not overview.empty
        runs.run_verdicts(con, ["run-1"])
        for model in (FINAL, CKPT):
            changes = run.model_changes(con, model, "run-1")
            changes.capability_view("c"), changes.task_view("t")
            verdict = budget.evaluate(con, model, plan)
            assert verdict.status in budget.STATUSES
            assert verdict_markdown("fuzz", verdict).startswith("### forgetwatch check")
        checkpoints.checkpoints_review(con, "run-1")
        trust.task_tests(con, [FINAL, CKPT])
        if BASE in queries.flips.sampled_models(con) and FINAL in queries.flips.sampled_models(con):
            model_id, label, base_id = flips.pair_for(con, "fuzz-run", None)
            found = flips.flips_review(con, model_id, base_id, label=label)
            for fmt in exports.FORMATS:
                assert exports.render(found.report(), fmt)


@settings(
    max_examples=6,  # each example is a fresh DuckDB and every face rendered: seconds
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=evidence)
def test_every_view_survives_partial_evidence(tmp_path: Path, drawn: dict[str, object]) -> None:
    path = tmp_path / f"fuzz-{next(_counter)}.duckdb"
    write_world(path, drawn)
    analyse(path)  # as every collector run ends
    render_everything(path)


def test_a_capability_the_base_lacks_is_shown_missing(tmp_path: Path) -> None:
    """The crash that was reported: code evaluated on the fine-tune, not on its base."""
    path = tmp_path / "code-missing.duckdb"
    everything = set(TASKS)
    write_world(
        path,
        {"base_tasks": everything - {"t_code"}, "final_tasks": everything, "ckpt_tasks": set(),
         "sampled": everything, "with_stderr": everything, "scores": [6] * 18},
    )  # fmt: skip
    with db.connect(path, read_only=True) as con:
        table = review.build_comparison(con, review.CompareSpec()).table.frame
    code = table[table["capability"] == "code"]
    assert list(code["task"]) == ["(mean)", "t_code"]
    assert pd.isna(code["fuzz-run"]).all()
    assert set(code["missing"]) == {"the base model has no eval of this task"}


@pytest.mark.parametrize("fmt", sorted(exports.FORMATS))
def test_cli_export_all_with_a_missing_capability(tmp_path: Path, fmt: str) -> None:
    from forgetwatch.cli import main

    path = tmp_path / "code-missing.duckdb"
    everything = set(TASKS)
    write_world(
        path,
        {"base_tasks": everything - {"t_code"}, "final_tasks": everything, "ckpt_tasks": set(),
         "sampled": set(), "with_stderr": everything, "scores": [6] * 18},
    )  # fmt: skip
    out = tmp_path / f"all.{exports.FORMATS[fmt].extension}"
    assert main(["export", "--db", str(path), "--all", "--format", fmt, "--out", str(out)]) == 0
    assert out.stat().st_size > 0
