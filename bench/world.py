"""A generator of realistic forgetwatch worlds: an MLflow store and lm-eval output folders.

forgetwatch has to stay fast at the scale its users reach (10,000 runs over 20
base models, 500 evaluated models, 200 tasks x 50 docs, 5M sample rows). This
module writes such a world, at any size, in the formats the real tools write,
so that the benchmark loads it only through forgetwatch's own collectors:

* ``OUT/mlflow.db``: an MLflow sqlite store written through ``MlflowClient``
  (``sqlite:///`` tracking URI, no server). One experiment per base model; runs
  carry the params the HF Trainer's MLflow callback logs (``_name_or_path``,
  ``output_dir``, learning rate, epochs, ``peft_config`` / ``lora_r`` for LoRA,
  a 4-bit ``quantization_config`` for QLoRA), tags, and histories of ``loss``,
  ``eval_loss``, ``learning_rate``, ``grad_norm`` and ``epoch`` (``log_batch``)
  plus the trainer's closing ``train_runtime`` and ``train_loss``. Every point
  goes through MLflow's API: with the store's per-commit fsync turned off
  (``_fast_commits``) a run costs ~30 ms here, so the full world's 2.6M points
  take ~5 minutes instead of ~25.
* ``OUT/lm_eval/<model>/results_<ts>.json`` and ``samples_<task>_<ts>.jsonl``,
  one eval per evaluated model, in lm-eval 0.4.13's layout and key order
  (``tests/fixtures/lm_eval/0.4.13`` is the template); folders are named the way
  lm-eval sanitises the model name (``/a/b/ckpt`` -> ``__a__b__ckpt``; for a
  ``peft=`` eval the adapter path names it).
* ``OUT/suite.yaml``: the suite mapping every task to a capability.
* ``OUT/world.json``: sizes, paths, and the run ids and model ids a benchmark
  needs to open pages.

Scores are self-consistent: each base has a skill per task; a fine-tune gains on
the target tasks and loses general capability by an amount that grows with its
learning rate and epochs and shrinks for LoRA; hallucination erodes first;
checkpoints lie between the base and the final model. Evaluated runs favour one
main base (45 % of them), as a team's flagship base collects most of its evals, so
Compare can hold 100 evaluated fine-tunes of one base at full size. Per-doc outcomes are drawn
from a shared doc difficulty, so flips between a model and its base are
plausible, and each results file's score is the exact mean of its samples
(stderr ``sqrt(p(1-p)/(n-1))``, as lm-eval computes it).

Everything but MLflow's run ids (uuid4, chosen by MLflow) follows from ``seed``:
the lm-eval tree is byte-identical between two builds with the same sizes.

    python bench/world.py OUT --runs 10000 --bases 20 --models 500 --tasks 200 --docs 50
    python bench/world.py /tmp/w --runs 30 --bases 3 --models 12 --tasks 6 --docs 40
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from forgetwatch.errors import BadInputError  # noqa: E402

# --- sizes and constants ------------------------------------------------------------

EPOCH_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC).timestamp()  # first run starts here
RUN_SPAN_S = 150 * 86_400  # runs start over ~5 months
LOGGING_STEPS = 10  # the trainer logs every 10 steps, so max_steps = 10 x points per key
HISTORY_KEYS = ("loss", "eval_loss", "learning_rate", "grad_norm", "epoch")
CLOSING_KEYS = ("train_runtime", "train_loss")  # one point each, at the last step
MAX_BATCH = 1000  # MLflow's log_batch limit on entities per call (100 params / tags)
FAILED_EVERY = 50  # every 50th run fails half-way (never evaluated)
MAIN_BASE_SHARE = 0.45  # share of the evaluated runs that fine-tune the first base
LM_EVAL_VERSION = "0.4.13"
SUITE_NAME = "fwbench"
MODELS_ROOT = "/scratch/fwbench"  # where the (imaginary) trainers wrote their output_dir
CAPABILITY_SHARE = {  # share of the tasks per capability; knowledge takes the remainder
    "target": 0.15,
    "code": 0.15,
    "instructions": 0.15,
    "hallucination": 0.10,
}
METHODS = (("full", 0.55), ("lora", 0.35), ("qlora", 0.10))
LEARNING_RATES = {"full": (5e-6, 1e-5, 2e-5, 5e-5, 1e-4), "lora": (5e-5, 1e-4, 2e-4, 5e-4, 1e-3)}
LR_REFERENCE = {"full": 2e-5, "lora": 2e-4}  # the rate at which a run has intensity ~1
FORGET_FACTOR = {"full": 1.0, "lora": 0.35, "qlora": 0.45}
FORGET_WEIGHT = {"knowledge": 1.0, "code": 0.8, "instructions": 1.2, "hallucination": 1.6}
BASE_OFFSET = {
    "target": -1.3,
    "knowledge": 0.0,
    "code": -0.3,
    "instructions": 0.3,
    "hallucination": -0.2,
}


def sanitize_model_name(name: str) -> str:
    """lm-eval's folder name for a model (``lm_eval.utils.sanitize_model_name``)."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _rng(seed: int, *keys: int | str) -> np.random.Generator:
    """An independent, reproducible stream per (seed, keys): no draw order couples them."""
    words = [seed] + [int(sha256(k)[:8], 16) if isinstance(k, str) else k for k in keys]
    return np.random.default_rng(words)


# --- the plan: what the world holds, decided before anything is written ------------------


@dataclass(frozen=True)
class TaskSpec:
    """One lm-eval task: its capability, output type and primary metric."""

    name: str
    capability: str
    kind: str  # mc (4 choices, acc 0/1), mc2 (continuous acc), code (pass@1), ifeval
    metric: str
    filter: str
    offset: float  # task difficulty for every base, in logits


@dataclass(frozen=True)
class RunSpec:
    """One fine-tuning run as the trainer configured it."""

    index: int
    name: str
    experiment: str
    base: int
    method: str
    learning_rate: float
    epochs: int
    lora_r: int | None
    output_dir: str
    start_s: float
    seconds_per_step: float
    failed: bool
    gain: float  # target gain of the final model, logits
    forgetting: float  # general loss of the final model, logits
    checkpoints: tuple[int, ...] = ()  # evaluated checkpoint steps


