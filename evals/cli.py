"""``forgetwatch eval``, ``forgetwatch jobs`` and ``forgetwatch cancel``: the Evals page, scripted.

``eval`` validates and queues through ``evals.targets.prepare`` and
``evals.jobs.submit``, exactly like the page's Run button, so a job started
here shows up on the page and the other way round.
"""

from __future__ import annotations

import argparse
import sys
import time

from evals import jobs, targets
from evals.suite import load_suite
from forgetwatch import settings

DEVICES = ("cpu", "cuda", "auto")
DTYPES = ("float32", "bfloat16", "float16", "auto")


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", default=None, help=f"DuckDB file (default: ${settings.SETTINGS['db'].env})"
    )


def cmd_eval(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite or settings.get("suite"))
    spec = targets.prepare(
        args.model,
        suite,
        adapter=args.adapter,
        limit=args.limit,
        num_fewshot=args.num_fewshot,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        allow_code_exec=args.allow_code_exec,
        trust_remote_code=args.trust_remote_code,
    )
    job_id = jobs.submit(spec, args.db)
    print(f"job {job_id} queued (log: {jobs.jobs_root(args.db) / job_id / 'job.log'})")
    if not args.wait:
        return 0
    from forgetwatch.progress import bar

    with bar(f"eval {job_id}") as progress:
        while (job := jobs.get_job(job_id, args.db)).status in jobs.ACTIVE:
            progress(int(job.progress * 100), 100, job.stage)
            time.sleep(1)
        progress(int(job.progress * 100), 100, job.status)
    print(f"job {job_id} {job.status} in {job.elapsed_s:.0f} s")
    if job.error:
        print(job.error, file=sys.stderr)
    return 0 if job.status == "succeeded" else 1


def cmd_jobs(args: argparse.Namespace) -> int:
    for job in jobs.list_jobs(args.db):
        print(
            f"{job.job_id}  {job.status:<9}  {job.progress:>4.0%}  {job.elapsed_s:>6.0f}s  "
            f"{job.spec.label}  {job.stage if job.status == 'running' else ''}"
        )
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    done = jobs.cancel(args.job_id, args.db)
    print(f"job {args.job_id} {'cancelled' if done else 'had already finished'}")
    return 0 if done else 1


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register eval / jobs / cancel on the ``forgetwatch`` parser."""
    ev = sub.add_parser("eval", help="run a regression eval as a background job")
    _add_db(ev)
    ev.add_argument("--model", required=True, help="model folder (with config.json) or hub id")
    ev.add_argument("--adapter", help="LoRA adapter folder (with adapter_config.json)")
    ev.add_argument("--suite", help="bundled suite name or suite YAML (default: offline)")
    ev.add_argument("--limit", type=int, help="at most N docs per task")
    ev.add_argument("--num-fewshot", type=int, help="few-shot examples (default: the task's)")
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--device", choices=DEVICES, default="cpu")
    ev.add_argument("--dtype", choices=DTYPES, default="float32")
    ev.add_argument(
        "--allow-code-exec",
        action="store_true",
        help="allow tasks that execute model-written code (sandboxed; off by default)",
    )
    ev.add_argument(
        "--trust-remote-code", action="store_true", help="let the model run its own code (off)"
    )
    ev.add_argument("--wait", action="store_true", help="wait for the job and show progress")
    ev.set_defaults(func=cmd_eval)

    ls = sub.add_parser("jobs", help="list eval jobs")
    _add_db(ls)
    ls.set_defaults(func=cmd_jobs)

    cn = sub.add_parser("cancel", help="cancel a queued or running eval job")
    _add_db(cn)
    cn.add_argument("job_id")
    cn.set_defaults(func=cmd_cancel)
