"""Pieces every page shares: the per-render connection, empty states, errors, tables.

Keeping these in one place means a missing database, a busy lock or an unknown
run look the same on every page, with the same next step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import pandas as pd
import streamlit as st

from forgetwatch import db, exports, review, settings
from forgetwatch.errors import DatabaseMissingError, ForgetwatchError
from forgetwatch.exports.escaping import escape_markdown
from forgetwatch.review.views import NOISE_COLOR

RUN_PAGE = "views/run.py"
RUNS_PAGE = "views/runs.py"
COMPARE_PAGE = "views/compare.py"
FLIPS_PAGE = "views/flips.py"

# Verdict status -> (badge colour, icon); the same look on every page.
VERDICT_STYLE = {
    "pass": ("green", ":material/check_circle:"),
    "review": ("orange", ":material/rate_review:"),
    "fail": ("red", ":material/cancel:"),
}
VERDICT_TEXT_COLOR = {"pass": "#009E73", "review": "#E69F00", "fail": "#D55E00"}

GET_DATA_IN = """\
Get data in with one of:

* `forgetwatch demo` builds a small demo world (trains tiny models, evaluates them) and loads it;
* `forgetwatch sync --tracking-uri URI` pulls your MLflow runs;
* `forgetwatch ingest DIR` loads lm-evaluation-harness output folders.

The dashboard reads `{db}` (set `FORGETWATCH_DB` to use another file).
"""


def show_error(exc: ForgetwatchError) -> None:
    """The one way pages show a failure: what went wrong, where, and what to do next."""
    where = f" (`{exc.where}`)" if exc.where else ""
    st.error(f"**{exc.title}**{where}\n\nNext step: {exc.next_step}", icon=":material/error:")


def empty_state(title: str, detail: str | None = None) -> None:
    """Explain why there is nothing to show and how to get data in."""
    body = detail or GET_DATA_IN.format(db=settings.db_path())
    st.info(f"**{title}**\n\n{body}", icon=":material/info:")


@contextmanager
def page_connection() -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection for this render only, closed before the page returns.

    DuckDB locks the file per process, so holding a connection across reruns would
    block collectors. Failures end the render with the shared empty state or error.
    """
    try:
        with db.connect(read_only=True) as con:
            yield con
    except DatabaseMissingError:
        empty_state("No forgetwatch database yet")
        st.stop()
    except ForgetwatchError as exc:
        show_error(exc)
        st.stop()
    except duckdb.Error as exc:
        show_error(
            ForgetwatchError(
                f"Could not read the database: {exc}",
                "Check that FORGETWATCH_DB points at a forgetwatch database written by "
                "`forgetwatch sync`/`ingest`/`demo`.",
                where=str(settings.db_path()),
            )
        )
        st.stop()


def require_runs(summary: dict[str, int]) -> None:
    """Stop the render with the empty state when the database holds no runs or evals."""
    st.sidebar.caption(
        " · ".join(f"{summary[k]:,} {k}" for k in ("runs", "models", "evals", "samples"))
    )
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
        if spec:
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
    frame = view.frame
    if (view.noise is None or not view.noise.to_numpy().any()) and "verdict" not in frame:
        return frame
    css = pd.DataFrame("", index=frame.index, columns=frame.columns)
    if view.noise is not None:
        for column in view.noise.columns.intersection(frame.columns):
            css.loc[view.noise[column].astype(bool), column] = f"color: {NOISE_COLOR}"
    if "verdict" in frame:
        colors = frame["verdict"].map(VERDICT_TEXT_COLOR).dropna()
        css.loc[colors.index, "verdict"] = "color: " + colors + "; font-weight: bold"
    return frame.style.apply(lambda _: css, axis=None)


def verdict_badge(verdict: Any, label: str | None = None) -> None:
    """One pass / review / fail badge; hovering shows why (``budget.Verdict``)."""
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
    """
    event = st.dataframe(
        styled(view), hide_index=True, column_config=column_config(view), key=key, **kwargs
    )
    export_buttons(lambda: review.Report(view.title, [view]), key=f"{key}-export", name=name)
    return event
