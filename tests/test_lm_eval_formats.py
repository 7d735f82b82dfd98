"""Every lm-eval 0.4.x output shape, read from real outputs of two lm-eval versions.

``tests/fixtures/lm_eval/<version>/`` holds what ``lm_eval`` itself wrote
(``scripts/make_lm_eval_fixtures.sh`` regenerates it): an MMLU-style group, a
generate_until task with two filters, a TruthfulQA-mc2-like continuous metric
and IFEval-like list-valued metrics. Each test compares the database with the
files. Shapes no committed version emits are built as small unit cases.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from forgetwatch import db
from forgetwatch.collectors import lm_eval_results
from forgetwatch.collectors.linking import relink_models, run_id_from_path
from forgetwatch.collectors.lm_eval_watch import watch
from forgetwatch.collectors.report import SyncReport

FIXTURES = Path(__file__).parent / "fixtures" / "lm_eval"
VERSIONS = sorted(
    (p.name for p in FIXTURES.iterdir() if p.name[:1].isdigit()),
    key=lambda v: tuple(int(x) for x in v.split(".")),
)
PATH_RUN_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
TAG_RUN_ID = "aaaabbbbccccddddeeeeffff00001111"
MODEL = "/tmp/fw-lm-eval-fixtures/runs/fixture-ft/checkpoint-20"


def test_fixtures_come_from_at_least_two_lm_eval_versions() -> None:
    assert len(VERSIONS) >= 2, VERSIONS
    for version in VERSIONS:
        for path in (FIXTURES / version).rglob("results_*.json"):
            data = json.loads(path.read_text())
            # 0.4.5 does not write its own version; newer releases do.
            assert data.get("lm_eval_version", "0.4.5") == version


@pytest.fixture(scope="module", params=VERSIONS)
def ingested(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """(version, db path, {results file: parsed JSON}) with one version's fixtures ingested."""
    version = request.param
    path = tmp_path_factory.mktemp(f"lm{version}") / "fw.duckdb"
    report = lm_eval_results.ingest([FIXTURES / version], path)
    files = sorted((FIXTURES / version).rglob("results_*.json"))
    assert report.ok and report.inserted == len(files) == 2, report.summary()
    return version, path, {f: json.loads(f.read_text()) for f in files}


