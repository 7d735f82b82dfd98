"""Sources: what has been collected from where, and buttons to sync MLflow or ingest lm-eval.

The collectors run in this process, like the CLI, and draw one ``st.progress``
from their progress callback. Each writes in short transactions and closes the
file between them, so other pages keep rendering while a sync runs. The table
of sources is read after any collector finished, so it shows the new counts.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import streamlit as st

from forgetwatch import db, queries, settings
from forgetwatch.collectors.report import Progress, SyncReport
from forgetwatch.dashboard import auth, components
from forgetwatch.errors import BadInputError, DatabaseMissingError, ForgetwatchError
from forgetwatch.exports.escaping import escape_markdown

COLUMNS = {
    "source": st.column_config.TextColumn("Source"),
    "kind": st.column_config.TextColumn("Kind"),
    "last_sync": st.column_config.DatetimeColumn("Last sync (UTC)", format="YYYY-MM-DD HH:mm:ss"),
    "runs": st.column_config.NumberColumn("Runs", format="%d"),
    "deleted_runs": st.column_config.NumberColumn(
        "Deleted runs", format="%d", help="Gone from MLflow at the last full sweep; kept here."
    ),
    "evals": st.column_config.NumberColumn("Evals", format="%d"),
    "detail": st.column_config.TextColumn("Last result"),
    "max_start_time": st.column_config.DatetimeColumn(
        "Newest run start", help="Watermark: the next incremental sync reads from here."
    ),
    "max_end_time": st.column_config.DatetimeColumn("Newest run end", help="Watermark."),
    "last_full_sweep": st.column_config.DatetimeColumn("Last full sweep"),
}


def run_collector(label: str, work: Callable[[Progress], SyncReport]) -> None:
    """Run one collector with a progress bar, then show its report or its error."""
    try:
        auth.require_operator("start syncs and ingests")  # in the server, whatever was drawn
    except ForgetwatchError as exc:
        components.show_error(exc)
        return
    bar = st.progress(0.0, text=f"{label}: starting")

    def progress(done: int, total: int, what: str) -> None:
        share = min(done / total, 1.0) if total > 0 else 0.0
        bar.progress(share, text=f"{label}: {done:,} / {total:,} {escape_markdown(what)}")

    try:
        report = work(progress)
    except ForgetwatchError as exc:
        bar.empty()
        components.show_error(exc)
        return
    except duckdb.Error as exc:  # e.g. FORGETWATCH_DB is not a forgetwatch database
        bar.empty()
        components.show_error(
            ForgetwatchError(
                f"Could not write the database: {exc}",
                "Check that FORGETWATCH_DB points at a forgetwatch database file.",
                where=str(settings.db_path()),
            )
        )
        return
    bar.progress(1.0, text=f"{label}: done")
    show_report(report)


def show_report(report: SyncReport) -> None:
    """The collector's summary line; rejected inputs are listed one per line."""
    headline, *_ = report.summary().split("\n")
    if report.ok:
        st.success(escape_markdown(headline), icon=":material/check_circle:")
        return
    lines = "\n".join(f"* {escape_markdown(err)}" for err in report.errors)
    st.warning(f"{escape_markdown(headline)}\n\n{lines}", icon=":material/warning:")


def sync_form() -> None:
    with st.form("sync-form"):
        st.subheader("Sync MLflow")
        uri = st.text_input(
            "Tracking URI",
            value=settings.get("tracking_uri"),
            placeholder="http://127.0.0.1:5000 or sqlite:///mlflow.db",
            help="Defaults to MLFLOW_TRACKING_URI.",
            key="sync-uri",
        )
        names = st.text_input(
            "Experiments", placeholder="all experiments", help="Comma-separated names.",
            key="sync-experiments",
        )  # fmt: skip
        full = st.checkbox(
            "Full sweep",
            help="Re-read every run (and mark runs deleted in MLflow) instead of only "
            "what changed since the last sync.",
            key="sync-full",
        )
        submitted = st.form_submit_button("Sync MLflow", icon=":material/sync:", type="primary")
    if not submitted:
        return
    if not uri.strip():
        components.show_error(
            BadInputError("No tracking URI given", "Enter the MLflow server's URL above.")
        )
        return
    from forgetwatch.collectors import mlflow_runs  # imports mlflow: only when a sync is asked for

    experiments = [n.strip() for n in names.split(",") if n.strip()] or None
    run_collector(
        "Syncing runs",
        lambda progress: mlflow_runs.sync(
            uri.strip(), settings.db_path(), experiments=experiments, progress=progress, full=full
        ),
    )


def ingest_form() -> None:
    with st.form("ingest-form"):
        st.subheader("Ingest lm-eval folder")
        path = st.text_input(
            "Folder",
            placeholder="/path/to/lm-eval --output_path",
            help="Every results_*.json below it is ingested with its samples files.",
            key="ingest-path",
        )
        submitted = st.form_submit_button("Ingest", icon=":material/upload:", type="primary")
    if not submitted:
        return
    if not path.strip():
        components.show_error(
            BadInputError("No folder given", "Enter an lm-eval --output_path folder above.")
        )
        return
    from forgetwatch.collectors import lm_eval_results
    from forgetwatch.suite import load_suite

    def work(progress: Progress) -> SyncReport:
        suite = load_suite(settings.get("suite"))
        return lm_eval_results.ingest(
            [path.strip()], settings.db_path(), suite=suite, progress=progress
        )

    run_collector("Ingesting results", work)


def sources_table() -> None:
    """The sources collected so far; an empty state when there are none."""
    try:
        with db.connect(read_only=True) as con:
            frame = queries.sources(con)
    except DatabaseMissingError:
        components.empty_state(
            "Nothing collected yet", "Sync an MLflow server or ingest an lm-eval folder below."
        )
        return
    except ForgetwatchError as exc:
        components.show_error(exc)
        return
    if frame.empty:
        components.empty_state(
            "Nothing collected yet", "Sync an MLflow server or ingest an lm-eval folder below."
        )
        return
    st.dataframe(frame, hide_index=True, column_config=COLUMNS, key="sources-table")


st.title("Sources")
table_slot = st.container()
if auth.can_operate():
    left, right = st.columns(2)
    with left:
        sync_form()
    with right:
        ingest_form()
else:  # viewers browse what was collected; operators start syncs
    auth.viewer_note("start syncs and ingests")
with table_slot:  # filled last, so it already counts what a form just collected
    sources_table()
