"""Review-ready exports: the compact capability × model table leads every human format.

Against the real fixture DuckDB files (``tests/fixture_db.py``): the cells are the
verdicts' capability tests written by ``fmt_change``, Markdown cells fit a pull
request, the LaTeX is a complete A4 article whose tables fit 16 cm, and the HTML
fits a 1280 px viewport in headless Chromium.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from openpyxl import load_workbook

from forgetwatch import db, exports, review
from forgetwatch.exports import latex as tex
from forgetwatch.exports.check_report import verdict_markdown
from forgetwatch.exports.escaping import escape_markdown
from forgetwatch.queries import significance
from forgetwatch.review import budget, trust
from forgetwatch.review.direction import capability_title, oriented
from forgetwatch.review.report_table import (
    LEGEND,
    VERDICT_COLORS,
    VERDICT_ROW,
    comparison_review_table,
)
from forgetwatch.review.views import fmt_change
from tests.fixture_db import build_known_db, build_paired_db

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
LONG_NAME = "sweep-" + "-".join(f"lr{n}e-4-warmup{n}00-seed{n}" for n in range(1, 7))


@pytest.fixture(scope="module")
def known_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_known_db(tmp_path_factory.mktemp("review") / "known.duckdb")


@pytest.fixture(scope="module")
def long_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The known world with a run name far wider than any table cell should be."""
    path = build_known_db(tmp_path_factory.mktemp("long") / "long.duckdb")
    with db.connect(path) as con:
        con.execute("UPDATE runs SET run_name = ? WHERE run_id = 'run-full'", [LONG_NAME])
    return path


def comparison(path: Path) -> review.Comparison:
    with db.connect(path, read_only=True) as con:
        return review.build_comparison(con, review.CompareSpec())


def test_cells_are_the_capability_tests_as_the_page_writes_them(known_db: Path) -> None:
    c = comparison(known_db)
    table = comparison_review_table(c)
    with db.connect(known_db, read_only=True) as con:
        tests = trust.capability_tests(con, list(c.points["model_id"]))
        raw = oriented(significance.paired_capability_deltas(con, list(c.points["model_id"])))
    raw = raw.merge(tests[["model_id", "capability", "significant"]], on=["model_id", "capability"],
                    suffixes=("_raw", ""))  # fmt: skip
    labels = c.labels()
    cells = table.cells.set_index("Capability")
    assert table.models == list(labels.values())
    for row in raw.itertuples():
        expected = fmt_change(row.delta * 100, row.ci_low * 100, row.ci_high * 100, row.significant)
        assert cells.loc[capability_title(row.capability), labels[row.model_id]] == expected
    assert any(cells.loc[:, m].str.endswith(" *").any() for m in table.models)
    assert list(cells.loc[VERDICT_ROW]) == [c.verdicts[m].status for m in labels]
    assert table.reasons == {labels[m]: v.reasons for m, v in c.verdicts.items()}
    # The numbers behind the cells stay numbers (the XLSX sheet).
    book = load_workbook(io.BytesIO(exports.render(c.report("t"), "xlsx")))
    rows = list(book["Capabilities vs base"].iter_rows(values_only=True))
    delta = rows[0].index("Delta")
    assert all(isinstance(r[delta], float | int) for r in rows[1:] if r[delta] is not None)
    assert len(rows) - 1 == len(table.frame)


def test_verdict_colours_are_the_dashboards() -> None:
    from forgetwatch.dashboard import components

    assert VERDICT_COLORS == components.VERDICT_TEXT_COLOR
    assert set(VERDICT_COLORS) == set(budget.STATUSES)


