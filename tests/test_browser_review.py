"""The ten-second answer in a real browser, on the collector-built demo world.

Headless Debian Chromium against ``streamlit run``: the Runs headline, the Compare
frontier and budget region, error bars on the Run page and multiple-choice flips that
read as questions. Every page is shot in the light and the dark theme into
``test-artifacts/`` for a reviewer to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from forgetwatch import db
from tests.procs import Server, start_dashboard

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]  # fmt: skip
PAGES = ("runs", "compare", "run", "flips", "evals", "sources")


@pytest.fixture(scope="module")
def first_run(demo_db: Path) -> tuple[str, str]:
    """The run whose page has checkpoints (and so a checkpoint curve), and its final model."""
    with db.connect(demo_db, read_only=True) as con:
        row = con.execute(
            """SELECT m.run_id, f.model_id FROM models m
               JOIN models f ON f.run_id = m.run_id AND f.kind = 'final'
               WHERE m.kind = 'checkpoint' AND m.model_id IN (SELECT model_id FROM evals)
               LIMIT 1"""
        ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


@pytest.fixture(scope="module", params=["light", "dark"])
def themed(
    request: pytest.FixtureRequest, demo_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Server]]:
    log = tmp_path_factory.mktemp("review-ui") / "streamlit.log"
    server = start_dashboard(demo_db, log, theme=request.param)
    yield request.param, server
    server.stop()


def _idle(page: Any) -> None:
    page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for(timeout=120_000)


def _open(page: Any, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    _idle(page)
    page.wait_for_timeout(800)  # plotly draws after the script ends


def test_the_answer_reads_in_a_browser(
    themed: tuple[str, Server], first_run: tuple[str, str], artifacts_dir: Path
) -> None:
    assert CHROMIUM.exists(), "install Debian chromium: scripts/setup.sh --test"
    from playwright.sync_api import sync_playwright

    theme, server = themed
    run_id, final_model = first_run
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})

            def shot(name: str) -> None:
                page.screenshot(path=str(artifacts_dir / f"{name}-{theme}.png"), full_page=True)

            _open(page, server.url)
            band = page.locator(".st-key-headline")
            band.wait_for()
            assert "evaluated models pass the budget" in band.inner_text()
            assert "Budget: target must gain at least" in band.inner_text()
            assert "Worst forgetting" in band.inner_text()
            shot("runs")

            _open(page, f"{server.url}/compare")
            chart = page.locator("[data-testid=stPlotlyChart]").first
            chart.locator(".scatterlayer .point").first.wait_for()
            legend = chart.locator(".legend").text_content() or ""  # an SVG group
            assert "Pareto frontier" in legend, legend
            assert "within budget" in legend, legend
            shot("compare")

            _open(page, f"{server.url}/run?run={run_id}")
            page.locator("[data-testid=stPlotlyChart] .js-plotly-plot").first.wait_for()
            # Every delta bar carries its paired CI: plotly draws one error path per bar.
            errors = page.locator("[data-testid=stPlotlyChart] .errorbar path")
            assert errors.count() > 0, server.log_tail()
            shot("run")

            _open(page, f"{server.url}/flips?model={final_model}")
            text = page.locator("[data-testid=stMain]").inner_text()
            # A multiple-choice flip reads as a choice picked with its probability.
            assert "(p = " in text or "(p < " in text or "(p > " in text, text[:2000]
            assert "What is the capital of" in text
            shot("flips")

            for name in ("evals", "sources"):
                _open(page, f"{server.url}/{name}")
                shot(name)
        finally:
            browser.close()
    for name in PAGES:
        assert (artifacts_dir / f"{name}-{theme}.png").stat().st_size > 10_000
