"""What the Evals page's form says: defaults that keep a new eval comparable, and why Run is off.

A delta means "the fine-tune changed this" only when the model's eval and its
base's ran with the same ``--limit`` and n-shot (``queries.comparability``
flags every difference after the fact). So the form starts from the settings
the base (or, without a base eval, the model itself) was evaluated with, and
warns *before* launch when the chosen ones would not reproduce them. The limit
is read from the sample counts rather than ``evals.eval_limit``: our own jobs
cut tasks through lm-eval's ``samples=`` (the suite's per-task limits), which
leaves ``--limit`` empty in the results file.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from forgetwatch.queries import eval_defaults
from forgetwatch.queries.deltas import Con

FALLBACK_LIMIT = 20  # without an earlier eval: a small, quick first look per task
EVALUATED_MARK = " ✓ evaluated"
# who -> how a sentence names the reference eval, and what a mismatch costs.
_WHO = {
    "base": ("The base was evaluated with", "the deltas will be flagged as settings mismatches"),
    "this base": (
        "This base was evaluated before with",
        "this eval replaces that one, and its fine-tunes' deltas will be flagged as settings "
        "mismatches",
    ),
    "this model": (
        "This model was evaluated before with",
        "the two evals will not compare like with like",
    ),
}


@dataclass(frozen=True)
class PastSettings:
    """The earlier evals a new one should match: whose, and per task how they ran."""

    who: str  # "base" (the model's base), "this base" or "this model": keys of _WHO
    tasks: pd.DataFrame  # queries.eval_defaults.task_settings columns


@dataclass(frozen=True)
class FormDefaults:
    """Starting values for the form's limit and n-shot, and the caption saying where from."""

    limit: int | None
    num_fewshot: int | None
    note: str


def picker_label(label: str, evaluated: bool) -> str:
    """A checkpoint's label in the picker, marked when it already has a full eval."""
    return label + EVALUATED_MARK if evaluated else label


def past_settings(
    con: Con, model_id: str, tasks: Sequence[str], base_hint: str | None = None
) -> PastSettings | None:
    """The base's evals of ``tasks`` (deltas compare with them), else the model's own.

    ``base_hint`` names the base of a model the database does not know yet (a
    LoRA adapter typed by hand over a base folder).
    """
    known = eval_defaults.model_kind(con, model_id)
    base = (known[1] if known else None) or base_hint
    if base:
        rows = eval_defaults.task_settings(con, base, tasks)
        if not rows.empty:
            return PastSettings("base", rows)
    rows = eval_defaults.task_settings(con, model_id, tasks)
    if rows.empty:
        return None
    return PastSettings("this base" if known and known[0] == "base" else "this model", rows)


