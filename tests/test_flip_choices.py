"""Multiple-choice flips a person can read: choices stored at ingest, shown as text.

The collector tests read lm-eval's own samples files (tests/fixtures/lm_eval, written
by lm-eval 0.4.5 and 0.4.13) and check every stored choice, loglikelihood, gold
index, pick and probability against the file itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from forgetwatch import db
from forgetwatch.collectors import lm_eval_results
from forgetwatch.review.flips import REINGEST, examples_view, picked, probabilities
from forgetwatch.review.views import label
from tests.fixture_db import BASE, FULL_FINAL, build_known_db
from tests.fixture_samples import add_flip_samples

FIXTURES = Path(__file__).parent / "fixtures" / "lm_eval"
APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def _lines(root: Path, task: str) -> list[dict]:
    (path,) = root.rglob(f"samples_{task}_*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def _stored(path: Path, task: str) -> dict[int, tuple[list[str], list[float], int]]:
    with db.connect(path, read_only=True) as con:
        rows = con.execute(
            "SELECT doc_id, choices, loglikelihoods, gold FROM sample_choices WHERE task = ?",
            [task],
        ).fetchall()
    return {doc: (choices, lls, gold) for doc, choices, lls, gold in rows}


@pytest.fixture(scope="module", params=["0.4.5", "0.4.13"])
def ingested(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("choices") / "c.duckdb"
    report = lm_eval_results.ingest([FIXTURES / request.param], path)
    assert report.ok, report.summary()
    return FIXTURES / request.param, path


@pytest.mark.parametrize("task", ["fx_mmlu_geo", "fx_mmlu_lang"])
def test_stored_choices_equal_the_samples_file(ingested: tuple[Path, Path], task: str) -> None:
    root, path = ingested
    lines = _lines(root, task)
    stored = _stored(path, task)
    assert sorted(stored) == sorted(line["doc_id"] for line in lines)
    for line in lines:
        choices, lls, gold = stored[line["doc_id"]]
        args = line["arguments"]
        pairs = args.values() if isinstance(args, dict) else args
        continuations = [p["arg_1"] if isinstance(p, dict) else p[1] for p in pairs]
        assert choices == [c.removeprefix(" ") for c in continuations]  # target_delimiter " "
        assert lls == [float(r[0]) for r in line["filtered_resps"]]
        assert gold == int(line["target"])
        # The pick is the argmax, its probability the softmax, and it agrees with acc.
        index, p = picked(lls, choices, "acc")
        assert index == max(range(len(lls)), key=lls.__getitem__)
        assert p == pytest.approx(math.exp(lls[index]) / sum(math.exp(x) for x in lls))
        assert float(index == gold) == line["acc"]


def test_generation_tasks_store_no_choices(ingested: tuple[Path, Path]) -> None:
    _, path = ingested
    with db.connect(path, read_only=True) as con:
        tasks = {t for (t,) in con.execute("SELECT DISTINCT task FROM sample_choices").fetchall()}
        marked = con.execute("SELECT count(*) FROM sample_choice_evals").fetchone()
    assert tasks == {"fx_mmlu_geo", "fx_mmlu_lang", "fx_mc2"}  # not fx_gen, not fx_ifeval
    assert marked is not None and marked[0] == 2  # both evals read, the plain one included


def test_acc_norm_ranks_per_character() -> None:
    # lm-eval's acc_norm divides each loglikelihood by its choice's length in characters.
    lls, choices = [-6.0, -8.0], ["ab", "abcdefgh"]
    assert picked(lls, choices, "acc")[0] == 0
    assert picked(lls, choices, "acc_norm")[0] == 1
    assert sum(probabilities(lls, choices, "acc_norm")) == pytest.approx(1.0)


def test_an_older_database_gets_its_choices_on_re_ingest(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    assert lm_eval_results.ingest([FIXTURES / "0.4.13"], path).ok
    fresh = _stored(path, "fx_mmlu_geo")
    with duckdb.connect(str(path)) as con:  # as a database written before choices were kept
        con.execute("DROP TABLE sample_choices")
        con.execute("DROP TABLE sample_choice_evals")
    with db.connect(path) as con:  # the schema's upgrade creates them, empty
        assert con.execute("SELECT count(*) FROM sample_choices").fetchone() == (0,)
    report = lm_eval_results.ingest([FIXTURES / "0.4.13"], path)
    assert report.ok and report.inserted == 0
    assert _stored(path, "fx_mmlu_geo") == fresh
    again = lm_eval_results.ingest([FIXTURES / "0.4.13"], path)  # nothing left to fill in
    assert again.ok and _stored(path, "fx_mmlu_geo") == fresh


@pytest.fixture(scope="module")
def flips_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return add_flip_samples(build_known_db(tmp_path_factory.mktemp("mc") / "k.duckdb"))


def _flips_page(monkeypatch: pytest.MonkeyPatch, path: Path, **query: str) -> AppTest:
    monkeypatch.setenv("FORGETWATCH_DB", str(path))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.switch_page("views/flips.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_flips_page_shows_a_question_as_choices_and_picks(
    monkeypatch: pytest.MonkeyPatch, flips_db: Path
) -> None:
    at = _flips_page(monkeypatch, flips_db, model=FULL_FINAL, task="facts_old")
    examples = at.dataframe[1].value.set_index("doc_id")
    doc = examples.loc[5]
    assert doc["choices"] == "1. Estrow ✓ · 2. Zorbia · 3. Quill"
    assert doc["target"] == "Estrow"  # the correct choice, as text
    assert doc["base_response"] == "Estrow (p = 0.62)"
    assert doc["response"] == "Zorbia (p = 0.70)"
    assert doc["direction"] == "Right → wrong"
    # A generation example keeps its target and responses.
    assert examples.loc[3, ["target", "response", "choices"]].tolist() == ["Corvel", "Atlantis", ""]
    assert label("prompt") == "Question" and label("choices") == "Choices"
    assert "re-ingest" not in "\n".join(str(i.value) for i in at.info)
    # The first examples also read whole, as sentences (a cell cuts a long question).
    sentences = [m.value for m in at.markdown if m.value.startswith("- facts")]
    assert any(
        "correct: Estrow · base picked Estrow (p = 0.62) · fine-tune picked Zorbia (p = 0.70)"
        in s.replace("\\", "")
        for s in sentences
    ), sentences


def test_flips_page_says_to_re_ingest_old_multiple_choice_rows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = add_flip_samples(build_known_db(tmp_path / "k.duckdb"))
    with db.connect(path) as con:  # doc 6 stored by an older forgetwatch: a raw pair
        con.execute(
            'UPDATE samples SET response = \'["-14.93", "False"]\' '
            "WHERE task = 'facts_old' AND doc_id = 6"
        )
    at = _flips_page(monkeypatch, path, model=FULL_FINAL, task="facts_old")
    assert REINGEST.format(n=1) in [str(i.value) for i in at.info]
    doc = at.dataframe[1].value.set_index("doc_id").loc[6]
    assert doc["response"] == "choices not stored: re-ingest"
    assert "-14.93" not in " ".join(map(str, doc.tolist()))


def test_examples_view_drops_the_raw_lists(flips_db: Path) -> None:
    from forgetwatch.queries import flips

    with db.connect(flips_db, read_only=True) as con:
        examples = flips.flip_examples(con, FULL_FINAL, BASE, tasks=["facts_old"])
    shown = examples_view(examples, "x").frame
    assert not {"loglikelihoods", "base_loglikelihoods", "gold", "total"} & set(shown.columns)
    # The question, the right answer and both picks lead, so they read without scrolling.
    assert list(shown.columns[:9]) == [
        "task", "direction", "prompt", "target", "base_response", "response", "choices",
        "capability", "doc_id",
    ]  # fmt: skip


def test_the_chart_keeps_the_tasks_with_most_flips_by_capability() -> None:
    import pandas as pd

    from forgetwatch.review.flips import CHART_TASKS, chart_counts

    counts = pd.DataFrame({
        "capability": ["knowledge"] * 150 + ["code"] * 50,
        "task": [f"t{i:03d}" for i in range(200)],
        "right_to_wrong": list(range(200)),
        "wrong_to_right": [0] * 200,
    })  # fmt: skip
    shown = chart_counts(counts)
    assert len(shown) == CHART_TASKS and set(shown["task"]) == {f"t{i}" for i in range(180, 200)}
    assert len(chart_counts(counts, None)) == 200
    mixed = chart_counts(counts.assign(right_to_wrong=[200 - i for i in range(200)]))
    assert list(mixed["capability"]) == ["knowledge"] * CHART_TASKS  # reading order kept
