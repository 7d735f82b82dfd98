"""Screenshots of every dashboard page, light and dark, for a person to look at.

    .venv/bin/python scripts/screenshots.py DB.duckdb OUT_DIR [--run RUN]

Serves the dashboard on a free loopback port (one server per theme), opens each
page in Debian's headless Chromium and writes ``OUT_DIR/<page>-<theme>.png``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(db: Path, theme: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
           "--server.port", str(port), "--server.address", "127.0.0.1",
           "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--theme.base", theme]  # fmt: skip
    env = {**os.environ, "FORGETWATCH_DB": str(db.resolve())}
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return proc, url
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    raise SystemExit("the dashboard did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("db", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--run", help="run for the Run page (any identifier)")
    parser.add_argument("--model", help="a model with no run, for the Run page as a model page")
    parser.add_argument(
        "--height", type=int, default=1000,
        help="viewport height: Streamlit scrolls inside the page, so a tall one shows it all",
    )  # fmt: skip
    parser.add_argument("--only", help="comma-separated pages to shoot (default: all)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    pages = {"runs": "", "compare": "compare", "flips": "flips", "evals": "evals",
             "sources": "sources"}  # fmt: skip
    if args.run:
        pages["run"] = f"run?run={args.run}"
    if args.model:
        pages["model"] = f"run?model={quote(args.model)}"
    if args.only:
        pages = {k: v for k, v in pages.items() if k in args.only.split(",")}
    for theme in ("light", "dark"):
        proc, url = serve(args.db, theme)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=CHROMIUM_ARGS)  # fmt: skip
                page = browser.new_page(
                    viewport={"width": 1400, "height": args.height}, color_scheme=theme
                )
                for name, path in pages.items():
                    page.goto(f"{url}/{path}", wait_until="domcontentloaded")
                    page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for(
                        timeout=120_000
                    )
                    page.wait_for_timeout(1500)  # let plotly finish drawing
                    shot = args.out / f"{name}-{theme}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    print(shot)
                browser.close()
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
    return 0


if __name__ == "__main__":
    sys.exit(main())
