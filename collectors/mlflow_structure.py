"""What hangs off MLflow runs besides metrics: LoggedModel checkpoints, registered
model versions, and lm-eval results logged as run artifacts.

``mlflow_runs.sync`` calls ``sync_structure`` once per sync with the runs it found
new or changed, after their rows are written, so every LoggedModel and version
can be tied to its run's row (base model, output_dir) in set-based SQL.

Model naming (so evals and MLflow meet in ``models``): a LoggedModel named
``checkpoint-N`` whose run logged an ``output_dir`` is the models row
``<output_dir>/checkpoint-N`` (``+peft=`` for adapters), the same row the local
checkpoint folder and an lm-eval run on it produce. Any other LoggedModel is
``models:/<logged_model_id>``, MLflow's own URI for it. Artifact results are found
and ingested by ``forgetwatch.collectors.mlflow_artifacts``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TypeVar

import duckdb
import pandas as pd
from mlflow.entities import LoggedModel
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from forgetwatch import db
from forgetwatch.collectors import mlflow_artifacts
from forgetwatch.collectors.linking import apply_bases, checkpoint_step, model_id
from forgetwatch.collectors.mlflow_access import client_limits, wrap_mlflow_error
from forgetwatch.collectors.mlflow_models import Mention, upsert_models
from forgetwatch.collectors.report import Progress, SyncReport, no_progress

LOGGED_MODEL_PAGE = 100
VERSION_PAGE = 1000
_MODELS_URI = re.compile(r"^models:/(m-[0-9a-zA-Z]+)(?:/|$)")
_RUNS_URI = re.compile(r"^runs:/([0-9a-zA-Z]+)(?:/|$)")

T = TypeVar("T")
_LM_COLUMNS = [
    "logged_model_id", "run_id", "experiment_id", "name", "step", "artifact_uri", "status",
    "created_at", "param_keys", "param_values", "tag_keys", "tag_values",
]  # fmt: skip


def _ms(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC).replace(tzinfo=None) if value else None


def _pages(fetch: Callable[[str | None], list[T]]) -> Iterator[T]:
    """Every item of an MLflow paged search (a PagedList with ``.token``)."""
    token: str | None = None
    while True:
        page = fetch(token)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


# --- LoggedModels ------------------------------------------------------------------


def logged_model_step(model: LoggedModel) -> int | None:
    """N of ``checkpoint-N`` (the HF Trainer logs step 0), else the latest metric step."""
    step = checkpoint_step(model.name or "")
    if step is not None:
        return step
    steps = [m.step for m in model.metrics or [] if m.step]
    return max(steps) if steps else None


def _logged_model_row(model: LoggedModel) -> dict[str, object]:
    return {
        "logged_model_id": model.model_id,
        "run_id": model.source_run_id,
        "experiment_id": model.experiment_id,
        "name": model.name,
        "step": logged_model_step(model),
        "artifact_uri": model.artifact_location,
        "status": str(getattr(model.status, "value", model.status)),
        "created_at": _ms(model.creation_timestamp),
        "param_keys": list(model.params or {}),
        "param_values": list((model.params or {}).values()),
        "tag_keys": list(model.tags or {}),
        "tag_values": list((model.tags or {}).values()),
    }


def fetch_logged_models(client: MlflowClient, experiment_ids: list[str]) -> pd.DataFrame:
    """All LoggedModels of these experiments, one row each, paged."""

    def fetch(token: str | None) -> list[LoggedModel]:
        return client.search_logged_models(
            experiment_ids=experiment_ids, max_results=LOGGED_MODEL_PAGE, page_token=token
        )

    rows = [_logged_model_row(m) for m in _pages(fetch)] if experiment_ids else []
    return pd.DataFrame(rows, columns=_LM_COLUMNS)


# Which models row each LoggedModel with a known run becomes (see the module docstring).
_LOGGED_MODEL_TARGETS = """
SELECT lm.logged_model_id, lm.step, r.base_model, r.method IN ('lora', 'qlora', 'peft') AS lora,
       CASE WHEN lm.step IS NOT NULL AND checkpoint_name AND r.output_dir IS NOT NULL
            THEN r.output_dir || '/' || lm.name
            ELSE 'models:/' || lm.logged_model_id END AS path
FROM (SELECT *, regexp_full_match(name, 'checkpoint-\\d+') AS checkpoint_name
      FROM logged_models WHERE logged_model_id IN (SELECT logged_model_id FROM incoming_lm)) lm