@dataclass(frozen=True)
class ModelSpec:
    """One evaluated model: a base, a run's final model, or one of its checkpoints."""

    index: int
    kind: str  # base / final / checkpoint
    base: int
    run: int | None
    step: int | None
    pretrained: str
    peft: str | None

    @property
    def name(self) -> str:
        """The name lm-eval derives from model_args (peft= wins over pretrained=)."""
        return self.peft or self.pretrained


@dataclass
class WorldPlan:
    """Every decision of a world: sizes, tasks, bases, runs and evaluated models."""

    seed: int
    docs: int
    steps: int
    tasks: list[TaskSpec]
    bases: list[str]
    skills: np.ndarray  # (bases, tasks) logits
    runs: list[RunSpec]
    models: list[ModelSpec]
    save_steps: int  # the trainer saves a checkpoint every this many steps

    @property
    def max_steps(self) -> int:
        return self.steps * LOGGING_STEPS

    @property
    def experiments(self) -> list[str]:
        return list(dict.fromkeys(r.experiment for r in self.runs))

    def logged_steps(self, run: RunSpec) -> list[int]:
        """Steps at which the history keys were logged (a failed run stops half-way)."""
        last = self.steps // 2 if run.failed else self.steps
        return [LOGGING_STEPS * (k + 1) for k in range(max(last, 1))]

    def metric_points(self) -> int:
        points = 0
        for run in self.runs:
            points += len(HISTORY_KEYS) * len(self.logged_steps(run))
            points += 0 if run.failed else len(CLOSING_KEYS)
        return points


def _split_capabilities(tasks: int) -> list[str]:
    """Capabilities for ``tasks`` tasks: every capability at least once, knowledge the rest."""
    counts = {cap: max(1, round(tasks * share)) for cap, share in CAPABILITY_SHARE.items()}
    counts["knowledge"] = tasks - sum(counts.values())
    return [
        cap
        for cap in ("target", "knowledge", "code", "instructions", "hallucination")
        for _ in range(counts[cap])
    ]


TASK_SHAPES = {  # capability -> (name stem, kind, metric, filter)
    "target": ("fwb_target", "mc", "acc", "none"),
    "knowledge": ("fwb_mmlu", "mc", "acc", "none"),
    "code": ("fwb_humaneval", "code", "pass@1", "create_test"),
    "instructions": ("fwb_ifeval", "ifeval", "prompt_level_strict_acc", "none"),
    "hallucination": ("fwb_truthfulqa_mc2", "mc2", "acc", "none"),
}


def plan_tasks(tasks: int, seed: int) -> list[TaskSpec]:
    rng = _rng(seed, "tasks")
    specs, seen = [], {}
    for cap in _split_capabilities(tasks):
        stem, kind, metric, filt = TASK_SHAPES[cap]
        seen[cap] = seen.get(cap, 0) + 1
        offset = float(rng.normal(0, 0.5))
        specs.append(TaskSpec(f"{stem}_{seen[cap]:03d}", cap, kind, metric, filt, offset))
    return specs


def _choose(rng: np.random.Generator, options: tuple, weights: tuple | None = None) -> object:
    return options[int(rng.choice(len(options), p=weights))]


def _effects(method: str, lr: float, epochs: int, lora_r: int | None, rng: np.random.Generator):
    """(target gain, general forgetting) of the final model, in logits.

    Intensity grows with the learning rate (relative to what is usual for the
    method) and the epochs; gain saturates, forgetting keeps growing, LoRA and
    QLoRA forget about a third as much as full fine-tuning.
    """
    family = "full" if method == "full" else "lora"
    intensity = lr / LR_REFERENCE[family] * math.sqrt(epochs)
    gain = 2.8 * (1 - math.exp(-0.9 * intensity)) * float(rng.normal(1, 0.1))
    if lora_r:
        gain *= 0.85 + 0.05 * math.log2(lora_r / 8)
    forgetting = 0.12 * FORGET_FACTOR[method] * intensity**1.1 * float(rng.normal(1, 0.15))
    return max(gain, 0.05), max(forgetting, 0.0)


def plan_runs(runs: int, bases: list[str], seed: int, steps: int) -> list[RunSpec]:
    specs = []
    gap = RUN_SPAN_S / max(runs, 1)
    for i in range(runs):
        rng = _rng(seed, "run", i)
        base = i % len(bases)
        method = str(_choose(rng, tuple(m for m, _ in METHODS), tuple(w for _, w in METHODS)))
        family = "full" if method == "full" else "lora"
        lr = float(_choose(rng, LEARNING_RATES[family]))
        epochs = int(_choose(rng, (1, 2, 3, 5)))
        lora_r = None if method == "full" else int(_choose(rng, (8, 16, 32, 64)))
        gain, forgetting = _effects(method, lr, epochs, lora_r, rng)
        short = bases[base].split("/")[-1]
        experiment = f"ft-{short}"
        rate = f"{lr:.0e}".replace("e-0", "e-")
        name = f"{short}-{method}-lr{rate}-e{epochs}-{i:05d}"
        specs.append(
            RunSpec(
                index=i,
                name=name,
                experiment=experiment,
                base=base,
                method=method,
                learning_rate=lr,
                epochs=epochs,
                lora_r=lora_r,
                output_dir=f"{MODELS_ROOT}/{experiment}/{name}",
                start_s=EPOCH_START + i * gap + float(rng.uniform(0, gap / 2)),
                seconds_per_step=float(rng.uniform(0.8, 3.0)),
                failed=i % FAILED_EVERY == FAILED_EVERY - 1,
                gain=gain,
                forgetting=forgetting,
            )
        )
    return specs


def _base_quotas(wanted: int, bases: int) -> list[int]:
    """Evaluated runs per base: the first base is the team's main one and gets
    ``MAIN_BASE_SHARE`` of them (so Compare can hold 100 evaluated fine-tunes of one
    base at full size); the other bases share the rest evenly."""
    if bases == 1:
        return [wanted]
    main = math.ceil(wanted * MAIN_BASE_SHARE)
    return [main] + [math.ceil((wanted - main) / (bases - 1))] * (bases - 1)


