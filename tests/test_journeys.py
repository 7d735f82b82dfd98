"""User journeys in headless Debian Chromium against ``streamlit run`` on loopback.

1. browse runs, filter, select three runs, compare them;
2. export every format from the Compare page and check each file against the page;
3. open the copied URL in a fresh browser context and see the same comparison;
4. empty database, and an unreachable MLflow server (CLI error; browsing still works).

Each journey saves ``test-artifacts/journey-*.png`` and prints its wall time and
page-load times, so reviewers can see both.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
from openpyxl import load_workbook

from forgetwatch import db, exports, review
from tests.fixture_db import build_known_db
from tests.procs import Server, free_port, start_dashboard
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.slow, pytest.mark.browser]

IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"
# A sanity bound, not a benchmark: the suite shares 2 cores with other tests (and with
# pytest-xdist's second worker), so loads are printed below and timed in bench/.
PAGE_LOAD_BOUND_S = 30.0


def serve(db_path: Path, log_dir: Path) -> Server:
    return start_dashboard(db_path, log_dir / "streamlit.log")


@pytest.fixture(scope="module")
def known_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_known_db(tmp_path_factory.mktemp("journeys") / "known.duckdb")


@pytest.fixture(scope="module")
def app(known_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = serve(known_db, tmp_path_factory.mktemp("app"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    assert CHROMIUM.exists(), "install Debian chromium: scripts/setup.sh --test"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def load(page, url: str) -> float:  # type: ignore[no-untyped-def]
    """Open ``url`` and wait until the script has finished; returns seconds taken."""
    start = time.monotonic()
    page.goto(url, wait_until="domcontentloaded")
    page.locator("h1").first.wait_for(timeout=30_000)
    page.locator(IDLE).wait_for(timeout=30_000)
    return time.monotonic() - start


def idle(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_timeout(300)
    page.locator(IDLE).wait_for(timeout=60_000)


def shot(page, artifacts: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    page.screenshot(path=str(artifacts / f"journey-{name}.png"), full_page=True)


def compare_url(app: Server, browser, artifacts: Path) -> str:  # type: ignore[no-untyped-def]
    """Journey 1's steps: browse, filter, select three runs, compare; returns the URL."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    runs_load = load(page, app.url)
    print(f"\npage load Runs: {runs_load:.2f}s")
    assert runs_load < PAGE_LOAD_BOUND_S
    search = page.get_by_test_id("stTextInputField")
    search.fill("lora")
    search.press("Enter")
    idle(page)
    assert page.get_by_text("1 runs and models, newest first").count() == 1
    search.fill("")
    search.press("Enter")
    idle(page)
    assert page.get_by_text("3 runs and models, newest first").count() == 1
    grid = page.locator("[data-testid=stDataFrame]").first
    grid.scroll_into_view_if_needed()  # below the headline band
    box = grid.bounding_box()
    assert box is not None
    for row in range(3):  # the row-selection checkboxes sit in the first column
        page.mouse.click(box["x"] + 18, box["y"] + 35 * (row + 1) + 17)
        idle(page)
    page.get_by_role("button", name="Compare selected (3)").click()
    page.wait_for_url("**/compare?*", timeout=30_000)
    idle(page)
    page.locator("[data-testid=stPlotlyChart] .scatterlayer .point").first.wait_for()
    shot(page, artifacts, "1-compare")
    url = page.url
    page.close()
    return url


