"""Checkpoint curves, the best checkpoint within budget and "evaluate all checkpoints".

Queries and the Run page run against the hand-built ``known_db`` world plus a
few rows this module adds (an unevaluated checkpoint with a real folder, a
k-shot baseline eval of the base, the run's ``train_runtime``); the slow tests
check the same on the world the demo build and the real collectors produce,
and take the checkpoint screenshot in Chromium.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from forgetwatch import db, queries
from forgetwatch.cli import main
from forgetwatch.errors import BadInputError
from forgetwatch.evals import jobs
from forgetwatch.evals.checkpoint_jobs import checkpoint_specs
from forgetwatch.exports import run_charts
from forgetwatch.review.checkpoints import checkpoints_review
from forgetwatch.review.direction import oriented
from forgetwatch.suite import load_suite
from tests.fixture_db import BASE, FULL_CKPT, FULL_FINAL, analyse, build_known_db

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "dashboard" / "app.py")
KSHOT_TASK = "facts_new_5shot"
KSHOT_SCORE = 0.30  # base + 5-shot on the target task; the base scores 0.20 zero-shot
TRAIN_RUNTIME_S = 3600.0


def build_checkpoint_db(folder: Path) -> tuple[Path, Path]:
    """``known_db`` plus an unevaluated checkpoint (step 70, a real folder), a 5-shot
    baseline eval of the base (and of the final, which must stay out of deltas) and
    the run's train_runtime. Returns (database, checkpoint folder)."""
    path = build_known_db(folder / "checkpoints.duckdb")
    ckpt = folder / "runs" / "full" / "checkpoint-70"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text("{}")
    with db.connect(path) as con, db.transaction(con):
        con.execute(
            "INSERT INTO suite_tasks VALUES (?, 'tiny', 'icl_baseline', 'acc', 'none')",
            [KSHOT_TASK],
        )
        con.execute(
            """INSERT INTO models (model_id, kind, path, run_id, step, base_model_id)
               VALUES (?, 'checkpoint', ?, 'run-full', 70, ?)""",
            [str(ckpt), str(ckpt), BASE],
        )
        for eval_id, model, value in (
            ("e-base-5shot", BASE, KSHOT_SCORE),
            ("e-full-5shot", FULL_FINAL, 0.95),
        ):
            con.execute(
                """INSERT INTO evals (eval_id, model_id, lm_eval_version, n_shot, evaluated_at,
                       ingested_at) VALUES (?, ?, '0.4.13', map([?], ['5']), '2024-03-10',
                       '2024-03-10')""",
                [eval_id, model, KSHOT_TASK],
            )
            con.execute(
                "INSERT INTO scores (eval_id, task, metric, filter, value) "
                "VALUES (?, ?, 'acc', 'none', ?)",
                [eval_id, KSHOT_TASK, value],
            )
        con.execute(
            "INSERT INTO run_metrics VALUES ('run-full', 'train_runtime', 90, NULL, ?)",
            [TRAIN_RUNTIME_S],
        )
    analyse(path)
    return path, ckpt


