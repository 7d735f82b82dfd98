"""``forgetwatch eval``, ``forgetwatch jobs`` and ``forgetwatch cancel``: the Evals page, scripted.

``eval`` validates and queues through ``forgetwatch.evals.targets.prepare`` and
``forgetwatch.evals.jobs.submit``, exactly like the page's Run button, so a job started
here shows up on the page and the other way round. ``eval --all-checkpoints RUN``
queues one job per checkpoint of a run that has no eval yet, like the Run
page's "Evaluate all checkpoints" button. ``--quick`` runs the quick check
(``forgetwatch.evals.quick_job``) and ``--repeat-base`` the base's second eval
that measures the harness's noise floor, like the Evals page's choices.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from forgetwatch import settings
from forgetwatch.cli.common import add_db_option

# One-line help per command: ``forgetwatch --help`` reads it without building the parser.
HELP = {
    "eval": "run a regression eval as a background job",
    "jobs": "list eval jobs",
    "cancel": "cancel a queued or running eval job",
}


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The lm-eval options shared by one model and all checkpoints."""
    from forgetwatch.evals.partials import repeat_settings

    mode = "quick" if args.quick else "repeat-base" if args.repeat_base else "full"
    extra = repeat_settings(args.batch_size) if mode == "repeat-base" else {}
    return {
        "mode": mode,
        "limit": args.limit,
        "num_fewshot": args.num_fewshot,
        "batch_size": args.batch_size,
        "device": args.device,
        "dtype": args.dtype,
        "allow_code_exec": args.allow_code_exec,
        "trust_remote_code": args.trust_remote_code,
    } | extra


def _wait(job_ids: list[str], db_path: str | None) -> int:
    from forgetwatch.evals import jobs
    from forgetwatch.progress import bar

    failed = 0
    for job_id in job_ids:
        with bar(f"eval {job_id}") as progress:
            while (job := jobs.get_job(job_id, db_path)).status in jobs.ACTIVE:
                progress(int(job.progress * 100), 100, job.stage)
                time.sleep(1)
            progress(int(job.progress * 100), 100, job.status)
        print(f"job {job_id} {job.status} in {job.elapsed_s:.0f} s")
        if job.error:
            print(job.error, file=sys.stderr)
        failed += job.status != "succeeded"
    return 0 if failed == 0 else 1


def cmd_eval(args: argparse.Namespace) -> int:
    from forgetwatch.evals import jobs, targets
    from forgetwatch.evals.checkpoint_jobs import submit_all_checkpoints
    from forgetwatch.suite import load_suite

    suite = load_suite(args.suite or settings.get("suite"))
    _check_mode(args)
    if args.all_checkpoints:
        from forgetwatch import db
        from forgetwatch.queries.resolve import resolve_run

        with db.connect(args.db, read_only=True) as con:
            run_id = resolve_run(con, args.all_checkpoints, where="--all-checkpoints").run_id
        job_ids = submit_all_checkpoints(
            run_id or "", suite, args.db, **_options(args), **_launch(args)
        )
        if not job_ids:
            print(f"every checkpoint of run {args.all_checkpoints} is already evaluated")
            return 0
        print(f"{len(job_ids)} checkpoint eval job(s) queued: {', '.join(job_ids)}")
    else:
        spec = targets.prepare(args.model, suite, adapter=args.adapter, **_options(args))
        _warn_mismatch(args, suite)
        job_ids = [jobs.submit(spec, args.db, **_launch(args))]
        print(f"job {job_ids[0]} queued (log: {jobs.jobs_root(args.db) / job_ids[0] / 'job.log'})")
    return _wait(job_ids, args.db) if args.wait else 0


def _warn_mismatch(args: argparse.Namespace, suite: Any) -> None:
    """Say before queueing when --limit / --num-fewshot differ from the base's earlier eval."""
    from forgetwatch import db, identity
    from forgetwatch.errors import DatabaseMissingError
    from forgetwatch.evals import targets
    from forgetwatch.review import eval_form

    model_id = identity.model_id(args.model, args.adapter)
    hint = identity.model_id(args.model) if args.adapter else None
    try:
        with db.connect(args.db, read_only=True) as con:
            past = eval_form.past_settings(con, model_id, suite.task_names, hint)
    except DatabaseMissingError:
        return
    text = eval_form.mismatch_warning(
        past, targets.suite_limits(suite), targets.task_fewshot_defaults(suite),
        limit=args.limit, num_fewshot=args.num_fewshot, check_limit=not args.quick,
    )  # fmt: skip
    if text:
        print(f"warning: {text}", file=sys.stderr)


