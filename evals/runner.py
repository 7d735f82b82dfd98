"""Evaluate several models on a suite in one process, writing what the lm-eval CLI writes.

The CLI spends ~11 s per call indexing every built-in task; here one
``TaskManager`` that indexes only the suite's tasks is shared by all models, and
lm-eval's own ``EvaluationTracker`` writes ``<output_dir>/<sanitised model
name>/results_<ts>.json`` + ``samples_<task>_<ts>.jsonl``, so collectors read
runner output and CLI output the same way. ``model_args`` carry absolute
``pretrained=`` and ``peft=`` paths: collectors link evals to runs by them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgetwatch import settings
from forgetwatch.errors import EvalError
from forgetwatch.evals.sandbox import OPT_IN_HINT
from forgetwatch.identity import normalise_path
from forgetwatch.suite import Suite

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ModelSpec:
    """One model for lm-eval's ``hf`` backend; ``peft``: a LoRA adapter on ``pretrained``."""

    pretrained: str
    peft: str | None = None
    dtype: str = "float32"
    device: str = "cpu"

    def model_args(self) -> str:
        args = f"pretrained={normalise_path(self.pretrained)}"  # hub ids stay as given
        if self.peft:
            args += f",peft={normalise_path(self.peft)}"
        return args + f",dtype={self.dtype}"


def _task_samples(
    suite: Suite, limit: int | None, task_manager: object
) -> dict[str, list[int]] | None:
    """Per-task doc indices: the smallest of the suite's ``limit``, the call's and the doc count.

    lm-eval's own ``limit`` is one number for all tasks; its ``samples`` argument
    takes per-task indices (which must exist), so per-task limits go through it.
    """
    capped = {
        t.task: min(x for x in (t.limit, limit) if x is not None)
        for t in suite.tasks
        if t.limit is not None or limit is not None
    }
    if not capped:
        return None
    tasks = task_manager.load(list(capped))["tasks"]  # type: ignore[attr-defined]
    return {name: list(range(min(cap, len(tasks[name].eval_docs)))) for name, cap in capped.items()}


def code_exec_opt_in(allowed: bool) -> contextlib.AbstractContextManager[None]:
    """Expose the caller's opt-in to the sandbox (it reads the setting) for this run only."""
    values = {settings.SETTINGS["allow_code_exec"].env: "1"} if allowed else {}
    return settings.temporary_env(**values)


def save_like_cli(tracker: Any, results: dict[str, Any]) -> None:
    """Write results + per-task samples exactly as the ``lm_eval`` CLI's tracker does.

    ``simple_evaluate`` writes nothing itself; collectors expect the CLI's files.
    """
    from lm_eval.utils import handle_non_serializable

    logged = results.pop("samples")
    # Round-trip like the CLI does, so the saved JSON is plain data.
    plain = json.loads(json.dumps(results, default=handle_non_serializable))
    tracker.save_results_aggregated(results=plain, samples=logged)
    for task_name in plain["configs"]:
        tracker.save_results_samples(task_name=task_name, samples=logged[task_name])


def _evaluate_one(
    spec: ModelSpec,
    suite: Suite,
    output_dir: Path,
    task_manager: object,
    *,
    samples: dict[str, list[int]] | None,
    allowed: bool,
    batch_size: int | str,
) -> Path:
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(output_path=str(output_dir))
    try:
        results = simple_evaluate(
            model="hf",
            model_args=spec.model_args(),
            tasks=suite.task_names,
            device=spec.device,
            batch_size=batch_size,
            samples=samples,
            log_samples=True,
            evaluation_tracker=tracker,
            task_manager=task_manager,
            confirm_run_unsafe_code=allowed,
        )
    except ValueError as e:
        if "unsafe" in str(e):
            raise EvalError(
                "The suite has tasks that execute model-written code", OPT_IN_HINT
            ) from e
        raise
    if results is None:
        raise EvalError("lm-eval returned no results", "check the log above", where=spec.pretrained)
    save_like_cli(tracker, results)
    name = tracker.general_config_tracker.model_name_sanitized
    return output_dir / name / f"results_{tracker.date_id}.json"


def run_suite(
    models: list[ModelSpec],
    suite: Suite,
    output_dir: Path,
    *,
    limit: int | None = None,
    allow_code_exec: bool = False,
    batch_size: int | str = 16,
    progress: Progress | None = None,
) -> list[Path]:
    """Evaluate ``models`` on ``suite`` in this process; return the results JSON paths.

    Tasks that execute model-written code run only with ``allow_code_exec=True``
    or ``FORGETWATCH_ALLOW_CODE_EXEC=1``; otherwise this raises ``EvalError``.
    """
    from lm_eval.tasks import TaskManager

    allowed = allow_code_exec or settings.code_exec_allowed()
    include = str(suite.include_path) if suite.include_path else None
    task_manager = TaskManager(include_path=include, include_defaults=include is None)
    missing = [t for t in suite.task_names if t not in task_manager.all_tasks]
    if missing:
        raise EvalError(
            f"lm-eval does not know task(s): {', '.join(missing)}",
            "check the task names and the suite's include_path",
            where=str(suite.path),
        )
    samples = _task_samples(suite, limit, task_manager)
    output_dir = Path(output_dir)
    paths = []
    with code_exec_opt_in(allowed):
        for i, spec in enumerate(models):
            if progress:
                progress("eval", i, len(models))
            paths.append(
                _evaluate_one(
                    spec,
                    suite,
                    output_dir,
                    task_manager,
                    samples=samples,
                    allowed=allowed,
                    batch_size=batch_size,
                )
            )
    if progress:
        progress("eval", len(models), len(models))
    return paths
