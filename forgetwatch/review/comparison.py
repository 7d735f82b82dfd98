"""The comparison table: models x tasks and capabilities against a base, with CIs and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from forgetwatch import queries
from forgetwatch.queries import CAPABILITY_ORDER, comparability
from forgetwatch.review import trust
from forgetwatch.review.direction import capability_title, oriented
from forgetwatch.review.views import (
    NOISE_MARK,
    SIGNED,
    Report,
    View,
    as_points,
    is_missing,
    ordered,
)

SUMMARY_FIRST = (
    "run_name", "kind", "step", "target_gain", "general_change", "hallucination_change",
    "verdict", "verdict_reasons", "settings_mismatch", "method",
)  # fmt: skip
DELTAS_FIRST = (
    "run_name", "kind", "step", "capability", "task", "base_value", "value", "delta",
    *trust.TEST_COLUMNS, "settings_mismatch", "metric", "filter", "method",
)  # fmt: skip
PROVENANCE_FIRST = (
    "run_name", "kind", "lm_eval_version", "n_shot", "eval_limit", "task_hashes",
    "chat_template_sha", "evaluated_at", "tasks",
)  # fmt: skip
LONG_LAST = ("run_id", "base_model_id", "eval_id", "source_file", "model_id")  # long paths last
# With no runs picked, the page's tables compare this many of the newest runs.
TABLE_RUNS = 25
# The most models the page's chart draws (newest first); WebGL keeps this many readable.
MAP_LIMIT = 20_000


@dataclass(frozen=True)
class CompareSpec:
    """What to compare; the Compare page keeps exactly this in its URL."""

    run_ids: tuple[str, ...] = ()  # empty (and no model_ids) = every run
    tasks: tuple[str, ...] = ()  # empty = every suite task
    base_model: str | None = None  # None = the most common base of the chosen models
    method: str | None = None
    include_checkpoints: bool = True
    model_ids: tuple[str, ...] = ()  # models no run produced, compared like runs' finals

    @property
    def picked(self) -> bool:
        """Whether runs or models were picked (else the newest are compared)."""
        return bool(self.run_ids or self.model_ids)

    def filters(self) -> dict[str, Any]:
        """The picks as the compare queries take them (None = no filter)."""
        return {
            "run_ids": list(self.run_ids) or None,
            "model_ids": list(self.model_ids) or None,
        }


@dataclass
class Comparison:
    """The Compare page's tables, in page order, plus what the reader must know."""

    summary: View
    table: View
    deltas: View
    provenance: View
    notes: list[str]
    points: pd.DataFrame  # compare_points rows (fractions), for charts
    # Per model: whether target gain / general change / hallucination change are noise.
    noise: pd.DataFrame = field(default_factory=pd.DataFrame)
    verdicts: dict[str, Any] = field(default_factory=dict)  # model_id -> budget.Verdict
    base_model: str | None = None  # the one base every delta is against

    def views(self) -> list[View]:
        return [self.summary, self.table, self.deltas, self.provenance]

    def report(self, title: str, figures: list[Any] | None = None) -> Report:
        """All views in one export; CSV writes the long deltas table (one row per result).

        Pass figures through ``exports.figures.faded`` first, so the report greys
        what the page greys (the review layer knows no plotly).
        """
        views = self.views()
        return Report(title, views, self.notes, list(figures or []), views.index(self.deltas))

    def labels(self) -> dict[str, str]:
        """Model id -> the name tables use (run name, @step for checkpoints)."""
        return {
            r.model_id: model_label(r.run_name, r.run_id, r.kind, r.step)
            for r in self.points.itertuples()
        }


def model_label(run_name: str | None, run_id: str, kind: str, step: Any) -> str:
    """How a compared model is named in column headers: run name, plus @step for checkpoints."""
    name = run_name or run_id
    return name if kind == "final" or is_missing(step) else f"{name} @{int(step)}"


def _model_labels(frame: pd.DataFrame) -> pd.Series:
    """Column header per row's model: run name (@step), plus the model id when names clash."""
    firsts = frame.drop_duplicates("model_id")  # one label per model, not per delta row
    per_model = pd.Series(
        [
            model_label(n, r, k, s)
            for n, r, k, s in zip(
                firsts["run_name"], firsts["run_id"], firsts["kind"], firsts["step"], strict=True
            )
        ],
        index=firsts["model_id"],
        dtype=object,
    )
    if per_model.duplicated(keep=False).any():  # two runs with one name
        per_model = per_model + " (" + per_model.index.to_series() + ")"
    labels = frame["model_id"].map(per_model).astype(object)
    labels.index = frame.index
    return labels