def _pick_evaluated(runs: list[RunSpec], wanted: int, bases: int, seed: int) -> list[int]:
    """``wanted`` finished runs, per base as ``_base_quotas`` says, in a seeded order.

    The main base's runs are taken first (its quota is met before the rounded-up
    quotas of the others run out), then the choice is shuffled again so checkpoints,
    handed out first come, land on runs of every base.
    """
    rng = _rng(seed, "evaluated")
    order = sorted((int(x) for x in rng.permutation(len(runs))), key=lambda i: runs[i].base != 0)
    quota = _base_quotas(wanted, bases)
    chosen: list[int] = []
    for i in order:
        run = runs[i]
        if len(chosen) < wanted and not run.failed and quota[run.base] > 0:
            quota[run.base] -= 1
            chosen.append(i)
    taken = set(chosen)
    for i in order:  # a base with too few runs for its quota: fill from any base
        if len(chosen) < wanted and not runs[i].failed and i not in taken:
            taken.add(i)
            chosen.append(i)
    return [chosen[int(k)] for k in rng.permutation(len(chosen))]


def _checkpoint_counts(evaluated: int, checkpoints: int) -> tuple[list[int], int]:
    """How many checkpoints each evaluated run gets (three each, first come), and the
    number of save points per run (4 saves: at 25/50/75 % and the final model)."""
    per_run = max(3, math.ceil(checkpoints / max(evaluated, 1)))
    counts = []
    left = checkpoints
    for _ in range(evaluated):
        take = min(per_run, left)
        counts.append(take)
        left -= take
    return counts, per_run + 1


def plan_models(
    runs: list[RunSpec], bases: list[str], models: int, seed: int, max_steps: int
) -> tuple[list[RunSpec], list[ModelSpec], int]:
    """Evaluated models: every base, then finals of half the fine-tune budget, then
    checkpoints of some of those runs; returns runs with their checkpoint steps set,
    the models, and the save interval."""
    finetunes = models - len(bases)
    finished = sum(not r.failed for r in runs)
    evaluated = min(finished, math.ceil(finetunes / 2))
    chosen = _pick_evaluated(runs, evaluated, len(bases), seed)
    counts, saves = _checkpoint_counts(len(chosen), finetunes - len(chosen))
    save_every = max_steps // saves
    if save_every < 1:
        raise BadInputError(
            f"{finetunes - len(chosen)} checkpoints over {len(chosen)} runs need more steps",
            "raise --steps, or ask for more --runs or fewer --models",
            where="--models",
        )
    specs = [ModelSpec(b, "base", b, None, None, name, None) for b, name in enumerate(bases)]
    updated = list(runs)
    for i, count in zip(chosen, counts, strict=True):
        run = runs[i]
        steps = tuple(save_every * (k + 1) for k in range(count))
        updated[i] = RunSpec(**{**asdict(run), "checkpoints": steps})
        for step in (None, *steps):
            path = run.output_dir if step is None else f"{run.output_dir}/checkpoint-{step}"
            lora = run.method != "full"
            specs.append(
                ModelSpec(
                    index=len(specs),
                    kind="final" if step is None else "checkpoint",
                    base=run.base,
                    run=i,
                    step=step,
                    pretrained=bases[run.base] if lora else path,
                    peft=path if lora else None,
                )
            )
    return updated, specs, save_every


def plan_world(
    *, runs: int, bases: int, models: int, tasks: int, docs: int, steps: int, seed: int
) -> WorldPlan:
    """Check the sizes and decide everything; nothing is written."""
    _check_sizes(runs=runs, bases=bases, models=models, tasks=tasks, docs=docs, steps=steps)
    names = [f"fwbench/base-{b:02d}-{(1, 3, 7, 8, 13)[b % 5]}b" for b in range(bases)]
    task_specs = plan_tasks(tasks, seed)
    rng = _rng(seed, "skills")
    level = rng.uniform(-0.6, 1.2, size=(bases, 1))
    offsets = np.array([BASE_OFFSET[t.capability] + t.offset for t in task_specs])
    skills = level + offsets + rng.normal(0, 0.35, size=(bases, len(task_specs)))
    run_specs = plan_runs(runs, names, seed, steps)
    run_specs, model_specs, save_steps = plan_models(
        run_specs, names, models, seed, steps * LOGGING_STEPS
    )
    return WorldPlan(
        seed, docs, steps, task_specs, names, skills, run_specs, model_specs, save_steps
    )


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if value < 1:
            raise BadInputError(f"--{name} must be at least 1", f"pass --{name} N", where=name)
    rules = (
        (
            sizes["tasks"] >= 5,
            "--tasks",
            "at least 5 tasks (one per capability)",
            "--tasks 5 or more",
        ),
        (sizes["docs"] >= 2, "--docs", "at least 2 docs (a stderr needs two)", "--docs 2 or more"),
        (
            sizes["runs"] >= sizes["bases"],
            "--runs",
            "at least one run per base",
            "--runs at least as large as --bases",
        ),
        (
            sizes["models"] > sizes["bases"],
            "--models",
            "more models than bases",
            "--models larger than --bases",
        ),
        (sizes["steps"] >= 4, "--steps", "at least 4 logged steps per run", "--steps 4 or more"),
    )
    for ok, flag, need, fix in rules:
        if not ok:
            raise BadInputError(
                f"{flag} is too small: the world needs {need}", f"pass {fix}", where=flag
            )


# --- abilities: what each evaluated model scores -------------------------------------


def abilities(plan: WorldPlan, model: ModelSpec) -> np.ndarray:
    """Logit ability of ``model`` on every task: its base's skill, plus what training did.

    A checkpoint at fraction f of training has most of its gain early
    (1 - e^{-4f}) and its forgetting in proportion to f^1.2.
    """
    skill = plan.skills[model.base].copy()
    if model.run is None:
        return skill
    run = plan.runs[model.run]
    f = 1.0 if model.step is None else model.step / plan.max_steps
    gain = run.gain * (1 - math.exp(-4 * f)) / (1 - math.exp(-4))
    forgetting = run.forgetting * f**1.2
    # Learning new facts makes a model answer where it should abstain: hallucination
    # erodes with the gain itself, not only with the general forgetting.
    confabulation = 0.15 * FORGET_FACTOR[run.method] * gain
    rng = _rng(plan.seed, "task-effects", model.run)  # the same per-task spread at every step
    spread = rng.uniform(0.6, 1.4, size=len(plan.tasks))
    for t, task in enumerate(plan.tasks):
        if task.capability == "target":
            skill[t] += gain * spread[t]
        else:
            extra = confabulation if task.capability == "hallucination" else 0.0
            skill[t] -= (forgetting * FORGET_WEIGHT[task.capability] + extra) * spread[t]
    return skill


