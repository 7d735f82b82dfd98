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

from forgetwatch import db
from forgetwatch.evals import jobs, targets
from forgetwatch.suite import load_suite
from tests import fixture_evals_form as fx

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
    at.checkbox(key="allow-code").check().run()  # the offline suite has code tasks
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
    at.checkbox(key="allow-code").uncheck().run()
    assert at.button(key="run").disabled  # humaneval executes code
    at.checkbox(key="allow-code").check().run()
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


@pytest.fixture
def form_db(tmp_path: Path) -> Path:
    return fx.build_form_db(tmp_path / "form.duckdb")


def warnings(at: AppTest) -> str:
    return "\n".join(str(w.value) for w in at.warning)


def pick_checkpoint(at: AppTest, model_id: str) -> None:
    at.radio(key="source").set_value("Checkpoint of a run").run()
    at.selectbox(key="model-pick").set_value(model_id).run()


def test_checkpoints_say_which_are_evaluated(monkeypatch, form_db: Path) -> None:
    at = open_evals(monkeypatch, form_db)
    at.radio(key="source").set_value("Checkpoint of a run").run()
    assert at.selectbox(key="model-pick").options == [
        "fx-run @ step 100 ✓ evaluated",
        "fx-run @ step 200",  # only a quick check: still needs a full eval
        "fx-run @ step 300",
    ]


def test_limit_and_nshot_start_from_the_bases_eval(monkeypatch, form_db: Path) -> None:
    at = open_evals(monkeypatch, form_db)
    pick_checkpoint(at, fx.CKPT_NONE)
    assert at.number_input(key="limit").value == 30
    assert at.number_input(key="nshot").value is None
    assert "start from the base's earlier eval (--limit 30" in "\n".join(
        str(c.value) for c in at.caption
    )
    assert "evaluated with" not in warnings(at)
    at.number_input(key="limit").set_value(None).run()
    assert "The base was evaluated with --limit 30" in warnings(at)
    assert "this eval uses no --limit" in warnings(at)
    at.number_input(key="nshot").set_value(0).run()
    assert "5 on fw_target_facts_5shot" in warnings(at)
    pick_checkpoint(at, fx.CKPT_DONE)  # the same base: what the user typed stays
    assert at.number_input(key="limit").value is None
    at.radio(key="source").set_value("Base model").run()  # the base itself: its own eval
    assert at.number_input(key="limit").value == 30
    assert "this base's earlier eval" in "\n".join(str(c.value) for c in at.caption)
    at.selectbox(key="model-pick").set_value(fx.LONER_BASE).run()  # never evaluated
    assert at.number_input(key="limit").value == 30  # nothing to start from: it stays
    assert "evaluated with" not in warnings(at)


def test_run_is_disabled_with_the_reason_until_code_is_allowed(monkeypatch, form_db: Path) -> None:
    at = open_evals(monkeypatch, form_db)  # the bundled offline suite has two code tasks
    assert at.button(key="run").disabled
    assert "Run is disabled: fw_code_funcs, fw_humaneval execute model-written code" in (
        warnings(at)
    )
    at.checkbox(key="allow-code").check().run()
    assert not at.button(key="run").disabled and "Run is disabled" not in warnings(at)


def test_the_log_hides_lm_evals_notices_and_keeps_the_raw_one(
    monkeypatch, form_db: Path, tmp_path: Path
) -> None:
    raw = Path(__file__).parent / "fixtures" / "job_logs" / "offline-suite-succeeded.log"
    spec = jobs.JobSpec(pretrained=fx.BASE, suite=str(load_suite("offline").path), label="fx")
    with db.connect(form_db) as con:  # a finished job's row and folder, as a worker leaves them
        job_dir = tmp_path / "form-jobs" / "20240101-000000-abcdef"
        job_dir.mkdir(parents=True)
        shutil.copy(raw, job_dir / "job.log")
        jobs._insert_job(con, job_dir.name, spec, job_dir)
        jobs.mark_finished(con, job_dir.name, "succeeded")
    at = open_evals(monkeypatch, form_db)
    shown = [c.value for c in at.code]
    assert shown[0].startswith("Left truncation applied") and "Custom kwargs" not in shown[0]
    assert "fatal: not a git" not in shown[0]
    captions = "\n".join(str(c.value) for c in at.caption)
    assert "42 harmless lines hidden" in captions, captions
    assert at.expander[0].label == "Raw log" and "Custom kwargs" in shown[1]
