"""The run view model: what one evaluated model gained and forgot, capability by capability.

The Run page reads ``model_changes`` for its headline, bars and tables; the
numbers are the same ones Runs, Compare, exports and ``check`` show, because the
headline comes from the shared delta SQL and every capability row is turned by
``direction.oriented`` (hallucination as a rate, + = worse).

Each task row also says how many documents were scored ("10 of 12" when lm-eval's
--limit cut the task) and, for a lower-is-better metric, that lower is better: its
delta already reads + = better (``queries.deltas``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from forgetwatch import queries
from forgetwatch.queries import CAPABILITY_ORDER, Con
from forgetwatch.review import trust
from forgetwatch.review.direction import capability_title, oriented
from forgetwatch.review.views import View, as_points

HEADLINES = ("target_gain", "general_change", "hallucination_change")


@dataclass(frozen=True)
class KshotLine:
    """The base with k-shot prompting next to the model's target score."""

    task: str
    n_shot: int | None
    kshot_score: float | None
    base_zero_shot: float | None
    model_score: float | None


@dataclass
class ModelChanges:
    """One evaluated model against its base: headline, capabilities, tasks, k-shot lines."""

    model_id: str
    headline: dict[str, float | None]  # target_gain, general_change, hallucination_change
    capabilities: pd.DataFrame  # oriented fractions: capability, tasks, base_value, value, delta
    tasks: pd.DataFrame  # oriented fractions: task, capability, metric, filter, ...
    kshot: list[KshotLine]
    cut_tasks: list[str] = field(default_factory=list)  # tasks a --limit cut

    @property
    def limit_note(self) -> str | None:
        """The sentence that says which tasks a --limit cut, or None when none was."""
        if not self.cut_tasks:
            return None
        return (
            f"--limit cut {', '.join(self.cut_tasks)}: the score covers fewer documents than "
            "the task has (Samples column), so it is noisier and may not match a full run."
        )

    def capability_view(self, title: str) -> View:
        return _points_view(title, self.capabilities)

    def task_view(self, title: str) -> View:
        return _points_view(title, self.tasks)

    def task_bars(self, *, show_all: bool = False) -> pd.DataFrame:
        """The task rows the "By task" chart draws (``top_tasks``), in its order."""
        return top_tasks(self.tasks, show_all=show_all)

    @property
    def tasks_left_out(self) -> int:
        """How many task rows the chart leaves out until "Show all" is on."""
        return self.tasks_with_delta - len(self.task_bars())

    @property
    def tasks_with_delta(self) -> int:
        return int(self.tasks["delta"].notna().sum())

    @property
    def show_all_label(self) -> str:
        return f"Show all {self.tasks_with_delta:,} tasks"

    def task_chart_note(self, show_all: bool) -> str:
        """What the "By task" chart holds when the suite is too large to draw whole."""
        if show_all:
            return f"All {self.tasks_with_delta:,} tasks, grouped by capability (scroll the chart)."
        shown = self.tasks_with_delta - self.tasks_left_out
        return (
            f"The {TOP_PER_CAPABILITY} tasks per capability that moved most ({shown:,} of "
            f"{self.tasks_with_delta:,}), largest change first; the table lists every task."
        )


NOISE_COLUMNS = ("delta", "ci_low", "ci_high")  # greyed in a row that is within noise


def _points_view(title: str, frame: pd.DataFrame) -> View:
    shown = as_points(frame)
    if "capability" in shown.columns:
        shown["capability"] = shown["capability"].map(capability_title)
    if "significant" not in shown.columns:
        return View(title, shown)
    columns = [c for c in NOISE_COLUMNS if c in shown.columns]
    within = ~shown["significant"].astype(bool)
    noise = pd.DataFrame({c: within for c in columns}, index=shown.index)
    return View(title, shown, noise=noise)


# A suite of MMLU's size (57 subjects) or larger draws only the tasks that moved most:
# up to TOP_PER_CAPABILITY per capability, once the suite has more than SHOW_EVERY_TASK.
TOP_PER_CAPABILITY = 10
SHOW_EVERY_TASK = 20


def top_tasks(
    tasks: pd.DataFrame,
    *,
    show_all: bool = False,
    per_capability: int = TOP_PER_CAPABILITY,
    every_task_up_to: int = SHOW_EVERY_TASK,
) -> pd.DataFrame:
    """The task rows a chart draws: grouped by capability, largest |delta| first in each.

    Capabilities come in reading order (gained first, then what may be lost). A
    suite of up to ``every_task_up_to`` tasks, or ``show_all``, keeps every task
    with a delta; a larger one keeps the ``per_capability`` that moved most in each
    capability, so 200 tasks draw as a chart a reader can scan. Ties keep the
    query's (alphabetical) order.
    """
    rows = tasks.dropna(subset=["delta"])
    rank = {c: i for i, c in enumerate(CAPABILITY_ORDER)}
    ordered = rows.assign(
        _cap=rows["capability"].map(lambda c: rank.get(c, len(rank))),
        _size=-rows["delta"].abs(),
    ).sort_values(["_cap", "capability", "_size"], kind="stable")
    if not show_all and len(ordered) > every_task_up_to:
        ordered = ordered.groupby("capability", sort=False).head(per_capability)
    return ordered.drop(columns=["_cap", "_size"]).reset_index(drop=True)


