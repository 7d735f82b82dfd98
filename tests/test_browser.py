"""The real dashboard in headless Chromium: ``streamlit run`` on loopback, driven by Playwright.

AppTest cannot draw plotly charts, so this is the test that proves the Compare
scatter renders points in a browser. It leaves a screenshot for reviewers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixture_db import build_known_db
from tests.procs import Server, start_dashboard
from tests.test_queries import build_sweep_db

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(params=["known_db", "demo_db"])
def browser_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hand-built world, and the collector-built one once the demo exists."""
    if request.param == "known_db":
        return build_known_db(tmp_path_factory.mktemp("browser") / "known.duckdb")
    return Path(request.getfixturevalue("demo_db"))


@pytest.fixture
def dashboard(browser_db: Path, tmp_path: Path) -> Iterator[Server]:
    server = start_dashboard(browser_db, tmp_path / "streamlit.log")
    yield server
    server.stop()


def test_compare_page_draws_the_scatter(dashboard: Server, browser_db: Path) -> None:
    assert CHROMIUM.exists(), "install Debian chromium: scripts/setup.sh --test"
    from playwright.sync_api import sync_playwright

    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(dashboard.url, wait_until="domcontentloaded")
            page.get_by_role("link", name="Compare").click()
            page.wait_for_url("**/compare")
            page.locator("[data-testid=stPlotlyChart] .js-plotly-plot").wait_for(timeout=30_000)
            page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for()
            points = page.locator("[data-testid=stPlotlyChart] .scatterlayer .point")
            points.first.wait_for()
            # compare.png ends up showing the last world drawn (demo_db once it exists).
            for name in (f"compare-{browser_db.stem}.png", "compare.png"):
                page.screenshot(path=str(artifacts / name), full_page=True)
            assert points.count() >= 2, dashboard.log_tail()
            assert page.get_by_text("gained & kept").count() == 1
            assert page.locator("h1", has_text="Compare").count() == 1
            # Clicking a point opens that run's page.
            box = points.first.bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_url("**/run?run=*", timeout=30_000)
            page.locator("h1", has_text="Run").wait_for()
            page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for()
            page.locator("[data-testid=stPlotlyChart] .js-plotly-plot").first.wait_for()
            page.screenshot(path=str(artifacts / f"run-{browser_db.stem}.png"), full_page=True)
        finally:
            browser.close()


@pytest.fixture
def sweep_dashboard(tmp_path: Path) -> Iterator[Server]:
    """1,200 runs (60 evaluated): past every cap the pages once had."""
    server = start_dashboard(build_sweep_db(tmp_path / "sweep.duckdb", 1200), tmp_path / "log")
    yield server
    server.stop()


def test_runs_pages_and_the_picker_finds_an_old_run(sweep_dashboard: Server) -> None:
    from playwright.sync_api import sync_playwright

    done = "[data-testid=stApp][data-test-script-state=notRunning]"
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(sweep_dashboard.url, wait_until="domcontentloaded")
            page.get_by_text("Rows 1–50 of 1,200").wait_for(timeout=60_000)
            page.locator(done).wait_for()
            page.screenshot(path=str(artifacts / "runs-paged.png"), full_page=True)
            page.locator("[data-testid=stPagination]").get_by_text("2", exact=True).click()
            page.get_by_text("Rows 51–100 of 1,200").wait_for(timeout=30_000)
            # Compare: the picker searches every run, here the 1,100th newest.
            page.get_by_role("link", name="Compare").click()
            page.wait_for_url("**/compare")
            page.locator(done).wait_for(timeout=60_000)
            picker = page.locator("[data-testid=stMultiSelect]").first
            picker.click()
            page.keyboard.type("sweep-00100")
            page.get_by_role("option", name="sweep-00100").click()
            page.wait_for_url("**/compare?runs=run-00100*", timeout=30_000)
            page.locator(done).wait_for(timeout=60_000)
            points = page.locator("[data-testid=stPlotlyChart] .scatterlayer .point")
            points.first.wait_for(timeout=30_000)
            page.screenshot(path=str(artifacts / "compare-picked.png"), full_page=True)
            # Every other model of every base is the map's grey backdrop, and the caption says so.
            assert page.get_by_text("Small grey dots are the").count() == 1
        finally:
            browser.close()