def wide_table(deltas: pd.DataFrame, cap_tests: pd.DataFrame | None = None) -> View:
    """Capabilities and tasks × compared models: the base score, then each model's delta.

    Capability rows are the mean of their tasks (the ``(mean)`` task), as in the
    headline numbers; each model column holds delta points vs the base, already
    turned by ``direction.oriented`` (hallucination rows are rates, + = worse).
    Cells within noise are masked (task rows from the task's test, ``(mean)``
    rows from the capability's). A cell with no delta stays empty and ``missing``
    says why (the base, or that model, has no eval of the task), so partial
    evidence never breaks the table. ``settings_mismatch`` names, per task, the
    models whose eval settings differ from the base's.
    """
    data = deltas.assign(model=_model_labels(deltas))
    models = list(dict.fromkeys(data["model"]))
    keys = ["capability", "task"]
    # groupby + first keeps a (capability, task) whose deltas are all missing, where a
    # pivot_table would silently drop it (and a later lookup would raise KeyError).
    tasks = data.groupby([*keys, "model"], sort=False)["delta"].first().unstack("model")
    tasks = tasks.reindex(columns=models)
    noisy = data.assign(noise=~data["significant"].fillna(False).astype(bool))
    task_noise = noisy.groupby([*keys, "model"], sort=False)["noise"].first().unstack("model")
    mismatch = data[data["settings_mismatch"].fillna("") != ""]
    task_settings = (
        (mismatch["model"] + ": " + mismatch["settings_mismatch"])
        .groupby([mismatch["capability"], mismatch["task"]], sort=False)
        .agg("; ".join)
        .to_dict()
    )
    base = data.groupby(keys, sort=False)["base_value"].first().to_dict()
    caps = data.groupby(["capability", "model"], sort=False)["delta"].mean().unstack("model")
    caps = caps.reindex(columns=models)
    cap_base = pd.Series(base, dtype=float).groupby(level=0, sort=False).mean()
    # Whole blocks at once (a (mean) row per capability, then its tasks), not row by row:
    # a hundred models over two hundred tasks is 20,000 cells.
    task_rows = tasks.reset_index()
    task_rows["base_value"] = [base.get(k) for k in tasks.index]
    task_rows["settings_mismatch"] = [task_settings.get(k, "") for k in tasks.index]
    mean_rows = caps.reset_index().assign(task="(mean)", settings_mismatch="")
    mean_rows["base_value"] = mean_rows["capability"].map(cap_base)
    rank = {c: i for i, c in enumerate(CAPABILITY_ORDER)}
    caps_in_order = sorted(dict.fromkeys(data["capability"]), key=lambda c: rank.get(c, 99))
    position = {c: i for i, c in enumerate(caps_in_order)}
    both = pd.concat(
        [mean_rows.assign(_row=0), task_rows.assign(_row=range(1, len(task_rows) + 1))],
        ignore_index=True,
    )
    both["_cap"] = both["capability"].map(position)
    ordering = both.sort_values(["_cap", "_row"], kind="stable").index
    both = both.loc[ordering].reset_index(drop=True)
    noise = pd.concat(
        [
            _capability_noise(data, cap_tests).reindex(index=caps.index, columns=models),
            task_noise.reindex(index=tasks.index, columns=models).reset_index(drop=True),
        ],
        ignore_index=True,
    )
    noise = noise.loc[ordering].reset_index(drop=True)
    columns = ["capability", "task", "base_value", *models, "settings_mismatch"]
    frame = both[columns].rename_axis(columns=None)
    frame["capability"] = frame["capability"].map(capability_title)
    frame[models] = frame[models].astype("Float64")
    frame["base_value"] = frame["base_value"].astype("Float64")
    frame["missing"] = _missing_reasons(frame, models)
    for optional in ("settings_mismatch", "missing"):
        if not (frame[optional] != "").any():
            frame = frame.drop(columns=optional)
    # A missing test counts as noise; where() keeps the frame's dtype for the fill.
    mask = noise.where(noise.notna(), True).astype(bool).rename_axis(columns=None)
    mask.index = frame.index
    return View("Comparison", frame, dict.fromkeys(models, SIGNED), noise=mask)


def _missing_reasons(frame: pd.DataFrame, models: list[str]) -> list[str]:
    """Per row, why it has empty delta cells: no base eval, or which models lack the task."""
    lacking = frame[models].isna().to_numpy()
    names = np.array(models, dtype=object)
    return [
        "the base model has no eval of this task"
        if no_base
        else ("no eval of this task: " + ", ".join(names[row]) if row.any() else "")
        for no_base, row in zip(frame["base_value"].isna(), lacking, strict=True)
    ]


