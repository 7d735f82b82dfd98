"""Paired significance from a real DuckDB: the hand-made world and real lm-eval group output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from forgetwatch import db, stats
from forgetwatch.collectors import lm_eval_results
from forgetwatch.queries import significance
from tests.fixture_db import (
    BASE,
    FULL_CKPT,
    FULL_FINAL,
    LORA_FINAL,
    PAIRED_DOCS,
    analyse,
    build_paired_db,
)

MODELS = [FULL_FINAL, FULL_CKPT, LORA_FINAL]
GROUP_OUTPUT = Path(__file__).parent / "fixtures" / "lm_eval_group" / "output"


@pytest.fixture(scope="module")
def paired_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_paired_db(tmp_path_factory.mktemp("paired") / "paired.duckdb")


@pytest.fixture(scope="module")
def con(paired_db: Path) -> duckdb.DuckDBPyConnection:
    with db.connect(paired_db, read_only=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def tasks(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return significance.paired_task_deltas(con, MODELS).set_index(["model_id", "task"])


def test_columns_are_the_public_api(tasks: pd.DataFrame) -> None:
    expected = {
        "model_id", "base_model_id", "task", "capability", "metric", "filter", "is_group",
        "base_value", "value", "delta", "n_pairs", "right_to_wrong", "wrong_to_right", "test",
        "evidence", "p_value", "p_adjusted", "ci_low", "ci_high", "significant", "correction",
    }  # fmt: skip
    assert expected <= set(tasks.reset_index().columns)


def test_discordant_pairs_are_counted_per_task(tasks: pd.DataFrame) -> None:
    # facts_old .8 -> .6 over 100 docs: exactly 20 right->wrong.
    row = tasks.loc[(FULL_FINAL, "facts_old")]
    assert (row.n_pairs, row.right_to_wrong, row.wrong_to_right) == (PAIRED_DOCS, 20, 0)
    assert row.test == "mcnemar-exact" and row.evidence == "paired"
    assert row.p_value == pytest.approx(sps.binomtest(0, 20, 0.5).pvalue, abs=1e-12)
    assert row.delta == pytest.approx(-0.2)
    assert -0.3 < row.ci_low < -20 / PAIRED_DOCS < row.ci_high < 0
    gain = tasks.loc[(FULL_FINAL, "facts_new")]  # .2 -> .9: 70 wrong->right
    assert (gain.right_to_wrong, gain.wrong_to_right) == (0, 70)
    same = tasks.loc[(LORA_FINAL, "facts_old")]  # .8 -> .8: no discordant pair
    assert (same.right_to_wrong, same.wrong_to_right, same.p_value) == (0, 0, 1.0)
    assert not same.significant


def test_fallbacks_stderr_then_none(tasks: pd.DataFrame) -> None:
    instruct = tasks.loc[(FULL_FINAL, "instruct")]  # no samples, stderr .05 on both sides
    assert (instruct.evidence, instruct.test, instruct.n_pairs) == ("stderr", "stderr-z", 0)
    half = 1.959964 * np.hypot(0.05, 0.05)
    assert (instruct.ci_low, instruct.ci_high) == pytest.approx((-0.2 - half, -0.2 + half))
    assert instruct.p_value == pytest.approx(2 * sps.norm.sf(0.2 / np.hypot(0.05, 0.05)))
    code = tasks.loc[(FULL_FINAL, "code_small")]  # no samples and lm-eval's "N/A" stderr
    assert code.evidence == "none" and code.test is None
    assert pd.isna(code.p_value) and pd.isna(code.p_adjusted) and not code.significant
    assert code.correction is None


def test_holm_runs_per_model_across_its_tasks(tasks: pd.DataFrame) -> None:
    for model in MODELS:
        rows = tasks.loc[model]
        tested = rows["p_value"].notna()
        expected = stats.adjust(list(rows.loc[tested, "p_value"]), "holm")
        assert list(rows.loc[tested, "p_adjusted"]) == pytest.approx(expected)
        assert set(rows.loc[tested, "correction"]) == {"holm"}
        assert (rows["significant"] == (rows["p_adjusted"] < 0.05)).all()


def test_bh_is_never_stricter_than_holm(con: duckdb.DuckDBPyConnection) -> None:
    holm = significance.paired_task_deltas(con, [FULL_FINAL])
    bh = significance.paired_task_deltas(con, [FULL_FINAL], correction="bh")
    assert set(bh["correction"].dropna()) == {"bh"}
    assert (bh["p_adjusted"].fillna(1) <= holm["p_adjusted"].fillna(1) + 1e-15).all()
    with pytest.raises(ValueError, match="unknown correction"):
        significance.paired_task_deltas(con, [FULL_FINAL], correction="bonferroni")


def test_capability_rows(con: duckdb.DuckDBPyConnection) -> None:
    caps = significance.paired_capability_deltas(con, MODELS).set_index(["model_id", "capability"])
    knowledge = caps.loc[(LORA_FINAL, "knowledge")]  # facts_old 0, arith -.1 -> mean -.05
    assert knowledge.delta == pytest.approx(-0.05)
    assert knowledge.test == "paired-bootstrap" and knowledge.evidence == "paired"
    assert (knowledge.n_pairs, knowledge.right_to_wrong) == (2 * PAIRED_DOCS, 10)
    assert knowledge.ci_low < -0.05 < knowledge.ci_high < 0
    single = caps.loc[(FULL_FINAL, "hallucination")]  # one task: its own McNemar test
    assert single.test == "mcnemar-exact"
    assert single.p_value == pytest.approx(sps.binomtest(0, 40, 0.5).pvalue, abs=1e-12)
    assert caps.loc[(FULL_FINAL, "code")].evidence == "none"
    assert caps.loc[(FULL_FINAL, "instructions")].evidence == "stderr"
    tested = caps.loc[FULL_FINAL, "p_value"].notna()
    assert list(caps.loc[FULL_FINAL].loc[tested, "p_adjusted"]) == pytest.approx(
        stats.adjust(list(caps.loc[FULL_FINAL].loc[tested, "p_value"]), "holm")
    )


def _writable_copy(paired_db: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy.duckdb"
    shutil.copy(paired_db, copy)  # closed file, no WAL pending
    return copy


def test_changed_documents_are_not_paired(paired_db: Path, tmp_path: Path) -> None:
    path = _writable_copy(paired_db, tmp_path)
    with db.connect(path) as con:  # the full model's arith docs 1..30 now hash differently
        con.execute(
            "UPDATE samples SET doc_hash = 'changed' || doc_id "
            "WHERE eval_id = 'e-full-new' AND task = 'arith' AND doc_id BETWEEN 1 AND 30"
        )
    analyse(path)  # the next collector run would redo the stored tests
    with db.connect(path, read_only=True) as con:
        row = significance.paired_task_deltas(con, [FULL_FINAL]).set_index("task").loc["arith"]
    assert (row.n_pairs, row.hash_mismatches) == (PAIRED_DOCS - 30, 30)


def test_continuous_metric_uses_the_paired_bootstrap(paired_db: Path, tmp_path: Path) -> None:
    path = _writable_copy(paired_db, tmp_path)
    with db.connect(path) as con:  # make the full model's unknowns scores continuous
        con.execute(
            "UPDATE samples SET value = value * 0.6 + doc_id / 1000.0 "
            "WHERE eval_id = 'e-full-new' AND task = 'unknowns'"
        )
        con.execute(  # and its score, as lm-eval reports it: the mean over docs
            """UPDATE scores SET value = (
                   SELECT avg(s.value) FROM samples s WHERE s.eval_id = scores.eval_id
                      AND s.task = scores.task AND s.metric = scores.metric
                      AND s.filter = scores.filter)
               WHERE eval_id = 'e-full-new' AND task = 'unknowns'"""
        )
        pairs = con.execute(
            """SELECT m.value - b.value FROM samples m JOIN samples b USING (task, doc_id)
               WHERE m.eval_id = 'e-full-new' AND b.eval_id = 'e-base' AND task = 'unknowns'
               ORDER BY doc_id"""
        ).fetchnumpy()
    diffs = next(iter(pairs.values()))
    analyse(path)  # the next collector run would redo the stored tests
    with db.connect(path, read_only=True) as con:
        row = significance.paired_task_deltas(con, [FULL_FINAL]).set_index("task").loc["unknowns"]
    assert row.test == "paired-bootstrap" and row.evidence == "paired"
    assert row.n_pairs == len(diffs) and pd.isna(row.right_to_wrong)
    reference = sps.bootstrap(
        (diffs,), np.mean, n_resamples=stats.resamples(), method="percentile",
        rng=np.random.default_rng(stats.seed()),
    ).confidence_interval  # fmt: skip
    assert (row.ci_low, row.ci_high) == pytest.approx((reference.low, reference.high))


def test_samples_that_do_not_reproduce_the_score_fall_back_to_stderr(
    paired_db: Path, tmp_path: Path
) -> None:
    """Pairs from a different --limit or a partial log must not speak for the delta."""
    path = _writable_copy(paired_db, tmp_path)
    with db.connect(path) as con:  # the full model's facts_old log lost its last 50 docs
        con.execute(
            "DELETE FROM samples WHERE eval_id = 'e-full-new' AND task = 'facts_old' "
            "AND doc_id > 50"
        )
    analyse(path)  # the next collector run would redo the stored tests
    with db.connect(path, read_only=True) as con:
        row = significance.paired_task_deltas(con, [FULL_FINAL]).set_index("task")
    assert row.loc["facts_old", "evidence"] == "stderr"
    assert row.loc["facts_old", "test"] == "stderr-z"
    assert row.loc["facts_new", "evidence"] == "paired"  # other tasks keep their pairs


def test_no_models_or_no_base(con: duckdb.DuckDBPyConnection) -> None:
    assert significance.paired_task_deltas(con, []).empty
    assert significance.paired_capability_deltas(con, ["/models/unknown"]).empty
    base = significance.paired_capability_deltas(con, [BASE])  # a base has nothing to beat
    assert base["delta"].isna().all() and set(base["evidence"]) == {"none"}
    assert not base["significant"].any()


# ------------------------------------------------- a real lm-eval group (2 subtasks)


def _sample_acc(model: str, task: str) -> dict[int, float]:
    (path,) = (GROUP_OUTPUT / model).glob(f"samples_{task}_*.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines() if line]
    return {row["doc_id"]: float(row["acc"]) for row in lines}


@pytest.fixture(scope="module")
def group_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed lm-eval outputs, ingested by the real collector."""
    path = tmp_path_factory.mktemp("group") / "group.duckdb"
    report = lm_eval_results.ingest([GROUP_OUTPUT], path)
    assert report.ok and report.inserted == 2
    with db.connect(path) as con:
        con.execute("INSERT INTO suite_tasks VALUES ('fwg_group', 't', 'knowledge', 'acc', 'none')")
        con.execute(
            "UPDATE models SET kind = 'final', base_model_id = (SELECT model_id FROM models "
            "WHERE model_id LIKE '%base-model') WHERE model_id LIKE '%ft-full%'"
        )
    analyse(path)
    return path