def evaluated_models(con: Con, run_id: str) -> dict[str, str]:
    """The run's evaluated models (final first, then checkpoints) and their labels."""
    models = queries.run_models(con, run_id)
    return dict(zip(models["model_id"], models["label"], strict=True))


def kshot_lines(baselines: pd.DataFrame, capabilities: pd.DataFrame) -> list[KshotLine]:
    """k-shot baselines of the base next to the model's (unturned) target score."""
    target = capabilities.loc[capabilities["capability"] == "target", "value"]
    tuned = float(target.iloc[0]) if len(target) and pd.notna(target.iloc[0]) else None
    return [
        KshotLine(
            task=str(row.task),
            n_shot=None if _missing(row.n_shot) else int(row.n_shot),
            kshot_score=None if _missing(row.value) else float(row.value),
            base_zero_shot=None if _missing(row.base_target) else float(row.base_target),
            model_score=tuned,
        )
        for row in baselines.itertuples(index=False)
    ]


def _missing(value: Any) -> bool:
    return value is None or bool(pd.isna(value))


def _in_reading_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Capabilities as every table orders them: gained first, then what may be lost."""
    rank = {c: i for i, c in enumerate(CAPABILITY_ORDER)}
    order = frame["capability"].map(lambda c: rank.get(c, len(rank)))
    return frame.iloc[order.argsort(kind="stable")].reset_index(drop=True)


def samples_text(n_samples: Any, n_original: Any) -> str | None:
    """The Samples cell: "10 of 12" when a limit cut the task, "12" when whole, None if unknown."""
    if _missing(n_samples):
        return None
    if not _missing(n_original) and int(n_original) > int(n_samples):
        return f"{int(n_samples)} of {int(n_original)}"
    return str(int(n_samples))


def _task_rows(tasks: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Task rows with their sample counts and direction as text, and the tasks a limit cut."""
    out = tasks.drop(columns=["n_samples", "n_original", "higher_is_better"])
    out["samples"] = [
        samples_text(n, o) for n, o in zip(tasks["n_samples"], tasks["n_original"], strict=True)
    ]
    out["better"] = [
        "higher" if _missing(h) or bool(h) else "lower" for h in tasks["higher_is_better"]
    ]
    cut = [text is not None and " of " in text for text in out["samples"]]
    return out, [str(t) for t, was_cut in zip(tasks["task"], cut, strict=True) if was_cut]


# What each delta's stored test adds to a Run page row, after the delta (``mde`` first,
# where the Compare page's Deltas table has it too).
TEST_FIELDS = ("mde", "ci_low", "ci_high", "p_adjusted", "significant")


def with_tests(frame: pd.DataFrame, tests: pd.DataFrame, key: str) -> pd.DataFrame:
    """``frame`` with each row's stored test (TEST_FIELDS) merged in after ``delta``.

    The same numbers as the Compare page's Deltas table (``trust.task_tests`` /
    ``capability_tests``). Merged before ``oriented``, so a hallucination row's CI
    turns with its delta. A row with no stored test gets NaN and ``significant``
    False: untested, so drawn within noise, as every table greys it.
    """
    shown = tests[[key, *TEST_FIELDS]].drop_duplicates(key)
    out = frame.drop(columns=[c for c in TEST_FIELDS if c in frame.columns]).merge(
        shown, on=key, how="left"
    )
    out.index = frame.index
    out["significant"] = out["significant"].astype("boolean").fillna(False).astype(bool)
    columns = [c for c in out.columns if c not in TEST_FIELDS]
    at = columns.index("delta") + 1 if "delta" in columns else len(columns)
    return out[[*columns[:at], *TEST_FIELDS, *columns[at:]]]


def model_changes(con: Con, model_id: str, run_id: str | None = None) -> ModelChanges:
    """Everything the Run page shows for one evaluated model."""
    capabilities = _in_reading_order(queries.capability_deltas(con, model_id))
    baselines = queries.icl_baselines(con, run_id) if run_id else pd.DataFrame()
    tasks, cut = _task_rows(queries.task_deltas(con, model_id))
    tasks = with_tests(tasks, trust.task_tests(con, [model_id]), "task")
    tested = with_tests(capabilities, trust.capability_tests(con, [model_id]), "capability")
    return ModelChanges(
        model_id=model_id,
        headline=queries.model_summary(con, model_id),
        capabilities=oriented(tested),
        tasks=oriented(tasks),
        kshot=kshot_lines(baselines, capabilities) if not baselines.empty else [],
        cut_tasks=cut,
    )


def link_notes(con: Con, run_id: str) -> list[str]:
    """Sentences that say an eval's link to this run was a guess, and which run it chose."""
    return [
        f"An eval's model was linked to this run by a guess: {note}."
        for note in queries.run_link_notes(con, run_id)
    ]
