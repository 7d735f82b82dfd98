"""The Evals button end to end in headless Chromium: run a job, watch it, see its result elsewhere.

``streamlit run`` serves a copy of ``demo_db``; the job is a real detached
worker on the tiny base model. Leaves ``test-artifacts/evals-job.png``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from forgetwatch import db, queries
from tests.procs import Server, cancel_active_jobs, start_dashboard
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parent.parent
IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"


@pytest.fixture
def served_db(demo_db: Path, tmp_path: Path) -> Path:
    path = tmp_path / "browser-evals.duckdb"
    shutil.copy(demo_db, path)
    return path


@pytest.fixture
def dashboard(served_db: Path, tmp_path: Path) -> Iterator[Server]:
    server = start_dashboard(served_db, tmp_path / "streamlit.log")
    yield server
    server.stop()
    cancel_active_jobs(served_db)  # workers run in their own sessions, outside the server's


def test_run_button_job_reaches_the_runs_page(
    dashboard: Server, served_db: Path, artifacts_dir: Path
) -> None:
    assert CHROMIUM.exists(), "install Debian chromium: scripts/setup.sh --test"
    from playwright.sync_api import sync_playwright

    with db.connect(served_db, read_only=True) as con:
        evals_before = queries.db_summary(con)["evals"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(dashboard.url, wait_until="domcontentloaded")
            page.get_by_role("link", name="Evals").click()
            page.wait_for_url("**/evals")
            page.locator(IDLE).wait_for()
            limit = page.get_by_label("Limit per task")
            assert limit.input_value() == "30"  # the quick world's base ran --limit 30
            limit.fill("2")
            limit.press("Enter")
            page.locator(IDLE).wait_for()
            page.get_by_text("this eval uses --limit 2").wait_for()  # warned before launch
            run = page.get_by_test_id("stBaseButton-primary")  # the only primary: Run
            assert run.is_disabled() and page.get_by_text("Run is disabled").is_visible()
            page.get_by_text("Allow code execution (runs model-written code").click()
            page.locator(IDLE).wait_for()
            run.click()
            page.get_by_text("submitted").wait_for(timeout=30_000)
            page.locator("[data-testid=stProgress]").first.wait_for(timeout=30_000)
            page.get_by_text("See results on Compare").wait_for(timeout=300_000)
            page.get_by_text("harmless lines hidden").wait_for()  # the filtered log
            page.screenshot(path=str(artifacts_dir / "evals-job.png"), full_page=True)
            page.get_by_role("link", name="Models and runs").click()
            page.wait_for_url(lambda url: "evals" not in url)
            page.locator(IDLE).wait_for()
            caption = page.locator("[data-testid=stSidebar] [data-testid=stCaptionContainer]")
            caption.first.wait_for()
            assert f"{evals_before + 1:,} evals" in caption.first.inner_text(), dashboard.log_tail()
        finally:
            browser.close()
