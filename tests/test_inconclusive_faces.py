"""Every face shows the MDE and the inconclusive verdict the same way (hand-made paired world)."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgetwatch import db, exports, review
from forgetwatch.dashboard import components
from forgetwatch.exports.check_report import OUTCOME_MARKS
from forgetwatch.review import budget, trust
from forgetwatch.review import run as run_review
from tests.fixture_db import LORA_FINAL, build_paired_db


@pytest.fixture(scope="module")
def paired_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_paired_db(tmp_path_factory.mktemp("faces") / "paired.duckdb")


def test_every_status_has_a_badge_a_colour_and_a_mark() -> None:
    assert list(budget.STATUSES) == ["pass", "inconclusive", "review", "fail"]
    assert set(components.VERDICT_STYLE) == set(budget.STATUSES)
    assert set(components.VERDICT_TEXT_COLOR) == set(budget.STATUSES)
    assert set(budget.BADGES) == set(budget.STATUSES)
    assert set(budget.OUTCOME_STATUS) | {"not checked"} == set(OUTCOME_MARKS)
    assert "inconclusive" in review.COLUMNS["verdict"].help


def test_deltas_and_run_tables_show_the_same_mde_in_points(paired_db: Path) -> None:
    with db.connect(paired_db, read_only=True) as con:
        tests = trust.task_tests(con, [LORA_FINAL]).set_index("task")
        comparison = review.build_comparison(con, review.CompareSpec(run_ids=("run-lora",)))
        changes = run_review.model_changes(con, LORA_FINAL, "run-lora")
    expected = tests.loc["facts_old", "mde"] * 100  # no flip on 100 items: the one-way floor
    assert 5 < expected < 15
    deltas = comparison.deltas.frame.set_index(["model_id", "task"])
    assert deltas.loc[(LORA_FINAL, "facts_old"), "mde"] == pytest.approx(expected)
    run_tasks = changes.task_view("tasks").frame.set_index("task")
    assert run_tasks.loc["facts_old", "mde"] == pytest.approx(expected)
    assert list(run_tasks.columns).index("mde") == list(run_tasks.columns).index("delta") + 1
    assert review.label("mde") == "Detects ≥" and "80% power" in review.COLUMNS["mde"].help
    # The Markdown export of the same comparison carries the column, page-formatted.
    text = exports.render(comparison.report("lora"), "md").decode()
    assert "Detects ≥" in text and f"{expected:.1f}" in text


def test_the_page_badge_says_inconclusive(paired_db: Path, tmp_path: Path) -> None:
    thin = tmp_path / "thin.yaml"
    thin.write_text("knowledge: {max_drop: 6}\n")
    with db.connect(paired_db, read_only=True) as con:
        verdict = budget.evaluate(con, LORA_FINAL, budget.load_budget(thin))
        frame = trust.verdict_frame({LORA_FINAL: verdict})
    assert verdict.status == "inconclusive"
    assert frame.loc[0, "verdict"] == "inconclusive"
    assert frame.loc[0, "verdict_reasons"].startswith("knowledge: -5.0 points, but this eval")
    color, icon = components.VERDICT_STYLE[verdict.status]
    assert (color, icon) == ("blue", ":material/troubleshoot:")