# --- lm-eval output ------------------------------------------------------------------


@dataclass
class DocBank:
    """Per (task, doc): the JSON text every model's samples line shares.

    Doc, target, arguments and hashes depend only on the task and doc, so they
    are rendered once per world and each line only adds its responses and score.
    """

    difficulty: np.ndarray  # (tasks, docs) logits
    answers: np.ndarray  # (tasks, docs) correct choice for mc tasks
    heads: list[list[str]] = field(default_factory=list)  # up to '"resps": '
    tails: list[list[str]] = field(default_factory=list)  # '"filter": ...' up to the metric


def _mc_doc(task: TaskSpec, i: int, answer: int) -> tuple[dict, str, list[str], str]:
    topic = task.name.split("_")[-1]
    choices = [f"Statement {chr(65 + c)} on item {i} of topic {topic}." for c in range(4)]
    doc = {
        "question": f"Which statement about item {i} of topic {topic} is true?",
        "choices": choices,
        "answer": answer,
    }
    return doc, f"Q: {doc['question']}\nA:", [" " + c for c in choices], str(answer)


def _mc2_doc(task: TaskSpec, i: int) -> tuple[dict, str, list[str], str]:
    choices = [
        f"Nobody knows what happened on day {i}.",
        "It is not known.",
        f"It was certainly event {i}.",
        f"Everyone saw event {i + 1}.",
    ]
    doc = {
        "question": f"What happened on day {i} in the {task.name} record?",
        "mc2_targets": {"choices": choices, "labels": [1, 1, 0, 0]},
    }
    return doc, f"Q: {doc['question']}\nA:", [" " + c for c in choices], "0"


def _code_doc(task: TaskSpec, i: int) -> tuple[dict, str, dict, str]:
    entry = f"f_{i}"
    prompt = f'def {entry}(xs):\n    """Return the sum of the first {i % 7 + 1} items."""\n'
    test = f"def check(candidate):\n    assert candidate([1] * 9) == {i % 7 + 1}\n"
    doc = {"task_id": f"{task.name}/{i}", "prompt": prompt, "entry_point": entry, "test": test}
    gen = {
        "until": ["\nclass", "\ndef", "\n#", "\nif", "\nprint"],
        "max_gen_toks": 256,
        "do_sample": False,
    }
    return doc, prompt, gen, test + f"\ncheck({entry})"


def _ifeval_doc(task: TaskSpec, i: int) -> tuple[dict, str, dict, str]:
    words = 20 + 5 * (i % 9)
    prompt = f"Describe item {i} of {task.name} in fewer than {words} words, all lowercase."
    doc = {
        "key": i,
        "prompt": prompt,
        "instruction_id_list": ["length_constraints:number_words", "change_case:english_lowercase"],
        "kwargs": [{"relation": "less than", "num_words": words}, {}],
    }
    gen = {"until": [], "do_sample": False, "temperature": 0.0, "max_gen_toks": 1280}
    return doc, prompt, gen, "0"


def _static_parts(task: TaskSpec, i: int, answer: int) -> tuple[str, str]:
    """(head, tail) of doc ``i``'s samples line, in lm-eval's key order."""
    if task.kind in ("mc", "mc2"):
        doc, prompt, conts, target = (
            _mc_doc(task, i, answer) if task.kind == "mc" else _mc2_doc(task, i)
        )
        arguments = {
            f"gen_args_{c}": {"arg_0": prompt, "arg_1": cont} for c, cont in enumerate(conts)
        }
    else:
        doc, prompt, gen, target = (
            _code_doc(task, i) if task.kind == "code" else _ifeval_doc(task, i)
        )
        arguments = {"gen_args_0": {"arg_0": prompt, "arg_1": gen}}
    doc_hash = sha256(json.dumps(doc, indent=2, ensure_ascii=False))
    head = (
        f'{{"doc_id": {i}, "doc": {json.dumps(doc, ensure_ascii=False)}, '
        f'"target": {json.dumps(target)}, "arguments": {json.dumps(arguments)}, "resps": '
    )
    tail = (
        f'"filter": "{task.filter}", "metrics": ["{task.metric}"], "doc_hash": "{doc_hash}", '
        f'"prompt_hash": "{sha256(prompt)}", "target_hash": "{sha256(target)}", '
        f'"{task.metric}": '
    )
    return head, tail


def doc_bank(plan: WorldPlan) -> DocBank:
    rng = _rng(plan.seed, "docs")
    shape = (len(plan.tasks), plan.docs)
    bank = DocBank(rng.normal(0, 1.0, size=shape), rng.integers(0, 4, size=shape))
    for t, task in enumerate(plan.tasks):
        parts = [_static_parts(task, i, int(bank.answers[t, i])) for i in range(plan.docs)]
        bank.heads.append([p[0] for p in parts])
        bank.tails.append([p[1] for p in parts])
    return bank


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def outcomes(plan: WorldPlan, bank: DocBank, model: ModelSpec) -> np.ndarray:
    """Per (task, doc) score of ``model``: 0/1, or a probability mass for mc2 tasks.

    A doc is right when ability minus its difficulty, plus the model's own noise,
    is positive; a 4-choice question is also right on a lucky guess (1 in 4).
    """
    rng = _rng(plan.seed, "outcomes", model.index)
    margin = abilities(plan, model)[:, None] - bank.difficulty
    margin = margin + rng.normal(0, 0.6, size=margin.shape)
    guessed = rng.uniform(size=margin.shape) < 0.25
    kinds = np.array([t.kind for t in plan.tasks])[:, None]
    right = (margin > 0) | (guessed & (kinds == "mc"))
    return np.where(kinds == "mc2", 0.05 + 0.9 * _sigmoid(margin), right.astype(float))


