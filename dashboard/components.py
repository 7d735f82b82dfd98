"""Pieces every page shares: the per-render connection, empty states, errors, formatting.

Keeping these in one place means a missing database, a busy lock or an unknown
run look the same on every page, with the same next step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pandas as pd
import streamlit as st

from forgetwatch import db, settings
from forgetwatch.errors import DatabaseMissingError, ForgetwatchError

RUN_PAGE = "views/run.py"
RUNS_PAGE = "views/runs.py"

GET_DATA_IN = """\
Get data in with one of:

* `forgetwatch demo` builds a small demo world (trains tiny models, evaluates them) and loads it;
* `forgetwatch sync --tracking-uri URI` pulls your MLflow runs;
* `forgetwatch ingest DIR` loads lm-evaluation-harness output folders.

The dashboard reads `{db}` (set `FORGETWATCH_DB` to use another file).
"""

LABELS = {  # column -> header shown in tables
    "run_id": "Run id",
    "run_name": "Run",
    "model_id": "Model",
    "experiment_name": "Experiment",
    "status": "Status",
    "base_model": "Base model",
    "method": "Method",
    "kind": "Kind",
    "step": "Step",
    "task": "Task",
    "capability": "Capability",
    "metric": "Metric",
    "filter": "Filter",
    "tasks": "Tasks",
    "learning_rate": "LR",
    "num_train_epochs": "Epochs",
    "max_steps": "Max steps",
    "lora_r": "LoRA r",
}

POINT_COLUMNS = {
    "target_gain": ("Target gain", "Change on target tasks vs base, in points."),
    "general_change": (
        "General change",
        "Mean change on knowledge, code and instructions vs base, in points.",
    ),
    "hallucination_change": (
        "Hallucination change",
        "Change in hallucination rate vs base, in points (positive = hallucinates more).",
    ),
    "base_value": ("Base", "Base model score, in points."),
    "value": ("Score", "This model's score, in points."),
    "delta": ("Delta", "Score minus base score, in points."),
}


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


def fmt_points(value: float | None) -> str:
    """A 0..1 delta as signed points, e.g. 0.123 -> "+12.3"; unknown -> "n/a"."""
    if value is None or pd.isna(value):
        return "n/a"
    points = round(float(value) * 100, 1)
    return f"{points + 0.0:+.1f}"  # + 0.0 turns -0.0 into 0.0


def as_points(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``df`` with its known score/delta columns scaled from fractions to points."""
    out = df.copy()
    for column in POINT_COLUMNS.keys() & set(out.columns):
        out[column] = out[column].astype("Float64") * 100
    return out


def column_config(df: pd.DataFrame) -> dict[str, str | st.column_config.Column]:
    """Readable headers, plus signed one-decimal display and help for point columns."""
    return {column: label for column, label in LABELS.items() if column in df.columns} | {
        column: st.column_config.NumberColumn(
            label,
            help=help_text,
            format="%+.1f" if column.endswith(("gain", "change", "delta")) else "%.1f",
        )
        for column, (label, help_text) in POINT_COLUMNS.items()
        if column in df.columns
    }
