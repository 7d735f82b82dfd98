"""Pages read the tests stored when data arrived; a budget change reruns none of them.

The paired world (``tests/fixture_db.py``) is analysed the way every collector
run ends (``forgetwatch.analysis.refresh``). Then:

* with every sample row deleted, the view models of Runs, Compare, Run and the
  ``check`` verdicts are exactly what they were: rendering never reads samples;
* with the pairing query and every test function made to fail, verdicts under a
  second, stricter budget still come out, and differ: a budget needs no tests;
* refresh is incremental: nothing new, nothing redone; a new base link or a new
  suite redoes exactly the models it touches.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from forgetwatch import analysis, db, stats
from forgetwatch.queries import pairing, significance
from forgetwatch.review import budget, comparison, runs, trust
from forgetwatch.review import run as run_review
from tests.fixture_db import BASE, FULL_CKPT, FULL_FINAL, LORA_FINAL, build_paired_db

MODELS = [FULL_FINAL, FULL_CKPT, LORA_FINAL]


@pytest.fixture(scope="module")
def paired_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_paired_db(tmp_path_factory.mktemp("stored") / "paired.duckdb")


@pytest.fixture
def copy(paired_db: Path, tmp_path: Path) -> Path:
    path = tmp_path / "copy.duckdb"
    shutil.copy(paired_db, path)
    return path


def page_answers(path: Path) -> dict[str, Any]:
    """What Runs, Compare, Run and ``check`` show, as plain frames and strings."""
    plan = budget.load_budget(budget.default_budget_path())
    with db.connect(path, read_only=True) as con:
        overview = runs.runs_overview(con)
        compared = comparison.build_comparison(con, comparison.CompareSpec())
        changes = run_review.model_changes(con, FULL_FINAL)
        verdicts = budget.verdicts(con, MODELS, plan)
        return {
            "runs": overview.view.frame,
            "runs_noise": overview.view.noise,
            "compare": compared.table.frame,
            "compare_deltas": compared.deltas.frame,
            "run": [changes.headline, changes.capabilities, changes.tasks],
            "verdicts": {m: (v.status, v.reasons) for m, v in verdicts.items()},
            "tasks": trust.task_tests(con, MODELS),
        }


def assert_same(a: Any, b: Any) -> None:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b


def test_pages_never_read_samples(paired_db: Path, copy: Path) -> None:
    before = page_answers(paired_db)
    assert before["verdicts"][FULL_FINAL][0] in budget.STATUSES
    assert (before["tasks"]["evidence"] == "paired").any()  # the world really is paired
    with db.connect(copy) as con:
        con.execute("DELETE FROM samples")
    assert_same(before, page_answers(copy))


def _refuse(*_: Any, **__: Any) -> Any:
    raise AssertionError("a test was recomputed")


def test_a_budget_change_reruns_no_test(
    paired_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module, name in (
        (pairing, "paired_rows"), (pairing, "analyse"), (stats, "paired_bootstrap"),
        (stats, "mcnemar_exact"), (stats, "stderr_test"),
    ):  # fmt: skip
        monkeypatch.setattr(module, name, _refuse)
    strict = tmp_path / "strict.yaml"
    strict.write_text("knowledge: {max_drop: 0}\nalpha: 0.2\ncorrection: bh\n")
    with db.connect(paired_db, read_only=True) as con:
        default = budget.verdicts(con, MODELS, budget.load_budget(budget.default_budget_path()))
        tight = budget.verdicts(con, MODELS, budget.load_budget(strict))
    assert tight[FULL_FINAL].status == "fail"  # the full run lost 20 knowledge points
    assert [v.status for v in default.values()] != [v.status for v in tight.values()] or any(
        default[m].reasons != tight[m].reasons for m in MODELS
    )
    bh = tight[FULL_FINAL].checks.set_index("capability")
    assert (
        bh.loc["knowledge", "p_adjusted"]
        <= default[FULL_FINAL].checks.set_index("capability").loc["knowledge", "p_adjusted"]
    )


def test_refresh_redoes_only_what_changed(copy: Path) -> None:
    assert analysis.refresh(copy).analysed == 0  # the builder already analysed it
    with db.connect(copy) as con:  # the LoRA run is re-based on its own final model
        con.execute(
            "UPDATE models SET base_model_id = ? WHERE model_id = ?", [FULL_FINAL, LORA_FINAL]
        )
        assert significance.unanalysed(con, MODELS) == [LORA_FINAL]
    report = analysis.refresh(copy)
    assert (report.analysed, report.removed) == (1, 0)
    with db.connect(copy, read_only=True) as con:
        assert significance.unanalysed(con, MODELS) == []
        rows = significance.paired_task_deltas(con, [LORA_FINAL])
    assert set(rows["base_model_id"]) == {FULL_FINAL}
    with db.connect(copy) as con:  # a suite change touches every evaluated model
        con.execute("UPDATE suite_tasks SET capability = 'code' WHERE task = 'arith'")
        evaluated = con.execute("SELECT count(DISTINCT model_id) FROM evals").fetchone()[0]
    assert analysis.refresh(copy).analysed == evaluated
    assert analysis.refresh(copy).analysed == 0


def test_stored_rows_follow_the_current_base_only(copy: Path) -> None:
    """A model re-based but not yet analysed shows no stale tests against its old base."""
    with db.connect(copy) as con:
        con.execute("UPDATE models SET base_model_id = NULL WHERE model_id = ?", [FULL_FINAL])
    with db.connect(copy, read_only=True) as con:
        assert significance.paired_task_deltas(con, [FULL_FINAL]).empty
        assert not significance.paired_task_deltas(con, [LORA_FINAL]).empty


def test_stats_settings_change_redoes_the_tests(
    copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORGETWATCH_BOOTSTRAP_RESAMPLES", "999")
    with db.connect(copy, read_only=True) as con:
        evaluated = con.execute("SELECT count(DISTINCT model_id) FROM evals").fetchone()[0]
    assert analysis.refresh(copy).analysed == evaluated
    with db.connect(copy, read_only=True) as con:
        keys = {r[0] for r in con.execute("SELECT stats_key FROM analysis_state").fetchall()}
    assert keys == {pairing.stats_key()} and "resamples=999" in pairing.stats_key()


def test_cli_analyse_all_rebuilds_with_a_progress_bar(copy: Path) -> None:
    with db.connect(copy, read_only=True) as con:
        before = significance.paired_capability_deltas(con, MODELS)
        evaluated = con.execute("SELECT count(DISTINCT model_id) FROM evals").fetchone()[0]
    done = subprocess.run(
        [sys.executable, "-m", "forgetwatch", "analyse", "--all", "--db", str(copy)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{evaluated} models analysed" in done.stdout
    assert "analyse models" in done.stderr  # the tqdm bar
    with db.connect(copy, read_only=True) as con:
        pd.testing.assert_frame_equal(before, significance.paired_capability_deltas(con, MODELS))


def test_a_base_without_a_base_has_rows_but_no_tests(paired_db: Path) -> None:
    with db.connect(paired_db, read_only=True) as con:
        rows = significance.paired_task_deltas(con, [BASE])
    assert rows.empty or rows["p_value"].isna().all()


def test_a_file_from_before_the_analysis_tables_reads_then_upgrades(
    paired_db: Path, copy: Path
) -> None:
    """Pages open read-only and cannot add tables: they say what to run, then it works."""
    with db.connect(copy) as con:
        for table in analysis.TABLES:
            con.execute(f"DROP TABLE {table}")
    with duckdb.connect(str(copy), read_only=True) as con:  # no schema applied, as a page
        overview = runs.runs_overview(con)
        compared = comparison.build_comparison(con, comparison.CompareSpec())
    assert "Run `forgetwatch analyse`" in overview.warning
    assert any("Run `forgetwatch analyse`" in note for note in compared.notes)
    assert analysis.refresh(copy).analysed > 0  # the write-open adds the tables and fills them
    assert_same(page_answers(paired_db), page_answers(copy))
