"""The Run page at a real suite's size: CIs on every bar and point, noise faded, 200 tasks.

``build_wide_db`` writes a 200-task world (150 MMLU-like knowledge subjects among
them) with 60 paired samples per task, so the stored paired tests give every
delta a CI and some deltas are significant while others are within noise. A
checkpoint at step 10 is evaluated and three more wait for an eval.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from forgetwatch import db
from forgetwatch.exports import run_charts
from forgetwatch.queries import CAPABILITY_ORDER
from forgetwatch.review import checkpoints as ckpt_review
from forgetwatch.review import run as run_review
from forgetwatch.review import trust
from forgetwatch.review.views import NOISE_MARK
from forgetwatch.suite import change_label, change_sign
from tests.fixture_db import analyse

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "dashboard" / "app.py")
BASE, FINAL, CKPT = "/models/wide-base", "/runs/wide", "/runs/wide/checkpoint-10"
WAITING = [f"/runs/wide/checkpoint-{s}" for s in (20, 30, 40)]  # no eval yet
DOCS = 60
CAPABILITY_SIZES = {"target": 4, "knowledge": 150, "code": 20, "instructions": 16,
                    "hallucination": 10}  # fmt: skip


def wide_tasks() -> pd.DataFrame:
    """200 tasks: name, capability, and how many of DOCS the base / final / checkpoint got right.

    Changes range from -20 to +20 documents, so large ones are significant after the
    correction over 200 tasks and small ones are not. Hallucination tasks lose
    correct "unknown" answers: the rate rises, a positive (worse) change once turned.
    The checkpoint's target gain (one answer in 240) is within noise.
    """
    rows = []
    for capability, size in CAPABILITY_SIZES.items():
        for i in range(size):
            name = "mmlu_" if capability == "knowledge" else f"{capability}_"
            change = (i * 7) % 41 - 20
            if capability == "target":
                change = 20 - i * 5  # 20, 15, 10, 5: the target gained
            if capability == "hallucination":
                change = -abs(change)
            base = 30 if capability != "hallucination" else 50
            # The checkpoint went half way, except on the target: one more right answer.
            ckpt = base + (int(i == 0) if capability == "target" else change // 2)
            rows.append((f"{name}{i:03d}", capability, base, base + change, ckpt))
    return pd.DataFrame(rows, columns=["task", "capability", "base", "final", "ckpt"])


def build_wide_db(path: Path) -> Path:
    tasks = wide_tasks()
    with db.connect(path) as con, db.transaction(con):
        con.register("wide", tasks)
        con.execute(
            "INSERT INTO suite_tasks SELECT task, 'wide', capability, 'acc', 'none' FROM wide"
        )
        con.execute(
            """INSERT INTO runs (run_id, experiment_id, run_name, status, start_time, base_model,
                   method, output_dir, params, tags)
               VALUES ('run-wide', '1', 'wide-suite', 'FINISHED', '2024-01-01', ?, 'full', ?,
                       map(), map())""",
            [BASE, FINAL],
        )
        models = [(BASE, "base", None, None, None), (FINAL, "final", "run-wide", 50, BASE),
                  (CKPT, "checkpoint", "run-wide", 10, BASE)]  # fmt: skip
        models += [(m, "checkpoint", "run-wide", int(m.rsplit("-", 1)[1]), BASE) for m in WAITING]
        con.executemany(
            "INSERT INTO models (model_id, kind, path, run_id, step, base_model_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(m, kind, m, run, step, base) for m, kind, run, step, base in models],
        )
        evals = [("e-base", BASE, "base"), ("e-final", FINAL, "final"), ("e-ckpt", CKPT, "ckpt")]
        for eval_id, model_id, column in evals:
            con.execute(
                """INSERT INTO evals (eval_id, model_id, lm_eval_version, evaluated_at,
                       ingested_at, source_file)
                   VALUES (?, ?, '0.4.13', '2024-02-01', '2024-02-01', ?)""",
                [eval_id, model_id, f"/evals/{eval_id}/results.json"],
            )
            con.execute(
                f"""INSERT INTO scores (eval_id, task, metric, filter, value, stderr, n_samples)
                    SELECT ?, task, 'acc', 'none', {column} / {DOCS}, 0.05, {DOCS} FROM wide""",
                [eval_id],
            )
            con.execute(
                f"""INSERT INTO samples (eval_id, task, doc_id, filter, metric, value, doc_hash)
                    SELECT ?, task, d.doc, 'none', 'acc', CASE WHEN d.doc < {column}
                           THEN 1.0 ELSE 0.0 END, task || '-' || d.doc
                    FROM wide, range({DOCS}) d(doc)""",
                [eval_id],
            )
        con.execute(
            "INSERT INTO run_metrics SELECT 'run-wide', 'loss', s * 5, NULL, 3.0 - s * 0.2 "
            "FROM range(11) t(s)"
        )
    analyse(path)
    return path


@pytest.fixture(scope="module")
def wide_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wide_db(tmp_path_factory.mktemp("wide") / "wide.duckdb")


@pytest.fixture(scope="module")
def changes(wide_db: Path) -> run_review.ModelChanges:
    with db.connect(wide_db, read_only=True) as con:
        return run_review.model_changes(con, FINAL, "run-wide")


@pytest.fixture(scope="module")
def stored(wide_db: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored tests as the analysis wrote them: (task tests, capability tests)."""
    with db.connect(wide_db, read_only=True) as con:
        return trust.task_tests(con, [FINAL]), trust.capability_tests(con, [FINAL, CKPT])