def _rows(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with db.connect(path, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _eval_id(path: Path, results: Path) -> str:
    sql = "SELECT eval_id FROM evals WHERE source_file = ?"
    return _rows(path, sql, [str(results.resolve())])[0][0]


def _by_task(files: dict[Path, dict], task: str) -> tuple[Path, dict]:
    return next((f, d) for f, d in files.items() if task in d["results"])


def _samples(results: Path, task: str) -> list[dict[str, Any]]:
    stamp = results.stem.removeprefix("results_")
    lines = results.with_name(f"samples_{task}_{stamp}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def test_scores_equal_the_results_files(ingested: tuple) -> None:
    _, path, files = ingested
    for results, data in files.items():
        stored = {
            (task, metric, filt): (value, stderr, is_group)
            for task, metric, filt, value, stderr, is_group in _rows(
                path,
                "SELECT task, metric, filter, value, stderr, is_group FROM scores "
                "WHERE eval_id = ?",
                [_eval_id(path, results)],
            )
        }
        expected = {}
        for task, entry in data["results"].items():
            for key, value in entry.items():
                if "," not in key or "_stderr," in key:
                    continue
                metric, filt = key.split(",", 1)
                stderr = _number(entry.get(f"{metric}_stderr,{filt}"))
                expected[(task, metric, filt)] = (
                    _number(value),
                    stderr,
                    task in data.get("groups", {}),
                )
        assert stored == expected  # exact: both sides parse the same JSON numbers


def test_group_rows_are_flagged_and_weighted_by_size(ingested: tuple) -> None:
    _, path, files = ingested
    results, data = _by_task(files, "fx_mmlu")
    rows = dict(
        _rows(
            path,
            "SELECT task, (value, is_group, n_samples) FROM scores WHERE eval_id = ?",
            [_eval_id(path, results)],
        )
    )
    geo, lang, group = rows["fx_mmlu_geo"], rows["fx_mmlu_lang"], rows["fx_mmlu"]
    assert group[1] is True and geo[1] is False and lang[1] is False
    assert "fx_mmlu" in data["groups"] and "fx_mmlu" in data["results"]
    weighted = (geo[0] * geo[2] + lang[0] * lang[2]) / (geo[2] + lang[2])
    assert group[0] == pytest.approx(weighted)
    assert geo[2] != lang[2]  # sizes differ, so the weighting is visible


def test_each_filter_of_a_metric_is_kept(ingested: tuple) -> None:
    _, path, files = ingested
    results, data = _by_task(files, "fx_gen")
    eval_id = _eval_id(path, results)
    sql = "SELECT DISTINCT filter FROM {} WHERE eval_id = ? AND task = 'fx_gen' ORDER BY 1"
    expected = [["flexible-extract"], ["strict-match"]]
    assert [list(r) for r in _rows(path, sql.format("scores"), [eval_id])] == expected
    assert [list(r) for r in _rows(path, sql.format("samples"), [eval_id])] == expected
    assert "exact_match,strict-match" in data["results"]["fx_gen"]


def test_generate_until_responses_and_targets(ingested: tuple) -> None:
    _, path, files = ingested
    results, data = _by_task(files, "fx_gen")
    stored = {
        (doc, filt): (value, target, response)
        for doc, filt, value, target, response in _rows(
            path,
            "SELECT doc_id, filter, value, target, response FROM samples "
            "WHERE eval_id = ? AND task = 'fx_gen' AND metric = 'exact_match'",
            [_eval_id(path, results)],
        )
    }
    lines = _samples(results, "fx_gen")
    assert len(stored) == len(lines) > 0
    filters = [f["name"] for f in data["configs"]["fx_gen"]["filter_list"]]
    seen: dict[int, int] = {}
    for line in lines:
        # 0.4.5 writes no `filter` key: one block of lines per filter, in filter_list order.
        occurrence = seen[line["doc_id"]] = seen.get(line["doc_id"], -1) + 1
        filt = line.get("filter", filters[occurrence])
        value, target, response = stored[(line["doc_id"], filt)]
        assert value == float(line["exact_match"])
        assert target == str(line["target"])
        assert response == line["filtered_resps"][0]


def test_prompts_are_kept_for_the_flip_explorer(ingested: tuple) -> None:
    """The first request's context is stored per sample, in every version's layout."""
    _, path, files = ingested
    for task in ("fx_gen", "fx_mc2"):
        results, _ = _by_task(files, task)
        stored = dict(
            _rows(
                path,
                "SELECT DISTINCT doc_id, prompt FROM samples WHERE eval_id = ? AND task = ?",
                [_eval_id(path, results), task],
            )
        )
        lines = _samples(results, task)
        assert stored and all(
            stored[line["doc_id"]] == line["arguments"]["gen_args_0"]["arg_0"] for line in lines
        )


def test_continuous_per_sample_metric(ingested: tuple) -> None:
    _, path, files = ingested
    results, data = _by_task(files, "fx_mc2")
    stored = dict(
        _rows(
            path,
            "SELECT doc_id, value FROM samples WHERE eval_id = ? AND task = 'fx_mc2'",
            [_eval_id(path, results)],
        )
    )
    expected = {line["doc_id"]: line["acc"] for line in _samples(results, "fx_mc2")}
    assert stored == pytest.approx(expected)
    assert any(0 < v < 1 for v in stored.values())  # really continuous
    mean = sum(stored.values()) / len(stored)
    assert mean == pytest.approx(data["results"]["fx_mc2"]["acc,none"])


def test_list_valued_per_sample_metric_is_its_mean(ingested: tuple) -> None:
    _, path, files = ingested
    results, data = _by_task(files, "fx_ifeval")
    stored = dict(
        _rows(
            path,
            "SELECT doc_id, value FROM samples WHERE eval_id = ? AND task = 'fx_ifeval' "
            "AND metric = 'inst_level_strict_acc'",
            [_eval_id(path, results)],
        )
    )
    lines = _samples(results, "fx_ifeval")
    assert all(isinstance(line["inst_level_strict_acc"], list) for line in lines)
    expected = {
        line["doc_id"]: sum(line["inst_level_strict_acc"]) / len(line["inst_level_strict_acc"])
        for line in lines
    }
    assert stored == pytest.approx(expected)
    flat = [x for line in lines for x in line["inst_level_strict_acc"]]
    aggregate = data["results"]["fx_ifeval"]["inst_level_strict_acc,none"]
    assert aggregate == pytest.approx(sum(flat) / len(flat))
    stderr = data["results"]["fx_ifeval"]["inst_level_strict_acc_stderr,none"]
    stored_stderr = _rows(
        path,
        "SELECT stderr FROM scores WHERE eval_id = ? AND metric = 'inst_level_strict_acc'",
        [_eval_id(path, results)],
    )[0][0]
    assert stderr == "N/A" and stored_stderr is None


def test_eval_provenance_is_recorded(ingested: tuple) -> None:
    version, path, files = ingested
    for results, data in files.items():
        row = _rows(
            path,
            "SELECT eval_limit, n_shot, task_hashes, chat_template_sha, lm_eval_version, "
            "model_id, evaluated_at IS NOT NULL FROM evals WHERE source_file = ?",
            [str(results.resolve())],
        )[0]
        limit, n_shot, hashes, chat_sha, lm_version, model, dated = row
        assert limit == float(data["config"]["limit"])
        assert n_shot == {k: str(v) for k, v in data["n-shot"].items()}
        assert hashes == data["task_hashes"] and len(hashes) >= 2
        assert chat_sha == data.get("chat_template_sha")
        assert lm_version == data.get("lm_eval_version") and model == MODEL and dated
        assert lm_version == (None if version == "0.4.5" else version)
    chat = _rows(path, "SELECT count(chat_template_sha) FROM evals")[0][0]
    limits = sorted(r[0] for r in _rows(path, "SELECT eval_limit FROM evals"))
    assert chat == 1 and limits == [6.0, 10.0]
    shots = _rows(path, "SELECT n_shot['fx_mmlu_geo'] FROM evals")
    assert sorted(shots, key=str) == [("1",), (None,)]


def test_run_ids_from_the_path_convention_and_the_metadata_tag(ingested: tuple) -> None:
    _, path, files = ingested
    found = dict(_rows(path, "SELECT source_file LIKE '%/plain/%', run_id FROM evals"))
    assert found[False] == PATH_RUN_ID
    _, plain = _by_task(files, "fx_gen")
    tagged = any("mlflow_run_id" in (c.get("metadata") or {}) for c in plain["configs"].values())
    # lm-eval 0.4.5 has no --metadata, so only newer fixtures carry the tag.
    assert found[True] == (TAG_RUN_ID if tagged else None)
    assert tagged == ("lm_eval_version" in plain)
    assert run_id_from_path(f"/x/mlflow-run-{PATH_RUN_ID}/m/results_1.json") == PATH_RUN_ID
    assert run_id_from_path("/x/mlflow-runs/results_1.json") is None


# --- linking -----------------------------------------------------------------------


def _add_run(path: Path, run_id: str, base: str, output_dir: str | None) -> None:
    with db.connect(path) as con, db.transaction(con):
        con.execute(
            "INSERT INTO runs (run_id, base_model, output_dir, method) VALUES (?, ?, ?, 'full')",
            [run_id, base, output_dir],
        )
        relink_models(con)


def _model(path: Path) -> tuple:
    sql = "SELECT kind, run_id, step, base_model_id FROM models WHERE model_id = ?"
    return _rows(path, sql, [MODEL])[0]


def test_model_links_by_path_first(tmp_path: Path) -> None:
    path = tmp_path / "fw.duckdb"
    lm_eval_results.ingest([FIXTURES / VERSIONS[-1]], path)
    assert _model(path) == ("external", None, None, None)
    _add_run(path, "run-by-path", "/models/base", str(Path(MODEL).parent))
    _add_run(path, PATH_RUN_ID, "/models/other", None)
    assert _model(path) == ("checkpoint", "run-by-path", 20, "/models/base")


def test_model_links_through_the_eval_run_id_when_no_path_matches(tmp_path: Path) -> None:
    path = tmp_path / "fw.duckdb"
    lm_eval_results.ingest([FIXTURES / VERSIONS[-1]], path)
    _add_run(path, TAG_RUN_ID, "/models/base", "/somewhere/else")
    assert _model(path) == ("checkpoint", TAG_RUN_ID, 20, "/models/base")


def test_artifact_run_id_wins_and_is_stored_with_its_source_kind(tmp_path: Path) -> None:
    path = tmp_path / "fw.duckdb"
    report = lm_eval_results.ingest(
        [FIXTURES / VERSIONS[0]], path, run_id="artifact-run", source_kind="artifact"
    )
    assert report.ok and report.inserted == 2
    assert _rows(path, "SELECT DISTINCT run_id, source_kind FROM evals") == [
        ("artifact-run", "artifact")
    ]


def test_a_run_base_model_is_not_linked_to_the_run_that_evaluated_it(tmp_path: Path) -> None:
    path = tmp_path / "fw.duckdb"
    lm_eval_results.ingest([FIXTURES / VERSIONS[0]], path, run_id="baseline-run")
    _add_run(path, "baseline-run", MODEL, "/runs/baseline")
    assert _model(path) == ("base", None, None, None)


# --- shapes no committed version emits ----------------------------------------------


def _write_results(folder: Path, data: dict, samples: dict[str, list[dict]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = "2025-01-01T00-00-00.000000"
    results = folder / f"results_{stamp}.json"
    results.write_text(json.dumps(data))
    for task, lines in (samples or {}).items():
        text = "".join(json.dumps(line) + "\n" for line in lines)
        (folder / f"samples_{task}_{stamp}.jsonl").write_text(text)
    return results


def test_model_args_as_dict_or_string_and_no_groups_key(tmp_path: Path) -> None:
    base = {
        "results": {
            "grp": {"alias": "grp", "acc,none": "0.5", "acc_stderr,none": "N/A"},
            "sub": {"alias": " - sub", "acc,none": 0.5, "acc_stderr,none": "0.1"},
        },
        "group_subtasks": {"grp": ["sub"], "sub": []},
        "n-shot": {"sub": 0},
        "config": {"model_args": {"pretrained": "/m/a", "peft": "/m/adapter"}, "limit": "4"},
        "date": "1700000000.5",
    }
    string_args = json.loads(json.dumps(base))
    string_args["config"]["model_args"] = "pretrained=/m/b,dtype=float32"
    string_args["lm_eval_version"] = "0.4.0"
    _write_results(tmp_path / "out" / "a", base)
    _write_results(tmp_path / "out" / "b", string_args)
    path = tmp_path / "fw.duckdb"
    report = lm_eval_results.ingest([tmp_path / "out"], path)
    assert report.ok and report.inserted == 2, report.summary()
    rows = _rows(
        path,
        "SELECT e.model_id, s.task, s.value, s.stderr, s.is_group, e.eval_limit FROM scores s "
        "JOIN evals e USING (eval_id) ORDER BY ALL",
    )
    assert rows == [
        ("/m/a+peft=/m/adapter", "grp", 0.5, None, True, 4.0),
        ("/m/a+peft=/m/adapter", "sub", 0.5, 0.1, False, 4.0),
        ("/m/b", "grp", 0.5, None, True, 4.0),
        ("/m/b", "sub", 0.5, 0.1, False, 4.0),
    ]
    adapter = _rows(path, "SELECT kind, base_model_id FROM models WHERE adapter_path IS NOT NULL")
    assert adapter == [("adapter", "/m/a")]


def test_old_style_samples_with_raw_targets_and_string_metrics(tmp_path: Path) -> None:
    """Older 0.4.x wrote ``target`` as the doc's raw value; a metric may be a numeric string."""
    data = {
        "results": {"t": {"acc,none": 0.5}},
        "task_hashes": {"t": "abc"},
        "config": {"model_args": "pretrained=/m/old"},
    }
    lines = [
        {"doc_id": 0, "target": 2, "filtered_resps": [["-1.0", "False"]], "acc": "1.0"},
        {"doc_id": 1, "target": ["a", "b"], "filtered_resps": ["x"], "acc": "N/A"},
        {"doc_id": 2, "target": "c", "filtered_resps": ["y"], "acc": True},
    ]
    _write_results(tmp_path / "out", data, {"t": lines})
    path = tmp_path / "fw.duckdb"
    report = lm_eval_results.ingest([tmp_path / "out"], path)
    assert report.ok, report.summary()
    rows = _rows(path, "SELECT doc_id, filter, value, target, response FROM samples ORDER BY 1")
    assert rows == [
        (0, "none", 1.0, "2", '["-1.0","False"]'),
        (1, "none", None, '["a","b"]', "x"),
        (2, "none", 1.0, "c", "y"),
    ]


def test_lines_without_filter_key_take_their_filter_from_their_position(tmp_path: Path) -> None:
    """lm-eval 0.4.5 writes one block of lines per filter, in filter_list order, unnamed."""
    filters = [{"name": "strict-match"}, {"name": "flexible-extract"}]
    data = {
        "results": {"g": {"exact_match,strict-match": 0.0, "exact_match,flexible-extract": 1.0}},
        "configs": {"g": {"filter_list": filters}},
        "task_hashes": {"g": "abc"},
        "config": {"model_args": "pretrained=/m/old"},
    }
    lines = [
        {"doc_id": d, "target": "7", "filtered_resps": [r], "exact_match": float(r == "7")}
        for r in ("[invalid]", "7")
        for d in (1, 0)
    ]
    _write_results(tmp_path / "out", data, {"g": lines})
    path = tmp_path / "fw.duckdb"
    assert lm_eval_results.ingest([tmp_path / "out"], path).ok
    rows = _rows(path, "SELECT filter, doc_id, value, response FROM samples ORDER BY ALL")
    assert rows == [
        ("flexible-extract", 0, 1.0, "7"),
        ("flexible-extract", 1, 1.0, "7"),
        ("strict-match", 0, 0.0, "[invalid]"),
        ("strict-match", 1, 0.0, "[invalid]"),
    ]


def test_missing_samples_promised_by_task_hashes_is_named(tmp_path: Path) -> None:
    data = {
        "results": {"t": {"acc,none": 0.5}},
        "task_hashes": {"t": "abc"},
        "config": {"model_args": "pretrained=/m/x"},
    }
    results = _write_results(tmp_path / "out", data)
    report = lm_eval_results.ingest([tmp_path / "out"], tmp_path / "fw.duckdb")
    assert len(report.errors) == 1
    assert results.name in report.errors[0] and "samples_t_" in report.errors[0]
    assert "field `task_hashes`" in report.errors[0]


# --- watch mode -------------------------------------------------------------------


def _slow_copy(source: Path, dest: Path, done: dict[str, float]) -> None:
    """Write results first, then each samples file in chunks, as lm-eval does."""
    dest.mkdir(parents=True)
    results = next(source.glob("results_*.json"))
    shutil.copy(results, dest / results.name)
    time.sleep(0.6)
    for samples in sorted(source.glob("samples_*.jsonl")):
        lines = samples.read_text().splitlines(keepends=True)
        with (dest / samples.name).open("a") as out:
            for start in range(0, len(lines), 3):
                out.writelines(lines[start : start + 3])
                out.flush()
                time.sleep(0.25)
    done["at"] = time.monotonic()


def test_watch_ingests_a_folder_once_with_samples_and_not_before(tmp_path: Path) -> None:
    source = next((FIXTURES / VERSIONS[-1]).rglob("results_*.json")).parent
    watched = tmp_path / "watched"
    watched.mkdir()
    path = tmp_path / "fw.duckdb"
    done: dict[str, float] = {}
    landed: list[tuple[float, int, int]] = []

    def on_report(report: SyncReport) -> None:
        with db.connect(path, read_only=True) as con:
            count = con.execute("SELECT count(*) FROM samples").fetchone()[0]
        landed.append((time.monotonic(), report.inserted, count))

    writer = threading.Thread(target=_slow_copy, args=(source, watched / "model", done))
    writer.start()
    deadline = time.monotonic() + 60

    def stop() -> bool:
        return bool(landed and "at" in done) or time.monotonic() > deadline

    total = watch(watched, path, interval=0.1, settle=1.0, stop=stop, on_report=on_report)
    writer.join()
    expected_lines = sum(len(p.read_text().splitlines()) for p in source.glob("samples_*"))
    assert total.ok and total.inserted == 1, total.summary()
    assert len(landed) == 1
    at, inserted, count = landed[0]
    assert inserted == 1 and at >= done["at"]
    assert count >= expected_lines  # every line of every samples file, not a prefix


def test_cli_watch_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """`forgetwatch ingest --watch DIR` ingests what is there and exits 0 on SIGINT."""
    watched = tmp_path / "watched"
    shutil.copytree(next((FIXTURES / VERSIONS[-1]).rglob("results_*.json")).parent, watched / "m")
    db_file = tmp_path / "fw.duckdb"
    cmd = [sys.executable, "-m", "forgetwatch.cli", "ingest", "--db", str(db_file),
           "--watch", str(watched), "--interval", "0.2", "--settle", "0.5"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    # Never hang the suite: a watcher that misses the folder is killed after 120 s.
    guard = threading.Timer(120, lambda: os.killpg(proc.pid, signal.SIGKILL))
    guard.start()
    try:
        output = []
        assert proc.stdout is not None
        for line in proc.stdout:  # the batch report comes once the folder settles
            output.append(line)
            if "1 inserted" in line:
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        guard.cancel()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = "".join(output) + rest
    assert proc.returncode == 0, text
    assert "Stopped watching." in text and "Traceback" not in text
    assert _rows(db_file, "SELECT count(*) FROM evals")[0][0] == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_a_samples_file_cut_off_mid_line_rejects_its_eval(version: str, tmp_path: Path) -> None:
    """A copy or write cut mid-line is refused up front: DuckDB's parallel multi-file
    JSON read does not always report a malformed last line by itself."""
    folder = tmp_path / "outputs"
    shutil.copytree(FIXTURES / version, folder)
    results = sorted(folder.rglob("results_*.json"))
    stamp = results[0].stem.removeprefix("results_")
    victim = sorted(results[0].parent.glob(f"samples_*_{stamp}.jsonl"))[-1]
    victim.write_bytes(victim.read_bytes()[:-40])
    path = tmp_path / "fw.duckdb"

    report = lm_eval_results.ingest([folder], path)

    assert len(report.errors) == 1 and victim.name in report.errors[0]
    assert "truncated" in report.errors[0]
    assert report.inserted == len(results) - 1
    stored = {Path(p).name for (p,) in _rows(path, "SELECT source_file FROM evals")}
    assert results[0].name not in stored  # nothing of the cut eval, not even its scores
