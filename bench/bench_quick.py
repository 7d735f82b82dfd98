"""The quick check against the full suite, replayed on real per-sample results.

    python bench/bench_quick.py [--workspace DIR] [--seeds 1]

1. **A small real world** (cached in ``--workspace``): the quick demo profile's
   pretraining and its two fine-tunes (a full run that forgets a lot, a LoRA
   run), plus a gentle full run (lr 1e-4, 2 epochs) that barely forgets, each
   with its ``checkpoint-N`` folders: 10 models, every one evaluated once on the
   *whole* bundled offline suite (no ``--limit``; the suite caps HumanEval at 10).
2. **The replay.** For each (model, capability) case the quick procedure runs as
   the live job does (``evals.quick_job.build_plans`` with the job's seed, then
   ``forgetwatch.quick.run_quick``), except that "evaluating" an item reads the
   model's stored result for it. The full-suite verdict comes from the same
   statistics the product stores (``stats.paired_binary`` / ``paired_continuous``
   per capability, Holm across the model's capabilities) and the same rule check
   (``review.budget._check``), against the default budget.
3. **Injected effects.** Hard cases near each limit: a real eval (the base itself,
   and every model) with a chosen number of its items flipped (right to wrong for
   a drop, wrong to right for a gain), picked uniformly at random, not by margin,
   so the injection does not favour the quick check's item choice.

A case is **hard** when its full-suite capability delta lies within twice the
rule's limit of the limit (``max_drop L``: delta in [-3L, L]; ``min_gain G``:
[-G, 3G]; ``not_significantly_worse``: within 2 points of 0).
Figures: agreement (quick outcome = full outcome, where a quick check that ran
every item takes the full verdict), items used (share of the capability's
items), false-pass rate (quick says met where the full suite says review or
fail, over the cases the full suite does not pass), per capability, overall and
for the hard cases by kind.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from forgetwatch import quick, stats  # noqa: E402
from forgetwatch.evals.quick_job import SEED, build_plans, margins_from_file, rule_checks  # noqa: E402
from forgetwatch.review import budget as budget_mod  # noqa: E402
from forgetwatch.suite import BASELINE_CAPABILITIES, Suite, load_suite  # noqa: E402

GENTLE = ("ft-full-lr1e-4-e2", "full", 1e-4, 2, 5)
INJECT_MULTIPLES = (0.5, 1.0, 1.5, 2.0, 2.5)  # of the limit, around it


# ------------------------------------------------------------------ the world


def build(workspace: Path) -> tuple[Path, list[tuple[str, str, Path]]]:
    """Train (or reuse) the world and evaluate every model on the full suite once.

    Returns the base's eval folder and (name, kind, eval folder) per fine-tuned model.
    """
    import torch
    from lm_eval.utils import sanitize_model_name

    from forgetwatch.demo import build as demo
    from forgetwatch.demo.profiles import get_profile
    from forgetwatch.demo.training import FinetunePlan
    from forgetwatch.evals.runner import ModelSpec, run_suite

    prof = get_profile("quick")
    plans = [*prof.finetunes, FinetunePlan(*GENTLE)]
    workspace.mkdir(parents=True, exist_ok=True)
    base_dir, uri = workspace / "base-model", f"sqlite:///{workspace / 'mlflow.db'}"
    progress = demo._TqdmProgress()
    torch.set_num_threads(1)
    demo._build_base(base_dir, prof, progress)
    models: list[tuple[str, str, ModelSpec]] = []
    for plan in plans:
        run_dir = workspace / "runs" / plan.name
        demo._build_run(base_dir, plan, run_dir, uri, progress)
        models.append((plan.name, "final", demo._model_spec(str(base_dir), plan, run_dir)))
        for ckpt in demo.checkpoint_dirs(run_dir):
            kind = "early checkpoint" if ckpt == demo.checkpoint_dirs(run_dir)[0] else "checkpoint"
            spec = demo._model_spec(str(base_dir), plan, ckpt)
            models.append((f"{plan.name}/{ckpt.name}", kind, spec))
    suite = load_suite("offline")
    evals = workspace / "evals"
    folder = {}
    todo = []
    for spec, s in [(ModelSpec(str(base_dir)), suite), *((m[2], suite.regression_only())
                                                        for m in models)]:  # fmt: skip
        out = evals / sanitize_model_name(spec.peft or spec.pretrained)
        folder[spec] = out
        if not list(out.glob("results_*.json")):
            todo.append((spec, s))
    for spec, s in todo:
        run_suite([spec], s, evals, allow_code_exec=True)  # every item: no --limit
    return folder[ModelSpec(str(base_dir))], [(n, k, folder[spec]) for n, k, spec in models]


def read_items(folder: Path, suite: Suite) -> tuple[Path, dict[str, dict[int, float]]]:
    """The results file and task -> {doc_id: value} of the suite's primary metrics."""
    results = sorted(folder.glob("results_*.json"))[-1]
    stamp = results.stem.removeprefix("results_")
    out: dict[str, dict[int, float]] = {}
    for t in suite.tasks:
        for f in folder.glob(f"samples_{t.task}_{stamp}.jsonl"):
            for line in f.read_text().splitlines():
                row = json.loads(line)
                if row.get("filter") == t.filter and t.metric in row:
                    v = row[t.metric]
                    v = float(np.mean(v)) if isinstance(v, list) else float(v)
                    out.setdefault(t.task, {})[int(row["doc_id"])] = v
    return results, out


