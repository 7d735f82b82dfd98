"""The detached worker of one eval job: ``python -m forgetwatch.evals.job_main JOB_ID --db PATH``.

It reads its spec from the job folder (not the database, which others may be
writing), evaluates into ``partial/`` with progress written to
``progress.json``, renames ``partial/`` to ``output/`` only when lm-eval
finished, ingests ``output/`` with the job's suite, and then records the outcome
in the jobs row: the only database writes it makes. Whatever happens, it
finally starts the next queued job. A kill -9 skips all of that; readers then
see the dead pid and mark the job failed (``forgetwatch.evals.jobs.list_jobs``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from forgetwatch import db
from forgetwatch.collectors import lm_eval_results
from forgetwatch.errors import EvalError
from forgetwatch.evals import job_log, jobs, partials
from forgetwatch.evals.progress_lm import PHASE_OF_OUTPUT_TYPE, ProgressLM
from forgetwatch.evals.runner import code_exec_opt_in, save_like_cli
from forgetwatch.identity import model_id
from forgetwatch.suite import Suite, load_suite

# Share of the bar before evaluation starts (imports, model load) and for the ingest after it.
LOAD_SHARE, INGEST_SHARE = 0.05, 0.05


class Reporter:
    """Turns ``ProgressLM`` phase reports into one overall fraction in progress.json."""

    def __init__(self, job_dir: Path, phases: list[str]) -> None:
        self.job_dir = job_dir
        self.phases = phases or ["evaluate"]
        self.finished: set[str] = set()

    def __call__(self, phase: str, done: int, total: int) -> None:
        if total and done >= total:
            self.finished.add(phase)
        current = 0.0 if phase in self.finished else done / max(total, 1)
        share = (len(self.finished) + current) / len(self.phases)
        fraction = LOAD_SHARE + (1 - LOAD_SHARE - INGEST_SHARE) * min(share, 1.0)
        jobs.write_progress(
            self.job_dir, stage=f"{phase} {done}/{total}", fraction=round(fraction, 4)
        )


def _plan(suite: Suite, limit: int | None, task_manager: object) -> tuple[dict, list[str]]:
    """Per-task doc indices (suite and job limits, as in evals.runner) and the request phases."""
    tasks = task_manager.load(suite.task_names)["tasks"]  # type: ignore[attr-defined]
    samples = {}
    for t in suite.tasks:
        caps = [x for x in (t.limit, limit) if x is not None]
        if caps:
            samples[t.task] = list(range(min(min(caps), len(tasks[t.task].eval_docs))))
    phases = {
        PHASE_OF_OUTPUT_TYPE.get(task.get_config("output_type"), "") for task in tasks.values()
    }
    return samples, sorted(phases - {""})


def evaluate(spec: jobs.JobSpec, suite: Suite, out_dir: Path, job_dir: Path) -> Path:
    """Run lm-eval like the CLI would (same files, same model_args); return the results path."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    include = str(suite.include_path) if suite.include_path else None
    task_manager = TaskManager(include_path=include, include_defaults=include is None)
    missing = [t for t in suite.task_names if t not in task_manager.all_tasks]
    if missing:
        raise EvalError(
            f"lm-eval does not know task(s): {', '.join(missing)}", where=str(suite.path)
        )
    samples, phases = _plan(suite, spec.limit, task_manager)
    model_args = spec.model_args()
    inner = HFLM.create_from_arg_string(
        model_args, {"batch_size": spec.batch_size, "device": spec.device}
    )
    lm = ProgressLM(inner, Reporter(job_dir, phases), min_chunk=spec.batch_size)
    tracker = EvaluationTracker(output_path=str(out_dir))
    seeds = {}
    if spec.seed is not None:  # a repeat of the base: lm-eval's sampling seeds, not few-shot's
        seeds = {"random_seed": spec.seed, "numpy_random_seed": spec.seed,
                 "torch_random_seed": spec.seed}  # fmt: skip
    with code_exec_opt_in(spec.allow_code_exec):
        results = simple_evaluate(
            **seeds,
            model=lm,
            model_args=model_args,
            tasks=suite.task_names,
            num_fewshot=spec.num_fewshot,
            samples=samples or None,
            log_samples=True,
            evaluation_tracker=tracker,
            task_manager=task_manager,
            confirm_run_unsafe_code=spec.allow_code_exec,
        )
    if results is None:
        raise EvalError("lm-eval returned no results", "see the log", where=spec.pretrained)
    save_like_cli(tracker, results)
    return out_dir


