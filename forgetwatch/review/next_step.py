"""What an empty page says to do next, decided once for every page and command.

A page with nothing to show is usually one step away from an answer: runs were
synced but never evaluated, models were evaluated but have no base, or the
evals' tasks are in no suite. ``next_step`` names the first of these that holds,
with the command (or the page control) that takes the step, so the Runs, Compare
and model pages and ``forgetwatch check``/``export`` say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

from forgetwatch.queries import Con
from forgetwatch.queries.coverage import coverage
from forgetwatch.suite import starter_suite_yaml

# How many task names an empty state lists before "and N more".
SHOWN_TASKS = 8


@dataclass(frozen=True)
class NextStep:
    """An empty state: its title, what to do, and a starter suite when that is the step."""

    title: str
    detail: str
    suite_yaml: str | None = None  # offered as a download / `forgetwatch suite --write`


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN_TASKS])
    more = len(names) - SHOWN_TASKS
    return shown + (f" and {more} more" if more > 0 else "")


def next_step(con: Con) -> NextStep | None:
    """The first thing standing between the database and a comparison, or None."""
    found = coverage(con)
    if found.evaluated_models == 0 and found.runs:
        return NextStep(
            f"{found.runs:,} runs, and no evals yet",
            "Evaluate a run's final model or checkpoints (Run page: Evaluate, or "
            "`forgetwatch eval RUN`), or run lm-eval yourself with `--log_samples` and load "
            "its output folder with `forgetwatch ingest DIR`. Evaluate the base model too.",
        )
    if found.unmapped_tasks and found.evaluated_models and not found.models_on_suite:
        tasks = [task for task, _, _ in found.unmapped_tasks]
        return NextStep(
            f"The evals' {len(tasks)} tasks are in no suite",
            f"Deltas need a suite that says which capability each task measures; these tasks "
            f"are in none: {_listed(tasks)}. Re-ingest with `forgetwatch ingest DIR --suite "
            "FILE`, or start from the suite file below (`forgetwatch suite --write FILE`), "
            "which lists them, each mapped to `other` for you to edit.",
            starter_suite_yaml(found.unmapped_tasks),
        )
    if found.models_without_base:
        return NextStep(
            f"{found.models_without_base:,} evaluated models have no base model",
            "Their deltas need the model they were fine-tuned from. Select them on the Models "
            "and runs page and pick the base, or run `forgetwatch pair MODEL --base BASE` "
            "(`forgetwatch ingest DIR --base BASE` pairs a whole folder).",
        )
    return None


def suite_step(con: Con) -> NextStep | None:
    """The suite step alone, when some evals' tasks are unmapped (even if others are)."""
    found = coverage(con)
    if not found.unmapped_tasks:
        return None
    tasks = [task for task, _, _ in found.unmapped_tasks]
    return NextStep(
        f"{len(tasks)} tasks in the evals are in no suite",
        f"They have no delta until a suite maps them: {_listed(tasks)}. Re-ingest with "
        "`forgetwatch ingest DIR --suite FILE`; the suite file below lists them, each mapped "
        "to `other` for you to edit.",
        starter_suite_yaml(found.unmapped_tasks),
    )