JOIN runs r USING (run_id)
"""


def write_logged_models(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> None:
    """Upsert ``logged_models`` and the models rows they become, in one transaction."""
    con.register("incoming_lm", rows)
    with db.transaction(con):
        con.execute(
            """
            INSERT OR REPLACE INTO logged_models (logged_model_id, run_id, experiment_id, name,
                step, artifact_uri, status, created_at, model_id, params, tags)
            SELECT i.logged_model_id, i.run_id, i.experiment_id, i.name, i.step, i.artifact_uri,
                   i.status, i.created_at, old.model_id,
                   map(i.param_keys, i.param_values), map(i.tag_keys, i.tag_values)
            FROM incoming_lm i LEFT JOIN logged_models old USING (logged_model_id)
            """
        )
        targets = con.execute(_LOGGED_MODEL_TARGETS).fetchall()
        mentions: list[Mention] = []
        links = []
        for logged_id, step, base, lora, path in targets:
            kind = "checkpoint" if step is not None else "final"
            # Same spelling as the run's local checkpoints: LoRA checkpoints are adapters.
            use_adapter = bool(lora and base)
            pretrained, adapter = (base, path) if use_adapter else (path, None)
            mentions.append((pretrained, adapter, kind))
            links.append((logged_id, model_id(pretrained, adapter)))
        upsert_models(con, mentions)
        con.register("incoming_links", pd.DataFrame(links, columns=["logged_model_id", "model_id"]))
        _link_logged_models(con)
    con.unregister("incoming_lm")
    con.unregister("incoming_links")


def _link_logged_models(con: duckdb.DuckDBPyConnection) -> None:
    """Store each LoggedModel's models row, and give that row its run, step and base."""
    con.execute(
        """
        UPDATE logged_models SET model_id = l.model_id
        FROM incoming_links l WHERE logged_models.logged_model_id = l.logged_model_id
        """
    )
    con.execute(
        """
        UPDATE models SET run_id = lm.run_id, step = lm.step,
               kind = CASE WHEN lm.step IS NULL THEN 'final' ELSE 'checkpoint' END
        FROM logged_models lm JOIN runs r USING (run_id)
        WHERE models.model_id = lm.model_id
          AND lm.logged_model_id IN (SELECT logged_model_id FROM incoming_links)
        """
    )
    apply_bases(con)  # the run's base, unless a rule that outranks it applies


# --- Registered model versions -------------------------------------------------------


def logged_model_of(version: ModelVersion) -> str | None:
    """The LoggedModel a version points at: its ``model_id``, or a ``models:/m-...`` source."""
    explicit = getattr(version, "model_id", None)
    if explicit:
        return str(explicit)
    match = _MODELS_URI.match(version.source or "")
    return match.group(1) if match else None


def _version_row(version: ModelVersion) -> dict[str, object]:
    runs_source = _RUNS_URI.match(version.source or "")
    return {
        "name": version.name,
        "version": str(version.version),
        "run_id": version.run_id or (runs_source.group(1) if runs_source else None),
        "source": version.source,
        "logged_model_id": logged_model_of(version),
        "status": version.status,
        "aliases": list(version.aliases or []),
        "created_at": _ms(version.creation_timestamp),
    }


_VERSION_COLUMNS = [
    "name", "version", "run_id", "source", "logged_model_id", "status", "aliases", "created_at",
]  # fmt: skip


def fetch_versions(client: MlflowClient) -> pd.DataFrame:
    """Every registered model version the server shows us, paged."""

    def fetch(token: str | None) -> list[ModelVersion]:
        return client.search_model_versions(max_results=VERSION_PAGE, page_token=token)

    rows = [_version_row(v) for v in _pages(fetch)]
    return pd.DataFrame(rows, columns=_VERSION_COLUMNS)


def write_versions(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> None:
    """Upsert versions, then point each at its LoggedModel's models row, else its run's final."""
    con.register("incoming_versions", rows)
    with db.transaction(con):
        con.execute(
            """
            INSERT OR REPLACE INTO registered_versions (name, version, run_id, source,
                logged_model_id, status, aliases, created_at)
            SELECT name, version, run_id, source, logged_model_id, status,
                   CAST(aliases AS VARCHAR[]), created_at
            FROM incoming_versions
            """
        )
        con.execute(
            """
            UPDATE registered_versions v SET model_id = coalesce(
                (SELECT lm.model_id FROM logged_models lm
                 WHERE lm.logged_model_id = v.logged_model_id),
                (SELECT min(m.model_id) FROM models m
                 WHERE m.run_id = v.run_id AND m.kind = 'final'))
            """
        )
    con.unregister("incoming_versions")


# --- Entry point -------------------------------------------------------------------


def sync_structure(
    client: MlflowClient,
    uri: str,
    db_path: str | os.PathLike[str] | None,
    *,
    experiment_ids: list[str],
    changed_run_ids: list[str],
    report: SyncReport,
    progress: Progress = no_progress,
    artifact_uris: Mapping[str, str] | None = None,
) -> None:
    """Collect LoggedModels, registered versions and artifact results for these runs.

    LoggedModels and versions are read in full before the database is opened, so
    a server failure (raised as ``SourceUnavailableError``) writes none of them;
    an artifact a single run cannot serve is one line in ``report.errors``.
    ``artifact_uris`` (run id -> artifact URI, as the run search reported it) spares
    the run lookup behind each listing: local folders are read on disk, others through
    their artifact repository.
    """
    with client_limits():
        try:
            logged = fetch_logged_models(client, experiment_ids)
            progress(1, 3, "logged models")
            versions = fetch_versions(client)
            progress(2, 3, "registered versions")
        except MlflowException as exc:
            raise wrap_mlflow_error(uri, exc, "read logged models or registered versions") from exc
        with db.connect(db_path) as con:
            write_logged_models(con, logged)
            write_versions(con, versions)
        progress(3, 3, "models")
        try:
            mlflow_artifacts.ingest_artifacts(
                client, db_path, changed_run_ids, report, progress, artifact_uris
            )
        except MlflowException as exc:
            raise wrap_mlflow_error(uri, exc, "read run artifacts") from exc