def _int(value: object) -> int | None:
    """A count from a nullable DataFrame cell."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None  # None, pd.NA (numpy's integers and floats are numbers.Real)
    return None if math.isnan(value) else int(float(value))


def _sizes(row: object, suite_limits: Mapping[str, int | None]) -> tuple[int, int, int | None]:
    """(documents scored, documents in the task, the suite's own cap) of one task row."""
    scored = _int(getattr(row, "n_samples", None)) or 0
    total = _int(getattr(row, "n_original", None)) or scored  # older files: assume all scored
    return scored, total, suite_limits.get(str(getattr(row, "task", "")))


def _implied_limit(row: object, suite_limits: Mapping[str, int | None]) -> int | None:
    """The job limit that explains a task's sample count; None when nothing but the suite cut it."""
    scored, total, cap = _sizes(row, suite_limits)
    return scored if scored < min(total, cap if cap is not None else total) else None


def _predicted(row: object, suite_limits: Mapping[str, int | None], limit: int | None) -> int:
    """Documents a job with ``limit`` scores on this task (the suite's cap applies too)."""
    _, total, cap = _sizes(row, suite_limits)
    return min(x for x in (total, cap, limit) if x is not None)


def _past_limit(past: PastSettings, suite_limits: Mapping[str, int | None]) -> int | None:
    """The most common limit the earlier evals imply (ties: the smaller); None: no limit."""
    implied = [_implied_limit(r, suite_limits) for r in past.tasks.itertuples()]
    counts = Counter(x for x in implied if x is not None)
    if not counts:
        return None
    return min(counts, key=lambda x: (-counts[x], x))


def _shots(past: PastSettings) -> dict[str, int]:
    return {
        str(r.task): int(r.n_shot)
        for r in past.tasks.itertuples()
        if isinstance(r.n_shot, str) and r.n_shot.strip().lstrip("-").isdigit()
    }


def _past_fewshot(past: PastSettings, task_defaults: Mapping[str, int | None]) -> int | None:
    """One n-shot for every task when the earlier evals used one that is not just the defaults."""
    shots = _shots(past)
    values = set(shots.values())
    if len(values) != 1:
        return None  # per-task n-shots: each task's own default (no --num_fewshot)
    (k,) = values
    return None if all(task_defaults.get(t) == k for t in shots) else k


def _limit_text(limit: int | None) -> str:
    return f"--limit {limit}" if limit is not None else "no --limit"


def _shot_text(shots: int | None) -> str:
    return f"--num_fewshot {shots}" if shots is not None else "each task's own n-shot"


def defaults(
    past: PastSettings | None,
    suite_limits: Mapping[str, int | None],
    task_defaults: Mapping[str, int | None],
) -> FormDefaults:
    """The limit and n-shot that reproduce ``past``; a quick first look when there is none."""
    if past is None:
        return FormDefaults(FALLBACK_LIMIT, None, "")
    limit = _past_limit(past, suite_limits)
    shots = _past_fewshot(past, task_defaults)
    whose = {"base": "the base's", "this base": "this base's", "this model": "this model's"}
    note = (
        f"Limit and n-shot start from {whose[past.who]} earlier eval ({_limit_text(limit)}, "
        f"{_shot_text(shots)}), so the new scores compare like with like."
    )
    return FormDefaults(limit, shots, note)


def _listed(tasks: list[str], of: int) -> str:
    return "" if len(tasks) == of else f" (on {', '.join(tasks)})"


def _limit_part(
    past: PastSettings, suite_limits: Mapping[str, int | None], limit: int | None
) -> tuple[str, str] | None:
    """(what the earlier evals used, what this one uses) when some task's count would differ."""
    rows = list(past.tasks.itertuples())
    cut = [
        str(r.task)
        for r in rows
        if _predicted(r, suite_limits, limit) != _sizes(r, suite_limits)[0]
    ]
    if not cut:
        return None
    return _limit_text(_past_limit(past, suite_limits)) + _listed(cut, len(rows)), _limit_text(
        limit
    )


def _shot_part(
    past: PastSettings, task_defaults: Mapping[str, int | None], num_fewshot: int | None
) -> tuple[str, str] | None:
    """As ``_limit_part`` for n-shot; a task with an unknown default is taken as unchanged."""
    shots = _shots(past)
    chosen = {t: num_fewshot if num_fewshot is not None else task_defaults.get(t, k)
              for t, k in shots.items()}  # fmt: skip
    moved = [t for t, k in shots.items() if chosen[t] != k]
    if not moved:
        return None
    was_k = _past_fewshot(past, task_defaults)
    if was_k is None:
        detail = " (" + ", ".join(f"{shots[t]} on {t}" for t in moved) + ")"
    else:
        detail = _listed(moved, len(shots))
    return _shot_text(was_k) + detail, _shot_text(num_fewshot)


def mismatch_warning(
    past: PastSettings | None,
    suite_limits: Mapping[str, int | None],
    task_defaults: Mapping[str, int | None],
    *,
    limit: int | None,
    num_fewshot: int | None,
    check_limit: bool = True,
) -> str:
    """Before launch: how the chosen limit / n-shot differ from the earlier evals; '' if not.

    A task's sample count is predicted exactly as the job cuts it (the smallest of
    the suite's cap, ``limit`` and the task's size), so a limit above every task's
    size is no mismatch. A task with an unknown default n-shot (a hub task) is not
    flagged under "each task's own n-shot". ``check_limit`` is off for a quick
    check, which picks its own items.
    """
    if past is None or past.tasks.empty:
        return ""
    parts = [
        part
        for part in (
            _limit_part(past, suite_limits, limit) if check_limit else None,
            _shot_part(past, task_defaults, num_fewshot),
        )
        if part is not None
    ]
    if not parts:
        return ""
    opening, cost = _WHO[past.who]
    return (
        f"{opening} {' and '.join(p[0] for p in parts)}; this eval uses "
        f"{' and '.join(p[1] for p in parts)}: {cost}."
    )


def code_blocked(code_tasks: Sequence[str], allowed: bool) -> str:
    """Why Run is disabled while code-executing tasks are chosen without opt-in; '' if it is not."""
    if not code_tasks or allowed:
        return ""
    names = ", ".join(code_tasks)
    verb, them = ("executes", "it") if len(code_tasks) == 1 else ("execute", "them")
    return (
        f"Run is disabled: {names} {verb} model-written code. Tick **Allow code execution** to "
        f"run {them} in the sandbox (FORGETWATCH_ALLOW_CODE_EXEC=1 ticks it by default), or "
        "choose a suite without code tasks."
    )


def log_note(hidden: int, collapsed: int) -> str:
    """The caption over a filtered job log; '' when nothing was left out."""
    if not hidden and not collapsed:
        return ""
    bits = []
    if hidden:
        bits.append(f"{hidden:,} harmless line{'s' if hidden != 1 else ''} hidden")
    if collapsed:
        bits.append(f"{collapsed:,} repeat{'s' if collapsed != 1 else ''} collapsed")
    return (
        f"lm-eval's notices and progress bars are filtered out ({', '.join(bits)}); "
        "warnings, errors and tracebacks stay. The raw log is below."
    )