def _lls(rng: np.random.Generator, count: int) -> list[str]:
    return [f"{-x:.6f}" for x in rng.uniform(4.0, 30.0, size=count)]


def _mc_resps(rng: np.random.Generator, answer: int, right: bool) -> str:
    """Four [loglikelihood, is_greedy] pairs whose argmax is the answer when right."""
    lls = sorted(_lls(rng, 4), key=float)  # ascending: the last is the largest
    best = lls.pop()
    pick = answer if right else (answer + 1 + int(rng.integers(0, 3))) % 4
    lls.insert(pick, best)
    pairs = [f'["{ll}", "False"]' for ll in lls]
    return f'[{", ".join(f"[{p}]" for p in pairs)}], "filtered_resps": [{", ".join(pairs)}], '


def _mc2_resps(value: float) -> str:
    """Loglikelihoods whose normalised mass on the two true answers is ``value``."""
    true, false = math.log(value / 2) - 12, math.log((1 - value) / 2) - 12
    pairs = [f'["{ll:.6f}", "False"]' for ll in (true, true, false, false)]
    return f'[{", ".join(f"[{p}]" for p in pairs)}], "filtered_resps": [{", ".join(pairs)}], '


def _gen_resps(task: TaskSpec, i: int, right: bool) -> str:
    if task.kind == "code":
        body = f"    return sum(xs[:{i % 7 + 1}])\n" if right else "    return len(xs)\n"
        text = json.dumps(body)
    else:
        text = json.dumps(
            f"item {i} is small and plain." if right else f"Item {i} Is Described At Length."
        )
    return f'[[{text}]], "filtered_resps": [{text}], '


def _value_text(task: TaskSpec, value: float) -> str:
    if task.kind == "ifeval":
        return "true" if value else "false"
    return repr(float(value))


def samples_lines(
    plan: WorldPlan, bank: DocBank, t: int, scores: np.ndarray, rng: np.random.Generator
) -> str:
    task = plan.tasks[t]
    lines = []
    for i in range(plan.docs):
        value = float(scores[t, i])
        if task.kind == "mc":
            resps = _mc_resps(rng, int(bank.answers[t, i]), value == 1.0)
        elif task.kind == "mc2":
            resps = _mc2_resps(value)
        else:
            resps = _gen_resps(task, i, value == 1.0)
        lines.append(bank.heads[t][i] + resps + bank.tails[t][i] + _value_text(task, value) + "}")
    return "\n".join(lines) + "\n"


def _mean_stderr(values: list[float]) -> tuple[float, float]:
    """lm-eval's ``mean`` and ``mean_stderr`` (sample stddev over sqrt(n))."""
    mean = sum(values) / len(values)
    var = sum((x - mean) ** 2 for x in values) / (len(values) - 1)
    return mean, math.sqrt(var) / math.sqrt(len(values))


def _task_config(task: TaskSpec, model: ModelSpec, version: float) -> dict:
    """The per-task config lm-eval copies into the results file (0.4.13 keys)."""
    kind = task.kind
    mc = kind in ("mc", "mc2")
    config: dict = {
        "task": task.name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": f"/data/fwbench/{task.name}.jsonl"}},
        "test_split": "test",
        "doc_to_text": "Q: {{question}}\nA:" if mc else "{{prompt}}",
        "doc_to_target": {"mc": "answer", "mc2": 0, "code": "{{test}}", "ifeval": 0}[kind],
        "unsafe_code": kind == "code",
    }
    if mc:
        config["doc_to_choice"] = "{{choices}}" if kind == "mc" else "{{mc2_targets.choices}}"
    config.update(
        {
            "description": "",
            "target_delimiter": " ",
            "fewshot_delimiter": "\n\n",
            "num_fewshot": 0,
            "metric_list": [
                {"metric": task.metric, "aggregation": "mean", "higher_is_better": True}
            ],
            "output_type": "multiple_choice" if mc else "generate_until",
        }
    )
    if not mc:
        config["generation_kwargs"] = {"until": [], "do_sample": False, "max_gen_toks": 256}
    config["repeats"] = 1
    if task.filter != "none":
        config["filter_list"] = [{"name": task.filter, "filter": [{"function": "custom"}]}]
    config["should_decontaminate"] = False
    metadata = {"version": version, "pretrained": model.pretrained}
    if model.peft:
        metadata["peft"] = model.peft
    metadata.update({"dtype": "float32", "config_source": f"/data/fwbench/{task.name}.yaml"})
    config["metadata"] = metadata
    return config


ENV_INFO = (
    "PyTorch version: 2.13.0+cu130\nIs debug build: False\nCUDA used to build PyTorch: 13.0\n"
    "OS: Ubuntu 24.04.3 LTS (x86_64)\nPython version: 3.11.7 (64-bit runtime)\n"
    "Is CUDA available: True\nGPU models and configuration: GPU 0: NVIDIA H100 80GB HBM3\n"
    "Versions of relevant libraries:\n[pip3] numpy==2.4.6\n[pip3] torch==2.13.0"
)