# --- which tasks the chart draws ------------------------------------------------------------


def test_top_tasks_keeps_the_biggest_movers_per_capability() -> None:
    frame = wide_tasks().assign(delta=lambda d: (d["final"] - d["base"]) / DOCS)
    picked = run_review.top_tasks(frame)
    sizes = {c: min(n, run_review.TOP_PER_CAPABILITY) for c, n in CAPABILITY_SIZES.items()}
    assert picked["capability"].value_counts().to_dict() == sizes
    # Grouped in reading order, the largest change first within each capability.
    order = [c for c in CAPABILITY_ORDER if c in sizes]
    assert list(dict.fromkeys(picked["capability"])) == order
    for capability, rows in picked.groupby("capability"):
        sizes_shown = list(rows["delta"].abs())
        assert sizes_shown == sorted(sizes_shown, reverse=True)
        left_out = frame[(frame["capability"] == capability) & ~frame["task"].isin(rows["task"])]
        if not left_out.empty:  # nothing left out moved more than what is shown
            assert left_out["delta"].abs().max() <= min(sizes_shown)
    everything = run_review.top_tasks(frame, show_all=True)
    assert len(everything) == 200 and list(dict.fromkeys(everything["capability"])) == order


def test_a_small_suite_draws_every_task() -> None:
    frame = wide_tasks().head(18).assign(delta=0.1)
    assert len(run_review.top_tasks(frame)) == 18
    missing = frame.assign(delta=[None, *[0.1] * 17])  # no base eval: no bar
    assert len(run_review.top_tasks(missing, show_all=True)) == 17


def test_the_view_model_says_what_the_chart_leaves_out(
    changes: run_review.ModelChanges,
) -> None:
    shown = 4 + 10 + 10 + 10 + 10
    assert changes.tasks_with_delta == 200 and changes.tasks_left_out == 200 - shown
    assert changes.show_all_label == "Show all 200 tasks"
    assert f"({shown} of 200)" in changes.task_chart_note(False)
    assert changes.task_chart_note(True).startswith("All 200 tasks")
    assert len(changes.task_view("t").frame) == 200  # the table keeps every task


# --- error bars and fading ------------------------------------------------------------------


def _error_ends(trace: Any) -> tuple[list[float], list[float]]:
    x = list(trace.x)
    plus, minus = list(trace.error_x.array), list(trace.error_x.arrayminus)
    return [v - m for v, m in zip(x, minus, strict=True)], [
        v + p for v, p in zip(x, plus, strict=True)
    ]


