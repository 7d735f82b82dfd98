"""The dashboard keeps working while a collector writes.

A real ingest of ~1M sample rows runs in a child process (``tests/crash_driver.py``)
into a database that already holds runs. Every second, until the ingest has
finished, this process reads the file twice, as the dashboard does:

* through the query layer, on a short read-only connection (``db.connect``);
* by rendering the Runs page with Streamlit's AppTest.

No poll may surface an error or exception, and the reader must end up seeing
every new row. Each poll's wait is recorded: it is how long the collector held
the file lock while a reader queued behind it (printed with ``-s``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from forgetwatch import db, queries
from tests import crash_driver
from tests.fixture_db import build_known_db

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
MODELS, TASKS, DOCS = 5, 2, 50_000  # x 2 metrics = 1M sample rows


@dataclass
class Polls:
    """What the reader saw: sample counts per poll, failures, and the slowest waits."""

    samples: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    query_waits: list[float] = field(default_factory=list)
    page_waits: list[float] = field(default_factory=list)


@pytest.fixture(scope="module")
def big_outputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    root = tmp_path_factory.mktemp("big-lm-eval")
    rows = crash_driver.write_lm_eval_outputs(root, models=MODELS, tasks=TASKS, docs=DOCS)
    return root, rows


def poll_queries(path: Path, polls: Polls) -> None:
    """The Runs page's queries on a per-render read-only connection."""
    started = time.monotonic()
    try:
        with db.connect(path, read_only=True) as con:
            summary = queries.db_summary(con)
            queries.runs_overview(con)
        polls.samples.append(summary["samples"])
    except Exception as exc:  # any error here is one a page would show
        polls.failures.append(f"query layer: {type(exc).__name__}: {exc}")
    polls.query_waits.append(time.monotonic() - started)


def poll_page(polls: Polls) -> None:
    """A fresh session rendering the Runs page, as a user reloading would."""
    started = time.monotonic()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    polls.page_waits.append(time.monotonic() - started)
    polls.failures += [f"page exception: {e.value}" for e in at.exception]
    polls.failures += [f"page error: {e.value}" for e in at.error]
    if [t.value for t in at.title] != ["Models and runs"]:
        polls.failures.append(f"page rendered {[t.value for t in at.title]} instead of Runs")


@pytest.mark.slow
def test_pages_keep_working_while_an_ingest_writes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, big_outputs: tuple[Path, int]
) -> None:
    outputs, new_rows = big_outputs
    path = build_known_db(tmp_path / "busy.duckdb")
    monkeypatch.setenv("FORGETWATCH_DB", str(path))
    with db.connect(path, read_only=True) as con:
        before = queries.db_summary(con)["samples"]

    writer = subprocess.Popen(
        [sys.executable, crash_driver.__file__, "ingest", str(path), str(outputs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    polls = Polls()
    try:
        while True:
            tick = time.monotonic()
            finished = writer.poll() is not None
            poll_queries(path, polls)
            poll_page(polls)
            if finished:
                break
            # A reload a second at most, and never back to back: a render slower than a
            # second (two pytest workers share the cores) still leaves the writer a gap.
            time.sleep(max(0.5, 1.0 - (time.monotonic() - tick)))
        output = writer.stdout.read() if writer.stdout else ""
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait()
        if writer.stdout:
            writer.stdout.close()

    assert writer.returncode == 0, output
    print(
        f"\n{len(polls.samples)} polls; slowest query-layer poll {max(polls.query_waits):.2f}s, "
        f"slowest page render {max(polls.page_waits):.2f}s"
    )
    assert polls.failures == []
    assert len(polls.samples) >= 2, "the ingest ended before a reader could poll during it"
    assert polls.samples[0] < before + new_rows  # the first poll ran while the ingest wrote
    assert polls.samples[-1] == before + new_rows  # and the last sees every new row
    assert polls.samples == sorted(polls.samples)  # readers only see committed, growing data
