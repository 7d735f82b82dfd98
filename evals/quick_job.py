"""The live quick check: run a chosen subset of items through lm-eval's ``samples=``, in looks.

The worker (``evals.job_main``) calls ``run`` for a ``mode="quick"`` job. It
reads, once and read-only, the base's most recent full eval of every suite
task (per-item values from ``samples``, choice loglikelihoods from the eval's own
samples JSONL for the margins), plans the items with ``forgetwatch.quick``, and
evaluates each look's *new* items with one ``simple_evaluate(samples=...)``
call on a model loaded once. When every capability is settled it writes one
lm-eval results file over the union of the items run (scores recomputed as the
mean of those items: a partial eval, which ``partial_evals`` marks before the
ingest) and returns the outcome for ``quick_checks``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from forgetwatch import db, quick
from forgetwatch.errors import EvalError
from forgetwatch.evals import jobs
from forgetwatch.evals.runner import code_exec_opt_in, save_like_cli
from forgetwatch.identity import model_id
from forgetwatch.queries import partial
from forgetwatch.review.budget import Budget, default_budget_path, load_budget
from forgetwatch.suite import BASELINE_CAPABILITIES, Suite

SEED = 20261203  # fixed, so a replay (bench/bench_quick.py) chooses the same items


def rule_checks(budget: Budget) -> list[quick.RuleCheck]:
    """The budget's limits in fractions, as ``forgetwatch.quick`` checks them."""
    out = []
    for r in budget.rules:
        if r.min_gain is not None:
            out.append(quick.RuleCheck(r.capability, "min_gain", r.min_gain / 100))
        if r.max_drop is not None:
            out.append(
                quick.RuleCheck(r.capability, "max_drop", r.max_drop / 100, r.or_not_significant)
            )
        if r.not_significantly_worse:
            out.append(quick.RuleCheck(r.capability, "not_worse"))
    return out


def margins_from_file(results_file: str | None, task: str) -> dict[int, float]:
    """doc_id -> margin from the samples JSONL next to ``results_file`` (empty if missing)."""
    if not results_file:
        return {}
    path = Path(results_file)
    stamp = path.stem.removeprefix("results_")
    found: dict[int, float] = {}
    for sample_file in path.parent.glob(f"samples_{task}_{stamp}.jsonl"):
        for line in sample_file.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            resps = row.get("filtered_resps") or row.get("resps")
            pairs = [r if isinstance(r, list) else [r] for r in resps or []]
            usable = [p for p in pairs if p and isinstance(p[0], int | float)]
            found.setdefault(int(row["doc_id"]), quick.margin(usable, None))
    return found


BaseItems = dict[str, tuple[list[int], list[float], dict[int, float], bool]]


def build_plans(
    suite: Suite, base_items: BaseItems, seed: int = SEED
) -> dict[str, list[quick.TaskPlan]]:
    """capability -> its tasks' plans from the base's items per task.

    ``base_items``: task -> (doc ids, the base's values, doc id -> margin, higher is
    better). The live job (from the database) and the bench (from lm-eval files) both
    come through here, so they choose the same items.
    """
    plans: dict[str, list[quick.TaskPlan]] = {}
    for t in suite.tasks:
        if t.capability in BASELINE_CAPABILITIES or t.task not in base_items:
            continue
        doc_ids, values, margins, hib = base_items[t.task]
        m = [margins.get(int(d), math.nan) for d in doc_ids]
        m = [quick.margin(None, v) if math.isnan(x) else x for x, v in zip(m, values, strict=True)]
        plans.setdefault(t.capability, []).append(
            quick.plan_task(t.task, doc_ids, values, m, seed=seed, higher_is_better=hib)
        )
    return plans


def plans_from_db(
    con: Any, base_model_id: str, suite: Suite, seed: int = SEED
) -> dict[str, list[quick.TaskPlan]]:
    """capability -> its tasks' plans, from the base's latest full eval of each suite task."""
    tasks = [t for t in suite.tasks if t.capability not in BASELINE_CAPABILITIES]
    wanted = [(t.task, t.metric, t.filter) for t in tasks]
    evals = partial.latest_full_evals(con, base_model_id, wanted)
    base_items: BaseItems = {}
    for row, t in ((r, next(t for t in tasks if t.task == r.task)) for r in evals.itertuples()):
        items = partial.item_values(con, row.eval_id, t.task, t.metric, t.filter)
        hib = t.higher_is_better if t.higher_is_better is not None else bool(row.higher_is_better)
        base_items[t.task] = (
            [int(d) for d in items["doc_id"]],
            items["value"].astype(float).tolist(),
            margins_from_file(row.source_file, t.task),
            hib,
        )
    return build_plans(suite, base_items, seed)


