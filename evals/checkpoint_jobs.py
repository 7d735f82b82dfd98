"""Eval jobs for every checkpoint of a run that has none yet.

The Run page's "Evaluate all N checkpoints" button and ``forgetwatch eval
--all-checkpoints RUN`` share these, so both queue the same jobs.
"""

from __future__ import annotations

from typing import Any

from forgetwatch import db, queries
from forgetwatch.errors import BadInputError
from forgetwatch.evals import jobs, targets
from forgetwatch.evals.backends import Placement
from forgetwatch.suite import Suite


def checkpoint_specs(
    run_id: str, suite: Suite, db_path: str | None = None, **options: Any
) -> list[jobs.JobSpec]:
    """One validated spec per checkpoint of ``run_id`` that has no eval yet, by step.

    Checkpoints come from the models table (``kind = 'checkpoint'``). Every spec is
    validated before any is returned, so a missing folder queues nothing.
    """
    with db.connect(db_path, read_only=True) as con:
        info = queries.run_info(con, run_id)
        checkpoints = queries.run_checkpoints(con, run_id)
    if info is None:
        raise BadInputError(
            f"No run {run_id!r} in the database",
            "sync it with `forgetwatch sync`, or check the run id on the Runs page",
            where=run_id,
        )
    if checkpoints.empty:
        raise BadInputError(
            f"Run {info['run_name'] or run_id} has no checkpoints in the database",
            "checkpoint-N folders are found when the run's output folder is on this machine "
            "at `forgetwatch sync`; sync again, or evaluate one model with --model",
            where=run_id,
        )
    name = info["run_name"] or run_id
    return [
        targets.prepare(
            row.path or "",
            suite,
            adapter=row.adapter_path if isinstance(row.adapter_path, str) else None,
            label=f"{name} @ step {row.step}",
            **options,
        )
        for row in checkpoints.itertuples(index=False)
        if not row.evaluated
    ]


def submit_all_checkpoints(
    run_id: str,
    suite: Suite,
    db_path: str | None = None,
    *,
    launched_by: str | None = None,
    where: Placement | None = None,
    **options: Any,
) -> list[str]:
    """Queue one eval job per not-yet-evaluated checkpoint of ``run_id``; return the job ids.

    The Run page's "Evaluate all N checkpoints" button and ``--all-checkpoints`` share it;
    every job records ``launched_by`` and runs on ``where`` (default: the configured backend).
    """
    specs = checkpoint_specs(run_id, suite, db_path, **options)
    return [jobs.submit(s, db_path, launched_by=launched_by, where=where) for s in specs]
