"""Pieces every page shares: cached loading, empty states, errors, tables.

Keeping these in one place means a missing database, a busy lock or an unknown
run look the same on every page, with the same next step.

Pages load every view model through ``page_data().load(fn, ...)``: answers are
cached per database state (path, file, ``db.generation``), so a rerun with
nothing new stored runs no query, and a write anywhere makes the next load ask
the database again.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import duckdb
import numpy as np
import pandas as pd
import streamlit as st

from forgetwatch import db, exports, review, settings
from forgetwatch.errors import DatabaseBusyError, DatabaseMissingError, ForgetwatchError
from forgetwatch.exports.escaping import escape_markdown
from forgetwatch.review.views import NOISE_COLOR, NOISE_MARK, PVALUE, display_frame

RUN_PAGE = "views/run.py"
RUNS_PAGE = "views/runs.py"
COMPARE_PAGE = "views/compare.py"
FLIPS_PAGE = "views/flips.py"

# Verdict status -> (badge colour, icon); the same look on every page.
VERDICT_STYLE = {
    "pass": ("green", ":material/check_circle:"),
    "inconclusive": ("blue", ":material/troubleshoot:"),  # the eval is too small to tell
    "review": ("orange", ":material/rate_review:"),
    "fail": ("red", ":material/cancel:"),
}
VERDICT_TEXT_COLOR = {
    "pass": "#009E73", "inconclusive": "#0072B2", "review": "#E69F00", "fail": "#D55E00",
}  # fmt: skip

GET_DATA_IN = """\
Get data in with one of:

* `forgetwatch demo` builds a small demo world (trains tiny models, evaluates them) and loads it;
* `forgetwatch sync --tracking-uri URI` pulls your MLflow runs;
* `forgetwatch ingest DIR` loads lm-evaluation-harness output folders.