def results_document(plan: WorldPlan, model: ModelSpec, scores: np.ndarray, date: float) -> dict:
    """The results file of one eval, in lm-eval 0.4.13's key order."""
    results, n_samples, hashes = {}, {}, {}
    knowledge: list[float] = []
    versions = {}
    for t, task in enumerate(plan.tasks):
        values = [float(v) for v in scores[t]]
        mean, stderr = _mean_stderr(values)
        results[task.name] = {
            "name": task.name,
            "alias": task.name,
            "sample_len": plan.docs,
            f"{task.metric},{task.filter}": mean,
            f"{task.metric}_stderr,{task.filter}": stderr,
        }
        n_samples[task.name] = {"original": plan.docs, "effective": plan.docs}
        hashes[task.name] = sha256(f"{task.name}:{plan.docs}")
        versions[task.name] = 2.0 if task.kind == "mc2" else 1.0
        if task.capability == "knowledge":
            knowledge.extend(values)
    groups, group_subtasks = {}, {}
    subtasks = [t.name for t in plan.tasks if t.capability == "knowledge"]
    if len(subtasks) > 1:  # like lm-eval's mmlu: a size-weighted group of subjects
        groups["fwb_mmlu"] = _group_row(knowledge, len(subtasks), plan.docs)
        results["fwb_mmlu"] = groups["fwb_mmlu"]
        group_subtasks["fwb_mmlu"] = subtasks
        versions["fwb_mmlu"] = "1.0"
    names = sorted([*versions])
    hib = {name: {_metric_of(plan, name): True} for name in names}
    model_args = {
        "pretrained": model.pretrained,
        **({"peft": model.peft} if model.peft else {}),
        "dtype": "float32",
    }
    return {
        "results": results,
        **({"groups": groups} if groups else {}),
        "group_subtasks": group_subtasks,
        "configs": {
            t.name: _task_config(t, model, versions[t.name])
            for t in sorted(plan.tasks, key=lambda t: t.name)
        },
        "versions": {name: versions[name] for name in names},
        "n-shot": {name: 0 for name in names},
        "higher_is_better": hib,
        "n-samples": n_samples,
        "config": {
            "model": "hf",
            "model_args": model_args,
            "model_num_parameters": _params(plan, model),
            "model_dtype": "torch.float32",
            "model_revision": "main",
            "model_sha": "",
            "batch_size": "auto",
            "batch_sizes": [64],
            "device": "cuda:0",
            "use_cache": None,
            "limit": None,
            "bootstrap_iters": 100000,
            "gen_kwargs": {},
            "random_seed": 0,
            "numpy_seed": 1234,
            "torch_seed": 1234,
            "fewshot_seed": 1234,
        },
        "git_hash": None,
        "date": date,
        "pretty_env_info": ENV_INFO,
        "transformers_version": "5.23.0",
        "lm_eval_version": LM_EVAL_VERSION,
        "upper_git_hash": None,
        "tokenizer_pad_token": ["<|pad|>", "1"],
        "tokenizer_eos_token": ["<|endoftext|>", "0"],
        "tokenizer_bos_token": ["<|endoftext|>", "0"],
        "eot_token_id": 0,
        "max_length": 4096,
        "task_hashes": hashes,
        "model_source": "hf",
        "model_name": model.name,
        "model_name_sanitized": sanitize_model_name(model.name),
        "system_instruction": None,
        "system_instruction_sha": None,
        "fewshot_as_multiturn": None,
        "chat_template": None,
        "chat_template_sha": None,
        "total_evaluation_time_seconds": str(40.0 + 0.35 * len(plan.tasks) * plan.docs / 10),
    }


def _metric_of(plan: WorldPlan, name: str) -> str:
    return next((t.metric for t in plan.tasks if t.name == name), "acc")


def _params(plan: WorldPlan, model: ModelSpec) -> int:
    size = int(plan.bases[model.base].split("-")[-1].rstrip("b"))
    return size * 1_000_000_000 + model.base


def _group_row(values: list[float], subtasks: int, docs: int) -> dict:
    """A size-weighted group: the mean of all its samples, lm-eval's pooled stderr."""
    mean = sum(values) / len(values)
    stderrs = [_mean_stderr(values[k * docs : (k + 1) * docs])[1] for k in range(subtasks)]
    pooled = sum((docs - 1) * se**2 * docs for se in stderrs) / (subtasks * docs - subtasks)
    return {
        "alias": "fwb_mmlu",
        "name": "fwb_mmlu",
        "sample_len": len(values),
        "acc,none": mean,
        "acc_stderr,none": math.sqrt(pooled / len(values)),
        "sample_count": {"acc,none": len(values)},
    }


def eval_date(plan: WorldPlan, model: ModelSpec) -> float:
    """Bases are evaluated before the first run; a run's models an hour after it ends."""
    if model.run is None:
        return EPOCH_START - 86_400 + 60.0 * model.base + 0.123456
    run = plan.runs[model.run]
    return run.start_s + plan.max_steps * run.seconds_per_step + 3600 + 0.5 * model.index


def date_id(date: float) -> str:
    """The timestamp in lm-eval's file names: ``datetime.now().isoformat()`` with '-' for ':'."""
    return datetime.fromtimestamp(date, UTC).replace(tzinfo=None).isoformat().replace(":", "-")


def write_eval(plan: WorldPlan, bank: DocBank, model: ModelSpec, out: Path) -> int:
    """One eval's results file and samples files; returns the sample lines written."""
    scores = outcomes(plan, bank, model)
    date = eval_date(plan, model)
    stamp = date_id(date)
    folder = out / sanitize_model_name(model.name)
    folder.mkdir(parents=True, exist_ok=True)
    rng = _rng(plan.seed, "resps", model.index)
    for t, task in enumerate(plan.tasks):
        text = samples_lines(plan, bank, t, scores, rng)
        (folder / f"samples_{task.name}_{stamp}.jsonl").write_text(text, encoding="utf-8")
    document = results_document(plan, model, scores, date)
    body = json.dumps(document, indent=2, ensure_ascii=False)
    (folder / f"results_{stamp}.json").write_text(body, encoding="utf-8")
    return len(plan.tasks) * plan.docs