def _value(sample: dict[str, Any], metric: str) -> float:
    v = sample[metric]
    if isinstance(v, list):
        return sum(float(x) for x in v) / len(v) if v else math.nan
    return float(v)


def merge_rounds(rounds: list[dict[str, Any]], suite: Suite) -> dict[str, Any]:
    """One lm-eval results dict over every round's items: scores = the mean of those items."""
    merged = json.loads(json.dumps({k: v for k, v in rounds[-1].items() if k != "samples"},
                                   default=str))  # fmt: skip
    samples: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rounds:
        for key in ("configs", "versions", "n-shot", "higher_is_better", "task_hashes"):
            for task, value in (r.get(key) or {}).items():
                merged.setdefault(key, {})[task] = value
        for task, value in r["results"].items():
            merged["results"].setdefault(task, value)
        for task, rows in r["samples"].items():
            for row in rows:
                samples.setdefault(task, {})[int(row["doc_id"])] = row
    for task, rows in samples.items():
        ordered = [rows[d] for d in sorted(rows)]
        for key in list(merged["results"][task]):
            metric, _, filt = key.partition(",")
            if metric.endswith("_stderr") or not filt:
                continue
            vals = [_value(s, metric) for s in ordered if s.get("filter") == filt and metric in s]
            if not vals:
                continue
            mean = sum(vals) / len(vals)
            var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1) if len(vals) > 1 else 0.0
            merged["results"][task][key] = mean
            merged["results"][task][f"{metric}_stderr,{filt}"] = math.sqrt(var / len(vals))
        n_docs = len({int(s["doc_id"]) for s in ordered})
        original = (merged.get("n-samples", {}).get(task) or {}).get("original", n_docs)
        merged.setdefault("n-samples", {})[task] = {"original": original, "effective": n_docs}
        merged["results"][task]["sample_len"] = n_docs
    merged["samples"] = {t: [rows[d] for d in sorted(rows)] for t, rows in samples.items()}
    return merged


def run(spec: jobs.JobSpec, suite: Suite, out_dir: Path, job_dir: Path, db_path: str) -> dict:
    """Run the quick check; write the merged results under ``out_dir``; return its outcome."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    target = model_id(spec.pretrained, spec.adapter)
    with db.connect(db_path, read_only=True) as con:
        base = partial.base_of(con, target)
        if base is None:
            raise EvalError(
                f"The quick check needs the base of {target}",
                "sync the model's run (or pair it with `forgetwatch pair`) and evaluate the "
                "base on the full suite first",
                where=target,
            )
        plans = plans_from_db(con, base, suite)
    if not plans:
        raise EvalError(
            f"The base {base} has no full eval of this suite's tasks to start from",
            "evaluate the base on the full suite first (a plain `forgetwatch eval --model BASE`)",
            where=base,
        )
    budget = load_budget(default_budget_path())
    include = str(suite.include_path) if suite.include_path else None
    task_manager = TaskManager(include_path=include, include_defaults=include is None)
    lm = HFLM.create_from_arg_string(
        spec.model_args(), {"batch_size": spec.batch_size, "device": spec.device}
    )
    metric_of = {t.task: t.metric for t in suite.tasks}
    filter_of = {t.task: t.filter for t in suite.tasks}
    rounds: list[dict[str, Any]] = []
    tracker = EvaluationTracker(output_path=str(out_dir))  # one folder, one results file

    def evaluate(wanted: dict[str, list[int]]) -> dict[str, dict[int, float]]:
        jobs.write_progress(
            job_dir, stage=f"quick look {len(rounds) + 1}: {sum(map(len, wanted.values()))} "
            "items", fraction=min(0.9, 0.05 + 0.2 * len(rounds)),
        )  # fmt: skip
        with code_exec_opt_in(spec.allow_code_exec):
            res = simple_evaluate(
                model=lm, tasks=list(wanted), samples=wanted, log_samples=True,
                task_manager=task_manager, confirm_run_unsafe_code=spec.allow_code_exec,
                num_fewshot=spec.num_fewshot, evaluation_tracker=tracker,
            )  # fmt: skip
        rounds.append(res)
        out: dict[str, dict[int, float]] = {}
        for task, rows in res["samples"].items():
            for row in rows:
                if row.get("filter") == filter_of.get(task) and metric_of.get(task) in row:
                    out.setdefault(task, {})[int(row["doc_id"])] = _value(row, metric_of[task])
        return out

    result = quick.run_quick(plans, rule_checks(budget), evaluate, alpha=budget.alpha)
    save_like_cli(tracker, merge_rounds(rounds, suite))
    return {"base_model_id": base, "model_id": target, "result": result}