@pytest.fixture(scope="module")
def ckpt_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_checkpoint_db(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture
def con(ckpt_world: tuple[Path, Path]) -> Iterator[queries.Con]:
    with db.connect(ckpt_world[0], read_only=True) as connection:
        yield connection


# --- queries -----------------------------------------------------------------------------


def test_checkpoint_deltas_put_checkpoints_and_final_on_one_step_axis(con: queries.Con) -> None:
    df = queries.checkpoint_deltas(con, "run-full")
    assert list(df.columns) == ["step", "model_id", "kind", "capability", "delta"]
    # checkpoint-50 is evaluated; checkpoint-70 is not; the final sits at the last loss step.
    assert sorted(df["step"].unique()) == [50, 90]
    at = {(r.step, r.capability): r.delta for r in df.itertuples()}
    assert at[(50, "target")] == pytest.approx(0.20)
    assert at[(50, "knowledge")] == pytest.approx(0.0)
    assert at[(90, "target")] == pytest.approx(0.70)
    assert at[(90, "hallucination")] == pytest.approx(-0.40)
    assert set(df.loc[df["step"] == 90, "kind"]) == {"final"}
    assert "icl_baseline" not in set(df["capability"])  # a comparison line, never a delta
    assert queries.checkpoint_deltas(con, "run-new").empty


def test_points_evaluated_unlike_the_base_are_named_on_the_curve(con: queries.Con) -> None:
    """The final model ran another lm-eval and n-shot than the base: the Run page says so."""
    found = checkpoints_review(con, "run-full")
    assert found.mismatch_warning.startswith("Settings mismatch: 6 results")
    assert "final (step 90) / facts_old: n-shot 5 vs 0" in found.mismatch_warning
    assert "step 50 /" not in found.mismatch_warning  # checkpoint-50 ran like the base


def test_run_checkpoints_and_summary(con: queries.Con, ckpt_world: tuple[Path, Path]) -> None:
    ckpts = queries.run_checkpoints(con, "run-full")
    assert list(ckpts["step"]) == [50, 70]
    assert list(ckpts["evaluated"]) == [True, False]
    assert list(ckpts["model_id"]) == [FULL_CKPT, str(ckpt_world[1])]
    summary = queries.checkpoint_summary(con, "run-full")
    assert list(summary["step"]) == [50, 90]
    assert list(summary["target_gain"]) == pytest.approx([0.20, 0.70])
    assert queries.run_metric_last(con, "run-full", "train_runtime") == TRAIN_RUNTIME_S
    assert queries.run_metric_last(con, "run-full", "nope") is None


def test_best_within_budget_takes_the_highest_passing_gain(con: queries.Con) -> None:
    summary = queries.checkpoint_summary(con, "run-full")
    both = {FULL_CKPT: "pass", FULL_FINAL: "pass"}
    assert queries.best_within_budget(summary, both)["model_id"] == FULL_FINAL
    only_ckpt = {FULL_CKPT: "pass", FULL_FINAL: "fail"}
    best = queries.best_within_budget(summary, only_ckpt)
    assert (best["model_id"], best["step"]) == (FULL_CKPT, 50)
    assert queries.best_within_budget(summary, {FULL_CKPT: "review", FULL_FINAL: "fail"}) is None


def test_checkpoint_curves_figure(con: queries.Con) -> None:
    deltas = queries.checkpoint_deltas(con, "run-full")
    loss = queries.metric_history(con, "run-full", ["loss"])
    fig = run_charts.checkpoint_curves(
        oriented(deltas), loss, kshot_gain=0.10, kshot_label="base + 5-shot", best_step=50
    )
    lines = {t.name: t for t in fig.data}
    halluc = "hallucination change, + = worse"
    assert {"target gain", "knowledge change", halluc, "training loss"} <= set(lines)
    # Hallucination is drawn as its rate: a falling score is a rising line.
    hallucination = deltas[deltas["capability"] == "hallucination"].sort_values("step")
    assert list(lines[halluc].y)[1:] == pytest.approx(list(-hallucination["delta"] * 100))
    # Every capability line starts at the base (step 0, no change); loss is on y2.
    assert list(lines["target gain"].x) == [0, 50, 90]
    assert list(lines["target gain"].y) == pytest.approx([0, 20, 70])
    # The final model is a star (open: this frame carries no tests, so it reads as noise).
    assert lines["target gain"].marker.symbol[-1] == "star-open"
    assert lines["training loss"].yaxis == "y2"
    # The k-shot line is a legend entry that names itself, flat at its target gain.
    kshot = lines["base + 5-shot (target gain +10.0)"]
    assert list(kshot.y) == pytest.approx([10.0, 10.0]) and list(kshot.x) == [0, 90]
    assert "best within budget" in [a.text for a in fig.layout.annotations]
    assert (fig.layout.yaxis2.tickmode, fig.layout.yaxis2.nticks) == ("auto", 5)  # round ticks


# --- evaluate all checkpoints -------------------------------------------------------------


@pytest.fixture
def code_free_suite(tmp_path: Path) -> Path:
    """The bundled target task only: no code execution, no hub."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"name: t\ninclude_path: {ROOT / 'evals' / 'tasks'}\n"
        "tasks:\n  - {task: fw_target_facts, capability: target, metric: acc}\n"
    )
    return suite


def test_checkpoint_specs_cover_unevaluated_checkpoints_only(
    ckpt_world: tuple[Path, Path], code_free_suite: Path
) -> None:
    path, ckpt = ckpt_world
    specs = checkpoint_specs("run-full", load_suite(str(code_free_suite)), str(path), limit=5)
    assert [(s.pretrained, s.adapter, s.label, s.limit) for s in specs] == [
        (str(ckpt), None, "full-lr3e-3 @ step 70", 5)
    ]
    assert specs[0].suite == str(code_free_suite)


def test_checkpoint_specs_refuse_runs_without_checkpoints(
    ckpt_world: tuple[Path, Path], code_free_suite: Path
) -> None:
    suite = load_suite(str(code_free_suite))
    with pytest.raises(BadInputError, match="lora-r8 has no checkpoints in the database"):
        checkpoint_specs("run-lora", suite, str(ckpt_world[0]))
    with pytest.raises(BadInputError, match="No run 'nope'"):
        checkpoint_specs("nope", suite, str(ckpt_world[0]))


def test_cli_eval_all_checkpoints_queues_one_job_per_checkpoint(
    tmp_path: Path, code_free_suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, ckpt = build_checkpoint_db(tmp_path)
    argv = ["eval", "--db", str(path), "--suite", str(code_free_suite), "--limit", "3"]
    try:
        assert main([*argv, "--all-checkpoints", "run-full"]) == 0
        assert "1 checkpoint eval job(s) queued" in capsys.readouterr().out
        queued = jobs.list_jobs(path)
        assert [(j.spec.pretrained, j.spec.label, j.spec.limit) for j in queued] == [
            (str(ckpt), "full-lr3e-3 @ step 70", 3)
        ]
    finally:
        for job in jobs.list_jobs(path):
            jobs.cancel(job.job_id, path)
    assert main([*argv, "--all-checkpoints", "run-lora"]) == 2
    err = capsys.readouterr().err
    assert "lora-r8 has no checkpoints in the database" in err and "sync again" in err


def test_eval_takes_one_model_or_all_checkpoints() -> None:
    from forgetwatch.cli.main import build_parser

    parser = build_parser()
    assert parser.parse_args(["eval", "--model", "gpt2"]).all_checkpoints is None
    assert parser.parse_args(["eval", "--all-checkpoints", "r1"]).model is None
    for argv in (["eval"], ["eval", "--model", "gpt2", "--all-checkpoints", "r1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)


# --- Run page -----------------------------------------------------------------------------


def open_run(monkeypatch: pytest.MonkeyPatch, path: Path, run_id: str) -> AppTest:
    monkeypatch.setenv("FORGETWATCH_DB", str(path))
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params["run"] = run_id
    at.switch_page("views/run.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def page_text(at: AppTest) -> str:
    parts = [*at.markdown, *at.caption, *at.info, *at.success, *at.warning, *at.error]
    return "\n".join(str(p.value) for p in parts)


def test_run_page_checkpoint_section(
    monkeypatch: pytest.MonkeyPatch, ckpt_world: tuple[Path, Path]
) -> None:
    at = open_run(monkeypatch, ckpt_world[0], "run-full")
    text = page_text(at)
    assert "Evaluated at steps 50, 90" in text
    assert "checkpoint-curves" in {el.key for el in at.get("plotly_chart")}
    assert "base + 5-shot: 30.0" in text and "this model 90.0" in text
    assert [b.label for b in at.button if b.key == "eval-checkpoints"] == [
        "Evaluate the 1 checkpoint"
    ]
    # The best checkpoint within the default budget, or why none qualifies.
    assert "Best within budget" in text or "No checkpoint is within the erosion budget" in text


def test_run_page_button_queues_the_checkpoint_jobs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, code_free_suite: Path
) -> None:
    path, ckpt = build_checkpoint_db(tmp_path)
    monkeypatch.setenv("FORGETWATCH_SUITE", str(code_free_suite))
    at = open_run(monkeypatch, path, "run-full")
    try:
        next(b for b in at.button if b.key == "eval-checkpoints").click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert "1 eval job queued" in "\n".join(str(s.value) for s in at.success)
        queued = jobs.list_jobs(path)
        assert [(j.spec.pretrained, j.spec.label) for j in queued] == [
            (str(ckpt), "full-lr3e-3 @ step 70")
        ]
    finally:
        for job in jobs.list_jobs(path):
            jobs.cancel(job.job_id, path)


def test_run_page_without_evaluated_checkpoints(
    monkeypatch: pytest.MonkeyPatch, ckpt_world: tuple[Path, Path]
) -> None:
    at = open_run(monkeypatch, ckpt_world[0], "run-lora")
    assert "No evaluated checkpoints for this run" in page_text(at)
    assert "checkpoint-curves" not in {el.key for el in at.get("plotly_chart")}
    assert not [b for b in at.button if b.key == "eval-checkpoints"]


def test_run_page_break_even_numbers(
    monkeypatch: pytest.MonkeyPatch, ckpt_world: tuple[Path, Path]
) -> None:
    at = open_run(monkeypatch, ckpt_world[0], "run-full")
    assert at.number_input(key="be-runtime").value == TRAIN_RUNTIME_S
    # The fixture's base has no tokenizer on disk: the page says so and takes a number.
    assert "Extra tokens not measured" in page_text(at)
    at.number_input(key="be-tokens").set_value(1000).run()
    metrics = {m.label: m.value for m in at.metric}
    # 1 h x 1 GPU x $2 = $2; 1000 tokens x $0.5/M = $0.0005 per request -> 4,000 requests.
    assert metrics["Fine-tune cost"] == "$2.0000"
    assert metrics["k-shot extra per request"] == "$0.00050000"
    assert metrics["Break-even requests"] == "4,000"
    assert metrics["Break-even after"] == "9.6 hours"  # 4,000 at 10,000 a day: 0.4 days
    assert "breakeven-chart" in {el.key for el in at.get("plotly_chart")}


# --- the demo world (real training, real lm-eval, real collectors) --------------------------


@pytest.mark.slow
def test_demo_checkpoint_curves_and_kshot_baseline(demo_db: Path) -> None:
    with db.connect(demo_db, read_only=True) as con:
        runs = con.execute("SELECT run_id, run_name FROM runs").fetchall()
        run_id = next(r for r, name in runs if name == "ft-full-lr3e-3-e40")
        deltas = queries.checkpoint_deltas(con, run_id)
        baselines = queries.icl_baselines(con, run_id)
    steps = sorted(deltas["step"].unique())
    ckpt_steps = sorted(deltas.loc[deltas["kind"] == "checkpoint", "step"].unique())
    assert len(ckpt_steps) >= 2 and steps[-1] > ckpt_steps[-1]
    assert {"target", "knowledge", "hallucination"} <= set(deltas["capability"])
    assert list(baselines["n_shot"]) == [5]
    assert 0 <= baselines.at[0, "value"] <= 1
    assert baselines.at[0, "task"] == "fw_target_facts_5shot"


@pytest.mark.slow
@pytest.mark.browser
def test_checkpoint_screenshot(demo_db: Path, tmp_path: Path, artifacts_dir: Path) -> None:
    """The Run page of the run with evaluated checkpoints, drawn in Chromium."""
    from playwright.sync_api import sync_playwright

    from tests.procs import start_dashboard
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

    with db.connect(demo_db, read_only=True) as con:
        run_id = con.execute(
            "SELECT run_id FROM runs WHERE run_name = 'ft-full-lr3e-3-e40'"
        ).fetchone()[0]
    server = start_dashboard(demo_db, tmp_path / "streamlit.log")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{server.url}/run?run={run_id}", wait_until="domcontentloaded")
                page.locator("h1", has_text="Run").wait_for(timeout=60_000)
                page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for(
                    timeout=90_000
                )
                heading = page.get_by_text("Over training: checkpoints")
                heading.wait_for()
                curves = page.locator("[data-testid=stPlotlyChart] .js-plotly-plot")
                curves.first.wait_for(timeout=30_000)
                # The checkpoint chart draws one line per capability plus the loss.
                chart = page.locator(".js-plotly-plot", has_text="training loss")
                chart.wait_for(timeout=30_000)
                assert chart.locator(".scatterlayer .trace").count() >= 4, server.log_tail()
                heading.scroll_into_view_if_needed()
                chart.screenshot(path=str(artifacts_dir / "screenshot-checkpoints.png"))
                page.screenshot(
                    path=str(artifacts_dir / "run-checkpoints-page.png"), full_page=True
                )
            finally:
                browser.close()
    finally:
        server.stop()
