"""A shared dashboard in headless Chromium: ``forgetwatch serve --auth proxy`` with and
without the proxy's user header, an operator and a viewer, and a viewer replaying the
operator's own Run click.

The browser connects from 127.0.0.1, the default trusted proxy address, and sets the
user header itself (Playwright's ``extra_http_headers``, sent on the page's websocket
too): exactly what oauth2-proxy in front of the server would send. The server is the
real ``forgetwatch serve``, so its refusal to trust forwarded addresses is in play.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from forgetwatch.evals import jobs
from tests.fixture_db import build_known_db
from tests.procs import Server, cancel_active_jobs, free_port, start_server
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parent.parent
IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"
OPERATOR, VIEWER = "ada@example.org", "vic@example.org"
HEADER = "X-Forwarded-Email"
# Keeps every WebSocket the page opens, so a test can send its own frames on Streamlit's.
KEEP_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = function (...args) {
    const ws = new Native(...args);
    window.__sockets.push(ws);
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, Native);
})();
"""

REPLAY = "bytes => window.__sockets.at(-1).send(new Uint8Array(bytes))"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    root = tmp_path_factory.mktemp("auth")
    db_path = build_known_db(root / "auth.duckdb")
    port = free_port()
    server = start_server(
        [sys.executable, "-m", "forgetwatch", "serve", "--db", str(db_path),
         "--port", str(port), "--auth", "proxy"],
        url=f"http://127.0.0.1:{port}",
        health_path="/_stcore/health",
        expect="ok",
        log=root / "serve.log",
        env={"FORGETWATCH_OPERATORS": f"{OPERATOR.upper()}, someone@else"},
        cwd=ROOT,
    )  # fmt: skip
    yield server, db_path
    server.stop()
    cancel_active_jobs(db_path)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert CHROMIUM.exists(), "install Debian chromium: scripts/setup.sh --test"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser: Any, server: Server, path: str, user: str | None) -> Any:
    headers = {HEADER: user} if user else {}
    context = browser.new_context(
        extra_http_headers=headers, viewport={"width": 1400, "height": 1100}
    )
    page = context.new_page()
    page.add_init_script(KEEP_SOCKETS)
    page.goto(f"{server.url}/{path}", wait_until="domcontentloaded")
    page.locator(IDLE).wait_for(timeout=60_000)
    return page


def run_button(page: Any) -> Any:
    return page.get_by_role("button", name="Run", exact=True)


def test_without_the_header_nobody_is_signed_in(served, browser) -> None:
    server, _ = served
    page = open_page(browser, server, "evals", None)
    page.get_by_text("Not signed in").wait_for()
    assert run_button(page).count() == 0
    assert page.get_by_role("heading", name="Evals").count() == 0  # the page never ran
    page.context.close()


def test_a_viewer_browses_but_sees_no_launch_controls(served, browser, artifacts_dir) -> None:
    server, _ = served
    page = open_page(browser, server, "evals", VIEWER)
    page.get_by_text(f"Signed in as {VIEWER} (viewer)").wait_for()
    page.get_by_text("only operators can launch or cancel evals").wait_for()
    assert run_button(page).count() == 0
    page.screenshot(path=str(artifacts_dir / "auth-viewer-evals.png"), full_page=True)
    page.get_by_role("link", name="Sources").click()
    page.wait_for_url("**/sources")
    page.locator(IDLE).wait_for()
    page.get_by_text("only operators can start syncs and ingests").wait_for()
    assert page.get_by_role("button", name="Sync MLflow").count() == 0
    page.context.close()


def test_a_crafted_run_click_from_a_viewer_launches_nothing(
    served, browser, tmp_path: Path
) -> None:
    """The operator's own Run click, captured off the websocket, replayed in a viewer's session."""
    server, db_path = served
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # passes validation; the job itself will fail
    page = open_page(browser, server, "evals", OPERATOR)
    page.get_by_text(f"Signed in as {OPERATOR} (operator)").wait_for()
    sent: list[bytes] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda f: sent.append(f)))
    page.reload(wait_until="domcontentloaded")
    page.locator(IDLE).wait_for()
    page.get_by_text("Local folder or hub id").click()
    page.locator(IDLE).wait_for()
    ref = page.get_by_label("Model folder or hub id")
    ref.fill(str(model))
    ref.press("Enter")
    page.locator(IDLE).wait_for()
    page.get_by_text("Allow code execution (runs").click()  # the box, not the warning naming it
    page.locator(IDLE).wait_for()
    before_click = len(sent)
    run_button(page).click()
    page.get_by_text("submitted").wait_for(timeout=30_000)
    launched = [j for j in jobs.list_jobs(db_path) if j.launched_by == OPERATOR]
    assert len(launched) == 1  # the operator's click launches, and records who did
    click = next(f for f in sent[before_click:] if isinstance(f, bytes) and b"run" in f)
    page.context.close()

    viewer = open_page(browser, server, "evals", VIEWER)
    viewer.get_by_text(f"Signed in as {VIEWER} (viewer)").wait_for()
    viewer.evaluate(REPLAY, list(click))
    viewer.wait_for_timeout(1500)
    viewer.locator(IDLE).wait_for()
    assert viewer.get_by_text("submitted").count() == 0
    assert [j.launched_by for j in jobs.list_jobs(db_path)] == [OPERATOR]
    viewer.context.close()

    # The control: the same bytes from another operator's session do launch a job, so the
    # replay above reached the server and was refused there, not lost on the way.
    again = open_page(browser, server, "evals", OPERATOR)
    again.get_by_text(f"Signed in as {OPERATOR} (operator)").wait_for()
    again.evaluate(REPLAY, list(click))
    again.get_by_text("submitted").wait_for(timeout=30_000)
    assert [j.launched_by for j in jobs.list_jobs(db_path)] == [OPERATOR, OPERATOR]
    again.context.close()