The dashboard reads `{db}` (set `FORGETWATCH_DB` to use another file).
"""


_modules_when_frozen = 0


def spare_the_collector() -> None:
    """Take the loaded modules' objects out of the cycle collector's walk (``gc.freeze``).

    Streamlit runs a full ``gc.collect()`` after every script run (``runner.postScriptGC``).
    With pandas, plotly and DuckDB loaded (MLflow too, once the Sources page ran) that
    walk visits a quarter of a million objects: 100-400 ms of every rerun on a two-core
    machine, longer than the page itself. Called at the start of a run, after new
    modules were imported: what is alive then lives as long as the process, so freezing
    it loses nothing (reference counting still frees frozen objects). Freezing only
    when ``sys.modules`` grew keeps the frozen set to imports, not to session state.
    """
    global _modules_when_frozen
    if len(sys.modules) <= _modules_when_frozen:
        return
    if not _modules_when_frozen:
        atexit.register(gc.unfreeze)  # let shutdown collect them as usual
    gc.freeze()
    _modules_when_frozen = len(sys.modules)


def show_error(exc: ForgetwatchError) -> None:
    """The one way pages show a failure: what went wrong, where, and what to do next."""
    where = f" (`{exc.where}`)" if exc.where else ""
    st.error(f"**{exc.title}**{where}\n\nNext step: {exc.next_step}", icon=":material/error:")


def empty_state(title: str, detail: str | None = None) -> None:
    """Explain why there is nothing to show and how to get data in."""
    body = detail or GET_DATA_IN.format(db=settings.db_path())
    st.info(f"**{title}**\n\n{body}", icon=":material/info:")


P = ParamSpec("P")
R = TypeVar("R")
# What pages load: a review-layer (or named query) function of a connection and arguments.
Loader = Callable[Concatenate[duckdb.DuckDBPyConnection, P], R]

# Cached answers kept at once (all pages and sessions together), stored pickled. Most
# are a page of rows (kB); the largest, Compare's tables for a hundred models over 200
# tasks, are ~7 MB. Least recently used go first, so memory stays bounded.
CACHE_ENTRIES = 64
# The most cells a page table is styled for (noise greyed, verdicts coloured): ~0.1 s.
STYLED_CELLS = 10_000


def _unreadable(exc: duckdb.Error) -> ForgetwatchError:
    return ForgetwatchError(
        f"Could not read the database: {exc}",
        "Check that FORGETWATCH_DB points at a forgetwatch database written by "
        "`forgetwatch sync`/`ingest`/`demo`.",
        where=str(settings.db_path()),
    )


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def _cached_call(
    _fn: Callable[..., Any],
    name: str,
    state: tuple[str, int, int, int],
    args: tuple[Any, ...],
    kwargs: tuple[tuple[str, Any], ...],
) -> Any:
    """``_fn(con, *args, **kwargs)`` on a read-only connection opened only on a miss.

    ``name`` stands for ``_fn`` in the key (Streamlit does not hash leading-underscore
    arguments); ``state`` is the database state the answer belongs to.
    """
    with db.connect(state[0], read_only=True) as con:
        return _fn(con, *args, **dict(kwargs))


def _function_key(fn: Callable[..., Any]) -> str:
    """Names ``fn`` uniquely, even for page-script functions (module ``__main__``)."""
    code = getattr(fn, "__code__", None)
    where = f"@{code.co_filename}:{code.co_firstlineno}" if code else ""
    return f"{fn.__module__}.{fn.__qualname__}{where}"


@dataclass(frozen=True)
class PageData:
    """The database state one script run reads: its path, file identity and generation.

    A page makes one with ``page_data()`` at its top and loads every view model
    with ``load``, so the generation is read once per run, not once per query.
    """

    path: str
    inode: int
    changed_ns: int
    generation: int

    def load(self, fn: Loader[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(con, *args, **kwargs)``, cached for this database state.

        A failure ends the render the way every page shows it: the empty state for
        a missing file, else the error with its next step.
        """
        try:
            return self.load_or_raise(fn, *args, **kwargs)
        except ForgetwatchError as exc:
            show_error(exc)
            st.stop()
            raise  # not reached: st.stop() raises; this tells type checkers so

    def load_or_raise(self, fn: Loader[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """As ``load``, but a ``ForgetwatchError`` from ``fn`` reaches the caller.

        For pages that show such an error and then carry on with less (a bad budget
        file still leaves the checkpoint curves). Database trouble still ends the
        render: the empty state for a missing file, the error for anything else.
        """
        state = (self.path, self.inode, self.changed_ns, self.generation)
        with database_trouble_ends_render(DatabaseBusyError):
            return _cached_call(fn, _function_key(fn), state, args, tuple(sorted(kwargs.items())))


def page_data() -> PageData:
    """The database state for this script run, read once (one short read-only open).

    The key holds the file's identity as well as its generation, so a database
    deleted and rebuilt at the same path (whose generation starts over) is never
    answered from the old file's cache. A missing, busy or unreadable file ends the
    render with the same empty state or error as every other page.
    """
    path = settings.db_path()
    with database_trouble_ends_render(ForgetwatchError):
        generation = db.generation(path)
        if generation < 0:  # no file
            raise DatabaseMissingError("No forgetwatch database yet", where=str(path))
        stat = os.stat(path)
    return PageData(str(path), stat.st_ino, stat.st_ctime_ns, generation)


@contextmanager
def database_trouble_ends_render(shown: type[ForgetwatchError]) -> Iterator[None]:
    """End the render the way every page does when the file cannot answer.

    A missing file shows the empty state; errors of type ``shown`` and unreadable
    files show the error with its next step. Other errors pass through to the page.
    """
    try:
        yield
    except DatabaseMissingError:
        empty_state("No forgetwatch database yet")
        st.stop()
        raise
    except shown as exc:
        show_error(exc)
        st.stop()
        raise
    except duckdb.Error as exc:
        show_error(_unreadable(exc))
        st.stop()
        raise


def require_runs(summary: dict[str, int]) -> None:
    """Stop the render with the empty state when the database holds no runs or evals."""
    names = {"runs": "runs", "evaluated_models": "evaluated models", "evals": "evals",
             "samples": "samples"}  # fmt: skip
    st.sidebar.caption(" · ".join(f"{summary[k]:,} {name}" for k, name in names.items()))
    if summary["runs"] == 0 and summary["evals"] == 0:
        empty_state("No runs or evals in the database yet")
        st.stop()


def column_config(view: review.View) -> dict[str, Any]:
    """Headers, help and number formats for ``st.dataframe``, from the same table as exports."""
    config: dict[str, Any] = {}
    for column in view.frame.columns:
        known = review.COLUMNS.get(column)
        text = review.label(column)
        help_text = known.help if known and known.help else None
        spec = view.number_format(column)
        if spec == PVALUE:  # shown as text: "< 0.001" (review.views.fmt_p)
            config[column] = st.column_config.TextColumn(text, help=help_text)
        elif spec:
            printf = "%d" if spec == "d" else f"%{spec}"
            config[column] = st.column_config.NumberColumn(text, help=help_text, format=printf)
        elif pd.api.types.is_datetime64_any_dtype(view.frame[column]):
            config[column] = st.column_config.DatetimeColumn(text, format="YYYY-MM-DD HH:mm")
        else:
            config[column] = st.column_config.Column(text, help=help_text)
    return config


def export_buttons(make_report: Callable[[], review.Report], *, key: str, name: str) -> None:
    """One download button per format; each builds its file only when clicked.

    ``make_report`` wraps the DataFrames the page is showing, so the file holds
    exactly the page's numbers.
    """
    with st.popover("Export", icon=":material/download:"):
        for fmt in exports.FORMATS.values():
            st.download_button(
                fmt.label,
                data=lambda fmt=fmt: fmt.render(make_report()),
                file_name=exports.safe_filename(name, fmt.extension),
                mime=fmt.mime,
                on_click="ignore",
                key=f"{key}-{fmt.name}",
            )


def styled(view: review.View) -> Any:
    """The view's frame with noise cells greyed and verdicts coloured (a pandas Styler).

    Values stay numbers, so sorting and the column formats still work; only the
    text colour changes.
    """
    frame = display_frame(view)
    if (view.noise is None or not view.noise.to_numpy().any()) and "verdict" not in frame:
        return frame
    # Built as one array, not cell by cell: a page re-styles its tables on every rerun.
    cells = np.full(frame.shape, "", dtype=object)
    if view.noise is not None:
        for column in view.noise.columns.intersection(frame.columns):
            at = frame.columns.get_loc(column)
            cells[view.noise[column].astype(bool).to_numpy(), at] = f"color: {NOISE_COLOR}"
    if "verdict" in frame:
        colors = frame["verdict"].map(VERDICT_TEXT_COLOR)
        known = colors.notna().to_numpy()
        bold = ("color: " + colors[known] + "; font-weight: bold").to_numpy(dtype=object)
        cells[known, frame.columns.get_loc("verdict")] = bold
    css = pd.DataFrame(cells, index=frame.index, columns=frame.columns)
    return frame.style.apply(lambda _: css, axis=None)


def verdict_badge(verdict: Any, label: str | None = None) -> None:
    """One pass / inconclusive / review / fail badge; hovering shows why (``budget.Verdict``)."""
    color, icon = VERDICT_STYLE.get(verdict.status, ("gray", ":material/help:"))
    text = f"{label}: {verdict.status}" if label else verdict.status
    reasons = "\n".join(f"- {escape_markdown(r)}" for r in verdict.reasons)
    st.badge(escape_markdown(text), icon=icon, color=color, help=reasons or None)


def verdict_badges(verdicts: dict[str, Any], labels: dict[str, str], *, shown: int = 24) -> None:
    """Badges for several models, then their reasons in an expander (hover needs a mouse)."""
    if not verdicts:
        return
    chosen = list(verdicts.items())[:shown]
    with st.container(horizontal=True):
        for model_id, verdict in chosen:
            verdict_badge(verdict, labels.get(model_id, model_id))
    with st.expander("Why these verdicts", icon=":material/gavel:"):
        for model_id, verdict in chosen:
            reasons = " ".join(verdict.reasons) or "no reasons given"
            name = escape_markdown(labels.get(model_id, model_id))
            st.markdown(f"**{name}** — {verdict.status}: {escape_markdown(reasons)}")
        if len(verdicts) > shown:
            st.caption(f"{len(verdicts) - shown} more models in the table's Verdict column.")


def settings_warning(text: str) -> None:
    """The comparable-settings warning, the same on every page that shows deltas."""
    if text:
        st.warning(escape_markdown(text), icon=":material/warning:")


def show_table(view: review.View, *, key: str, name: str, **kwargs: Any) -> Any:
    """A page table with its export buttons; returns ``st.dataframe``'s selection event.

    Cells within noise are greyed (``styled``); the export holds the same marks.
    Streamlit styles a table cell by cell (about 10 µs each), so a table larger than
    STYLED_CELLS is shown with plain values and a line saying where noise is marked.
    """
    small = view.frame.size <= STYLED_CELLS
    event = st.dataframe(
        styled(view) if small else display_frame(view),
        hide_index=True,
        column_config=column_config(view),
        key=key,
        **kwargs,
    )
    if not small and view.noise is not None and view.noise.to_numpy().any():
        st.caption(
            f"Not greyed here: the table has {view.frame.size:,} cells. The exports mark "
            f"changes within noise with{NOISE_MARK}"
            + (", and the Significant column says which." if "significant" in view.frame else ".")
        )
    export_buttons(lambda: review.Report(view.title, [view]), key=f"{key}-export", name=name)
    return event
