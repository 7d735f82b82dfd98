"""Empty states that name the next step, on real lm-eval outputs and real DuckDB files.

Each case is one step short of a comparison: runs synced but never evaluated,
evals whose tasks no suite maps (with a starter suite offered), and evaluated
models with no base. The same answer reads on the pages, in ``forgetwatch suite``
and in ``forgetwatch export``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from forgetwatch import db
from forgetwatch.cli import main
from forgetwatch.collectors import lm_eval_results
from forgetwatch.review.next_step import next_step
from forgetwatch.suite import load_suite

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
# Real lm-eval 0.4.13 output of tasks no bundled suite maps (fx_gen, fx_ifeval).
FOREIGN = Path(__file__).parent / "fixtures" / "lm_eval" / "0.4.13" / "plain"


def _step(path: Path):
    with db.connect(path, read_only=True) as con:
        return next_step(con)


def _page(monkeypatch: pytest.MonkeyPatch, path: Path, page: str) -> AppTest:
    monkeypatch.setenv("FORGETWATCH_DB", str(path))
    at = AppTest.from_file(APP, default_timeout=60)
    if page != "views/runs.py":
        at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_runs_without_evals_say_how_to_evaluate(tmp_path: Path) -> None:
    path = tmp_path / "fw.duckdb"
    with db.connect(path) as con:
        con.execute(  # the rows `forgetwatch sync` writes for two runs
            "INSERT INTO runs (run_id, run_name, base_model, output_dir, method) VALUES "
            "('r1', 'ft-a', '/models/base', '/runs/a', 'full'), "
            "('r2', 'ft-b', '/models/base', '/runs/b', 'lora')"
        )
    step = _step(path)
    assert step is not None and step.title == "2 runs, and no evals yet"
    assert "forgetwatch eval RUN" in step.detail and step.suite_yaml is None


def test_unmapped_tasks_offer_a_starter_suite_that_loads(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "fw.duckdb"
    assert lm_eval_results.ingest([FOREIGN], path).ok  # no --suite: nothing maps the tasks
    step = _step(path)
    assert step is not None and "are in no suite" in step.title
    assert "fx_gen" in step.detail and "fx_ifeval" in step.detail
    written = tmp_path / "team-suite.yaml"
    assert main(["suite", "--write", str(written), "--db", str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 stored task(s) no suite maps" in out and f"wrote {written}" in out
    suite = load_suite(str(written))
    assert {t.task for t in suite.tasks} == {"fx_gen", "fx_ifeval"}
    assert {t.capability for t in suite.tasks} == {"other"}
    assert written.read_text() == step.suite_yaml.replace("my-suite", "team-suite")
    # Never overwrites a suite the user may have edited.
    assert main(["suite", "--write", str(written), "--db", str(path)]) == 2
    assert "never overwrites" in capsys.readouterr().err
    compare = _page(monkeypatch, path, "views/compare.py")
    assert any("are in no suite" in str(i.value) for i in compare.info)
    code = main(["export", "--all", "--out", str(tmp_path / "x.md"), "--db", str(path)])
    assert code == 2 and "Nothing to export: The evals' 2 tasks are in no suite" in (
        capsys.readouterr().err
    )
    # With the starter suite stored, the next step is the missing base.
    assert lm_eval_results.ingest([FOREIGN], path, suite=suite).ok
    step = _step(path)
    assert step is not None and step.title == "1 evaluated models have no base model"
    runs = _page(monkeypatch, path, "views/runs.py")
    assert any("have no base model" in str(i.value) for i in runs.info)
