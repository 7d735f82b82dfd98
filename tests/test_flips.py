"""Flip queries against the known world plus tests/fixture_samples.py: exact counts."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from forgetwatch import cli, db
from forgetwatch.queries import flips
from tests.fixture_db import BASE, FULL_CKPT, FULL_FINAL, build_known_db
from tests.fixture_samples import add_flip_samples


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    path = add_flip_samples(build_known_db(tmp_path_factory.mktemp("flips") / "k.duckdb"))
    with db.connect(path, read_only=True) as connection:
        yield connection


def test_counts_per_task_and_subtask(con: duckdb.DuckDBPyConnection) -> None:
    counts = flips.flip_counts(con, FULL_FINAL, BASE)
    got = {
        r.task: (r.capability, r.n_pairs, r.right_to_wrong, r.wrong_to_right)
        for r in counts.itertuples()
    }
    assert got == {
        "facts_new": ("target", 5, 0, 4),
        "facts_old": ("knowledge", 7, 3, 1),  # acc_norm, mc2-like and the edited doc left out
        "arith": ("knowledge", 3, 0, 0),
        "arith_carry": ("knowledge", 2, 1, 0),  # a subtask, under its group's capability
        "code_small": ("code", 1, 0, 0),
        "instruct": ("instructions", 1, 0, 0),
        "unknowns": ("hallucination", 3, 2, 0),
    }
    # Capabilities in reading order: gains first, hallucination last.
    assert list(dict.fromkeys(counts["capability"])) == [
        "target", "knowledge", "code", "instructions", "hallucination",
    ]  # fmt: skip


def test_examples_search_direction_and_paging(con: duckdb.DuckDBPyConnection) -> None:
    every = flips.flip_examples(con, FULL_FINAL, BASE)
    assert len(every) == 11 and set(every["total"]) == {11}
    found = flips.flip_examples(con, FULL_FINAL, BASE, search="ATLAN")
    assert list(found["doc_id"]) == [3, 4] and set(found["response"]) == {"Atlantis"}
    assert list(found["base_response"]) == ["Corvel", "Dunmere"]
    page = flips.flip_examples(con, FULL_FINAL, BASE, limit=3, offset=3)
    assert list(page["doc_id"]) == [4, 1, 3] and set(page["total"]) == {11}
    gained = flips.flip_examples(con, FULL_FINAL, BASE, direction="wrong_to_right")
    assert list(gained["task"]) == ["facts_new"] * 4 + ["facts_old"]
    only = flips.flip_examples(con, FULL_FINAL, BASE, tasks=["unknowns"])
    assert list(only["response"]) == ["Paris", "Lyon"]


def test_what_did_we_forget_is_sorted_by_capability(con: duckdb.DuckDBPyConnection) -> None:
    lost = flips.forgotten(con, FULL_FINAL, BASE)
    assert list(zip(lost["task"], lost["doc_id"], strict=True)) == [
        ("arith_carry", 1), ("facts_old", 3), ("facts_old", 4), ("facts_old", 5),
        ("unknowns", 1), ("unknowns", 2),
    ]  # fmt: skip
    assert set(lost["direction"]) == {"right_to_wrong"}


def test_models_and_no_flip_pairs(con: duckdb.DuckDBPyConnection) -> None:
    models = flips.flip_models(con).set_index("model_id")
    assert models.loc[FULL_CKPT, "label"] == "full-lr3e-3 @50"
    assert bool(models.loc[FULL_FINAL, "base_has_samples"])
    assert BASE not in models.index and BASE in flips.sampled_models(con)
    # The checkpoint pairs with the base on doc 0 of four tasks, all right both times.
    counts = flips.flip_counts(con, FULL_CKPT, BASE)
    assert counts["n_pairs"].sum() == 4 and counts["right_to_wrong"].sum() == 0
    assert flips.flip_examples(con, FULL_CKPT, BASE).empty
    assert flips.flip_counts(con, FULL_FINAL, "/no/such/base").empty


def test_cli_flips_writes_the_page_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = add_flip_samples(build_known_db(tmp_path / "k.duckdb"))
    out = tmp_path / "flips.csv"
    argv = ["flips", "--db", str(path), "--model", FULL_FINAL, "--search", "atlantis"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    rows = pd.read_csv(out)
    assert rows["Doc"].tolist() == [3, 4] and set(rows["Model response"]) == {"Atlantis"}
    assert "6 right → wrong, 5 wrong → right" in capsys.readouterr().out
    md = tmp_path / "flips.md"
    assert cli.main(["flips", "--db", str(path), "--model", FULL_FINAL, "--out", str(md)]) == 0
    assert "| knowledge | facts\\_old | acc | none | 7 | 3 | 1 |" in md.read_text()
    assert cli.main(["flips", "--db", str(path), "--model", BASE, "--out", str(md)]) == 2
    assert "No base model is recorded" in capsys.readouterr().err