def test_task_bars_carry_the_stored_ci_in_points(
    changes: run_review.ModelChanges, stored: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    tests = stored[0].set_index("task")
    rows = changes.task_bars(show_all=True)
    fig = run_charts.delta_bars(rows, "task", group="capability")
    bars = fig.data[0]
    assert list(bars.y[0]) == list(rows["capability"]) and list(bars.y[1]) == list(rows["task"])
    low, high = _error_ends(bars)
    for task, lo, hi, capability in zip(rows["task"], low, high, rows["capability"], strict=True):
        ci = tests.loc[task, ["ci_low", "ci_high"]].astype(float) * 100
        if capability == "hallucination":  # the rate: the CI turns with the delta
            assert (lo, hi) == pytest.approx((-ci["ci_high"], -ci["ci_low"]))
            assert hi >= 0  # more hallucination: a rise, drawn as worse
        else:
            assert (lo, hi) == pytest.approx((ci["ci_low"], ci["ci_high"]))


def test_bars_within_noise_are_faded_and_marked(
    changes: run_review.ModelChanges, stored: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    significant = stored[0].set_index("task")["significant"]
    rows = changes.task_bars(show_all=True)
    bars, labels = run_charts.delta_bars(rows, "task", group="capability").data[:2]
    expected = [significant[t] for t in rows["task"]]
    assert any(expected) and not all(expected)  # the world has both kinds
    solid = [
        run_charts.GOOD if d * change_sign(c) >= 0 else run_charts.BAD
        for d, c in zip(rows["delta"], rows["capability"], strict=True)
    ]  # hallucination's rise is worse
    # Within noise: the colour's outline over a pale fill (the dark theme keeps it visible).
    assert list(bars.marker.color) == [
        c if s else run_charts.faded(c) for c, s in zip(solid, expected, strict=True)
    ]
    assert list(bars.marker.line.color) == solid
    assert list(bars.marker.line.width) == [0 if s else run_charts.OUTLINE_PX for s in expected]
    assert [t.strip().endswith(NOISE_MARK) for t in labels.text] == [not s for s in expected]
    quiet = rows.index[~rows["significant"]][0]
    hover = bars.hovertext[quiet]
    assert "within noise" in hover and "p_adj = " in hover and "Δ " in hover
    loud = rows.index[rows["significant"]][0]
    assert bars.hovertext[loud].endswith("significant") and " * points" in bars.hovertext[loud]


def test_capability_bars_carry_their_tests(
    changes: run_review.ModelChanges, stored: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    tests = stored[1].set_index(["model_id", "capability"])
    bars = run_charts.delta_bars(changes.capabilities, "capability").data[0]
    low, high = _error_ends(bars)
    for capability, lo, hi in zip(bars.y, low, high, strict=True):
        ci = tests.loc[(FINAL, capability), ["ci_low", "ci_high"]].astype(float) * 100
        sign = -1 if capability == "hallucination" else 1
        assert sorted((lo, hi)) == pytest.approx(
            sorted((sign * ci["ci_low"], sign * ci["ci_high"]))
        )


def test_a_frame_without_tests_draws_every_bar_faded() -> None:
    frame = pd.DataFrame({"capability": ["target"], "delta": [0.1]})
    bars = run_charts.delta_bars(frame, "capability").data[0]
    assert list(bars.marker.color) == [run_charts.faded(run_charts.GOOD)]
    assert list(bars.error_x.array) == [None] and "untested" in bars.hovertext[0]


def test_bar_chart_height_is_capped(changes: run_review.ModelChanges) -> None:
    every = changes.task_bars(show_all=True)
    capped = run_charts.delta_bars(every, "task", group="capability")
    assert capped.layout.height == run_charts.MAX_BARS_HEIGHT
    tall = run_charts.delta_bars(every, "task", group="capability", max_height=None)
    assert tall.layout.height == run_charts.BAR_PX * 200 + 100  # for a scrolling box
    few = run_charts.delta_bars(changes.capabilities, "capability")
    assert few.layout.height < run_charts.MAX_BARS_HEIGHT


def test_checkpoint_points_carry_their_ci_and_fade_within_noise(
    wide_db: Path, stored: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    tests = stored[1].set_index(["model_id", "capability"])
    with db.connect(wide_db, read_only=True) as con:
        found = ckpt_review.checkpoints_review(con, "run-wide")
    fig = run_charts.checkpoint_curves(found.deltas, found.loss)
    lines = {t.name: t for t in fig.data}
    symbols = []
    points = [("target", CKPT, 1), ("target", FINAL, 2), ("knowledge", CKPT, 1),
              ("hallucination", FINAL, 2)]  # fmt: skip
    for capability, model_id, index in points:
        line = lines[change_label(capability)]
        test = tests.loc[(model_id, capability)]
        y, plus, minus = line.y[index], line.error_y.array[index], line.error_y.arrayminus[index]
        ci = sorted(float(test[c]) * 100 * (-1 if capability == "hallucination" else 1)
                    for c in ("ci_low", "ci_high"))  # fmt: skip
        assert (y - minus, y + plus) == pytest.approx(tuple(ci))
        shape = "star" if model_id == FINAL else "circle"
        assert line.marker.symbol[index] == shape + ("" if test["significant"] else "-open")
        symbols.append(line.marker.symbol[index])
        assert line.error_y.array[0] is None and line.marker.symbol[0] == "circle"  # the base
    assert "circle-open" in symbols and "star" in symbols
    assert "p_adj" in lines[change_label("target")].hovertext[1]


# --- wording --------------------------------------------------------------------------------


def test_the_checkpoint_button_counts_right() -> None:
    assert ckpt_review.evaluate_label(1) == "Evaluate the 1 checkpoint"
    assert ckpt_review.evaluate_label(3) == "Evaluate all 3 checkpoints"
    assert ckpt_review.queued_text(1).startswith("1 eval job queued")
    assert ckpt_review.queued_text(2).startswith("2 eval jobs queued")
    assert ckpt_review.no_evaluated_note(1).startswith("This run has 1 checkpoint in")


def test_dark_theme_marks_are_not_near_black() -> None:
    """The break-even cross and best-checkpoint line read on the dark theme's background."""
    curves = pd.DataFrame({"requests": [0, 10], "finetune_usd": [1, 1], "kshot_usd": [0, 2]})
    marker = run_charts.breakeven_chart(curves, 5.0, 1.0).data[-1].marker
    best = run_charts.checkpoint_curves(pd.DataFrame(columns=["step", "kind", "capability",
                                                              "delta"]), best_step=5)  # fmt: skip
    for colour in (marker.color, best.layout.shapes[0].line.color):
        assert _contrast(colour, "#FFFFFF") >= 3 and _contrast(colour, "#0E1117") >= 3


def _contrast(a: str, b: str) -> float:
    def luminance(colour: str) -> float:
        rgb = [int(colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# --- the page -------------------------------------------------------------------------------


def open_run(monkeypatch: pytest.MonkeyPatch, path: Path) -> AppTest:
    monkeypatch.setenv("FORGETWATCH_DB", str(path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["run"] = "run-wide"
    at.switch_page("views/run.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart_spec(at: AppTest, key: str) -> dict[str, Any]:
    """A plotly chart's figure as the page sent it (AppTest has no Plotly element class)."""
    element = next(el for el in at.get("plotly_chart") if el.key == key)
    return dict(json.loads(element.proto.spec))


def test_run_page_draws_200_tasks_legibly(monkeypatch: pytest.MonkeyPatch, wide_db: Path) -> None:
    at = open_run(monkeypatch, wide_db)
    toggle = at.toggle(key="all-tasks")
    assert toggle.label == "Show all 200 tasks" and toggle.value is False
    captions = "\n".join(str(c.value) for c in at.caption)
    assert "(44 of 200)" in captions and "Whiskers are the paired 95% CI" in captions
    spec = chart_spec(at, "bars-task")
    capabilities, tasks = spec["data"][0]["y"]  # the two-level axis: grouped by capability
    assert len(tasks) == 44 and spec["layout"]["height"] <= 900
    assert list(dict.fromkeys(capabilities)) == [
        c for c in CAPABILITY_ORDER if c in CAPABILITY_SIZES
    ]
    assert [b.label for b in at.button if b.key == "eval-checkpoints"] == [
        "Evaluate all 3 checkpoints"
    ]
    toggle.set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "All 200 tasks" in "\n".join(str(c.value) for c in at.caption)
    spec = chart_spec(at, "bars-task")
    assert len(spec["data"][0]["y"][1]) == 200  # drawn whole, inside a box of capped height
    assert len(at.dataframe[1].value) == 200