def md_cells(markdown: str) -> list[str]:
    """Every cell of every pipe table (escaped pipes stay inside their cell)."""
    cells = []
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells += [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
    return cells


def test_markdown_leads_with_the_table_and_fits_a_pull_request(long_db: Path) -> None:
    c = comparison(long_db)
    text = exports.render(c.report("forgetwatch comparison"), "md").decode()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[0] == "## Capabilities vs base"
    review_rows = text.split("## Capabilities vs base")[1].split("\n\n")[1].splitlines()
    assert review_rows[0].startswith("| Capability | ")
    assert review_rows[-1].startswith("| **Verdict** | ")
    assert "\\* significant after correction; \\[low, high\\] 95% CI" in text
    # The reasons: a bullet per model, one nested bullet per sentence; not a table cell.
    why = text.split("**Why**")[1]
    for verdict in c.verdicts.values():
        for reason in verdict.reasons:
            assert f"  - {escape_markdown(reason)}" in why
    assert "| Why |" not in text
    # Other views are folded, so the pasted comment opens on the compact table.
    assert "<details><summary>Deltas</summary>" in text
    cells = md_cells(text)
    assert len(cells) > 200
    assert max(len(cell) for cell in cells) <= 80, max(cells, key=len)
    assert LONG_NAME not in md_cells(text)  # the long name moved to the bullets below
    assert f"- {escape_markdown(LONG_NAME)}" in text


def _balanced(latex: str) -> None:
    stripped = re.sub(r"\\[{}]", "", latex)  # escaped braces are text
    depth = 0
    for ch in stripped:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    stack: list[str] = []
    for kind, name in re.findall(r"\\(begin|end)\{(\w+)\}", latex):
        if kind == "begin":
            stack.append(name)
        else:
            assert stack.pop() == name
    assert not stack


def _visible(cell: str) -> str:
    """A cell's LaTeX source as the characters it prints (an estimate: a command = 1)."""
    text = re.sub(r"\\textcolor\[HTML\]\{\w+\}", "", cell)
    text = text.replace(r"\allowbreak{}", "\x00").replace(r"\newline{}", " ")
    text = re.sub(r"\$\\\w+\$|\\[a-z]+\{\}|\\.", "x", text)
    return text.replace("{", "").replace("}", "")


def test_latex_is_a_complete_article_whose_tables_fit_a4(long_db: Path) -> None:
    c = comparison(long_db)
    latex = exports.render(c.report(f"comparison: {LONG_NAME}"), "latex").decode()
    assert latex.startswith(r"\documentclass[10pt]{article}")
    for package in ("booktabs", "longtable", "array", "xcolor"):
        assert rf"\usepackage{{{package}}}" in latex
    assert r"\usepackage[a4paper,margin=2.5cm]{geometry}" in latex  # 21 - 2 × 2.5 = 16 cm
    assert latex.index(r"\begin{document}") < latex.index(r"\end{document}")
    _balanced(latex)
    assert latex.index("Capabilities vs base") < latex.index(r"\paragraph{Why}")
    assert latex.index(r"\paragraph{Why}") < latex.index("{Summary")
    em_cm = tex.CHAR_EM * tex.FONT_PT / tex.PT_PER_CM
    tables = re.findall(r"\\begin\{longtable\}\{(.*?)\}\n(.*?)\\end\{longtable\}", latex, re.S)
    assert len(tables) >= 5
    for spec, body in tables:
        widths = [float(w) for w in re.findall(r"p\{([\d.]+)cm\}", spec)]
        assert sum(w + tex.column_sep_cm() for w in widths) <= 16.0
        for line in body.splitlines():
            if not line.endswith(r"\\") or line.startswith(r"\caption"):
                continue
            cells = re.split(r"(?<!\\)&", line.removesuffix(r"\\"))
            assert len(cells) == len(widths)
            for cell, width in zip(cells, widths, strict=True):
                pieces = re.split(r"[ \x00]", _visible(cell.strip()))
                assert max(len(p) for p in pieces) * em_cm <= width + 1e-9, (cell, width)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex on PATH to compile with")
def test_latex_compiles(known_db: Path, tmp_path: Path) -> None:
    source = tmp_path / "report.tex"
    source.write_bytes(exports.render(comparison(known_db).report("t"), "latex"))
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", source.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Overfull \\hbox" not in done.stdout


def test_latex_splits_a_wide_table_keeping_its_key_columns() -> None:
    columns = [tex.Column("Run", [["a-run"]], False, key=True)]
    columns += [tex.Column(f"m{n}", [["+10.0 *", "[+1.0, +20.0]"]], True) for n in range(12)]
    chunks = tex._chunks(columns)
    assert len(chunks) > 1 and all(chunk[0].header == "Run" for chunk in chunks)
    assert sum(len(chunk) - 1 for chunk in chunks) == 12
    for chunk in chunks:
        total = sum(c.width_cm(tex.MAX_COLUMN_CM) + tex.column_sep_cm() for c in chunk)
        assert total <= tex.TEXT_WIDTH_CM


def test_html_fits_a_1280_viewport_in_chromium(long_db: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    c = comparison(long_db)
    report = c.report(f"forgetwatch comparison: {LONG_NAME}")
    html = exports.render(report, "html").decode()
    assert html.index("Capabilities vs base") < html.index("<h2>Summary</h2>")
    assert '<ul class="why">' in html and "verdict-fail" in html and LEGEND in html
    assert "<th>Why</th>" not in html
    page_file = tmp_path / "report.html"
    page_file.write_text(html)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(page_file.as_uri())
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
            # The wide tables scroll inside their own box instead.
            inner = page.evaluate(
                "Math.max(...[...document.querySelectorAll('.scroll')].map(e => e.scrollWidth))"
            )
            assert inner > 1280
            page.screenshot(path=str(ARTIFACTS / "report-html-1280.png"))
            page.emulate_media(color_scheme="dark")
            page.screenshot(path=str(ARTIFACTS / "report-html-1280-dark.png"))
        finally:
            browser.close()


def test_check_comment_uses_the_shared_cell_and_fits(tmp_path: Path) -> None:
    path = build_paired_db(tmp_path / "paired.duckdb")
    plan = budget.load_budget(budget.default_budget_path())
    with db.connect(path, read_only=True) as con:
        verdict = budget.evaluate(con, "/runs/full", plan)
    text = verdict_markdown(LONG_NAME, verdict)
    assert "| capability | base | model | Δ [95% CI] | p (adj.) |" in text
    checks = verdict.checks.drop_duplicates("capability").set_index("capability")
    row = checks.loc["knowledge"]
    cell = fmt_change(row["delta"] * 100, row["ci_low"] * 100, row["ci_high"] * 100,
                      row["significant"])  # fmt: skip
    assert cell.endswith(" *")
    assert f"| {escape_markdown(cell)} |" in text
    assert max(len(c) for c in md_cells(text)) <= 80
