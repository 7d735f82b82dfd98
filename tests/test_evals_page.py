"""The Evals page through AppTest: model and suite pickers, validation, and finding jobs again.

AppTest never fires ``run_every``, so "a reload during a job" is a fresh AppTest
run while a real detached job is running.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from forgetwatch.evals import jobs, targets
from forgetwatch.suite import load_suite

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
TASKS = Path(__file__).resolve().parent.parent / "evals" / "tasks"


@pytest.fixture
def page_db(demo_db: Path, tmp_path: Path) -> Path:
    path = tmp_path / "page.duckdb"
    shutil.copy(demo_db, path)
    return path


def open_evals(monkeypatch: pytest.MonkeyPatch, path: Path) -> AppTest:
    monkeypatch.setenv("FORGETWATCH_DB", str(path))
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("views/evals.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Evals"]
    return at


def errors(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in at.error)


def test_pickers_offer_the_databases_models_and_the_suites(monkeypatch, page_db: Path) -> None:
    at = open_evals(monkeypatch, page_db)
    assert at.selectbox(key="model-pick").options, "base models from the models table"
    at.radio(key="source").set_value("Run's final model").run()
    finals = at.selectbox(key="model-pick").options
    assert finals and all(label.endswith("(final)") for label in finals)
    at.radio(key="source").set_value("Checkpoint of a run").run()
    assert not at.exception
    at.radio(key="suite-choice").set_value("Standard benchmarks (needs the hub)").run()
    warning = "\n".join(str(w.value) for w in at.warning)
    assert "hub is unreachable" in warning and "mmlu" in warning
    assert at.checkbox(key="allow-code").value is False
    assert at.checkbox(key="trust-remote").value is False


def test_validation_errors_name_the_field(monkeypatch, page_db: Path, tmp_path: Path) -> None:
    at = open_evals(monkeypatch, page_db)
    at.radio(key="source").set_value("Local folder or hub id").run()
    at.text_input(key="local-ref").input(str(tmp_path / "no-such-model")).run()
    at.button(key="run").click().run()
    assert "Field model" in errors(at)

    at.radio(key="suite-choice").set_value("Paste suite YAML").run()
    at.text_area(key="suite-text").input("name: x\ntasks:\n  - {task: t, capability: nope}\n").run()
    assert "capability" in errors(at) and at.button(key="run").disabled

    at.radio(key="suite-choice").set_value("Suite YAML file").run()
    at.text_input(key="suite-path").input(str(tmp_path / "missing.yaml")).run()
    assert "Suite file not found" in errors(at)

    at.radio(key="source").set_value("Base model").run()
    at.radio(key="suite-choice").set_value("Standard benchmarks (needs the hub)").run()
    at.button(key="run").click().run()
    assert "hub is unreachable" in errors(at)
    assert jobs.list_jobs(page_db) == []  # nothing was launched


@pytest.mark.slow
def test_a_new_session_finds_a_running_job_and_can_cancel_it(
    monkeypatch, page_db: Path, quick_world, tmp_path: Path
) -> None:
    suite = tmp_path / "arith.yaml"
    suite.write_text(
        f"name: arith\ninclude_path: {TASKS}\n"
        "tasks:\n  - {task: fw_arithmetic, capability: knowledge, metric: acc}\n"
    )
    spec = targets.prepare(str(quick_world.base_model_dir), load_suite(str(suite)), hub_ok=False)
    job_id = jobs.submit(spec, page_db)
    at = open_evals(monkeypatch, page_db)  # "the page was reloaded"
    assert at.button(key=f"cancel-{job_id}")
    assert job_id in at.selectbox(key="log-job").options
    at.button(key=f"cancel-{job_id}").click().run()
    assert not at.exception
    deadline = time.monotonic() + 30
    while jobs.get_job(job_id, page_db).status == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert jobs.get_job(job_id, page_db).status == "cancelled"
    at = open_evals(monkeypatch, page_db)  # and a finished job is still listed
    table = at.dataframe[0].value
    assert table.loc[table["Job"] == job_id, "Status"].tolist() == ["cancelled"]


def test_kind_of_eval_submits_quick_checks_and_base_repeats(
    monkeypatch, page_db: Path, tmp_path: Path
) -> None:
    suite = tmp_path / "arith.yaml"
    suite.write_text(
        f"name: arith\ninclude_path: {TASKS}\n"
        "tasks:\n  - {task: fw_arithmetic, capability: knowledge, metric: acc}\n"
    )
    at = open_evals(monkeypatch, page_db)
    assert "No noise floor yet" in "\n".join(str(c.value) for c in at.caption)
    at.radio(key="source").set_value("Run's final model").run()
    assert at.radio(key="eval-kind").options == ["Full suite", "Quick check"]
    at.radio(key="source").set_value("Base model").run()
    at.radio(key="eval-kind").set_value("Evaluate the base twice").run()
    at.radio(key="suite-choice").set_value("Suite YAML file").run()
    at.text_input(key="suite-path").input(str(suite)).run()
    at.button(key="run").click().run()
    assert not at.exception and not at.error, errors(at)
    (job,) = jobs.list_jobs(page_db)
    try:
        assert job.spec.mode == "repeat-base"
        assert (job.spec.batch_size, job.spec.seed) == (1, 4321)  # not the base's 16 / default
    finally:
        jobs.cancel(job.job_id, page_db)
    at.radio(key="eval-kind").set_value("Quick check").run()
    assert at.number_input(key="batch").value == 16
