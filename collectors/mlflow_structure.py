"""What hangs off MLflow runs besides metrics: LoggedModel checkpoints, registered
model versions, and lm-eval results logged as run artifacts.

``mlflow_runs.sync`` calls ``sync_structure`` once per sync with the runs it found
new or changed, after their rows are written.
"""

from __future__ import annotations

import os

from mlflow.tracking import MlflowClient

from collectors.report import Progress, SyncReport, no_progress


def sync_structure(
    client: MlflowClient,
    uri: str,
    db_path: str | os.PathLike[str] | None,
    *,
    experiment_ids: list[str],
    changed_run_ids: list[str],
    report: SyncReport,
    progress: Progress = no_progress,
) -> None:
    """Collect LoggedModels, registered versions and artifact results for these runs."""
    # Filled in by the structure collector work; the seam exists so the sync loop
    # and the structure collector can evolve separately.
    return None
