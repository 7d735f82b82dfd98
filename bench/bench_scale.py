"""Scale benchmark: load a realistic world through the CLI, then time every page.

Builds a world with ``bench/world.py`` (or reuses one, ``--world DIR``), then in
one run, so the figures share the machine's load:

1. **load**: ``forgetwatch sync --tracking-uri sqlite:///... --db DB`` and
   ``forgetwatch ingest OUT/lm_eval --suite ...`` as subprocesses, timed
   (metric points/s, sample rows/s; the CLI's own start-up is timed apart);
2. **review layer**: the calls each page makes (Runs, Compare with 10/50/100
   runs, Run, Flips), straight against the DB on a fresh read-only connection
   per render, as the pages open it: the first render (cold) and the median
   of the next ``--reps`` (warm), with the slowest call of each page;
3. **browser**: ``streamlit run`` (``tests.procs.start_dashboard``) in headless
   Chromium: each page's first navigation in a fresh browser session until its
   title is drawn and the script has finished
   (``[data-testid=stApp][data-test-script-state=notRunning]``), then a rerun
   after a widget interaction; the server's peak RSS (its process tree) while
   rendering;
4. **anchor**: the MLflow UI's compare-runs page for 100 runs of one experiment
   over the same MLflow store, timed by ``../shared/anchors/mlflow_ui_compare.py``
   on an ``anchor_server.py`` server, and our Compare-100 as a ratio to it.

Prints one markdown table of every figure and writes the same as JSON (``--out``).

    python bench/bench_scale.py --out scale.json                    # full size
    python bench/bench_scale.py --world /tmp/w-med --runs 1000 --bases 10 --models 60 \\
        --tasks 50 --docs 50 --out scale-medium.json                # medium, a few minutes
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from bench.world import WorldInfo, build  # noqa: E402

ANCHORS = ROOT.parent / "shared" / "anchors"
DONE = "[data-testid=stApp][data-test-script-state=notRunning]"
EXCEPTION = "[data-testid=stException]"
SETTLE_MS = 500
TIMEOUT_MS = 180_000  # one page's load or rerun; beyond it the page is reported as failing
# Records whether the script left "notRunning" after an interaction: a rerun can be
# quicker than a poll, so an observer catches the attribute change itself.
WATCH_RERUN_JS = """() => {
  const app = document.querySelector('[data-testid=stApp]');
  window.__fwRerun = false;
  new MutationObserver(() => {
    if (app.getAttribute('data-test-script-state') !== 'notRunning') window.__fwRerun = true;
  }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
RERUN_DONE_JS = """() => window.__fwRerun && document.querySelector('[data-testid=stApp]')
  .getAttribute('data-test-script-state') === 'notRunning'"""


@dataclass
class Figures:
    """Every measured figure, in report order: the table and the JSON are built from it."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, section: str, figure: str, value: float | None, unit: str, note: str = ""):
        shown = None if value is None else round(float(value), 3)
        self.rows.append(
            {"section": section, "figure": figure, "value": shown, "unit": unit, "note": note}
        )

    def value(self, section: str, figure: str) -> float | None:
        return next(
            (r["value"] for r in self.rows if r["section"] == section and r["figure"] == figure),
            None,
        )

    def markdown(self) -> str:
        lines = ["| section | figure | value | unit | note |", "|---|---|---:|---|---|"]
        for r in self.rows:
            value = "n/a" if r["value"] is None else f"{r['value']:,.3f}".rstrip("0").rstrip(".")
            lines.append(
                f"| {r['section']} | {r['figure']} | {value} | {r['unit']} | {r['note']} |"
            )
        return "\n".join(lines + [""] + [f"- {n}" for n in self.notes])


# --- 1. the world and its load through the CLI ---------------------------------------------


def world_for(args: argparse.Namespace, figures: Figures) -> WorldInfo:
    """The world in ``--world`` if it was built there, else a new one (timed)."""
    folder = args.world or Path(tempfile.mkdtemp(prefix="fw-world-"))
    if (folder / "world.json").is_file():
        info = WorldInfo.load(folder)
        figures.notes.append(f"reused the world in {folder}")
        return info
    started = time.perf_counter()
    info = build(
        folder,
        runs=args.runs,
        bases=args.bases,
        models=args.models,
        tasks=args.tasks,
        docs=args.docs,
        steps=args.steps,
        seed=args.seed,
    )
    figures.add("world", "build", time.perf_counter() - started, "s", str(info.build_seconds))
    return info


def _cli(args: list[str], log: Path) -> tuple[float, str]:
    """Run ``python -m forgetwatch ARGS``: its seconds and the summary it printed last.

    Exits with the output's tail when the command fails.
    """
    start = log.stat().st_size if log.exists() else 0
    started = time.perf_counter()
    with log.open("ab") as out:
        done = subprocess.run(
            [sys.executable, "-m", "forgetwatch", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            check=False,
        )
    seconds = time.perf_counter() - started
    with log.open("rb") as handle:
        handle.seek(start)
        text = handle.read().decode(errors="replace")
    if done.returncode != 0:
        raise SystemExit(f"forgetwatch {args[0]} failed ({done.returncode}):\n{text[-3000:]}")
    lines = [line.split("\r")[-1].strip() for line in text.splitlines()]  # drop tqdm redraws
    summary = [line for line in lines if line and "item" not in line and "|" not in line]
    return seconds, "; ".join(summary[-2:])


def load(info: WorldInfo, db: Path, figures: Figures, log: Path) -> None:
    """Sync the MLflow store and ingest the lm-eval folders into a fresh ``db``."""
    for path in (db, db.with_suffix(db.suffix + ".wal")):
        path.unlink(missing_ok=True)
    startup, _ = _cli(["--help"], log)
    figures.add("load", "CLI start-up (--help)", startup, "s")
    sync_s, said = _cli(["sync", "--tracking-uri", info.tracking_uri, "--db", str(db)], log)
    figures.add("load", "sync", sync_s, "s", f"{info.runs:,} runs, {info.metric_points:,} points")
    figures.add("load", "sync rate", info.metric_points / sync_s, "points/s", said)
    figures.add("load", "sync rate (runs)", info.runs / sync_s, "runs/s")
    ingest = ["ingest", str(info.lm_eval_dir), "--suite", str(info.suite_path), "--db", str(db)]
    ingest_s, said = _cli(ingest, log)
    figures.add(
        "load", "ingest", ingest_s, "s", f"{info.evals} evals, {info.sample_rows:,} sample rows"
    )
    figures.add("load", "ingest rate", info.sample_rows / ingest_s, "rows/s", said)


# --- 2. the review layer, as each page calls it ---------------------------------------------


@dataclass(frozen=True)
class Targets:
    """What the pages are opened on: runs to compare, one run, one fine-tune and its base."""

    compare: list[str]  # run ids: one base's evaluated runs first, newest first
    evaluated_in_compare: int  # evaluated runs of that base
    run_id: str
    model_id: str


def pick_targets(info: WorldInfo, sizes: list[int]) -> Targets:
    """Compare takes runs of the base with the most evaluated runs, as a user compares
    fine-tunes of one base: its evaluated runs first (newest first), then its newest
    other runs, then any others. Run and Flips open that base's newest run with
    evaluated checkpoints, and its final model."""
    counts: dict[str, int] = {}
    for name in info.evaluated_runs:
        counts[info.run_bases[name]] = counts.get(info.run_bases[name], 0) + 1
    main = max(counts, key=counts.__getitem__)
    newest = list(reversed(info.run_ids))
    evaluated = set(info.evaluated_runs)
    rank = {n: (info.run_bases[n] != main, n not in evaluated) for n in newest}
    chosen = sorted(newest, key=rank.__getitem__)[: max(sizes)]  # stable: newest first
    runs = [n for n in info.checkpoint_runs if info.run_bases[n] == main] or info.evaluated_runs
    run = runs[-1]
    return Targets(
        [info.run_ids[n] for n in chosen], counts[main], info.run_ids[run], info.final_models[run]
    )


def _runs_page(con: Any, targets: Targets) -> Iterator[tuple[str, Callable[[], Any]]]:
    from forgetwatch import queries
    from forgetwatch.review import runs as runs_review

    yield "db_summary", lambda: queries.db_summary(con)
    yield "filter_options", lambda: queries.filter_options(con)
    yield "runs_overview", lambda: runs_review.runs_overview(con, search="")


def _compare_page(k: int) -> Callable[[Any, Targets], Iterator[tuple[str, Callable[[], Any]]]]:
    def calls(con: Any, targets: Targets) -> Iterator[tuple[str, Callable[[], Any]]]:
        from forgetwatch import queries, review
        from forgetwatch.queries import runs as run_queries
        from forgetwatch.review import comparison as comparison_review

        spec = review.CompareSpec(run_ids=tuple(targets.compare[:k]))
        found: dict[str, Any] = {}

        def compare() -> None:
            found["comparison"] = comparison_review.page_comparison(con, spec)

        yield "db_summary", lambda: queries.db_summary(con)
        yield "run_choices", lambda: run_queries.run_choices(con)
        yield "compare_options", lambda: queries.compare_options(con)
        yield "page_comparison", compare
        yield (
            "map_points",
            lambda: comparison_review.map_points(
                con,
                base_model=found["comparison"].base_model,
                method=None,
                include_checkpoints=True,
            ),
        )

    return calls


def _run_page(con: Any, targets: Targets) -> Iterator[tuple[str, Callable[[], Any]]]:
    from forgetwatch import queries
    from forgetwatch.review import breakeven
    from forgetwatch.review import run as run_review
    from forgetwatch.review.checkpoints import checkpoints_review

    run_id = targets.run_id
    yield "db_summary", lambda: queries.db_summary(con)
    yield "resolve_run", lambda: queries.resolve_run(con, run_id, where="?run=")
    yield "run_info", lambda: queries.run_info(con, run_id)
    models: dict[str, str] = {}
    yield "evaluated_models", lambda: models.update(run_review.evaluated_models(con, run_id))
    yield "model_changes", lambda: run_review.model_changes(con, next(iter(models)), run_id)
    yield "checkpoints_review", lambda: checkpoints_review(con, run_id)
    yield "kshot_setup", lambda: breakeven.kshot_setup(con, run_id)
    yield "metric_keys", lambda: queries.metric_keys(con, run_id)
    yield "metric_history", lambda: queries.metric_history(con, run_id, ["loss", "eval_loss"])


def _flips_page(con: Any, targets: Targets) -> Iterator[tuple[str, Callable[[], Any]]]:
    from forgetwatch import queries
    from forgetwatch.queries import flips

    model = targets.model_id
    found: dict[str, str] = {}

    def models() -> None:
        frame = flips.flip_models(con)
        found["base"] = str(frame.set_index("model_id").loc[model, "base_model_id"])

    yield "db_summary", lambda: queries.db_summary(con)
    yield "flip_models", models
    yield "sampled_models", lambda: flips.sampled_models(con)
    yield "flip_counts", lambda: flips.flip_counts(con, model, found["base"])
    yield (
        "flip_examples",
        lambda: flips.flip_examples(
            con, model, found["base"], tasks=None, direction=None, search=None, limit=50, offset=0
        ),
    )
    yield "forgotten", lambda: flips.forgotten(con, model, found["base"], limit=500)


def _render_once(db: Path, page: Callable, targets: Targets) -> dict[str, float]:
    """One render's calls on one read-only connection; seconds per call."""
    from forgetwatch import db as fw_db

    seconds: dict[str, float] = {}
    with fw_db.connect(db, read_only=True) as con:
        for name, call in page(con, targets):
            started = time.perf_counter()
            call()
            seconds[name] = time.perf_counter() - started
    return seconds


def time_review(db: Path, targets: Targets, sizes: list[int], reps: int, figures: Figures):
    pages: list[tuple[str, Callable]] = [("Runs", _runs_page)]
    pages += [(f"Compare-{k}", _compare_page(k)) for k in sizes]
    pages += [("Run", _run_page), ("Flips", _flips_page)]
    for name, page in pages:
        renders = [_render_once(db, page, targets) for _ in range(reps + 1)]
        totals = [sum(r.values()) for r in renders]
        warm = {call: statistics.median(r[call] for r in renders[1:]) for call in renders[0]}
        slowest = max(warm, key=warm.__getitem__)
        figures.add("review layer", f"{name} cold", totals[0], "s")
        figures.add(
            "review layer",
            f"{name} warm",
            statistics.median(totals[1:]),
            "s",
            f"slowest: {slowest} {warm[slowest]:.3f} s",
        )


# --- 3. the real pages in headless Chromium --------------------------------------------------


class RssSampler:
    """Peak resident memory of a process and its children, sampled every 0.1 s:
    ``peak`` since the last ``reset`` (one page), ``overall`` since the start."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.overall = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            now = self._rss()
            self.peak = max(self.peak, now)
            self.overall = max(self.overall, now)
            self._stop.wait(0.1)

    def reset(self) -> None:
        self.peak = self._rss()

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class PageCase:
    name: str
    path: str  # URL path and query after the server's root
    title: str  # the page's h1
    interaction: str  # what the warm rerun does, in words
    act: Callable[[Any], None]


def _type_into(label: str, text: str) -> Callable[[Any], None]:
    def act(page: Any) -> None:
        box = page.locator(f"input[aria-label='{label}']").first
        box.fill(text)
        box.press("Enter")

    return act


def _click_text(text: str) -> Callable[[Any], None]:
    return lambda page: page.get_by_text(text, exact=True).first.click()


def page_cases(targets: Targets, sizes: list[int]) -> list[PageCase]:
    cases = [PageCase("Runs", "", "Runs", "search 'lora'", _type_into("Search", "lora"))]
    for k in sizes:
        query = urllib.parse.urlencode([("runs", r) for r in targets.compare[:k]])
        cases.append(
            PageCase(
                f"Compare-{k}",
                f"compare?{query}",
                "Compare",
                "toggle 'Show checkpoints'",
                _click_text("Show checkpoints"),
            )
        )
    run_query = urllib.parse.urlencode({"run": targets.run_id})
    flips_query = urllib.parse.urlencode({"model": targets.model_id})
    cases.append(PageCase("Run", f"run?{run_query}", "Run", "GPUs = 2", _type_into("GPUs", "2")))
    cases.append(
        PageCase(
            "Flips",
            f"flips?{flips_query}",
            "Flips",
            "search 'item 1'",
            _type_into("Search", "item 1"),
        )
    )
    return cases


def _cold_load(page: Any, url: str, title: str) -> float | None:
    """Seconds from navigation until the title is drawn and the script finished; None
    when the page shows an exception instead (``_page_problem`` then says which)."""
    started = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=TIMEOUT_MS)
    drawn = page.locator("h1", has_text=title).or_(page.locator(EXCEPTION))
    drawn.first.wait_for(timeout=TIMEOUT_MS)
    page.locator(DONE).wait_for(timeout=TIMEOUT_MS)
    seconds = time.perf_counter() - started
    return None if page.locator(EXCEPTION).count() else seconds


def _warm_rerun(page: Any, act: Callable[[Any], None]) -> float:
    """Seconds from a widget interaction until the rerun it caused has finished.

    The page is let settle first: the script state turns "notRunning" before React
    has drawn every element, and an interaction sent then can be lost.
    """
    page.wait_for_timeout(SETTLE_MS)
    page.locator(DONE).wait_for(timeout=TIMEOUT_MS)
    page.evaluate(WATCH_RERUN_JS)
    started = time.perf_counter()
    act(page)
    page.wait_for_function(RERUN_DONE_JS, polling=20, timeout=TIMEOUT_MS)
    return time.perf_counter() - started


def _page_problem(page: Any) -> str:
    """An exception box or a link warning on the page, in a few words ('' when clean)."""
    errors = page.locator(EXCEPTION)
    if errors.count():
        return "exception: " + errors.first.inner_text()[:200].replace("\n", " ")
    ignored = page.get_by_text("Ignored values in the link")
    if ignored.count():
        dropped = ignored.first.inner_text().split(":", 1)[-1].count(",") + 1
        return f"the page dropped {dropped} run(s) of the link"
    return ""


def _measure_case(browser: Any, url: str, case: PageCase, shot: Path | None) -> tuple:
    """(cold load s, warm rerun s or None, problem) of one page in a fresh browser session."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    try:
        page = context.new_page()
        try:
            cold = _cold_load(page, f"{url}/{case.path}", case.title)
        except Exception as exc:  # a page that never finishes is a figure, not a crash
            return None, None, f"no render: {type(exc).__name__}"
        problem = _page_problem(page)
        if shot:
            page.wait_for_timeout(1000)  # let tables and charts paint for the reviewer
            page.screenshot(path=str(shot), full_page=True)
        if cold is None:
            return None, None, problem
        try:
            warm: float | None = _warm_rerun(page, case.act)
        except Exception as exc:  # a missing widget is reported, not fatal
            warm, problem = None, problem or f"no rerun: {type(exc).__name__}"
        return cold, warm, problem
    finally:
        context.close()


# Floors for the cold loads: what Streamlit itself costs in this browser, with no data.
# A page that draws a plotly chart pays for loading plotly.js in the browser, so the
# second floor is a title, one 100-point plotly scatter and a 200 x 100 table.
FLOOR_APPS = {
    "bare Streamlit page": 'import streamlit as st\nst.title("Floor")\n',
    "plotly scatter + table page": (
        "import numpy as np, pandas as pd, plotly.express as px, streamlit as st\n"
        'st.title("Floor")\n'
        "r = np.random.default_rng(0)\n"
        "st.plotly_chart(px.scatter(x=r.normal(size=100), y=r.normal(size=100)))\n"
        "st.dataframe(pd.DataFrame(r.normal(size=(200, 100))))\n"
    ),
}


def time_floors(browser: Any, reps: int, figures: Figures, workdir: Path) -> None:
    """Cold loads of the FLOOR_APPS, served and timed like the real pages."""
    from bench.bench_page_load import serve_baseline

    for name, source in FLOOR_APPS.items():
        app = workdir / f"floor_{len(name)}.py"
        app.write_text(source)
        server = serve_baseline(app, workdir / f"{app.stem}.log")
        try:
            colds = []
            for _ in range(reps):
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                colds.append(_cold_load(page, server.url, "Floor"))
                page.close()
            done = [c for c in colds if c is not None]
            value = statistics.median(done) if done else None
            figures.add("browser", f"floor: {name} cold load", value, "s", f"median of {len(done)}")
        finally:
            server.stop()


def time_browser(db: Path, cases: list[PageCase], reps: int, figures: Figures, shots: Path):
    """Each page ``reps`` times in a fresh session: medians of cold load and warm rerun."""
    from playwright.sync_api import sync_playwright

    from tests.procs import start_dashboard
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

    shots.mkdir(parents=True, exist_ok=True)
    server = start_dashboard(db, shots / "streamlit.log")
    try:
        with RssSampler(server.proc.pid) as rss, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            first = browser.new_page(viewport={"width": 1600, "height": 1000})
            started = _cold_load(first, server.url, "Runs")
            figures.add("browser", "first render after start", started, "s", "imports included")
            first.close()
            time_floors(browser, reps, figures, shots)
            for case in cases:
                rss.reset()
                shot = shots / f"{case.name}.png"
                runs = [
                    _measure_case(browser, server.url, case, shot if r == 0 else None)
                    for r in range(reps)
                ]
                warm = [w for _, w, _ in runs if w is not None]
                colds = [c for c, _, _ in runs if c is not None]
                problem = next((p for _, _, p in runs if p), "")
                note = f"median of {len(colds)}" + (f"; {problem}" if problem else "")
                cold = statistics.median(colds) if colds else None
                figures.add("browser", f"{case.name} cold load", cold, "s", note)
                figures.add(
                    "browser",
                    f"{case.name} warm rerun",
                    statistics.median(warm) if warm else None,
                    "s",
                    case.interaction,
                )
                figures.add("browser", f"{case.name} peak RSS", rss.peak / 2**20, "MiB")
            browser.close()
        figures.add("browser", "server peak RSS (all pages)", rss.overall / 2**20, "MiB")
    finally:
        server.stop()


# --- 4. the MLflow UI's compare page on the same store ---------------------------------------


@contextmanager
def anchor_server(anchors: Path, store: Path, workdir: Path) -> Iterator[str]:
    """``anchor_server.py`` on a copy of the world's store (the copy keeps the world as built)."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(store, workdir / "mlflow.db")
    started = subprocess.run(
        [sys.executable, str(anchors / "anchor_server.py"), "start", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        check=True,
    )
    server = json.loads(started.stdout.strip().splitlines()[-1])
    try:
        yield str(server["uri"])
    finally:
        subprocess.run(
            [
                sys.executable,
                str(anchors / "anchor_server.py"),
                "stop",
                "--pgid",
                str(server["pgid"]),
            ],
            capture_output=True,
            check=False,
        )


def time_mlflow_ui(info: WorldInfo, args: argparse.Namespace, figures: Figures) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="fw-anchor-"))
    experiment = info.experiments[0]
    with anchor_server(args.anchors, info.mlflow_db, workdir) as uri:
        cmd = [
            sys.executable,
            str(args.anchors / "mlflow_ui_compare.py"),
            "--uri",
            uri,
            "--runs",
            "100",
            "--experiment",
            experiment,
            "--repeats",
            str(args.ui_repeats),
            "--out-dir",
            str(workdir / "shots"),
            "--skip-runs-list",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        figures.notes.append(f"MLflow UI anchor failed: {done.stderr[-500:]}")
        return
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for entry in result["results"]:
        note = f"experiment {experiment}, median of {args.ui_repeats}"
        for kind in ("cold", "warm"):
            figures.add(
                "MLflow UI", f"{entry['page']} {kind}", entry[kind]["median_ready_s"], "s", note
            )


def add_ratios(figures: Figures) -> None:
    """Our Compare-100 over MLflow's: cold is like for like (a first navigation); MLflow's
    warm is a reload with a warm HTTP cache, ours a rerun after a widget change."""
    for kind, ours in (("cold", "Compare-100 cold load"), ("warm", "Compare-100 warm rerun")):
        mine = figures.value("browser", ours)
        theirs = figures.value("MLflow UI", f"compare_k100 {kind}")
        if mine and theirs:
            note = "" if kind == "cold" else "MLflow: reload, warm cache; ours: widget rerun"
            figures.add(
                "ratio", f"our {ours} / MLflow compare-100 {kind}", mine / theirs, "x", note
            )


# --- the run ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world", type=Path, help="reuse the world here, or build it here")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--bases", type=int, default=20)
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--docs", type=int, default=50)
    parser.add_argument("--steps", type=int, default=52)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", type=Path, help="DuckDB file to load (default WORLD/bench.duckdb)")
    parser.add_argument("--skip-load", action="store_true", help="time an already loaded --db")
    parser.add_argument("--compare", default="10,50,100", help="Compare page sizes (runs)")
    parser.add_argument("--reps", type=int, default=3, help="warm renders of the review layer")
    parser.add_argument("--browser-reps", type=int, default=3, help="loads of each page")
    parser.add_argument("--ui-repeats", type=int, default=3, help="MLflow UI repetitions")
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--skip-mlflow-ui", action="store_true")
    parser.add_argument("--anchors", type=Path, default=ANCHORS)
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the figures")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(k) for k in args.compare.split(",") if k.strip()]
    figures = Figures()
    info = world_for(args, figures)
    db = args.db or info.root / "bench.duckdb"
    if not args.skip_load:
        load(info, db, figures, info.root / "bench-load.log")
    targets = pick_targets(info, sizes)
    figures.notes.append(
        f"world: {info.runs:,} runs, {info.models} evaluated models ({info.bases} bases, "
        f"{info.finals} finals, {info.checkpoints} checkpoints), {info.tasks} tasks x "
        f"{info.docs} docs; Compare-K lists {min(targets.evaluated_in_compare, max(sizes))} "
        "evaluated runs first, then the newest others"
    )
    try:
        time_review(db, targets, sizes, args.reps, figures)
        if not args.skip_browser:
            cases = page_cases(targets, sizes)
            time_browser(db, cases, args.browser_reps, figures, info.root / "bench-shots")
        if not args.skip_mlflow_ui:
            time_mlflow_ui(info, args, figures)
        add_ratios(figures)
    finally:  # what was measured before a failure is still reported
        write_report(info, figures, args.out)
    return 0


def write_report(info: WorldInfo, figures: Figures, out: Path) -> None:
    print(figures.markdown())
    world = {k: v for k, v in json.loads(info.to_json()).items() if not isinstance(v, dict | list)}
    report = {"world": world, "figures": figures.rows, "notes": figures.notes}
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
