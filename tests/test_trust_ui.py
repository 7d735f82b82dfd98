"""Trust in the dashboard: greyed noise, verdict badges, settings warnings, the Flips page.

Pages run through Streamlit's AppTest against the known world plus the flip
samples of tests/fixture_samples.py. Styling is checked on the Styler the page
hands to ``st.dataframe`` (AppTest returns only the values).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from forgetwatch import db, review
from forgetwatch.dashboard import components
from forgetwatch.review import trust
from forgetwatch.review.views import NOISE_COLOR
from tests.fixture_db import BASE, FULL_CKPT, FULL_FINAL, build_known_db
from tests.fixture_samples import add_flip_samples

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
TITLES = {"Runs": "Models and runs"}
PAGES = {"Runs": "views/runs.py", "Compare": "views/compare.py", "Flips": "views/flips.py"}


@pytest.fixture(scope="module")
def flips_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return add_flip_samples(build_known_db(tmp_path_factory.mktemp("trust") / "k.duckdb"))


def open_page(
    monkeypatch: pytest.MonkeyPatch, path: Path, page: str, **query: str | list[str]
) -> AppTest:
    monkeypatch.setenv("FORGETWATCH_DB", str(path))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.switch_page(PAGES[page])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [TITLES.get(page, page)]
    return at


def texts(elements: object) -> str:
    return "\n".join(str(e.value) for e in elements)  # type: ignore[attr-defined]


def test_flips_page_counts_search_and_url(monkeypatch: pytest.MonkeyPatch, flips_db: Path) -> None:
    at = open_page(monkeypatch, flips_db, "Flips", model=FULL_FINAL)
    assert at.selectbox(key="flips-base").value == BASE  # the recorded base by default
    counts = at.dataframe[0].value.set_index("task")
    assert counts.loc["facts_old", ["right_to_wrong", "wrong_to_right"]].tolist() == [3, 1]
    assert counts.loc["facts_old", "net"] == pytest.approx((1 - 3) / 7 * 100)
    assert len(at.dataframe[1].value) == 11  # every flip, both ways
    # "What did we forget": one table per capability, in reading order.
    forgotten = pd.concat([d.value for d in at.dataframe[2:]])
    headers = [str(m.value) for m in at.markdown if str(m.value).startswith("##### ")]
    assert headers[:2] == ["##### knowledge: 4 forgotten", "##### hallucination: 2 forgotten"]
    assert list(forgotten["task"]) == [
        "arith_carry", "facts_old", "facts_old", "facts_old", "unknowns", "unknowns",
    ]  # fmt: skip
    at.text_input(key="flips-q").input("atlantis").run()
    found = at.dataframe[1].value
    assert list(found["doc_id"]) == [3, 4] and set(found["response"]) == {"Atlantis"}
    assert list(found["base_response"]) == ["Corvel", "Dunmere"]
    assert at.query_params["q"] in ("atlantis", ["atlantis"])
    at.text_input(key="flips-q").input("").run()
    at.selectbox(key="flips-task").select("unknowns").run()
    assert list(at.dataframe[1].value["response"]) == ["Paris", "Lyon"]
    # The task filter narrows "What did we forget" too.
    assert list(pd.concat([d.value for d in at.dataframe[2:]])["task"]) == ["unknowns"] * 2
    assert at.query_params["task"] in ("unknowns", ["unknowns"])


def test_flips_link_reopens_the_view(monkeypatch: pytest.MonkeyPatch, flips_db: Path) -> None:
    at = open_page(
        monkeypatch, flips_db, "Flips", model=FULL_FINAL, task="facts_old", q="ZORB",
        dir="right_to_wrong",
    )  # fmt: skip
    assert at.selectbox(key="flips-task").value == "facts_old"
    rows = at.dataframe[1].value
    assert list(rows["doc_id"]) == [5] and list(rows["direction"]) == ["Right → wrong"]


def test_flips_page_no_flips(monkeypatch: pytest.MonkeyPatch, flips_db: Path) -> None:
    at = open_page(monkeypatch, flips_db, "Flips", model=FULL_CKPT)
    assert "No flips" in texts(at.info)
    assert "Nothing forgotten" in texts(at.info)
    assert at.dataframe[0].value["n_pairs"].sum() == 4


def test_flips_page_no_base(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = add_flip_samples(build_known_db(tmp_path / "k.duckdb"))
    with db.connect(path) as con:
        con.execute("DELETE FROM samples WHERE eval_id = 'e-base'")
    at = open_page(monkeypatch, path, "Flips", model=FULL_FINAL)
    assert "No base to compare full-lr3e-3 with" in texts(at.info)
    assert "has no per-sample results" in texts(at.info)
    assert not at.dataframe


def test_flips_page_no_samples(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = build_known_db(tmp_path / "k.duckdb")
    with db.connect(path) as con:
        con.execute("DELETE FROM samples")
    at = open_page(monkeypatch, path, "Flips")
    assert "No per-sample results for any fine-tuned model" in texts(at.info)
    assert "--log_samples" in texts(at.info)


def test_runs_page_verdicts_and_settings_warning(
    monkeypatch: pytest.MonkeyPatch, flips_db: Path
) -> None:
    at = open_page(monkeypatch, flips_db, "Runs")
    table = at.dataframe[0].value.set_index("run_id")
    with db.connect(flips_db, read_only=True) as con:
        want = trust.verdicts(con, [FULL_FINAL])[FULL_FINAL]
    assert table.loc["run-full", "verdict"] == want.status
    assert table.loc["run-full", "verdict_reasons"] == " ".join(want.reasons)
    assert "n-shot 5 vs 0" in table.loc["run-full", "settings_mismatch"]
    assert table.loc["run-lora", "settings_mismatch"] == ""
    assert "Settings mismatch" in texts(at.warning) and "full-lr3e-3" in texts(at.warning)
    assert pd.isna(table.loc["run-new", "verdict"])  # never evaluated: no verdict


def test_compare_page_badges_and_grey(monkeypatch: pytest.MonkeyPatch, flips_db: Path) -> None:
    at = open_page(monkeypatch, flips_db, "Compare", runs=["run-full", "run-lora"])
    with db.connect(flips_db, read_only=True) as con:
        found = trust.verdicts(con, [FULL_FINAL, FULL_CKPT, "/runs/lora"])
    badges = [m.value for m in at.markdown if "-badge[" in str(m.value)]
    assert len(badges) == 3
    colour = components.VERDICT_STYLE[found[FULL_FINAL].status][0]
    assert any(b.startswith(f":{colour}-badge[") and "full-lr3e-3:" in b for b in badges)
    assert "Settings mismatch" in texts(at.warning)
    tables = [d.value for d in at.dataframe if "base_value" in d.value]
    assert len(tables) == 1 and tables[0].columns[0] == "capability"  # one table at a time
    at.button_group(key="compare-table").set_value("Deltas").run()
    deltas = next(d.value for d in at.dataframe if "delta" in d.value)
    assert {"significant", "evidence", "test", "p_adjusted", "correction"} <= set(deltas.columns)


def test_styled_greys_noise_and_colours_verdicts() -> None:
    frame = pd.DataFrame({"delta": [1.0, 2.0], "verdict": ["pass", "fail"]})
    view = review.View("v", frame, noise=pd.DataFrame({"delta": [True, False]}))
    ctx = components.styled(view)._compute().ctx
    assert ("color", NOISE_COLOR) in ctx[(0, 0)] and ("color", NOISE_COLOR) not in ctx[(1, 0)]
    assert ("color", components.VERDICT_TEXT_COLOR["fail"]) in ctx[(1, 1)]
    plain = review.View("v", frame[["delta"]])
    assert components.styled(plain) is plain.frame  # nothing to style: the frame itself


def test_charts_fade_models_within_noise() -> None:
    from forgetwatch.exports import charts
    from forgetwatch.exports.figures import FADED, grey_noise

    points = pd.DataFrame(
        {
            "model_id": ["/m/a", "/m/b"], "run_id": ["a", "b"], "run_name": ["a", "b"],
            "kind": ["final", "final"], "step": [None, None], "method": ["full", "lora"],
            "base_model_id": ["/base"] * 2, "target_gain": [0.5, 0.01],
            "general_change": [-0.2, 0.0], "hallucination_change": [0.1, 0.0],
        }
    )  # fmt: skip
    noise = pd.DataFrame(
        {"model_id": ["/m/a", "/m/b"], "target_gain": [False, True],
         "general_change": [False, True], "hallucination_change": [True, True]}
    )  # fmt: skip
    scatter, bars = grey_noise(charts.comparison_figures(points), points, noise)
    drawn = next(t for t in scatter.data if t.customdata is not None)  # the models' points
    assert list(drawn.marker.opacity) == [1.0, FADED]
    by_name = {t.name: t for t in bars.data}
    assert list(by_name["target gain"].marker.opacity) == [1.0, FADED]
    assert list(by_name["hallucination change"].marker.opacity) == [FADED, FADED]
    assert by_name["target gain"].text[1].endswith("(ns)")
