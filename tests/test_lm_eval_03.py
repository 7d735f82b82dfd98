"""lm-eval 0.3 results files (``*-res.json``): read as aggregate-only evals.

``tests/fixtures/lm_eval_03/`` holds files in 0.3's shape (see its README): bare
metric keys with ``<metric>_stderr``, ``versions`` and ``config``, no samples. Each
test compares the database with the files, or runs the command a user runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from forgetwatch import analysis, db
from forgetwatch.collectors import lm_eval_results
from forgetwatch.errors import BadInputError
from forgetwatch.queries import significance
from forgetwatch.review import budget
from forgetwatch.suite import Suite, SuiteTask

FIXTURES = Path(__file__).parent / "fixtures" / "lm_eval_03"
FILES = sorted(FIXTURES.rglob("*-res.json"))
BASE = "EleutherAI/pythia-160m"
TUNED = "/data/runs/pythia-160m-sft/checkpoint-1200"


def _rows(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with db.connect(path, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _forgetwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forgetwatch.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("v03") / "fw.duckdb"
    report = lm_eval_results.ingest([FIXTURES], path)
    assert report.ok and report.inserted == len(FILES) == 3, report.summary()
    return path


def test_scores_equal_the_files_with_filter_none_and_stderrs(ingested: Path) -> None:
    for results in FILES:
        data = json.loads(results.read_text())
        stored = {
            (task, metric): (value, stderr, filt)
            for task, metric, filt, value, stderr in _rows(
                ingested,
                "SELECT s.task, s.metric, s.filter, s.value, s.stderr FROM scores s "
                "JOIN evals e USING (eval_id) WHERE e.source_file = ?",
                [str(results.resolve())],
            )
        }
        expected = {
            (task, metric): (value, entry.get(f"{metric}_stderr"), "none")
            for task, entry in data["results"].items()
            for metric, value in entry.items()
            if not metric.endswith("_stderr")
        }
        assert stored == expected, results.name


def test_provenance_model_and_direction_come_from_the_0_3_config(ingested: Path) -> None:
    evals = dict(
        _rows(
            ingested,
            "SELECT e.source_file, (e.model_id, e.lm_eval_version, e.n_shot, e.eval_limit, "
            "e.evaluated_at) FROM evals e",
        )
    )
    mmlu = evals[str(next(f for f in FILES if "mmlu" in f.name).resolve())]
    model, version, n_shot, limit, evaluated_at = mmlu
    assert (model, version, limit, evaluated_at) == (BASE, "0.3", 20.0, None)
    assert n_shot == {"hendrycksTest-abstract_algebra": "5", "hendrycksTest-anatomy": "5"}
    assert {v[0] for v in evals.values()} == {BASE, TUNED}
    lower = _rows(
        ingested, "SELECT DISTINCT metric FROM scores WHERE NOT higher_is_better ORDER BY 1"
    )
    assert lower == [("bits_per_byte",), ("byte_perplexity",), ("ppl",), ("word_perplexity",)]
    assert _rows(ingested, "SELECT count(*) FROM samples") == [(0,)]  # 0.3 logs no samples
    assert _rows(ingested, "SELECT count(*) FROM scores WHERE is_group") == [(0,)]


def test_each_file_given_alone_ingests(tmp_path: Path) -> None:
    for results in FILES:
        path = tmp_path / f"{results.stem}.duckdb"
        report = lm_eval_results.ingest([results], path)
        assert report.ok and report.inserted == 1, report.summary()


def test_a_folder_of_340_files_is_read_not_skipped(tmp_path: Path) -> None:
    source = json.loads(FILES[0].read_text())
    for number in range(340):
        data = json.loads(json.dumps(source))
        data["config"]["model_args"] = f"pretrained=/sweep/run-{number:03d}"
        (tmp_path / "old" / f"run{number:03d}").mkdir(parents=True)
        (tmp_path / "old" / f"run{number:03d}" / f"run{number:03d}-res.json").write_text(
            json.dumps(data, indent=2)
        )
    report = lm_eval_results.ingest([tmp_path / "old"], tmp_path / "fw.duckdb")
    assert report.ok and report.inserted == 340, report.summary()
    assert _rows(tmp_path / "fw.duckdb", "SELECT count(DISTINCT model_id) FROM evals") == [(340,)]


def test_a_0_3_file_naming_no_model_says_so_and_nothing_false(tmp_path: Path) -> None:
    data = json.loads(FILES[0].read_text())
    data["config"]["model_args"] = "use_accelerate=True"  # the model only ever sits here
    bad = tmp_path / "nomodel-res.json"
    bad.write_text(json.dumps(data))
    report = lm_eval_results.ingest([bad], tmp_path / "fw.duckdb")
    (error,) = report.errors
    assert "field `config.model_args` names no model" in error and str(bad) in error
    assert "were ingested" not in error  # nothing else was given
    assert (report.inserted, report.skipped) == (0, 0)


def test_lower_is_better_reads_worse_when_it_rises_in_deltas_and_verdicts(
    ingested: Path, tmp_path: Path
) -> None:
    path = tmp_path / "fw.duckdb"
    shutil.copy(ingested, path)
    suite = Suite(
        "old", FIXTURES, "", None,
        [SuiteTask("lambada_openai", "knowledge", "ppl"),
         SuiteTask("hellaswag", "knowledge", "acc")],
    )  # fmt: skip
    with db.connect(path) as con:
        lm_eval_results.store_suite(con, suite)
        con.execute("UPDATE models SET kind = 'final', base_model_id = ? WHERE model_id = ?",
                    [BASE, TUNED])  # fmt: skip
    analysis.refresh(path)
    with db.connect(path, read_only=True) as con:
        rows = significance.paired_task_deltas(con, [TUNED]).set_index("task")
        verdict = budget.evaluate(con, TUNED, budget.load_budget(budget.default_budget_path()))
    base_ppl, tuned_ppl = 38.29698917408069, 61.84123508790318
    assert rows.at["lambada_openai", "delta"] == pytest.approx(base_ppl - tuned_ppl)  # a loss
    assert rows.at["hellaswag", "delta"] == pytest.approx(0.2779326827325234 - 0.2831109340768771)
    assert set(rows["evidence"]) == {"stderr"}  # aggregate-only: lm-eval's stderrs
    assert rows.at["lambada_openai", "ci_high"] < 0  # ppl +23.5 on a stderr of ~2.8
    knowledge = verdict.checks.set_index("capability").loc["knowledge"]
    assert knowledge["delta"] < 0 and knowledge["outcome"] == "fail", verdict.reasons


def test_the_suite_overrides_the_file_direction(tmp_path: Path) -> None:
    """A suite's ``higher_is_better`` wins over the file's (here: 0.3's own table)."""
    path = tmp_path / "fw.duckdb"
    lm_eval_results.ingest([FIXTURES / "base", FIXTURES / "finetune"], path)
    task = SuiteTask("lambada_openai", "knowledge", "ppl", higher_is_better=True)
    with db.connect(path) as con:
        lm_eval_results.store_suite(con, Suite("s", FIXTURES, "", None, [task]))
        con.execute("UPDATE models SET kind = 'final', base_model_id = ? WHERE model_id = ?",
                    [BASE, TUNED])  # fmt: skip
        assert _direction_rows(con) == [("lambada_openai", True)]
    analysis.refresh(path)
    with db.connect(path, read_only=True) as con:
        delta = significance.paired_task_deltas(con, [TUNED])["delta"].iloc[0]
    assert delta == pytest.approx(61.84123508790318 - 38.29698917408069)


def _direction_rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("SELECT task, higher_is_better FROM suite_directions").fetchall()


def test_an_ingest_that_finds_no_results_file_names_the_folder(tmp_path: Path) -> None:
    empty = tmp_path / "nothing-here"
    (empty / "logs").mkdir(parents=True)
    (empty / "logs" / "notes.json").write_text("{}")
    with pytest.raises(BadInputError, match="No lm-eval results file") as caught:
        lm_eval_results.ingest([empty], tmp_path / "fw.duckdb")
    assert str(empty) in caught.value.message
    done = _forgetwatch("ingest", str(empty), "--db", str(tmp_path / "fw.duckdb"))
    assert done.returncode == 2, done.stderr
    assert "No lm-eval results file found" in done.stderr and str(empty) in done.stderr
    assert "*-res.json" in done.stderr and "Traceback" not in done.stderr


def test_cli_ingest_of_a_0_3_folder_reports_what_it_read(tmp_path: Path) -> None:
    done = _forgetwatch("ingest", str(FIXTURES), "--db", str(tmp_path / "fw.duckdb"))
    assert done.returncode == 0, done.stderr
    assert "3 inserted" in done.stdout and "0 rejected" in done.stdout


def test_a_suite_file_sets_a_direction_or_is_refused_by_name(tmp_path: Path) -> None:
    from forgetwatch.suite import load_suite

    good = tmp_path / "good.yaml"
    good.write_text(
        "name: s\ntasks:\n  - {task: wikitext, capability: knowledge, "
        "metric: word_perplexity, higher_is_better: false}\n"
    )
    assert load_suite(str(good)).tasks[0].higher_is_better is False
    for value, problem in (('"no"', "must be true or false"), ("false", "cannot be false")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            "name: s\ntasks:\n  - {task: t, capability: hallucination, metric: acc, "
            f"higher_is_better: {value}}}\n"
        )
        with pytest.raises(BadInputError, match=f"tasks\\[0\\].higher_is_better {problem}"):
            load_suite(str(bad))
