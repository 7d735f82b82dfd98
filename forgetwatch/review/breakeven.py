"""Break-even between a fine-tune and k-shot prompting of its base model.

A fine-tune is paid once (training time on GPUs); k-shot prompting is paid on
every request (the k examples are extra prompt tokens). The break-even volume
is the number of requests after which the fine-tune was the cheaper choice:

    fine-tune cost        = train_runtime_s / 3600 x GPUs x $/GPU-hour
    extra cost / request  = extra prompt tokens x $/token
    break-even requests   = fine-tune cost / extra cost per request
    break-even days       = break-even requests / requests per day

The arithmetic is pure (tested on known numbers); the Run page and
``forgetwatch breakeven`` only render it. ``measure_extra_tokens`` is the one
function that touches files: it renders the k-shot task's few-shot examples as
lm-eval would and counts them with the base model's tokenizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from forgetwatch import queries
from forgetwatch.errors import BadInputError
from forgetwatch.suite import load_suite


@dataclass(frozen=True)
class BreakEven:
    """Both options' costs and where they cross; ``requests``/``days`` are None if never."""

    finetune_usd: float
    extra_tokens: float
    extra_usd_per_request: float
    requests_per_day: float
    requests: float | None
    days: float | None


def _positive(value: float, field: str, *, allow_zero: bool = False) -> float:
    """``value`` as a float, or a BadInputError naming the field."""
    ok = isinstance(value, int | float) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = "zero or more" if allow_zero else "greater than zero"
        raise BadInputError(
            f"Field {field} must be a number {bound}", f"got {value!r}", where=field
        )
    return float(value)


def finetune_cost(train_runtime_s: float, gpus: float, gpu_hour_usd: float) -> float:
    """Dollars the training run cost: runtime in hours x GPUs x price per GPU-hour."""
    runtime = _positive(train_runtime_s, "train_runtime", allow_zero=True)
    return runtime / 3600.0 * _positive(gpus, "gpus") * _positive(gpu_hour_usd, "gpu_hour_usd")


def extra_prompt_tokens(example_tokens: list[int] | list[float], k: int) -> float:
    """Expected extra prompt tokens per request: k x the mean tokens of one example."""
    if not example_tokens:
        raise BadInputError(
            "No few-shot examples to measure",
            "give the extra tokens per request explicitly (--extra-tokens)",
            where="few-shot examples",
        )
    return _positive(k, "k") * sum(example_tokens) / len(example_tokens)


def kshot_cost_per_request(extra_tokens: float, price_per_mtok: float) -> float:
    """Dollars the k examples add to one request: tokens x price per million tokens."""
    tokens = _positive(extra_tokens, "extra_tokens", allow_zero=True)
    return tokens * _positive(price_per_mtok, "price_per_mtok") / 1_000_000


def break_even(
    *,
    train_runtime_s: float,
    gpus: float,
    gpu_hour_usd: float,
    extra_tokens: float,
    price_per_mtok: float,
    requests_per_day: float,
) -> BreakEven:
    """The fine-tune's cost, k-shot's extra cost per request, and the crossing point."""
    tuned = finetune_cost(train_runtime_s, gpus, gpu_hour_usd)
    per_request = kshot_cost_per_request(extra_tokens, price_per_mtok)
    per_day = _positive(requests_per_day, "requests_per_day")
    requests = tuned / per_request if per_request > 0 else None
    return BreakEven(
        finetune_usd=tuned,
        extra_tokens=float(extra_tokens),
        extra_usd_per_request=per_request,
        requests_per_day=per_day,
        requests=requests,
        days=None if requests is None else requests / per_day,
    )


def fmt_duration(days: float | None) -> str:
    """A break-even time as a person reads it: minutes, hours or days, never "0.0 days"."""
    if days is None:
        return "never"
    hours = days * 24
    if hours < 1:
        return f"{max(hours * 60, 1):,.0f} min"
    if days < 2:
        return f"{hours:,.1f} hours"
    return f"{days:,.1f} days"


def quality_note(model_score: float | None, kshot_score: float | None, kshot: str) -> str | None:
    """When k-shot prompting falls short of the fine-tune on the target, say the break-even
    compares unequal options (cheaper, but worse); None when k-shot matches it or either
    score is unknown. Scores are fractions."""
    if model_score is None or kshot_score is None or kshot_score >= model_score:
        return None
    return (
        f"{kshot} scores {kshot_score * 100:.1f} on the target task and the fine-tune "
        f"{model_score * 100:.1f}: few-shot prompting does not reach the fine-tune's quality, "
        "so the break-even compares a cheaper but worse option. It matters only if that "
        "quality is enough."
    )


def cost_curves(result: BreakEven, points: int = 51) -> pd.DataFrame:
    """Cumulative cost of both options (requests, finetune_usd, kshot_usd) up to 2x break-even.

    Without a crossing, the curves span 30 days of the given volume.
    """
    end = 2 * result.requests if result.requests else 30 * result.requests_per_day
    requests = [end * i / (points - 1) for i in range(points)]
    return pd.DataFrame(
        {
            "requests": requests,
            "finetune_usd": [result.finetune_usd] * points,
            "kshot_usd": [r * result.extra_usd_per_request for r in requests],
        }
    )