def test_journeys(app: Server, browser, known_db: Path, artifacts_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    timings: dict[str, float] = {}

    start = time.monotonic()
    url = compare_url(app, browser, artifacts_dir)
    timings["1 browse, filter, select 3, compare"] = time.monotonic() - start
    query = parse_qs(urlparse(url).query)
    assert sorted(query["runs"]) == ["run-full", "run-lora", "run-new"]

    # 2: export each format from the page and check it against the page's tables.
    start = time.monotonic()
    spec = review.CompareSpec(run_ids=tuple(query["runs"]))
    with db.connect(known_db, read_only=True) as con:
        page_tables = review.build_comparison(con, spec)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    compare_load = load(page, url)
    print(f"page load Compare: {compare_load:.2f}s")
    assert compare_load < PAGE_LOAD_BOUND_S
    assert page.get_by_text("No comparable evals for: full-fresh").count() == 1
    files: dict[str, bytes] = {}
    for fmt in exports.FORMATS.values():
        page.get_by_role("button", name="Export").first.click()
        with page.expect_download(timeout=120_000) as download:
            page.get_by_role("button", name=fmt.label, exact=True).click()
        target = tmp_path / download.value.suggested_filename
        download.value.save_as(target)
        assert target.suffix == f".{fmt.extension}"
        files[fmt.name] = target.read_bytes()
        page.keyboard.press("Escape")
    csv = pd.read_csv(io.BytesIO(files["csv"]))
    want = page_tables.deltas.frame
    assert list(csv["Model"]) == list(want["model_id"])
    assert csv["Delta"].tolist() == pytest.approx(want["delta"].astype(float).tolist())
    assert "| full-lr3e-3 | final |  | +70.0 | -16.7 | +40.0 |" in files["md"].decode()
    assert "+70.0 & -16.7 & +40.0" in files["latex"].decode()
    book = load_workbook(io.BytesIO(files["xlsx"]))
    # The review table's numbers lead the workbook, then every view of the page.
    assert book.sheetnames[0] == "Capabilities vs base"
    assert book.sheetnames[1:5] == [v.title for v in page_tables.views()]
    html = files["html"].decode()
    assert "data:image/svg+xml;base64," in html and "https://" not in html
    report = tmp_path / "report.html"
    report.write_bytes(files["html"])
    offline = browser.new_page(viewport={"width": 1200, "height": 900})
    offline.route(
        "**/*",
        lambda route: route.abort() if route.request.url.startswith("http") else route.continue_(),
    )
    offline.goto(report.as_uri())
    assert offline.locator("img.chart").count() == 2
    assert offline.evaluate("[...document.images].every(i => i.naturalWidth > 0)")
    shot(offline, artifacts_dir, "2-html-report")
    offline.close()
    shot(page, artifacts_dir, "2-exports")
    page.close()
    timings["2 export 5 formats and check"] = time.monotonic() - start

    # 3: the copied URL restores the same view in a brand-new context.
    start = time.monotonic()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    fresh = context.new_page()
    load(fresh, url)
    chosen = fresh.locator("[data-testid=stMultiSelect]").first.inner_text()
    assert all(name in chosen for name in ("full-lr3e-3", "lora-r8", "full-fresh")), chosen
    assert fresh.get_by_text("No comparable evals for: full-fresh").count() == 1
    fresh.locator("[data-testid=stPlotlyChart] .scatterlayer .point").first.wait_for()
    assert fresh.locator("[data-testid=stPlotlyChart] .scatterlayer .point").count() == 3
    shot(fresh, artifacts_dir, "3-shared-url")
    context.close()
    timings["3 shared URL in new context"] = time.monotonic() - start

    # 4: empty database, then MLflow unreachable (the CLI says so; browsing still works).
    start = time.monotonic()
    empty = tmp_path / "empty.duckdb"
    with db.connect(empty):
        pass
    empty_app = serve(empty, tmp_path / "empty-app")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 800})
        load(page, empty_app.url)
        assert page.get_by_text("No runs or evals in the database yet").count() == 1
        shot(page, artifacts_dir, "4-empty-db")
        page.close()
    finally:
        empty_app.stop()
    dead = f"http://127.0.0.1:{free_port()}"
    sync = subprocess.run(
        [sys.executable, "-m", "forgetwatch.cli", "sync", "--db", str(tmp_path / "s.duckdb"),
         "--tracking-uri", dead],
        capture_output=True, text=True, timeout=180,
        env={**__import__("os").environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
    )  # fmt: skip
    print(f"sync against {dead}: rc={sync.returncode}\n{sync.stderr.strip()[-600:]}")
    assert sync.returncode != 0
    assert dead in sync.stderr + sync.stdout
    page = browser.new_page(viewport={"width": 1400, "height": 800})
    load(page, app.url)
    assert page.get_by_text("3 runs and models, newest first").count() == 1
    shot(page, artifacts_dir, "4-mlflow-down-still-browsing")
    page.close()
    timings["4 empty db + MLflow unreachable"] = time.monotonic() - start

    for name, seconds in timings.items():
        print(f"journey {name}: {seconds:.1f}s")
