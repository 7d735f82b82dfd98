"""One number, one sign, everywhere: pages, an export and a ``check`` comment agree.

The same run of the real quick demo world (trained here, synced from a real
MLflow server, evaluated by lm-eval) is read five ways: the Runs page, the Run
page, the Compare page (AppTest), a Markdown export and the ``check`` comment.
Each capability's change must read the same signed value in all of them, and
hallucination must read "+ = worse" (the demo's fine-tunes hallucinate more).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from forgetwatch import db, queries
from forgetwatch.review.direction import capability_title

pytestmark = pytest.mark.slow

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
RUN_NAME = "ft-full-lr3e-3-e40"  # the quick world's full fine-tune
CAPABILITIES = ("target", "knowledge", "code", "instructions", "hallucination")


def signed(value: object) -> str:
    return f"{float(value) + 0.0:+.1f}"  # type: ignore[arg-type]


def open_page(monkeypatch: pytest.MonkeyPatch, path: Path, page: str, **query: str) -> AppTest:
    monkeypatch.setenv("FORGETWATCH_DB", str(path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query)
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def frame_with(at: AppTest, column: str, value: str) -> pd.DataFrame:
    for element in at.dataframe:
        frame = element.value
        if column in frame.columns and (frame[column] == value).any():
            return frame
    raise AssertionError(f"no table with {column} = {value!r}")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forgetwatch", *args], capture_output=True, text=True, timeout=300
    )


def leading(cell: str) -> str:
    """The change a "Δ [CI] *" cell leads with ("+60.0 [+43.3, +76.7] *" -> "+60.0")."""
    return cell.split()[0] if cell else cell


def markdown_cells(text: str, first: str) -> list[list[str]]:
    """Rows of Markdown tables whose first cell is ``first``."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].replace("\\", "") == first:
            rows.append(cells)
    return rows


def test_every_face_shows_the_same_signed_change(
    monkeypatch: pytest.MonkeyPatch, demo_db: Path, tmp_path: Path
) -> None:
    with db.connect(demo_db, read_only=True) as con:
        run_id = queries.resolve_run(con, RUN_NAME).run_id
        found = queries.capability_deltas(con, queries.final_model_id(con, run_id))
    assert run_id and not found.empty
    present = [c for c in CAPABILITIES if c in set(found["capability"])]
    assert "hallucination" in present and "target" in present

    # The Run page: its "By capability" table.
    run_page = open_page(monkeypatch, demo_db, "views/run.py", run=RUN_NAME)
    table = frame_with(run_page, "capability", capability_title("hallucination"))
    on_run = {
        c: signed(table.loc[table["capability"] == capability_title(c), "delta"].iloc[0])
        for c in present
    }
    # Hallucination rose: the demo fine-tune answers made-up questions instead of abstaining.
    assert float(on_run["hallucination"]) > 0

    # The Compare page: the capability "(mean)" rows of its comparison table.
    compare = open_page(monkeypatch, demo_db, "views/compare.py", runs=run_id)
    wide = frame_with(compare, "task", "(mean)")
    means = wide[wide["task"] == "(mean)"].set_index("capability")[RUN_NAME]  # the final model
    # Each cell is the change with its CI ("+60.0 [+43.3, +76.7] *"): the change leads.
    on_compare = {c: signed(leading(str(means[capability_title(c)]))) for c in present}

    # The Runs page: the headline columns.
    runs = open_page(monkeypatch, demo_db, "views/runs.py")
    row = frame_with(runs, "run_name", RUN_NAME).set_index("run_name").loc[RUN_NAME]
    assert signed(row["target_gain"]) == on_run["target"]
    assert signed(row["hallucination_change"]) == on_run["hallucination"]

    # A Markdown export of the same comparison.
    out = tmp_path / "cmp.md"
    done = cli("export", "--db", str(demo_db), "--runs", RUN_NAME, "--out", str(out))
    assert done.returncode == 0, done.stderr
    exported = out.read_text()
    header = markdown_cells(exported, "Capability")[0]
    column = [h.replace("\\", "") for h in header].index(RUN_NAME)
    on_export = {}
    for c in present:  # the report leads with the capability x model table: its rows first
        cells = markdown_cells(exported, capability_title(c))
        assert cells, (c, exported[:2000])
        on_export[c] = leading(re.sub(r" \(ns\)$", "", cells[0][column]))

    # The check comment, as a pipeline posts it on a pull request.
    done = cli("check", RUN_NAME, "--db", str(demo_db))
    assert done.returncode in (0, 1), done.stderr
    on_check = {c: leading(markdown_cells(done.stdout, capability_title(c))[0][3]) for c in present}

    assert on_run == on_compare == on_export == on_check, (
        on_run, on_compare, on_export, on_check,
    )  # fmt: skip