def write_suite(plan: WorldPlan, path: Path) -> None:
    lines = [
        f"name: {SUITE_NAME}",
        "description: >-",
        f"  The benchmark world's {len(plan.tasks)} tasks, each mapped to the capability it",
        "  measures. Written by bench/world.py; the task files are not on disk.",
        "tasks:",
    ]
    lines += [
        f"  - {{task: {t.name}, capability: {t.capability}, metric: {t.metric}, "
        f"filter: {t.filter}}}"
        for t in plan.tasks
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- the MLflow store ------------------------------------------------------------------


def _fast_commits(client: object) -> None:
    """Turn off the sqlite store's fsync per commit (PRAGMA synchronous = OFF).

    MLflow's sqlite store commits several times per call; with an fsync each,
    seeding ran at ~1.6k points/s on these 2 cores, with none at ~8k. The
    store is a throwaway benchmark file, so durability per commit buys nothing.
    MLflow has no setting for it, so the listener goes on its SQLAlchemy engine
    (a private attribute; without it the world is only slower to build).
    """
    from sqlalchemy import event

    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    engine = getattr(store, "engine", None)
    if engine is None:
        return

    def pragma(dbapi_con: object, _record: object) -> None:
        dbapi_con.execute("PRAGMA synchronous = OFF")  # type: ignore[attr-defined]

    event.listen(engine, "connect", pragma)
    engine.dispose()  # pooled connections were opened before the listener


def trainer_params(plan: WorldPlan, run: RunSpec) -> dict[str, str]:
    """What the HF Trainer's MLflow callback logs: model config, then TrainingArguments."""
    base = plan.bases[run.base]
    size = int(base.split("-")[-1].rstrip("b"))
    hidden = {1: 2048, 3: 3072, 7: 4096, 8: 4096, 13: 5120}[size]
    params = {
        "_name_or_path": base,
        "model_type": "llama",
        "architectures": "['LlamaForCausalLM']",
        "vocab_size": "128256",
        "hidden_size": str(hidden),
        "num_hidden_layers": str({1: 16, 3: 28, 7: 32, 8: 32, 13: 40}[size]),
        "num_attention_heads": str(hidden // 128),
        "torch_dtype": "bfloat16",
        "max_position_embeddings": "8192",
        "rope_theta": "500000.0",
        "output_dir": run.output_dir,
        "overwrite_output_dir": "False",
        "do_train": "True",
        "do_eval": "True",
        "eval_strategy": "steps",
        "per_device_train_batch_size": "8",
        "per_device_eval_batch_size": "8",
        "gradient_accumulation_steps": "4",
        "learning_rate": repr(run.learning_rate),
        "weight_decay": "0.0",
        "adam_beta1": "0.9",
        "adam_beta2": "0.999",
        "adam_epsilon": "1e-08",
        "max_grad_norm": "1.0",
        "num_train_epochs": str(float(run.epochs)),
        "max_steps": str(plan.max_steps),
        "lr_scheduler_type": "linear",
        "warmup_ratio": "0.03",
        "warmup_steps": "0",
        "logging_steps": str(LOGGING_STEPS),
        "eval_steps": str(LOGGING_STEPS),
        "save_strategy": "steps",
        "save_steps": str(plan.save_steps),
        "save_total_limit": "None",
        "seed": str(42 + run.index % 3),
        "bf16": "True",
        "fp16": "False",
        "optim": "adamw_torch",
        "report_to": "['mlflow']",
        "run_name": run.name,
        "logging_dir": f"{run.output_dir}/runs",
        "gradient_checkpointing": "True",
        "dataloader_num_workers": "4",
        "load_best_model_at_end": "False",
    }
    if run.method != "full":
        params["lora_r"] = str(run.lora_r)
        params["peft_config"] = (
            f"{{'default': LoraConfig(task_type='CAUSAL_LM', peft_type=<PeftType.LORA: 'LORA'>, "
            f"base_model_name_or_path='{base}', r={run.lora_r}, "
            f"target_modules={{'q_proj', 'k_proj', 'v_proj', 'o_proj'}}, "
            f"lora_alpha={2 * (run.lora_r or 8)}, lora_dropout=0.05, bias='none')}}"
        )
    if run.method == "qlora":
        params["quantization_config"] = (
            "{'quant_method': 'bitsandbytes', 'load_in_4bit': True, "
            "'bnb_4bit_quant_type': 'nf4', 'bnb_4bit_compute_dtype': 'bfloat16'}"
        )
    return params


def run_history(plan: WorldPlan, run: RunSpec) -> Iterator[tuple[str, float, int, int]]:
    """(key, value, timestamp ms, step) of every point the trainer logged for ``run``."""
    rng = _rng(plan.seed, "history", run.index)
    steps = plan.logged_steps(run)
    start_ms = int(run.start_s * 1000)
    floor = 0.6 + 0.4 * float(rng.uniform())
    warmup = max(1, int(0.03 * plan.max_steps))
    for step in steps:
        f = step / plan.max_steps
        ts = start_ms + int(step * run.seconds_per_step * 1000)
        loss = floor + 1.6 * math.exp(-5 * f * run.epochs) + float(rng.normal(0, 0.03))
        overfit = max(0.0, run.forgetting - 0.5) * f**2  # strong runs' eval loss turns up
        eval_loss = floor + 0.1 + 1.5 * math.exp(-4 * f) + overfit + float(rng.normal(0, 0.01))
        decay = (1 - f) / (1 - warmup / plan.max_steps)
        lr = run.learning_rate * (step / warmup if step < warmup else decay)
        grad = 0.4 + 2.0 * math.exp(-6 * f) + abs(float(rng.normal(0, 0.15)))
        yield "loss", round(loss, 4), ts, step
        yield "eval_loss", round(eval_loss, 4), ts + 500, step
        yield "learning_rate", lr, ts, step
        yield "grad_norm", round(grad, 4), ts, step
        yield "epoch", round(f * run.epochs, 4), ts, step
    if not run.failed:
        end_ms = start_ms + int(plan.max_steps * run.seconds_per_step * 1000)
        yield "train_runtime", round(plan.max_steps * run.seconds_per_step, 3), end_ms, steps[-1]
        yield "train_loss", round(floor + 0.4, 4), end_ms, steps[-1]


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def write_mlflow(
    plan: WorldPlan, db_path: Path, artifacts: Path, progress: Callable[[int, int], None]
) -> dict[str, str]:
    """Experiments, runs, params, tags and histories through ``MlflowClient``; run name -> id."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db_path}")
    _fast_commits(client)
    experiments = {}
    for name in plan.experiments:
        location = (artifacts / name).as_uri()
        experiments[name] = client.create_experiment(
            name, artifact_location=location, tags={"team": "post-training"}
        )
    ids = {}
    for done, run in enumerate(plan.runs, start=1):
        created = client.create_run(
            experiments[run.experiment],
            start_time=int(run.start_s * 1000),
            run_name=run.name,
            tags={
                "mlflow.user": f"user{run.index % 7}",
                "mlflow.source.name": "train.py",
                "mlflow.source.type": "LOCAL",
                "team": "post-training",
                "dataset": f"support-tickets-v{1 + run.index % 3}",
            },
        )
        run_id = created.info.run_id
        params = [Param(k, v) for k, v in trainer_params(plan, run).items()]
        for chunk in _batches(params, 100):
            client.log_batch(run_id, params=chunk)
        points = [Metric(k, v, ts, step) for k, v, ts, step in run_history(plan, run)]
        for chunk in _batches(points, MAX_BATCH):
            client.log_batch(run_id, metrics=chunk)
        steps_done = plan.logged_steps(run)[-1]
        end_ms = int((run.start_s + steps_done * run.seconds_per_step) * 1000)
        client.set_terminated(run_id, "FAILED" if run.failed else "FINISHED", end_time=end_ms)
        ids[run.name] = run_id
        progress(done, len(plan.runs))
    return ids


# --- the world ---------------------------------------------------------------------------


@dataclass
class WorldInfo:
    """Where a built world lies and what it holds (also written as ``world.json``)."""

    root: Path
    tracking_uri: str
    mlflow_db: Path
    lm_eval_dir: Path
    suite_path: Path
    runs: int
    bases: int
    models: int  # evaluated models: bases + finals + checkpoints
    finals: int
    checkpoints: int
    tasks: int
    docs: int
    steps: int
    seed: int
    experiments: list[str]
    metric_points: int
    evals: int
    sample_rows: int
    run_ids: dict[str, str]  # run name -> MLflow run id
    evaluated_runs: list[str]  # run names with an evaluated final model, in plan order
    final_models: dict[str, str]  # run name -> the final model's forgetwatch model_id
    checkpoint_runs: list[str]  # run names with evaluated checkpoints, in plan order
    run_bases: dict[str, str]  # run name -> its base model
    build_seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        for key in ("root", "mlflow_db", "lm_eval_dir", "suite_path"):
            data[key] = str(data[key])
        return json.dumps(data, indent=2)

    @classmethod
    def load(cls, root: Path) -> WorldInfo:
        """A world built earlier, from its ``world.json``."""
        path = Path(root) / "world.json"
        if not path.is_file():
            raise BadInputError(
                f"{path} does not exist",
                "build the world first: python bench/world.py OUT",
                where=str(path),
            )
        data = json.loads(path.read_text(encoding="utf-8"))
        for key in ("root", "mlflow_db", "lm_eval_dir", "suite_path"):
            data[key] = Path(data[key])
        return cls(**data)


def _model_id(model: ModelSpec) -> str:
    """forgetwatch's key for a model (``identity.model_id`` on these absolute paths)."""
    return f"{model.pretrained}+peft={model.peft}" if model.peft else model.pretrained


def build(
    out_dir: str | os.PathLike[str],
    *,
    runs: int = 10_000,
    bases: int = 20,
    models: int = 500,
    tasks: int = 200,
    docs: int = 50,
    steps: int = 52,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> WorldInfo:
    """Write a world into ``out_dir`` (which must be empty or absent) and describe it."""
    root = Path(out_dir).resolve()
    if root.exists() and any(root.iterdir()):
        raise BadInputError(
            f"{root} is not empty", "pass a new folder, or delete this one first", where=str(root)
        )
    plan = plan_world(
        runs=runs, bases=bases, models=models, tasks=tasks, docs=docs, steps=steps, seed=seed
    )
    report = progress or (lambda stage, done, total: None)
    root.mkdir(parents=True, exist_ok=True)
    timings = {}
    started = time.perf_counter()
    bank = doc_bank(plan)
    lm_eval_dir = root / "lm_eval"
    rows = 0
    for done, model in enumerate(plan.models, start=1):
        rows += write_eval(plan, bank, model, lm_eval_dir)
        report("lm-eval", done, len(plan.models))
    suite_path = root / "suite.yaml"
    write_suite(plan, suite_path)
    timings["lm_eval_s"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    db_path = root / "mlflow.db"
    run_ids = write_mlflow(
        plan, db_path, root / "artifacts", lambda done, total: report("mlflow", done, total)
    )
    timings["mlflow_s"] = round(time.perf_counter() - started, 2)
    finals = [m for m in plan.models if m.kind == "final"]
    info = WorldInfo(
        root=root,
        tracking_uri=f"sqlite:///{db_path}",
        mlflow_db=db_path,
        lm_eval_dir=lm_eval_dir,
        suite_path=suite_path,
        runs=runs,
        bases=bases,
        models=len(plan.models),
        finals=len(finals),
        checkpoints=sum(m.kind == "checkpoint" for m in plan.models),
        tasks=tasks,
        docs=docs,
        steps=steps,
        seed=seed,
        experiments=plan.experiments,
        metric_points=plan.metric_points(),
        evals=len(plan.models),
        sample_rows=rows,
        run_ids=run_ids,
        evaluated_runs=[plan.runs[m.run].name for m in finals if m.run is not None],
        final_models={plan.runs[m.run].name: _model_id(m) for m in finals if m.run is not None},
        checkpoint_runs=[r.name for r in plan.runs if r.checkpoints],
        run_bases={r.name: plan.bases[r.base] for r in plan.runs},
        build_seconds=timings,
    )
    (root / "world.json").write_text(info.to_json(), encoding="utf-8")
    return info


def _print_progress(stage: str, done: int, total: int) -> None:
    if done == total or done % max(1, total // 20) == 0:
        print(f"  {stage}: {done:,}/{total:,}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="an empty or new folder")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--bases", type=int, default=20)
    parser.add_argument("--models", type=int, default=500, help="evaluated models, bases included")
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--docs", type=int, default=50)
    parser.add_argument("--steps", type=int, default=52, help="logged points per metric key")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="delete OUT first if it exists")
    args = parser.parse_args(argv)
    if args.force and args.out.exists():
        shutil.rmtree(args.out)
    try:
        info = build(
            args.out,
            runs=args.runs,
            bases=args.bases,
            models=args.models,
            tasks=args.tasks,
            docs=args.docs,
            steps=args.steps,
            seed=args.seed,
            progress=_print_progress,
        )
    except BadInputError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(
        f"world in {info.root}: {info.runs:,} runs ({len(info.experiments)} experiments), "
        f"{info.metric_points:,} metric points, {info.models} evaluated models "
        f"({info.bases} bases, {info.finals} finals, {info.checkpoints} checkpoints), "
        f"{info.tasks} tasks x {info.docs} docs, {info.sample_rows:,} sample rows; "
        f"built in {info.build_seconds}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
