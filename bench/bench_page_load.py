"""How fast dashboard pages load in a real browser, as a ratio to a bare Streamlit page.

Starts ``streamlit run`` on a free loopback port against a forgetwatch database,
opens each page in headless Debian chromium, and times navigation until the
script has finished (``data-test-script-state=notRunning``) and the page's main
element is drawn. The baseline is a one-line Streamlit app served and timed the
same way in the same run, so the ratio says what forgetwatch adds on top of
Streamlit itself on a shared, noisy machine.

    python bench/bench_page_load.py --db demo-workspace/forgetwatch.duckdb [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.procs import Server, free_port, start_dashboard, start_server  # noqa: E402
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

PAGES = {"Runs": "", "Compare": "compare", "Run": "run", "Evals": "evals"}
DONE = "[data-testid=stApp][data-test-script-state=notRunning]"
BASELINE_APP = 'import streamlit as st\nst.title("Baseline")\n'


def serve_baseline(app: Path, log: Path) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true"]  # fmt: skip
    return start_server(cmd, url=f"http://127.0.0.1:{port}", health_path="/_stcore/health",
                        expect="ok", log=log)  # fmt: skip


def load_time(page: Page, url: str) -> float:
    """Seconds from navigation until the script finished and a title is drawn."""
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(DONE, timeout=60_000)
    page.wait_for_selector("h1", timeout=60_000)
    return time.perf_counter() - started


def measure(server: Server, paths: dict[str, str], reps: int) -> dict[str, list[float]]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        load_time(page, server.url)  # warm-up: first script run imports everything
        times = {name: [load_time(page, f"{server.url}/{path}") for _ in range(reps)]
                 for name, path in paths.items()}  # fmt: skip
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=ROOT / "demo-workspace" / "forgetwatch.duckdb")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base_app = Path(tmp, "baseline.py")
        base_app.write_text(BASELINE_APP)
        base = serve_baseline(base_app, Path(tmp, "baseline.log"))
        try:
            baseline = statistics.median(measure(base, {"Baseline": ""}, args.reps)["Baseline"])
        finally:
            base.stop()
        app = start_dashboard(args.db, Path(tmp, "app.log"))
        try:
            times = measure(app, PAGES, args.reps)
        finally:
            app.stop()
    print(f"baseline (bare Streamlit page): median {baseline:.2f} s over {args.reps} loads")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:8} median {median:.2f} s  max {max(values):.2f} s  "
              f"ratio to baseline {median / baseline:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
