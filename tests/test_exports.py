"""Exports against a real DuckDB file: every format holds the page's numbers, safely.

The page's DataFrames come from ``review.build_comparison``; each format is
parsed back (CSV, XLSX) or searched (Markdown, LaTeX, HTML) for those numbers.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from forgetwatch import db, exports, review
from forgetwatch.errors import BadInputError
from forgetwatch.queries import significance
from forgetwatch.review.direction import oriented
from tests.fixture_db import build_known_db

EVIL = "<script>alert(1)</script> | *x* _y_ $z$ & 50% #1 {a} ~b^ \\c =cmd"
SPEC = review.CompareSpec(run_ids=("run-full", "run-lora"))


@pytest.fixture(scope="module")
def known_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_known_db(tmp_path_factory.mktemp("exports") / "known.duckdb")


@pytest.fixture(scope="module")
def stderr_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The known world without per-sample results: every test falls back to the stderrs.

    With se = 0.05 per score, the full fine-tune's large changes are significant and
    the LoRA's small ones are not; code_small has no stderr, so it has no evidence.
    """
    path = build_known_db(tmp_path_factory.mktemp("stderr") / "stderr.duckdb")
    with db.connect(path) as con:
        con.execute("DELETE FROM samples")
    return path


@pytest.fixture(scope="module")
def evil_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The known world with a hostile run name: markup, TeX, table and formula syntax."""
    path = build_known_db(tmp_path_factory.mktemp("evil") / "evil.duckdb")
    with db.connect(path) as con:
        con.execute("UPDATE runs SET run_name = ? WHERE run_id = 'run-full'", [EVIL])
    return path


def comparison(path: Path, spec: review.CompareSpec = SPEC) -> review.Comparison:
    with db.connect(path, read_only=True) as con:
        return review.build_comparison(con, spec)


def test_comparison_numbers_tests_and_mismatch(known_db: Path) -> None:
    c = comparison(known_db)
    deltas = c.deltas.frame.set_index(["model_id", "task"])
    row = deltas.loc[("/runs/full", "facts_new")]
    assert (row["base_value"], row["value"], row["delta"]) == pytest.approx((20, 90, 70))
    # Each delta carries the paired test of forgetwatch.queries.significance, in points,
    # turned by the one direction convention (hallucination rows: the rate, + = worse).
    with db.connect(known_db, read_only=True) as con:
        tests = oriented(significance.paired_task_deltas(con, list(c.points["model_id"])))
    tests = tests.set_index(["model_id", "task"]).loc[deltas.index]
    assert deltas["ci_low"].astype(float).tolist() == pytest.approx(
        (tests["ci_low"] * 100).tolist(), nan_ok=True
    )
    assert deltas["p_adjusted"].tolist() == pytest.approx(tests["p_adjusted"].tolist(), nan_ok=True)
    assert deltas["significant"].tolist() == tests["significant"].fillna(False).tolist()
    assert set(deltas["correction"].dropna()) <= {"holm"}
    labels = {"paired", "stderr (unpaired, weaker)", "none"}
    assert set(deltas["evidence"]) <= labels
    # Greyed exactly where not significant.
    assert c.deltas.noise["delta"].tolist() == (~c.deltas.frame["significant"]).tolist()
    assert "n-shot 5 vs 0" in deltas.loc[("/runs/full", "facts_old"), "settings_mismatch"]
    assert deltas.loc[("/runs/lora", "arith"), "settings_mismatch"] == ""
    assert any("Settings mismatch" in n for n in c.notes)
    # Summary leads with run, kind, step and gains; the long model path comes last.
    assert list(c.summary.frame.columns[:4]) == ["run_name", "kind", "step", "target_gain"]
    assert c.summary.frame.columns[-1] == "model_id"
    # Wide table: base column, then one delta column per model; capability means first.
    table = c.table.frame.set_index(["capability", "task"])
    assert table.loc[("knowledge", "(mean)"), "base_value"] == pytest.approx(70)
    assert table.loc[("knowledge", "(mean)"), "full-lr3e-3"] == pytest.approx(-20)
    assert table.loc[("target", "facts_new"), "full-lr3e-3 @50"] == pytest.approx(20)
    provenance = c.provenance.frame.set_index("model_id")
    assert provenance.loc["/models/tiny-base", "kind"] == "base"
    assert provenance.loc["/runs/full", "lm_eval_version"] == "0.4.14"


def test_tasks_filter_and_runs_without_evals(known_db: Path) -> None:
    spec = review.CompareSpec(run_ids=("run-full", "run-new"), tasks=("facts_new",))
    c = comparison(known_db, spec)
    assert set(c.deltas.frame["task"]) == {"facts_new"}
    assert any("No comparable evals for: full-fresh" in n for n in c.notes)


def test_csv_round_trips_the_page_numbers(known_db: Path) -> None:
    c = comparison(known_db)
    report = c.report("t")
    parsed = pd.read_csv(io.BytesIO(exports.render(report, "csv")))
    page = c.deltas.frame
    assert list(parsed.columns) == [review.label(col) for col in page.columns]
    for column in ("base_value", "value", "delta", "ci_low", "ci_high"):
        got = parsed[review.label(column)].to_numpy(dtype=float, na_value=float("nan"))
        want = page[column].to_numpy(dtype=float, na_value=float("nan"))
        assert got == pytest.approx(want, nan_ok=True)


def test_xlsx_has_a_sheet_per_view_with_numbers(known_db: Path) -> None:
    c = comparison(known_db)
    book = load_workbook(io.BytesIO(exports.render(c.report("t"), "xlsx")))
    assert book.sheetnames == [
        "Capabilities vs base", "Summary", "Comparison", "Deltas", "Provenance", "Notes",
    ]  # fmt: skip
    for view in c.views():
        rows = list(book[view.title].iter_rows(values_only=True))
        assert list(rows[0]) == [review.label(col) for col in view.frame.columns]
        assert len(rows) - 1 == len(view.frame)
    deltas = list(book["Deltas"].iter_rows(values_only=True))
    column = deltas[0].index("Delta")
    values = [r[column] for r in deltas[1:]]
    assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    assert values == pytest.approx(list(c.deltas.frame["delta"].astype(float)))
    assert book["Deltas"].cell(row=2, column=column + 1).number_format == "+0.0;-0.0;0.0"


def test_markdown_and_latex_show_page_formatted_numbers(stderr_db: Path) -> None:
    report = comparison(stderr_db).report("t")
    markdown = exports.render(report, "md").decode()
    assert "| Run | Kind | Step | Target gain |" in markdown
    assert "| full-lr3e-3 | final |  | +70.0 | -16.7 | +40.0 |" in markdown
    assert "|---|---|---:|---:|" in markdown
    latex = exports.render(report, "latex").decode()
    assert r"\toprule" in latex and r"\midrule" in latex and r"\bottomrule" in latex
    assert "full-lr3e-3 &  & final & +70.0 & -16.7 & +40.0 & " in latex  # key columns first
    assert r"facts\_new" in latex
    assert r"\item{} knowledge: dropped" in latex  # the reasons: a list under the table


def test_hostile_run_name_is_escaped_everywhere(evil_db: Path) -> None:
    report = comparison(evil_db).report(f"comparison: {EVIL}")
    markdown = exports.render(report, "md").decode()
    assert "<script>" not in markdown and "&lt;script&gt;" in markdown
    table_rows = [line for line in markdown.splitlines() if "alert" in line and "|" in line]
    # Every pipe in the name is escaped, so no row gains a column.
    assert all(" \\| " in line for line in table_rows)
    latex = exports.render(report, "latex").decode()
    assert r"\textless{}script\textgreater{}" in latex
    for raw in ("$z$", "50%", "#1", "{a}", "_y_"):
        assert not re.search(r"(?<!\\)" + re.escape(raw), latex)
    html = exports.render(review.Report(report.title, report.views, report.notes), "html")
    text = html.decode()
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    csv_text = exports.render(report, "csv").decode()
    assert "'=cmd" not in csv_text  # the name starts with "<", so it is left alone
    book = load_workbook(io.BytesIO(exports.render(report, "xlsx")))
    assert all(
        not (isinstance(v, str) and v.startswith("="))
        for sheet in book
        for row in sheet.iter_rows(values_only=True)
        for v in row
    )


def test_formula_like_strings_are_neutralised() -> None:
    view = review.View("v", pd.DataFrame({"run_name": ['=HYPERLINK("x")', "-1+2", "ok"]}))
    report = review.Report("r", [view])
    rows = pd.read_csv(io.BytesIO(exports.render(report, "csv")))["Run"].tolist()
    assert rows == ['\'=HYPERLINK("x")', "'-1+2", "ok"]
    book = load_workbook(io.BytesIO(exports.render(report, "xlsx")))
    assert [c.value for (c,) in book["v"].iter_rows(min_row=2)] == rows


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "etc_passwd.csv"),
        ("<script>alert(1)</script>", "script_alert_1_script.csv"),
        ("run name: v2/final", "run_name_v2_final.csv"),
        ("..", "export.csv"),
        ("x" * 300, "x" * 80 + ".csv"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert exports.safe_filename(name, "csv") == expected
    assert exports.file_name([name], "csv") == expected


def test_unknown_format_names_the_choices() -> None:
    with pytest.raises(BadInputError, match="not a format") as info:
        exports.get_format("pdf")
    assert "csv, md, latex, xlsx, html" in info.value.next_step


def test_html_report_is_self_contained_with_charts(stderr_db: Path) -> None:
    from forgetwatch.exports import charts

    c = comparison(stderr_db)
    html = exports.render(c.report("t", charts.comparison_figures(c.points)), "html").decode()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html and "<link" not in html
    assert html.count('src="data:image/svg+xml;base64,') == 2
    assert '<td class="num">+70.0</td>' in html


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forgetwatch.cli", "export", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_export_matches_the_page(known_db: Path, stderr_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp.csv"
    done = run_cli("--db", str(known_db), "--runs", "run-full", "run-lora", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "Settings mismatch" in done.stdout
    parsed = pd.read_csv(out)
    page = comparison(known_db).deltas.frame
    assert list(parsed["Model"]) == list(page["model_id"])
    assert parsed["Delta"].tolist() == pytest.approx(page["delta"].astype(float).tolist())
    md = tmp_path / "cmp.txt"
    done = run_cli("--db", str(stderr_db), "--all", "--format", "md", "--out", str(md))
    assert done.returncode == 0, done.stderr
    assert "| lora-r8 | final |  | +40.0 |" in md.read_text()


def test_cli_export_errors(known_db: Path, tmp_path: Path) -> None:
    done = run_cli("--db", str(known_db), "--all", "--out", str(tmp_path / "x.pdf"))
    assert done.returncode == 2 and "Pass --format" in done.stderr
    done = run_cli("--db", str(known_db), "--runs", "nope", "--out", str(tmp_path / "x.csv"))
    assert done.returncode == 2 and "No run or model named 'nope'" in done.stderr
    assert not (tmp_path / "x.csv").exists()


def test_every_format_marks_noise_and_names_the_evidence(stderr_db: Path) -> None:
    c = comparison(stderr_db)
    deltas = c.deltas.frame.set_index(["model_id", "task"])
    assert bool(deltas.loc[("/runs/full", "facts_new"), "significant"])  # +70, se 0.05 each
    assert not deltas.loc[("/runs/lora", "facts_old"), "significant"]  # +0
    assert deltas.loc[("/runs/full", "facts_new"), "evidence"] == "stderr (unpaired, weaker)"
    assert deltas.loc[("/runs/full", "facts_new"), "test"] == "stderr-z"
    assert deltas.loc[("/runs/full", "code_small"), "evidence"] == "none"  # no stderr
    assert not deltas.loc[("/runs/full", "code_small"), "significant"]
    report = c.report("t")
    # CSV (machine-readable): the test columns, with booleans for significance.
    csv = pd.read_csv(io.BytesIO(exports.render(report, "csv")))
    for header in ("Significant", "Evidence", "Test", "p", "p (adj.)", "CI low", "Correction",
                   "Settings vs base"):  # fmt: skip
        assert header in csv.columns
    assert csv["Significant"].tolist() == c.deltas.frame["significant"].tolist()
    # Markdown: noise marked (ns), significant changes plain, settings warning as a note.
    markdown = exports.render(report, "md").decode()
    noise = "| lora-r8 | final |  | knowledge | facts\\_old | 80.0 | 80.0 | +0.0 (ns) | no |"
    real = "| full-lr3e-3 | final |  | target | facts\\_new | 20.0 | 90.0 | +70.0 | yes |"
    assert noise in markdown and real in markdown
    assert "> Settings mismatch:" in markdown and "n-shot 5 vs 0" in markdown
    assert "weaker evidence" in markdown and "(holm)" in markdown
    latex = exports.render(report, "latex").decode()
    assert "+0.0 (ns)" in latex and r"\item{} Settings mismatch:" in latex
    # HTML: noise cells greyed by class as well as marked.
    html = exports.render(review.Report(report.title, report.views, report.notes), "html").decode()
    assert '<td class="num noise">+0.0 (ns)</td>' in html and "td.noise { color:" in html
    assert '<td class="num">+70.0</td>' in html
    # XLSX: numbers stay numbers; noise cells get the grey font.
    book = load_workbook(io.BytesIO(exports.render(report, "xlsx")))
    sheet = list(book["Deltas"].iter_rows())
    column = [cell.value for cell in sheet[0]].index("Delta")
    greys = [str(getattr(row[column].font.color, "rgb", "")) == "FF9E9E9E" for row in sheet[1:]]
    assert greys == c.deltas.noise["delta"].tolist() and any(greys) and not all(greys)
    assert "Settings mismatch" in str(book["Notes"]["A2"].value)
