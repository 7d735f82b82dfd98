"""The lm-eval collector on real lm-eval outputs: values, idempotence, bad files."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from forgetwatch import db
from forgetwatch.collectors import lm_eval_results, lm_eval_samples
from forgetwatch.demo.build import World
from forgetwatch.suite import load_suite

pytestmark = pytest.mark.slow


def _results_files(root: Path) -> list[Path]:
    return sorted(root.rglob("results_*.json"))


def _table(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with db.connect(path, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_scores_in_duckdb_equal_the_results_files(demo_db: Path, quick_world: World) -> None:
    files = _results_files(quick_world.eval_dir)
    assert files, "the quick world produced no lm-eval results"
    for path in files:
        data = json.loads(path.read_text())
        stored = dict(
            ((task, f"{metric},{filt}"), value)
            for task, metric, filt, value in _table(
                demo_db,
                "SELECT s.task, s.metric, s.filter, s.value FROM scores s "
                "JOIN evals e USING (eval_id) WHERE e.source_file = ?",
                [str(path.resolve())],
            )
        )
        expected = {
            (task, key): float(value)
            for task, entry in data["results"].items()
            for key, value in entry.items()
            if "," in key and "_stderr" not in key and isinstance(value, int | float)
        }
        assert stored == pytest.approx(expected)


def test_samples_are_stored_per_doc_and_match_the_aggregate(demo_db: Path) -> None:
    rows = _table(
        demo_db,
        """
        SELECT sc.task, sc.value, avg(sa.value), count(*), any_value(sc.n_samples)
        FROM scores sc JOIN samples sa USING (eval_id, task, metric, filter)
        WHERE sc.metric = 'acc'
        GROUP BY sc.eval_id, sc.task, sc.value
        """,
    )
    assert rows, "no per-sample rows joined their scores"
    for task, aggregate, mean, count, n_samples in rows:
        assert mean == pytest.approx(aggregate), task
        assert count == n_samples, task


def test_evals_are_linked_to_runs_checkpoints_and_base(demo_db: Path) -> None:
    kinds = dict(
        _table(
            demo_db,
            "SELECT m.kind, count(DISTINCT e.eval_id) FROM evals e JOIN models m USING (model_id) "
            "GROUP BY ALL",
        )
    )
    assert kinds.get("base", 0) >= 1
    assert kinds.get("final", 0) >= 2
    unlinked = _table(
        demo_db,
        "SELECT model_id FROM models m JOIN evals USING (model_id) "
        "WHERE m.kind IN ('final', 'checkpoint') AND (m.run_id IS NULL OR m.base_model_id IS NULL)",
    )
    assert unlinked == []
    bases = _table(
        demo_db,
        "SELECT DISTINCT base_model_id FROM models WHERE kind = 'final' "
        "AND base_model_id NOT IN (SELECT model_id FROM models WHERE kind = 'base')",
    )
    assert bases == []


def test_ingesting_twice_changes_nothing(quick_world: World, tmp_path: Path) -> None:
    path = tmp_path / "fw.duckdb"
    suite = load_suite("offline")
    first = lm_eval_results.ingest([quick_world.eval_dir], path, suite=suite)
    snapshot = _table(path, "SELECT count(*), sum(value) FROM samples")
    second = lm_eval_results.ingest([quick_world.eval_dir], path, suite=suite)
    assert first.inserted > 0 and second.inserted == 0
    assert second.skipped == first.inserted
    assert _table(path, "SELECT count(*), sum(value) FROM samples") == snapshot


def test_bad_files_are_named_and_skipped_and_the_rest_ingested(
    quick_world: World, tmp_path: Path
) -> None:
    good = tmp_path / "outputs"
    shutil.copytree(quick_world.eval_dir, good)
    files = _results_files(good)
    assert len(files) >= 3
    path = tmp_path / "fw.duckdb"
    # Stored before the bad batch: must survive it untouched.
    lm_eval_results.ingest([files[0]], path)
    before = _table(path, "SELECT * FROM scores ORDER BY ALL")

    files[1].write_text(files[1].read_text()[:200])  # truncated results JSON
    stamp = files[2].stem.removeprefix("results_")  # a folder may hold several evals
    samples = sorted(files[2].parent.glob(f"samples_*_{stamp}.jsonl"))
    assert samples
    samples[0].write_text(samples[0].read_text()[:-40])  # truncated samples JSONL
    missing = good / "odd" / "results_2026-01-01T00-00-00.json"
    missing.parent.mkdir()
    missing.write_text(json.dumps({"config": {"model_args": "pretrained=/x"}}))

    report = lm_eval_results.ingest([good], path)
    text = "\n".join(report.errors)
    assert len(report.errors) == 3, text
    assert files[1].name in text and "not valid JSON" in text
    assert samples[0].name in text
    assert "field `results` is missing" in text and str(missing) in text
    assert report.inserted == len(files) - 3  # the first was already stored
    assert report.skipped == 1
    stored_ids = {r[0] for r in _table(path, "SELECT source_file FROM evals")}
    assert str(files[2].resolve()) not in stored_ids  # no half-written eval
    assert set(before) <= set(_table(path, "SELECT * FROM scores ORDER BY ALL"))


def test_real_lm_eval_cli_output_ingests(quick_world: World, tmp_path: Path) -> None:
    """The lm_eval command users run, on our tiny base model and one bundled task."""
    suite = load_suite("offline")
    task = next(t for t in suite.tasks if t.capability == "knowledge")
    out = tmp_path / "cli-out"
    cmd = [
        sys.executable, "-m", "lm_eval",
        "--model", "hf",
        "--model_args", f"pretrained={quick_world.base_model_dir},dtype=float32",
        "--tasks", task.task, "--include_path", str(suite.include_path),
        "--device", "cpu", "--limit", "8", "--batch_size", "8",
        "--output_path", str(out), "--log_samples",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    path = tmp_path / "fw.duckdb"
    report = lm_eval_results.ingest([out], path, suite=suite)
    assert report.ok and report.inserted == 1, report.summary()
    (results,) = _results_files(out)
    data = json.loads(results.read_text())
    sql = "SELECT value FROM scores WHERE task = ? AND metric = 'acc'"
    (value,) = _table(path, sql, [task.task])[0]
    assert value == pytest.approx(data["results"][task.task]["acc,none"])
    assert _table(path, "SELECT count(*) FROM samples")[0][0] == 8
    assert _table(path, "SELECT eval_limit, lm_eval_version FROM evals")[0] == (
        8.0,
        data["lm_eval_version"],
    )


# --- batches: many evals staged together, written under one attach ------------------

FIXTURE_0413 = Path(__file__).parent / "fixtures" / "lm_eval" / "0.4.13"


def _plain_copies(root: Path, count: int) -> list[Path]:
    """``count`` copies of a real 0.4.13 eval folder, each results file with its own eval id."""
    source = next(
        p.parent for p in sorted(FIXTURE_0413.rglob("results_*.json")) if "plain" in p.parts
    )
    copies = []
    for number in range(count):
        folder = root / f"__models__copy-{number}"
        shutil.copytree(source, folder)
        results = next(folder.glob("results_*.json"))
        data = json.loads(results.read_text())
        data["date"] = float(data["date"]) + number
        results.write_text(json.dumps(data))
        copies.append(results)
    return copies


def _samples_files(results: Path) -> list[Path]:
    stamp = results.stem.removeprefix("results_")
    return sorted(results.parent.glob(f"samples_*_{stamp}.jsonl"))


def _expected_rows(results: Path) -> int:
    """What a whole eval stores: one row per (samples line, metric of its task)."""
    return sum(
        len(path.read_text().splitlines()) * len(json.loads(path.open().readline())["metrics"])
        for path in _samples_files(results)
    )


def _edit_line(path: Path, number: int, **changes: object) -> None:
    lines = path.read_text().splitlines()
    record = json.loads(lines[number]) | changes
    lines[number] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")


def _eval_id(results: Path) -> str:
    return hashlib.sha256(results.read_bytes()).hexdigest()


def test_one_bad_file_in_a_batch_is_named_and_the_rest_of_the_batch_lands(tmp_path: Path) -> None:
    files = _plain_copies(tmp_path / "out", 6)
    path = tmp_path / "fw.duckdb"
    assert lm_eval_results.ingest([files[0]], path).inserted == 1  # stored before the batch
    before = {t: _table(path, f"SELECT * FROM {t} ORDER BY ALL") for t in ("scores", "samples")}

    files[1].write_text(files[1].read_text()[:300])  # truncated results JSON
    bad_samples = _samples_files(files[2])[0]
    _edit_line(bad_samples, 3, doc_id="three")  # refused by both readers
    odd_samples = next(p for p in _samples_files(files[3]) if "fx_gen" in p.name)
    _edit_line(odd_samples, 2, exact_match="N/A")  # the typed read refuses it, the tolerant one not
    bad_id = _eval_id(files[2])
    ticks: list[tuple[int, int, str]] = []

    report = lm_eval_results.ingest(
        [tmp_path / "out"], path, progress=lambda *tick: ticks.append(tick)
    )

    text = "\n".join(report.errors)
    assert len(report.errors) == 2, text
    assert files[1].name in text and "not valid JSON" in text
    assert f"{bad_samples.name}: field `doc_id`" in text
    assert (report.inserted, report.skipped) == (3, 1), report.summary()
    ingest_ticks = [t for t in ticks if not t[2].startswith("analysing ")]
    assert ingest_ticks == [(6, 6, files[5].name)]  # one batch, every results file counted
    for table in ("evals", "scores", "samples"):  # nothing of the bad eval, not even its scores
        assert _table(path, f"SELECT count(*) FROM {table} WHERE eval_id = ?", [bad_id]) == [(0,)]
    for results in files[3:]:
        rows = _table(path, "SELECT count(*) FROM samples WHERE eval_id = ?", [_eval_id(results)])
        assert rows == [(_expected_rows(results),)], results.parent.name
    odd = _table(
        path,
        "SELECT value FROM samples WHERE eval_id = ? AND task = 'fx_gen' AND metric = "
        "'exact_match' AND doc_id = 2 AND filter = 'strict-match'",
        [_eval_id(files[3])],
    )
    assert odd == [(None,)]
    for table, rows in before.items():  # what was stored is untouched
        assert set(rows) <= set(_table(path, f"SELECT * FROM {table} ORDER BY ALL"))


def test_values_the_tables_refuse_cost_only_their_own_eval(tmp_path: Path) -> None:
    files = _plain_copies(tmp_path / "out", 3)
    data = json.loads(files[1].read_text())
    data["n-samples"]["fx_gen"]["effective"] = 1e300  # no BIGINT holds it
    files[1].write_text(json.dumps(data))
    path = tmp_path / "fw.duckdb"

    report = lm_eval_results.ingest([tmp_path / "out"], path)

    assert len(report.errors) == 1 and files[1].name in report.errors[0], report.summary()
    assert "field `<values>`" in report.errors[0]
    assert report.inserted == 2
    stored = {row[0] for row in _table(path, "SELECT DISTINCT eval_id FROM samples")}
    assert stored == {_eval_id(files[0]), _eval_id(files[2])}


def test_the_typed_reader_takes_real_files_and_agrees_with_the_tolerant_one(
    tmp_path: Path,
) -> None:
    """Every 0.4.13 samples file goes the fast way; a file it refuses goes alone to the
    tolerant reader; and both readers stage the same rows for the same file."""
    files = _plain_copies(tmp_path / "out", 3)
    odd = _samples_files(files[1])[0]
    _edit_line(odd, 1, **{json.loads(odd.open().readline())["metrics"][0]: "N/A"})
    batch = []
    for number, results in enumerate(files):
        parsed = lm_eval_results.parse_results(results)
        batch += [
            lm_eval_samples.SamplesFile(number, task, sample_path, tuple(parsed.metrics[task]))
            for task, sample_path in parsed.samples.items()
        ]
    with duckdb.connect() as con:
        staged = lm_eval_samples.stage_batch(con, batch)
        assert staged.errors == {} and staged.tolerant == [odd]
        for file in batch:
            typed = con.execute(
                f"SELECT * EXCLUDE (eval_no) FROM {lm_eval_samples.STAGED_SAMPLES} "
                "WHERE eval_no = ? AND task = ? ORDER BY ALL",
                [file.eval_no, file.task],
            ).fetchall()
            sql = lm_eval_samples.tolerant_sql(file.path, file.task, file.metrics, ())
            assert typed == con.execute(f"SELECT * FROM ({sql}) ORDER BY ALL").fetchall()
            assert len(typed) == len(file.path.read_text().splitlines()) * len(file.metrics)