def test_group_rows_pool_their_subtasks_samples(group_db: Path) -> None:
    with db.connect(group_db, read_only=True) as con:
        (model,) = con.execute("SELECT model_id FROM models WHERE kind = 'final'").fetchone()
        rows = significance.paired_task_deltas(con, [model]).set_index("task")
        caps = significance.paired_capability_deltas(con, [model])
    assert list(rows.index) == ["fwg_group", "fwg_arith", "fwg_facts"]
    assert bool(rows.at["fwg_group", "is_group"]) and set(rows["parent"]) == {"fwg_group"}
    expected_b = expected_c = 0
    for task in ("fwg_arith", "fwg_facts"):
        base, tuned = _sample_acc("base", task), _sample_acc("finetune", task)
        b = sum(1 for d in base if base[d] == 1 and tuned[d] == 0)
        c = sum(1 for d in base if base[d] == 0 and tuned[d] == 1)
        row = rows.loc[task]
        assert (row.n_pairs, row.right_to_wrong, row.wrong_to_right) == (len(base), b, c)
        assert row.p_value == pytest.approx(sps.binomtest(c, b + c, 0.5).pvalue, abs=1e-9)
        expected_b, expected_c = expected_b + b, expected_c + c
    group = rows.loc["fwg_group"]
    assert (group.n_pairs, group.right_to_wrong, group.wrong_to_right) == (
        60, expected_b, expected_c,
    )  # fmt: skip
    assert group.test == "mcnemar-exact" and group.significant
    # The group's delta is lm-eval's size-weighted mean, which the pooled pairs reproduce.
    assert group.delta == pytest.approx((expected_c - expected_b) / 60)
    assert len(caps) == 1 and caps.iloc[0].delta == pytest.approx(group.delta)


