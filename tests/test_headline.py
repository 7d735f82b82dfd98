"""The Runs page's headline: verdict counts, the best (or least bad) model, the worst
forgetting per capability and the budget in words, on a real analysed DuckDB file.

The fixture world's scores are hand-picked, so the expected picks follow from them;
the counts are checked against the verdicts every other face reads (one truth).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from forgetwatch import db
from forgetwatch.review import trust
from forgetwatch.review.headline import headline
from tests.fixture_db import FULL_CKPT, FULL_FINAL, LORA_FINAL, build_paired_db

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def paired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_paired_db(tmp_path_factory.mktemp("headline") / "fw.duckdb")


def test_counts_are_the_verdicts_every_face_reads(paired: Path) -> None:
    with db.connect(paired, read_only=True) as con:
        found = headline(con)
        verdicts = trust.verdicts(con, [FULL_FINAL, FULL_CKPT, LORA_FINAL])
    statuses = [v.status for v in verdicts.values()]
    assert found.counts == {
        s: statuses.count(s) for s in ("pass", "inconclusive", "review", "fail")
    }
    assert (found.finals, found.checkpoints) == (2, 1)
    assert found.verdict_line.startswith("0 of 3 evaluated models pass the budget")
    assert "1 checkpoint" in found.scope_line


def test_nothing_passes_so_the_least_bad_is_named(paired: Path) -> None:
    with db.connect(paired, read_only=True) as con:
        found = headline(con)
    assert found.best is None
    # The checkpoint only needs review (its code has no delta); both finals fail.
    assert found.least_bad is not None
    assert (found.least_bad.model_id, found.least_bad.status) == (FULL_CKPT, "review")
    assert found.least_bad.is_checkpoint and found.least_bad.label == "full-lr3e-3 @50"
    assert found.least_bad.target_gain == 20.0


def test_worst_forgetting_per_capability_in_page_signs(paired: Path) -> None:
    with db.connect(paired, read_only=True) as con:
        found = headline(con)
        lowest = dict(
            con.execute(
                "SELECT capability, min(delta) FROM capability_tests "
                "WHERE capability <> 'target' AND delta < 0 GROUP BY 1"
            ).fetchall()
        )
    assert {w.capability for w in found.worst} == set(lowest)
    for worst in found.worst:
        sign = -1 if worst.capability == "hallucination" else 1  # a failure rate: + = worse
        assert worst.change == pytest.approx(sign * round(lowest[worst.capability] * 100, 1))
    hallucination = next(w for w in found.worst if w.capability == "hallucination")
    assert hallucination.change == 40.0 and hallucination.significant
    assert hallucination.text.endswith(": full-lr3e-3")


def test_a_passing_model_is_the_best_and_the_budget_reads_in_words(
    paired: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("target: {min_gain: 10}\nknowledge: {max_drop: 30}\n")
    monkeypatch.setenv("FORGETWATCH_BUDGET", str(lenient))
    with db.connect(paired, read_only=True) as con:
        found = headline(con)
    assert found.counts["pass"] >= 2
    assert found.best is not None and found.least_bad is None
    # Of the passing models, the full fine-tune gained most on the target (+70.0).
    assert (found.best.model_id, found.best.target_gain) == (FULL_FINAL, 70.0)
    assert found.budget_rules == [
        "target must gain at least 10 points, significantly",
        "knowledge may lose at most 30 points",
    ]
    assert str(lenient) in found.budget_line and not found.budget_is_default


def test_filters_narrow_the_headline(paired: Path) -> None:
    with db.connect(paired, read_only=True) as con:
        lora = headline(con, method="lora")
        nothing = headline(con, base_model="/models/another-base")
    assert (lora.finals, lora.checkpoints) == (1, 0)
    assert nothing.empty


def test_runs_page_leads_with_the_headline(paired: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGETWATCH_DB", str(paired))
    monkeypatch.delenv("FORGETWATCH_BUDGET", raising=False)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    texts = [m.value for m in at.markdown]
    assert any("0 of 3 evaluated models pass the budget" in t for t in texts)
    assert any("Nothing passes the budget" in t for t in texts)
    assert any(t.startswith("Least bad: **full-lr3e-3 @50** (a checkpoint)") for t in texts), texts
    assert "**Worst forgetting**, per capability:" in texts
    assert [m.label for m in at.metric] == [
        "Knowledge",
        "Code",
        "Instructions",
        "Hallucination (+ = worse)",
    ]
    assert at.metric[-1].value == "+40.0"
    captions = [c.value for c in at.caption]
    assert any(c.startswith("Budget: target must gain at least 2 points") for c in captions)