def run(job_id: str, db_path: str) -> int:
    """Evaluate, move into place, ingest, record; 0 on success."""
    job_dir = jobs.jobs_root(db_path) / job_id
    partial, output = job_dir / "partial", job_dir / "output"
    try:
        spec = jobs.JobSpec.from_json((job_dir / "spec.json").read_text())
        suite = load_suite(spec.suite)
        jobs.write_progress(job_dir, stage="loading model", fraction=0.0)
        shutil.rmtree(partial, ignore_errors=True)
        quick_outcome = None
        if spec.mode == "quick":
            from forgetwatch.evals import quick_job  # pandas, scipy and the budget: quick only

            quick_outcome = quick_job.run(spec, suite, partial, job_dir, db_path)
        else:
            evaluate(spec, suite, partial, job_dir)
        shutil.rmtree(output, ignore_errors=True)
        partial.rename(output)
        source = partials.results_file(output) if spec.mode != "full" else None
        if source is not None:  # marked before the ingest: never a full eval, even for a moment
            items = quick_outcome["result"].items if quick_outcome else None
            partials.mark(db_path, source, spec.mode, job_id, items)
        jobs.write_progress(job_dir, stage="ingesting", fraction=1 - INGEST_SHARE)
        report = lm_eval_results.ingest([output], db_path, suite=suite)
        print(report.summary(), flush=True)
        if not report.ok or report.inserted + report.skipped == 0:
            raise EvalError("Ingest rejected the results", report.summary(), where=str(output))
        if quick_outcome is not None and source is not None:
            partials.store_quick_check(db_path, job_id, quick_outcome, source)
        if spec.mode == "repeat-base" and source is not None:
            settings_text = f"batch size {spec.batch_size}, seed {spec.seed}"
            base_id = model_id(spec.pretrained, spec.adapter)
            n = partials.store_noise_floor(db_path, base_id, source, suite, settings_text)
            print(f"noise floor: {n} task(s) measured", flush=True)
        status, error = "succeeded", None
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the jobs row
        traceback.print_exc()
        shutil.rmtree(partial, ignore_errors=True)
        status = "failed"
        sys.stderr.flush()  # the traceback must be in the file before its tail is read
        tail = job_log.quiet_tail(job_dir / "job.log", 1500).text  # notices would crowd it out
        error = f"{type(exc).__name__}: {exc}\n\nLog tail:\n{tail}"
    jobs.write_progress(job_dir, stage=status, fraction=1.0 if status == "succeeded" else 0.0)
    with db.connect(db_path) as con:
        jobs.mark_finished(con, job_id, status, error)
    jobs.start_next(db_path)
    return 0 if status == "succeeded" else 1


# --- the Ray backend (forgetwatch.evals.ray_backend): evaluate there, ingest here --------


def _job_suite(path: str) -> Suite:
    """The spec's suite; a bundled one by name when the launcher's install path differs."""
    return load_suite(path if Path(path).exists() else Path(path).stem)


def evaluate_only(job_id: str, job_dir: Path) -> int:
    """A Ray job's entrypoint: evaluate into ``output/`` in the shared job folder, no database.

    The exit status is what Ray reports (0: succeeded); the launcher then ingests
    ``output/`` (``ingest_output``), so nothing partial is ever ingested.
    """
    partial, output = job_dir / "partial", job_dir / "output"
    try:
        spec = jobs.JobSpec.from_json((job_dir / "spec.json").read_text())
        suite = _job_suite(spec.suite)
        jobs.write_progress(job_dir, stage="loading model", fraction=0.0)
        shutil.rmtree(partial, ignore_errors=True)
        evaluate(spec, suite, partial, job_dir)
        shutil.rmtree(output, ignore_errors=True)
        partial.rename(output)
    except BaseException:  # noqa: BLE001 - Ray reports the exit status and keeps the log
        traceback.print_exc()
        shutil.rmtree(partial, ignore_errors=True)
        jobs.write_progress(job_dir, stage="failed", fraction=0.0)
        return 1
    jobs.write_progress(job_dir, stage="evaluated", fraction=1 - INGEST_SHARE)
    return 0


def ingest_output(job_id: str, db_path: str | Path) -> tuple[str, str | None]:
    """Ingest a finished Ray job's ``output/``; its final (status, error) for the jobs row."""
    job_dir = jobs.jobs_root(db_path) / job_id
    output = job_dir / "output"
    if not output.is_dir():
        return "failed", (
            f"Ray reports the job succeeded, but its output {output} is not visible here: "
            "set FORGETWATCH_JOBS_DIR to a folder the cluster's workers and this machine "
            "share (the same path on both)."
        )
    try:
        spec = jobs.JobSpec.from_json((job_dir / "spec.json").read_text())
        report = lm_eval_results.ingest([output], db_path, suite=_job_suite(spec.suite))
    except Exception as exc:  # noqa: BLE001 - every failure must reach the jobs row
        return "failed", f"{type(exc).__name__}: {exc}"
    if not report.ok or report.inserted + report.skipped == 0:
        return "failed", f"Ingest rejected the results: {report.summary()}"
    jobs.write_progress(job_dir, stage="succeeded", fraction=1.0)
    return "succeeded", None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job_id")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--db", help="DuckDB file holding the jobs table")
    where.add_argument(
        "--job-dir", type=Path, help="evaluate only, into this (shared) job folder (Ray)"
    )
    args = parser.parse_args(argv)
    if args.job_dir is not None:
        return evaluate_only(args.job_id, args.job_dir)
    return run(args.job_id, args.db)


if __name__ == "__main__":
    sys.exit(main())