def _capability_noise(data: pd.DataFrame, cap_tests: pd.DataFrame | None) -> pd.DataFrame:
    """Within noise per capability (rows) and model label (columns), from the capability tests.

    A capability or model without a test is left out; the caller counts it as noise.
    """
    if cap_tests is None or cap_tests.empty:
        return pd.DataFrame()
    labels = dict(zip(data["model_id"], data["model"], strict=False))
    tested = cap_tests[cap_tests["model_id"].isin(labels)]
    within = tested.assign(
        model=tested["model_id"].map(labels), noise=~tested["significant"].astype(bool)
    )
    return within.pivot_table(index="capability", columns="model", values="noise", aggfunc="last")


def _chosen_base(con: queries.Con, spec: CompareSpec) -> str | None:
    """The spec's base, or the base most of the chosen models were fine-tuned from."""
    if spec.base_model:
        return spec.base_model
    points = queries.compare_points(
        con, include_checkpoints=spec.include_checkpoints, method=spec.method, **spec.filters()
    )
    counts = points["base_model_id"].value_counts()
    return None if counts.empty else str(counts.index[0])


def _with_tests(scores: pd.DataFrame, tests: pd.DataFrame, mismatches: pd.DataFrame) -> View:
    """The long Deltas view: each delta with its test and what differs from the base's eval."""
    per_task = comparability.mismatch_by_task(mismatches)
    frame = (
        scores.drop(columns=["stderr", "base_stderr", "settings_mismatch"], errors="ignore")
        .merge(tests, on=["model_id", "task"], how="left")
        .merge(per_task, on=["model_id", "task"], how="left")
    )
    frame["significant"] = frame["significant"].astype("boolean").fillna(False).astype(bool)
    frame["evidence"] = frame["evidence"].fillna("none")
    frame["settings_mismatch"] = frame["settings_mismatch"].fillna("")
    frame = as_points(oriented(frame))
    mask = pd.DataFrame({"delta": ~frame["significant"]}, index=frame.index)
    return View("Deltas", ordered(frame, DELTAS_FIRST, LONG_LAST), noise=mask)


def _summary(
    points: pd.DataFrame, cap_tests: pd.DataFrame, verdicts: pd.DataFrame, mismatches: pd.DataFrame
) -> View:
    """One row per model: headline changes (greyed when noise), verdict, settings."""
    frame = (
        as_points(points)
        .merge(verdicts, on="model_id", how="left")
        .merge(comparability.mismatch_by_model(mismatches), on="model_id", how="left")
    )
    frame["settings_mismatch"] = frame["settings_mismatch"].fillna("")
    frame = ordered(frame, SUMMARY_FIRST, LONG_LAST)
    noise = trust.noise_for(frame, trust.headline_noise(cap_tests))
    return View("Summary", frame, noise=noise)


def build_comparison(con: queries.Con, spec: CompareSpec) -> Comparison:
    """Every table of the Compare page for ``spec``, from the named queries only.

    All compared models share one base (the chosen one), so the ``Base`` column
    means one thing per row. Each delta carries its paired test (or the weaker
    stderr test), and every table carries what differs in eval settings.
    """
    base = _chosen_base(con, spec)
    picks = spec.filters()
    checkpoints = spec.include_checkpoints
    points = queries.compare_points(
        con, include_checkpoints=checkpoints, base_model=base, method=spec.method, **picks
    )
    scores = queries.comparison_scores(
        con, include_checkpoints=checkpoints, base_model=base, method=spec.method,
        tasks=list(spec.tasks) or None, **picks,
    )  # fmt: skip
    model_ids = list(dict.fromkeys(scores["model_id"]))
    tests = trust.task_tests(con, model_ids)
    cap_tests = trust.capability_tests(con, list(points["model_id"]))
    mismatches = comparability.settings_mismatches(con, model_ids)
    if spec.tasks:
        mismatches = mismatches[mismatches["task"].isin(spec.tasks)]
    found_verdicts = trust.verdicts(con, list(points["model_id"]))
    verdicts = trust.verdict_frame(found_verdicts)
    deltas = _with_tests(scores, tests, mismatches)
    provenance = queries.eval_provenance(
        con, ([base] if base else []) + model_ids, list(spec.tasks) or None
    )
    names = {
        m: model_label(r.run_name, r.run_id, r.kind, r.step)
        for m, r in scores.drop_duplicates("model_id").set_index("model_id").iterrows()
    }
    table = (
        wide_table(deltas.frame, cap_tests)
        if not deltas.frame.empty
        else View("Comparison", pd.DataFrame())
    )
    if not deltas.frame.empty:
        deltas.frame["capability"] = deltas.frame["capability"].map(capability_title)
    return Comparison(
        summary=_summary(points, cap_tests, verdicts, mismatches),
        table=table,
        deltas=deltas,
        provenance=View("Provenance", ordered(provenance, PROVENANCE_FIRST, LONG_LAST)),
        notes=_notes(con, spec, base, scores, tests, mismatches, names),
        points=points,
        noise=trust.headline_noise(cap_tests),
        verdicts=found_verdicts,
        base_model=base,
    )