def test_every_tested_delta_gets_its_mde_at_the_corrected_alpha(
    con: duckdb.DuckDBPyConnection, tasks: pd.DataFrame
) -> None:
    """McNemar rows: Connor's MDE from the stored pairs and flips, at alpha / tested rows."""
    row = tasks.loc[(FULL_FINAL, "facts_old")]  # 20 right->wrong of 100
    tested = int(tasks.loc[FULL_FINAL, "p_value"].notna().sum())
    assert row.se_difference == pytest.approx(np.sqrt(20) / PAIRED_DOCS)
    assert row.mde == pytest.approx(float(stats.mcnemar_mde(PAIRED_DOCS, 0.2, 0.05 / tested)))
    same = tasks.loc[(LORA_FINAL, "facts_old")]  # no flip at all: the one-way floor, never 0
    lora_tested = int(tasks.loc[LORA_FINAL, "p_value"].notna().sum())
    assert same.mde == pytest.approx(float(stats.one_way_floor(PAIRED_DOCS, 0.05 / lora_tested)))
    assert np.isnan(tasks.loc[(FULL_FINAL, "code_small"), "mde"])  # untested: no MDE
    # The alpha belongs to the reader: a stricter one needs a larger change.
    strict = significance.paired_task_deltas(con, [FULL_FINAL], alpha=0.01)
    assert strict.set_index("task").loc["facts_old", "mde"] > row.mde
    caps = significance.paired_capability_deltas(con, MODELS).set_index(["model_id", "capability"])
    stderr_row = caps.loc[(FULL_FINAL, "instructions")]  # unpaired: normal formula on the stderr
    cap_tested = int(caps.loc[FULL_FINAL, "p_value"].notna().sum())
    assert stderr_row.mde == pytest.approx(
        float(stats.unpaired_mde(stderr_row.se_difference, 0.05 / cap_tested))
    )
    knowledge = caps.loc[(LORA_FINAL, "knowledge")]  # two tasks: stratified se, paired t formula
    assert knowledge.test == "paired-bootstrap"
    assert knowledge.mde == pytest.approx(
        float(stats.mean_difference_mde(2 * PAIRED_DOCS, knowledge.se_difference, 0.05 / 3))
    )


def test_a_file_from_before_se_difference_reads_it_as_null(paired_db: Path, tmp_path: Path) -> None:
    """Opened read-only before any write upgraded it: no MDE yet, and no error."""
    copy = _writable_copy(paired_db, tmp_path)
    with duckdb.connect(str(copy)) as raw:
        raw.execute("ALTER TABLE task_tests DROP COLUMN se_difference")
    with db.connect(copy, read_only=True) as old:
        found = significance.paired_task_deltas(old, [FULL_FINAL]).set_index("task")
    assert found["se_difference"].isna().all()
    assert found.loc["facts_old", "test"] == "mcnemar-exact"
    assert found.loc["facts_old", "mde"] > 0  # McNemar rows need only the stored counts