# ------------------------------------------------------------------ verdicts


def full_outcomes(
    plans, model: dict[str, dict[int, float]], budget
) -> dict[str, tuple[str, float]]:
    """capability -> (the full suite's outcome for its rules, delta), as the product decides."""
    rows = {}
    for cap, tasks in plans.items():
        strata = [np.array([model[p.task][int(d)] for d in p.doc_ids]) - p.base for p in tasks]
        binary = len(strata) == 1 and set(np.unique(np.r_[strata[0], tasks[0].base])) <= {-1, 0, 1}
        if binary:
            d = strata[0]
            res = stats.paired_binary(len(d), int((d < 0).sum()), int((d > 0).sum()))
        else:
            res = stats.paired_continuous(strata)
        rows[cap] = {
            "delta": float(np.mean([s.mean() for s in strata])),
            "p_value": res.p_value,
            "ci_low": res.ci_low,
            "ci_high": res.ci_high,
            "evidence": "paired",
        }
    caps = list(rows)
    adjusted = stats.adjust([rows[c]["p_value"] for c in caps], budget.correction)
    out = {}
    for cap, p in zip(caps, adjusted, strict=True):
        row = rows[cap] | {"p_adjusted": p, "significant": p is not None and p < budget.alpha}
        outcomes = []
        for rule in (r for r in budget.rules if r.capability == cap):
            for kind, _ in budget_mod._rule_texts(rule):
                outcomes.append(budget_mod._check(rule, kind, row)[0])
        status = "fail" if "fail" in outcomes else "review" if "review" in outcomes else "met"
        out[cap] = (status, row["delta"])
    return out


def hard(cap_rules: list[quick.RuleCheck], delta: float) -> bool:
    r = cap_rules[0]
    if r.kind == "max_drop":
        return -3 * r.limit <= delta <= r.limit
    if r.kind == "min_gain":
        return -r.limit <= delta <= 3 * r.limit
    return abs(delta) <= 0.02


# ------------------------------------------------------------------ injection


def inject(model, tasks, size: float, rng) -> dict[str, dict[int, float]]:
    """A copy of ``model`` with the capability's delta moved by ``size`` (fraction; < 0: drop)."""
    out = {t: dict(v) for t, v in model.items()}
    for p in tasks:
        k = int(round(abs(size) * len(p.doc_ids)))
        src = 1.0 if size < 0 else 0.0
        eligible = [int(d) for d in p.doc_ids if out[p.task][int(d)] == src]
        for d in rng.choice(eligible, min(k, len(eligible)), replace=False) if eligible else []:
            out[p.task][int(d)] = 1.0 - src
    return out


def replicated(base_items, base_vals, real, k: int):
    """The same real items, each copied ``k`` times under new doc ids: a suite ``k`` times
    larger with the real suite's outcome and margin distribution and paired structure.

    The bundled tasks hold 10-80 items, too few for any valid test to settle a 1-point
    limit early; MMLU holds 14,042. Copies keep every real pairing, so the full suite's
    verdict on the copy is the real verdict with k times the evidence.
    """
    stride = 1 + max(max(ids) for ids, *_ in base_items.values())

    def ids_of(ids):
        return [d + j * stride for j in range(k) for d in ids]

    items = {
        task: (
            ids_of(ids),
            list(values) * k,
            {d + j * stride: m for j in range(k) for d, m in margins.items()},
            higher_is_better,
        )
        for task, (ids, values, margins, higher_is_better) in base_items.items()
    }

    def tiled(vals):
        return {t: {d + j * stride: v for j in range(k) for d, v in docs.items()}
                for t, docs in vals.items()}  # fmt: skip

    return items, tiled(base_vals), [(n, kind, tiled(v)) for n, kind, v in real]


# ------------------------------------------------------------------ replay


