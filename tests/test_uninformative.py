"""Uninformative tasks: flagged when stored, left out of capability means, and worded once.

The paired world (``tests/fixture_db.py``) gains two code tasks:

* ``humaneval``: base, full final, checkpoint and LoRA final all score 0 on its 20
  docs, so no item can flip; it is uninformative for every model;
* ``mbpp``: the base passes its 3 docs and the checkpoint fails them all (b = n = 3).

So the full final's code capability is ``code_small`` alone (-10 points, not the
-5 the 0-delta humaneval made it), the checkpoint's is ``mbpp`` alone (-100 points
from 3 docs: an interval with a width and p = 0.25, not "-50.0 to -50.0, p = 0"),
and the LoRA final's code has only humaneval: every task uninformative, so all of
them count and it reads 0.0 (nothing changed), tested on its pairs.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from forgetwatch import db, stats
from forgetwatch.queries import checkpoints, runs, significance
from forgetwatch.review import trust
from forgetwatch.review.views import COLUMNS
from tests.fixture_db import BASE, FULL_CKPT, FULL_FINAL, LORA_FINAL, analyse, build_paired_db

MODELS = [FULL_FINAL, FULL_CKPT, LORA_FINAL]
HUMANEVAL_DOCS, MBPP_DOCS = 20, 3
# eval_id -> {task: per-doc value}; every doc of a task scores the same here.
ADDED = {
    "e-base": {"humaneval": 0.0, "mbpp": 1.0},
    "e-full-new": {"humaneval": 0.0},
    "e-full-ckpt": {"humaneval": 0.0, "mbpp": 0.0},
    "e-lora-b": {"humaneval": 0.0},
}
SUITE = {"humaneval": ("pass@1", "create_test"), "mbpp": ("pass@1", "none")}


def add_code_tasks(path: Path) -> Path:
    """Add humaneval and mbpp (suite rows, scores, samples) and analyse again."""
    with db.connect(path) as con, db.transaction(con):
        for task, (metric, filt) in SUITE.items():
            con.execute(
                "INSERT INTO suite_tasks VALUES (?, 'tiny', 'code', ?, ?)", [task, metric, filt]
            )
        for eval_id, tasks in ADDED.items():
            for task, value in tasks.items():
                metric, filt = SUITE[task]
                con.execute(
                    "INSERT INTO scores (eval_id, task, metric, filter, value, stderr) "
                    "VALUES (?, ?, ?, ?, ?, 0.0)",  # lm-eval's stderr of a constant 0/1 score
                    [eval_id, task, metric, filt, value],
                )
                docs = HUMANEVAL_DOCS if task == "humaneval" else MBPP_DOCS
                con.executemany(
                    "INSERT INTO samples (eval_id, task, doc_id, filter, metric, value, doc_hash) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(eval_id, task, d, filt, metric, value, f"h{task}{d}") for d in range(docs)],
                )
    analyse(path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return add_code_tasks(build_paired_db(tmp_path_factory.mktemp("uninf") / "w.duckdb"))


@pytest.fixture
def con(world: Path) -> duckdb.DuckDBPyConnection:
    with db.connect(world, read_only=True) as c:
        yield c


def _stored(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    return con.execute(f"SELECT * FROM {table} ORDER BY model_id, position").df()


def test_the_flag_is_stored_per_task(con: duckdb.DuckDBPyConnection) -> None:
    tasks = _stored(con, "task_tests")
    flagged = tasks[tasks["uninformative"]]
    assert set(flagged["task"]) == {"humaneval"}
    assert set(flagged["model_id"]) == set(MODELS)
    assert (flagged["delta"] == 0).all() and (flagged["n_pairs"] == HUMANEVAL_DOCS).all()
    # Its own CI still has a width (nothing flipped out of 20: ±z²/(n + z²)), and p = 1.
    half = stats.Z_95**2 / (HUMANEVAL_DOCS + stats.Z_95**2)
    assert flagged["ci_low"].to_numpy() == pytest.approx(-half)
    assert flagged["ci_high"].to_numpy() == pytest.approx(half)
    assert (flagged["p_value"] == 1.0).all()
    assert not tasks.loc[tasks["task"] != "humaneval", "uninformative"].any()


def _code(con: duckdb.DuckDBPyConnection, model_id: str) -> pd.Series:
    caps = _stored(con, "capability_tests")
    return caps[(caps["model_id"] == model_id) & (caps["capability"] == "code")].iloc[0]


def test_capability_means_leave_the_task_out(con: duckdb.DuckDBPyConnection) -> None:
    code = _code(con, FULL_FINAL)
    # code_small alone: 0.20 - 0.30, not (−0.10 + 0) / 2.
    assert code["delta"] == pytest.approx(-0.10)
    assert code["n_uninformative"] == 1
    assert (code["base_value"], code["value"]) == pytest.approx((0.30, 0.20))
    assert code["n_pairs"] == 0  # humaneval's 20 pairs are not the capability's
    # The pages' own delta SQL leaves out the same task: one number everywhere.
    shown = checkpoints.checkpoint_deltas(con, "run-full")
    by_model = shown[shown["capability"] == "code"].set_index("model_id")["delta"]
    assert by_model[FULL_FINAL] == pytest.approx(-0.10)
    assert by_model[FULL_CKPT] == pytest.approx(-1.0)
    run_page = runs.capability_deltas(con, FULL_FINAL).set_index("capability")
    assert run_page.loc["code", "delta"] == pytest.approx(-0.10)
    assert run_page.loc["code", "value"] == pytest.approx(0.20)
    lora = runs.capability_deltas(con, LORA_FINAL).set_index("capability")
    assert lora.loc["code", "delta"] == 0.0 and lora.loc["code", "value"] == 0.0
    # General change: (knowledge -0.20 + code -0.10 + instructions -0.20) / 3.
    assert runs.model_summary(con, FULL_FINAL)["general_change"] == pytest.approx(-0.5 / 3)


def test_a_collapsed_capability_reads_sensibly(con: duckdb.DuckDBPyConnection) -> None:
    code = _code(con, FULL_CKPT)
    # Before: mean(-1.0, 0.0) = -0.5 with a bootstrap of one value: "-50 to -50, p = 0".
    assert code["delta"] == pytest.approx(-1.0)
    assert code["test"] == stats.TEST_MCNEMAR and code["p_value"] == pytest.approx(0.25)
    assert (code["ci_low"], code["ci_high"]) == pytest.approx(stats.tango_interval(3, 3, 0))
    assert code["ci_low"] < code["ci_high"] and code["ci_high"] > 0
    read = significance.paired_capability_deltas(con, [FULL_CKPT])
    assert not read.loc[read["capability"] == "code", "significant"].iloc[0]


def test_every_task_uninformative_reads_zero_and_is_judged(
    con: duckdb.DuckDBPyConnection,
) -> None:
    code = _code(con, LORA_FINAL)
    # Nothing changed and nothing could: 0.0, tested on humaneval's 20 pairs (no flips),
    # so a budget judges it rather than finding "no delta to check".
    assert code["delta"] == 0.0 and code["n_uninformative"] == 1
    assert code["evidence"] == "paired" and code["n_pairs"] == 20
    assert code["p_value"] == pytest.approx(1.0)
    assert code["ci_low"] < 0 < code["ci_high"]  # Tango's interval at zero discordance
    assert (code["base_value"], code["value"]) == (0.0, 0.0)
    caps = checkpoints.checkpoint_deltas(con, "run-lora")
    assert caps.loc[caps["capability"] == "code", "delta"].tolist() == [0.0]
    # General change counts that 0.0 with knowledge (lora has no instructions eval).
    knowledge = ((0.80 - 0.80) + (0.50 - 0.60)) / 2
    assert runs.model_summary(con, LORA_FINAL)["general_change"] == pytest.approx(knowledge / 2)


def test_uninformative_rows_are_not_in_the_correction_family(
    con: duckdb.DuckDBPyConnection,
) -> None:
    tasks = significance.paired_task_deltas(con, MODELS)
    flagged = tasks[tasks["uninformative"]]
    assert len(flagged) == 3
    assert flagged["p_adjusted"].isna().all() and not flagged["significant"].any()
    assert flagged["correction"].isna().all()
    # Holm over the other rows only: the family is one row smaller than the rows with a p.
    full = tasks[tasks["model_id"] == FULL_FINAL]
    tested = full[full["p_value"].notna() & ~full["uninformative"]]
    expected = stats.adjust_array(tested["p_value"].to_numpy(dtype=float), "holm")
    assert tested["p_adjusted"].to_numpy() == pytest.approx(expected)
    assert np.isfinite(full["mde"]).sum() >= len(tested)


def test_review_carries_the_flag_and_the_wording(con: duckdb.DuckDBPyConnection) -> None:
    tests = trust.task_tests(con, MODELS)
    assert tests["uninformative"].dtype == bool
    assert set(tests.loc[tests["uninformative"], "task"]) == {"humaneval"}
    caps = trust.capability_tests(con, MODELS)
    code = caps[caps["capability"] == "code"].set_index("model_id")["n_uninformative"]
    assert code.to_dict() == {FULL_FINAL: 1, FULL_CKPT: 1, LORA_FINAL: 1}
    notes = trust.uninformative_notes(con, MODELS)
    assert notes == [
        "humaneval: every model scores 0 — uninformative, left out of the code mean",
        "code: every task is uninformative (humaneval), so its +0.0 says only that no item "
        "changed: model and base sit at the same bound",
    ]
    assert "uninformative" in trust.TEST_COLUMNS and COLUMNS["uninformative"].label


def test_some_models_stuck_on_a_task_say_how_many(con: duckdb.DuckDBPyConnection) -> None:
    tasks = significance.paired_task_deltas(con, MODELS)
    one_free = tasks.copy()
    one_free.loc[(one_free["task"] == "humaneval") & (one_free["model_id"] == FULL_CKPT),
                 "uninformative"] = False  # fmt: skip
    assert trust.notes_from(one_free)[0] == (
        "humaneval: 2 of 3 models score 0, as does the base — uninformative, "
        "left out of the code mean"
    )
    assert trust.uninformative_note("ifeval", "instructions", 1.0) == (
        "ifeval: every model scores 100 — uninformative, left out of the instructions mean"
    )


def test_a_file_analysed_before_the_flag_reads(world: Path, tmp_path: Path) -> None:
    """Columns a read-only page cannot add read as 'informative' until the next refresh."""
    old = tmp_path / "old.duckdb"
    old.write_bytes(world.read_bytes())
    with db.connect(old) as c:
        c.execute("ALTER TABLE task_tests DROP COLUMN uninformative")
        c.execute("ALTER TABLE capability_tests DROP COLUMN n_uninformative")
    raw = duckdb.connect(str(old), read_only=True)  # as a page opens it, with no upgrade
    try:
        tasks = significance.paired_task_deltas(raw, [BASE, FULL_FINAL])
        caps = trust.capability_tests(raw, [FULL_FINAL])
    finally:
        raw.close()
    assert not tasks["uninformative"].astype(bool).any()
    assert (caps["n_uninformative"] == 0).all()