# --- measuring the k examples (reads the task and the tokenizer) ---------------------------


def fewshot_texts(task_name: str, include_path: Path | None) -> list[str]:
    """Each few-shot example of an lm-eval task, rendered as it appears in a k-shot prompt.

    Question, target delimiter, answer and the delimiter before the next
    example, exactly the pieces lm-eval joins; the whole pool, so the mean is
    the expected size of one sampled example.
    """
    from lm_eval.tasks import TaskManager

    manager = TaskManager(
        include_path=str(include_path) if include_path else None,
        include_defaults=include_path is None,
    )
    if task_name not in manager.all_tasks:
        raise BadInputError(
            f"lm-eval does not know task {task_name!r}",
            "check the suite's include_path, or give --extra-tokens explicitly",
            where=task_name,
        )
    task = manager.load([task_name])["tasks"][task_name]
    config = task.config
    texts = []
    for doc in task.fewshot_docs():
        target = task.doc_to_target(doc)
        if isinstance(target, int) and config.doc_to_choice is not None:
            target = task.doc_to_choice(doc)[target]
        question = task.doc_to_text(doc)
        texts.append(f"{question}{config.target_delimiter}{target}{config.fewshot_delimiter}")
    return texts


def load_tokenizer(tokenizer_path: str) -> Any:
    """The tokenizer saved at ``tokenizer_path`` (a model folder or hub id), or a clear error."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(tokenizer_path)
    except (OSError, ValueError) as e:
        raise BadInputError(
            "Could not load the base model's tokenizer",
            "give the extra tokens per request explicitly (--extra-tokens)",
            where=tokenizer_path,
        ) from e


def count_tokens(tokenizer: Any, texts: list[str]) -> list[int]:
    """Token counts of ``texts`` (no special tokens: they are not part of the examples)."""
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def measure_extra_tokens(
    tokenizer_path: str, task_name: str, include_path: Path | None, k: int
) -> float:
    """k x the mean token count of the task's few-shot examples with the base tokenizer."""
    tokenizer = load_tokenizer(tokenizer_path)  # first: it fails faster than loading the task
    return extra_prompt_tokens(count_tokens(tokenizer, fewshot_texts(task_name, include_path)), k)


# ------------------------------------------------- what the page and command share
@dataclass(frozen=True)
class KshotSetup:
    """What the calculator needs from the database for one run."""

    train_runtime_s: float | None
    task: str | None  # the icl_baseline task, if the base was evaluated on one
    k: int | None
    kshot_score: float | None
    base_path: str | None
    model_score: float | None = None  # the run's final model's target score, if evaluated

    @property
    def quality_note(self) -> str | None:
        """Say so when k-shot prompting does not reach the fine-tune on the target task."""
        name = f"base + {self.k}-shot" if self.k else "base + k-shot"
        return quality_note(self.model_score, self.kshot_score, name)


def _final_target_score(con: queries.Con, run_id: str) -> float | None:
    """The run's final model's mean target score, or None when it was not evaluated."""
    final = queries.final_model_id(con, run_id)
    if final is None:
        return None
    caps = queries.capability_deltas(con, final)
    target = caps.loc[caps["capability"] == "target", "value"]
    return float(target.iloc[0]) if len(target) and pd.notna(target.iloc[0]) else None


def kshot_setup(con: queries.Con, run_id: str) -> KshotSetup:
    """The run's training time and its base model's k-shot baseline (first one, if several)."""
    if queries.run_info(con, run_id) is None:
        raise BadInputError(
            f"No run {run_id!r} in the database",
            "sync it with `forgetwatch sync`, or list runs on the Runs page",
            where=run_id,
        )
    runtime = queries.run_metric_last(con, run_id, "train_runtime")
    baselines = queries.icl_baselines(con, run_id)
    if baselines.empty:
        return KshotSetup(runtime, None, None, None, None)
    row = baselines.iloc[0]
    k = None if row["n_shot"] is None or row["n_shot"] != row["n_shot"] else int(row["n_shot"])
    return KshotSetup(
        runtime, str(row["task"]), k, float(row["value"]), row["base_path"],
        model_score=_final_target_score(con, run_id),
    )  # fmt: skip


def measured_tokens(setup: KshotSetup, suite_name: str) -> float:
    """Extra prompt tokens per request, measured from the k-shot task and the base tokenizer."""
    if setup.task is None or not setup.k or not setup.base_path:
        raise BadInputError(
            "This run's base model has no k-shot baseline eval to measure",
            "evaluate the base on a suite with an icl_baseline task, or pass --extra-tokens",
            where="extra tokens",
        )
    suite = load_suite(suite_name)
    return measure_extra_tokens(setup.base_path, setup.task, suite.include_path, setup.k)
