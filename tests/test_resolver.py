"""One resolver: every command accepts a run id, run name, model path or display name.

Runs against the known world in a real DuckDB file; the CLI is driven in-process
through ``forgetwatch.cli.main``, as a user's shell would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from forgetwatch import db, queries
from forgetwatch.cli import main
from forgetwatch.errors import BadInputError
from tests.fixture_db import BASE, FULL_CKPT, FULL_FINAL, build_paired_db
from tests.fixture_samples import add_flip_samples


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = add_flip_samples(build_paired_db(tmp_path_factory.mktemp("resolve") / "r.duckdb"))
    with db.connect(path) as con:
        con.execute("UPDATE models SET display_name = 'full/checkpoint-50' WHERE model_id = ?",
                    [FULL_CKPT])  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("ident", "run_id", "model_id", "matched"),
    [
        ("run-full", "run-full", FULL_FINAL, "run id"),
        ("full-lr3e-3", "run-full", FULL_FINAL, "run name"),
        (FULL_FINAL, "run-full", FULL_FINAL, "model id"),
        (FULL_FINAL + "/", "run-full", FULL_FINAL, "model id"),  # spelled as a path
        ("full/checkpoint-50", "run-full", FULL_CKPT, "display name"),
        (BASE, None, BASE, "model id"),
    ],
)
def test_every_spelling_resolves(
    world: Path, ident: str, run_id: str | None, model_id: str, matched: str
) -> None:
    with db.connect(world, read_only=True) as con:
        found = queries.resolve(con, ident)
    assert (found.run_id, found.model_id, found.matched) == (run_id, model_id, matched)


def test_unknown_names_nearest_and_ambiguous_names_candidates(world: Path) -> None:
    with (
        db.connect(world, read_only=True) as con,
        pytest.raises(BadInputError, match="Did you mean: full-lr3e-3"),
    ):
        queries.resolve(con, "full-lr3e3")
    with db.connect(world) as con:
        con.execute("UPDATE runs SET run_name = 'same' WHERE run_id IN ('run-full', 'run-lora')")
    try:
        with db.connect(world, read_only=True) as con, pytest.raises(BadInputError) as err:
            queries.resolve(con, "same")
        assert "2 runs or models match 'same'" in err.value.title
        assert "run-full" in err.value.next_step and "run-lora" in err.value.next_step
    finally:
        with db.connect(world) as con:
            con.execute("UPDATE runs SET run_name = 'full-lr3e-3' WHERE run_id = 'run-full'")
            con.execute("UPDATE runs SET run_name = 'lora-r8' WHERE run_id = 'run-lora'")


@pytest.mark.parametrize("ident", ["run-full", "full-lr3e-3", FULL_FINAL])
def test_commands_take_the_same_identifiers(
    world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], ident: str
) -> None:
    status = main(["check", ident, "--db", str(world), "--review-ok"])
    assert status in (0, 1), capsys.readouterr().err
    assert "forgetwatch check" in capsys.readouterr().out
    out = tmp_path / "flips.csv"
    assert main(["flips", "--db", str(world), "--model", ident, "--out", str(out)]) == 0
    out = tmp_path / "cmp.csv"
    assert main(["export", "--db", str(world), "--runs", ident, "--out", str(out)]) == 0
    done = main(["breakeven", ident, "--db", str(world), "--gpu-hour-usd", "2",
                 "--price-per-mtok", "1", "--requests-per-day", "100", "--extra-tokens", "50",
                 "--train-runtime-s", "3600"])  # fmt: skip
    assert done == 0, capsys.readouterr().err


def test_unknown_identifier_exits_2_with_a_hint(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "lora-r9", "--db", str(world)]) == 2
    err = capsys.readouterr().err
    assert "No run or model named 'lora-r9'" in err and "Did you mean: lora-r8" in err
    assert "Traceback" not in err


def test_bad_setting_names_its_variable(
    world: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORGETWATCH_LOCK_TIMEOUT", "abc")
    assert main(["check", "run-full", "--db", str(world)]) == 2
    err = capsys.readouterr().err
    assert "FORGETWATCH_LOCK_TIMEOUT='abc' is not a number" in err and "Traceback" not in err


def test_page_links_take_the_same_identifiers(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    app = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
    monkeypatch.setenv("FORGETWATCH_DB", str(world))
    for page, query, key, want in (
        ("views/compare.py", {"runs": "full-lr3e-3"}, "cmp-runs", ["run-full"]),
        ("views/flips.py", {"model": "full-lr3e-3"}, "flips-model", FULL_FINAL),
        ("views/run.py", {"run": FULL_FINAL}, None, None),
    ):
        at = AppTest.from_file(app, default_timeout=120)
        at.query_params.update(query)
        at.switch_page(page)
        at.run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        if key:
            assert at.session_state[key] == want
        else:
            assert at.markdown and "full-lr3e-3" in at.subheader[0].value
