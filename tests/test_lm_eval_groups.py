"""lm-eval's own group structure, sample counts and directions, from real outputs.

``tests/fixtures/lm_eval_group/output`` is what lm-eval 0.4.13 wrote for a base and
a fine-tune on a group of two tasks (``fwg_group`` -> ``fwg_arith``, ``fwg_facts``).
MMLU-style nesting (``mmlu`` -> ``mmlu_stem`` -> subjects) needs the dataset hub, so
the nested case wraps the real group one level deeper, the way lm-eval writes a
nested group: the outer group lists the inner one in ``group_subtasks``, and both
have a row in ``results`` and ``groups``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from forgetwatch import analysis, db
from forgetwatch.collectors import lm_eval_results
from forgetwatch.queries import significance
from forgetwatch.review import run as run_review

FIXTURES = Path(__file__).parent / "fixtures"
GROUP_OUTPUT = FIXTURES / "lm_eval_group" / "output"
FIXTURE_0413 = FIXTURES / "lm_eval" / "0.4.13"


def _rows(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with db.connect(path, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _nest(results: Path) -> None:
    """``fwg_top`` -> ``fwg_group`` -> two tasks, plus a task of the eval in no group.

    ``fwg_extra`` sits in the same eval as one suite group, where the old naming rule
    would have counted it as a subtask; lm-eval's structure says it is not one.
    """
    data = json.loads(results.read_text())
    inner = data["results"]["fwg_group"]
    data["results"]["fwg_top"] = inner | {"alias": "fwg_top", "name": "fwg_top"}
    data["groups"]["fwg_top"] = data["groups"]["fwg_group"] | {"alias": "fwg_top"}
    data["results"]["fwg_extra"] = {"alias": "fwg_extra", "acc,none": 0.5, "sample_len": 4}
    data["n-samples"]["fwg_extra"] = {"original": 4, "effective": 4}
    data["group_subtasks"] = {"fwg_top": ["fwg_group"], "fwg_group": ["fwg_arith", "fwg_facts"]}
    del data["results"]["fwg_top"]["sample_len"]  # the outer size is then summed
    results.write_text(json.dumps(data))


def _linked_db(root: Path, suite_task: str, direction: bool | None = None) -> tuple[Path, str]:
    """The copied outputs ingested, the fine-tune linked to the base, the tests stored."""
    path = root / "fw.duckdb"
    report = lm_eval_results.ingest([root / "output"], path)
    assert report.ok and report.inserted == 2, report.summary()
    with db.connect(path) as con:
        con.execute(
            "INSERT INTO suite_tasks VALUES (?, 't', 'knowledge', 'acc', 'none')", [suite_task]
        )
        if direction is not None:
            con.execute("INSERT INTO suite_directions VALUES (?, ?)", [suite_task, direction])
        con.execute(
            "UPDATE models SET kind = 'final', base_model_id = (SELECT model_id FROM models "
            "WHERE model_id LIKE '%base-model') WHERE model_id LIKE '%ft-full%'"
        )
        (model,) = con.execute("SELECT model_id FROM models WHERE kind = 'final'").fetchone()
    analysis.refresh(path)
    return path, model


@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("nested")
    shutil.copytree(GROUP_OUTPUT, root / "output")
    for results in (root / "output").rglob("results_*.json"):
        _nest(results)
    return _linked_db(root, "fwg_top")


def test_the_group_structure_is_stored_with_nested_groups_flattened(
    nested: tuple[Path, str],
) -> None:
    path, _ = nested
    rows = _rows(
        path,
        "SELECT DISTINCT group_task, subtask, depth, position FROM task_groups ORDER BY ALL",
    )
    assert rows == [
        ("fwg_group", "fwg_arith", 1, 0),
        ("fwg_group", "fwg_facts", 1, 1),
        ("fwg_top", "fwg_arith", 2, 1),
        ("fwg_top", "fwg_facts", 2, 2),
        ("fwg_top", "fwg_group", 1, 0),
    ]


def test_group_sizes_as_lm_eval_reports_or_sums_them(nested: tuple[Path, str]) -> None:
    path, _ = nested
    sizes = dict(_rows(path, "SELECT DISTINCT task, (n_samples, n_original, is_group) FROM scores"))
    assert sizes["fwg_group"] == (60, 60, True)  # sample_len, as lm-eval wrote it
    assert sizes["fwg_top"] == (60, 60, True)  # no sample_len: its leaf tasks summed
    assert sizes["fwg_arith"] == (37, 37, False) and sizes["fwg_extra"] == (4, 4, False)
    assert _rows(path, "SELECT count(*) FROM scores WHERE n_samples IS NULL") == [(0,)]


def test_nested_groups_pool_their_leaves_and_only_their_members_show(
    nested: tuple[Path, str],
) -> None:
    path, model = nested
    with db.connect(path, read_only=True) as con:
        rows = significance.paired_task_deltas(con, [model]).set_index("task")
    # lm-eval's order under the group, depth first; fwg_extra is in no group.
    assert list(rows.index) == ["fwg_top", "fwg_group", "fwg_arith", "fwg_facts"]
    assert set(rows["parent"]) == {"fwg_top"}
    for task in ("fwg_top", "fwg_group"):  # both pool the 37 + 23 leaf documents
        assert rows.at[task, "n_pairs"] == 60 and rows.at[task, "evidence"] == "paired"
    leaves = rows.loc[["fwg_arith", "fwg_facts"]]
    for column in ("right_to_wrong", "wrong_to_right"):
        assert rows.at["fwg_top", column] == leaves[column].sum() == rows.at["fwg_group", column]


def test_a_lower_is_better_direction_turns_the_delta_and_the_flips(tmp_path: Path) -> None:
    """The same real samples read as an error rate: every sign and flip count turns."""
    for name in ("higher", "lower"):
        shutil.copytree(GROUP_OUTPUT, tmp_path / name / "output")
    up_path, model = _linked_db(tmp_path / "higher", "fwg_group")
    down_path, _ = _linked_db(tmp_path / "lower", "fwg_group", direction=False)
    with db.connect(up_path, read_only=True) as con:
        up = significance.paired_task_deltas(con, [model]).set_index("task")
    with db.connect(down_path, read_only=True) as con:
        down = significance.paired_task_deltas(con, [model]).set_index("task")
    assert up.at["fwg_group", "delta"] != 0
    for task in up.index:
        assert down.at[task, "delta"] == pytest.approx(-up.at[task, "delta"])
        assert down.at[task, "right_to_wrong"] == up.at[task, "wrong_to_right"]
        assert down.at[task, "wrong_to_right"] == up.at[task, "right_to_wrong"]
        assert down.at[task, "p_value"] == pytest.approx(up.at[task, "p_value"])
        assert down.at[task, "ci_low"] == pytest.approx(-up.at[task, "ci_high"])


def test_the_run_page_says_when_a_limit_cut_a_task(tmp_path: Path) -> None:
    """lm-eval --limit 10 cut fx_mmlu_geo (10 of 12) and fx_mc2 in the committed output."""
    path = tmp_path / "fw.duckdb"
    folder = next(p.parent for p in FIXTURE_0413.rglob("results_*.json") if "mlflow-run" in str(p))
    assert lm_eval_results.ingest([folder], path).ok
    with db.connect(path) as con:
        con.executemany(
            "INSERT INTO suite_tasks VALUES (?, 't', 'knowledge', 'acc', 'none')",
            [["fx_mmlu"], ["fx_mc2"]],
        )
        (model,) = con.execute("SELECT model_id FROM models").fetchone()
        changes = run_review.model_changes(con, model)
    shown = changes.task_view("tasks").frame.set_index("task")
    assert shown.at["fx_mmlu", "samples"] == "18 of 20"  # the group: summed over its tasks
    assert shown.at["fx_mc2", "samples"] == "10 of 12"
    assert set(shown["better"]) == {"higher"}
    assert changes.cut_tasks == ["fx_mc2", "fx_mmlu"]
    assert changes.limit_note is not None and "fx_mc2, fx_mmlu" in changes.limit_note