def _launch(args: argparse.Namespace) -> dict[str, Any]:
    """Where the job runs (--backend, --ray-address, --gpus, --cpus) and who launched it."""
    from forgetwatch.access import cli_user
    from forgetwatch.evals.backends import placement

    where = placement(args.backend, args.ray_address, args.gpus, args.cpus)
    return {"where": where, "launched_by": cli_user()}


def _check_mode(args: argparse.Namespace) -> None:
    from forgetwatch.errors import BadInputError

    if args.quick and args.limit is not None:
        raise BadInputError(
            "Field --limit: a quick check chooses its own items",
            "drop --limit, or run a full eval without --quick",
            where="forgetwatch eval --quick",
        )
    if args.repeat_base and (args.all_checkpoints or args.adapter):
        raise BadInputError(
            "Field --repeat-base: it re-runs a base model",
            "pass the base's folder with --model, without --adapter or --all-checkpoints",
            where="forgetwatch eval --repeat-base",
        )


def cmd_jobs(args: argparse.Namespace) -> int:
    from forgetwatch.evals import jobs

    for job in jobs.list_jobs(args.db):
        print(
            f"{job.job_id}  {job.status:<9}  {job.progress:>4.0%}  {job.elapsed_s:>6.0f}s  "
            f"{job.backend:<5}  {job.launched_by or '-'}  {job.spec.label}  "
            f"{job.stage if job.status in jobs.ACTIVE else ''}"
        )
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from forgetwatch.evals import jobs

    done = jobs.cancel(args.job_id, args.db)
    print(f"job {args.job_id} {'cancelled' if done else 'had already finished'}")
    return 0 if done else 1


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register eval / jobs / cancel on the ``forgetwatch`` parser."""
    from forgetwatch.evals import targets

    ev = sub.add_parser("eval", help=HELP["eval"])
    add_db_option(ev)
    which = ev.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="model folder (with config.json) or hub id")
    which.add_argument(
        "--all-checkpoints",
        metavar="RUN",
        help="one job per not-yet-evaluated checkpoint of this run (from the database)",
    )
    ev.add_argument("--adapter", help="LoRA adapter folder (with adapter_config.json)")
    ev.add_argument("--suite", help="bundled suite name or suite YAML (default: offline)")
    ev.add_argument("--limit", type=int, help="at most N docs per task")
    ev.add_argument("--num-fewshot", type=int, help="few-shot examples (default: the task's)")
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--device", choices=targets.DEVICES, default="cpu")
    ev.add_argument("--dtype", choices=targets.DTYPES, default="float32")
    ev.add_argument(
        "--allow-code-exec",
        action="store_true",
        help="allow tasks that execute model-written code (sandboxed; off by default)",
    )
    ev.add_argument(
        "--trust-remote-code", action="store_true", help="let the model run its own code (off)"
    )
    kind = ev.add_mutually_exclusive_group()
    kind.add_argument(
        "--quick",
        action="store_true",
        help="quick check: run chosen items in looks and stop once the budget's verdict is "
        "settled (needs the base's full eval)",
    )
    kind.add_argument(
        "--repeat-base",
        action="store_true",
        help="evaluate the base (--model) again with another batch size and seed, and store "
        "base-vs-base flips per task as the harness's noise floor",
    )
    ev.add_argument("--wait", action="store_true", help="wait for the job and show progress")
    ev.add_argument(
        "--backend",
        choices=["local", "ray"],
        help="where the job runs (default: FORGETWATCH_JOB_BACKEND, else local)",
    )
    ev.add_argument("--ray-address", help="Ray dashboard address (default: RAY_ADDRESS)")
    ev.add_argument("--gpus", type=float, help="GPUs the Ray job requests (entrypoint_num_gpus)")
    ev.add_argument("--cpus", type=float, help="CPUs the Ray job requests (entrypoint_num_cpus)")
    ev.set_defaults(func=cmd_eval)

    ls = sub.add_parser("jobs", help=HELP["jobs"])
    add_db_option(ls)
    ls.set_defaults(func=cmd_jobs)

    cn = sub.add_parser("cancel", help=HELP["cancel"])
    add_db_option(cn)
    cn.add_argument("job_id")
    cn.set_defaults(func=cmd_cancel)