def replay(plans, rules, model, alpha: float) -> quick.QuickResult:
    def evaluate(wanted):
        return {t: {i: model[t][i] for i in ids} for t, ids in wanted.items()}

    return quick.run_quick(plans, rules, evaluate, alpha=alpha)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", default="/tmp/forgetwatch-bench-quick", type=Path)
    parser.add_argument("--seeds", type=int, default=1, help="item-draw seeds (1: the job's)")
    parser.add_argument(
        "--replicate", type=int, default=1, metavar="K",
        help="also a suite K times larger: every real item (its base and model outcomes and "
        "its base margin) copied K times, for the cost at real suites' sizes",
    )  # fmt: skip
    args = parser.parse_args()
    started = time.monotonic()
    base_folder, models = build(args.workspace.resolve())
    built = time.monotonic() - started
    suite = load_suite("offline")
    budget = budget_mod.load_budget(budget_mod.default_budget_path())
    rules = rule_checks(budget)
    rules_of = defaultdict(list)
    for r in rules:
        rules_of[r.capability].append(r)
    base_results, base_vals = read_items(base_folder, suite)
    regression = [t for t in suite.tasks if t.capability not in BASELINE_CAPABILITIES]
    base_items = {}
    for t in regression:
        if t.task in base_vals:
            ids = sorted(base_vals[t.task])
            margins = margins_from_file(str(base_results), t.task)
            base_items[t.task] = (ids, [base_vals[t.task][d] for d in ids], margins, True)
    rng = np.random.default_rng(0)
    real = [(name, kind, read_items(folder, suite)[1]) for name, kind, folder in models]
    if args.replicate > 1:
        base_items, base_vals, real = replicated(base_items, base_vals, real, args.replicate)
    cases = []  # (capability, kind, full outcome, full delta, quick outcome, fraction used)
    for s in range(args.seeds):
        plans = build_plans(suite, base_items, SEED + s)
        plans = {c: p for c, p in plans.items() if c in rules_of}
        variants = [(name, kind, vals) for name, kind, vals in real]
        for name, _, vals in [("base", "base", {t: dict(v) for t, v in base_vals.items()}), *real]:
            for cap, tasks in plans.items():
                r = rules_of[cap][0]
                limit = r.limit if r.kind != "not_worse" else 0.01
                sign = 1 if r.kind == "min_gain" else -1
                current = full_outcomes({cap: tasks}, vals, budget)[cap][1]
                for m in INJECT_MULTIPLES:
                    target = sign * m * limit if r.kind != "min_gain" else m * limit
                    moved = inject(vals, tasks, target - current, rng)
                    variants.append((f"{name}+inject", f"injected:{cap}", moved))
        for _name, kind, vals in variants:
            full = full_outcomes(plans, vals, budget)
            result = replay(plans, rules, vals, budget.alpha)
            for cap, res in result.capabilities.items():
                if kind.startswith("injected:") and kind != f"injected:{cap}":
                    continue
                outcome, delta = full[cap]
                q = outcome if res.outcome == "full" else res.outcome
                label = "injected" if kind.startswith("injected") else kind
                cases.append((cap, label, outcome, delta, q, res.n_used / res.n_items,
                              hard(rules_of[cap], delta)))  # fmt: skip
    report(cases, built, time.monotonic() - started, args)


def _figures(rows) -> str:
    if not rows:
        return "n/a"
    agree = np.mean([r[2] == r[4] for r in rows])
    used = np.mean([r[5] for r in rows])
    not_pass = [r for r in rows if r[2] != "met"]
    fp = np.mean([r[4] == "met" for r in not_pass]) if not_pass else 0.0
    return (f"n={len(rows):4d}  agreement {agree:6.1%}  items used {used:6.1%}  "
            f"false-pass {fp:5.1%} (of {len(not_pass)} not passing)")  # fmt: skip


def report(cases, built_s: float, total_s: float, args) -> None:
    print(f"world + full-suite evals: {built_s:.0f} s (cached in {args.workspace}); "
          f"replay: {total_s - built_s:.0f} s; seeds: {args.seeds}; "
          f"items copied x{args.replicate}")  # fmt: skip
    print("\nall cases:            ", _figures(cases))
    for cap in sorted({c[0] for c in cases}):
        print(f"  {cap:<20}", _figures([c for c in cases if c[0] == cap]))
    hard_cases = [c for c in cases if c[6]]
    print("\nhard cases:           ", _figures(hard_cases))
    for cap in sorted({c[0] for c in hard_cases}):
        print(f"  {cap:<20}", _figures([c for c in hard_cases if c[0] == cap]))
    print("\nall cases by kind:")
    for kind in sorted({c[1] for c in cases}):
        print(f"  kind {kind:<15}", _figures([c for c in cases if c[1] == kind]))
    kinds = Counter(c[1] for c in hard_cases)
    print("hard cases by kind:")
    for kind in sorted(kinds):
        print(f"  kind {kind:<15}", _figures([c for c in hard_cases if c[1] == kind]))
    print("\nhard cases, how many of each kind:", dict(kinds))
    print("outcomes (full -> quick):", dict(Counter((c[2], c[4]) for c in cases)))
    suffix = f"-x{args.replicate}" if args.replicate > 1 else ""
    out = args.workspace / f"quick_figures{suffix}.json"
    out.write_text(
        json.dumps(
            [
                list(map(lambda x: x if not isinstance(x, float) or math.isfinite(x) else None, c))
                for c in cases
            ]
        )
    )
    print(f"cases written to {out}")


if __name__ == "__main__":
    main()