def page_comparison(
    con: queries.Con, spec: CompareSpec, *, max_runs: int = TABLE_RUNS
) -> Comparison:
    """The Compare page's comparison: ``spec``'s runs, or the newest when none are picked.

    With no runs picked, ``build_comparison`` compares every evaluated run, which at
    thousands of runs is a table no one can read (and minutes of tests). The page
    then compares the newest ``max_runs`` of them against the same base and says so
    in the notes, so the export carries the same caveat; the chart still maps all.
    """
    if spec.picked:
        return build_comparison(con, spec)
    base = _chosen_base(con, spec)
    newest = queries.compare_points(
        con, include_checkpoints=False, base_model=base, method=spec.method,
        limit=max_runs + 1,
    )  # fmt: skip
    if len(newest) <= max_runs:
        return build_comparison(con, spec)
    kept = newest.head(max_runs)
    has_run = kept["run_id"].notna()
    picks = replace(
        spec,
        run_ids=tuple(dict.fromkeys(kept.loc[has_run, "run_id"])),
        model_ids=tuple(kept.loc[~has_run, "model_id"]),
        base_model=base,
    )
    shown = build_comparison(con, picks)
    shown.notes.insert(
        1,
        f"No runs picked, so the tables compare the {max_runs} newest evaluated runs; the "
        "chart maps every model. Pick runs to compare others.",
    )
    return shown


def map_points(
    con: queries.Con,
    *,
    base_model: str | None,
    method: str | None = None,
    include_checkpoints: bool = True,
    limit: int = MAP_LIMIT,
) -> pd.DataFrame:
    """Every model the Compare chart can place against ``base_model``: the map's backdrop.

    The same rows as ``Comparison.points`` (fractions), for all runs rather than the
    compared ones, newest first and at most ``limit`` (the page says when it is hit).
    """
    return queries.compare_points(
        con, include_checkpoints=include_checkpoints, base_model=base_model, method=method,
        limit=limit,
    )  # fmt: skip


def method_note(correction: str | None) -> str:
    """How deltas were tested and what grey / (ns) means; first note of every comparison."""
    how = correction or "holm"
    return (
        "Deltas are tested with a paired per-sample test where both evals logged samples "
        "(exact McNemar for 0/1 metrics, paired bootstrap/permutation for continuous ones), "
        "else from lm-eval's stderrs, treating the evals as independent (weaker evidence); "
        f"p-values are corrected per model ({how}); CIs are 95%. Greyed or marked"
        f"{NOISE_MARK} = within noise (not significant after correction, or untested)."
    )


def _notes(
    con: queries.Con,
    spec: CompareSpec,
    base: str | None,
    scores: pd.DataFrame,
    tests: pd.DataFrame,
    mismatches: pd.DataFrame,
    names: dict[str, str],
) -> list[str]:
    """What a reader must know to trust the numbers: units, tests, mismatches, gaps."""
    corrections = tests["correction"].dropna() if "correction" in tests else pd.Series()
    notes = [
        f"Scores and deltas are in points (x100) vs the base model {base or '(none)'}. "
        + method_note(str(corrections.iloc[0]) if not corrections.empty else None)
    ]
    warning = comparability.mismatch_warning(mismatches, names)
    if warning:
        notes.append(warning)
    pending = trust.pending_warning(con, list(scores["model_id"].dropna().unique()), names)
    if pending:
        notes.append(pending)
    missing = sorted(set(spec.run_ids) - set(scores["run_id"].dropna()))
    unshown = sorted(set(spec.model_ids) - set(scores["model_id"]))
    if unshown:
        notes.append(
            "No comparable evals for: " + ", ".join(unshown) + " (no base evaluated on the "
            "suite's tasks, or a different base)."
        )
    if missing:
        found = queries.run_names(con, missing)
        notes.append(
            "No comparable evals for: "
            + ", ".join(found.get(r, r) for r in missing)
            + " (not evaluated, or a different base)."
        )
    return notes
