"""The comparison table: models x tasks and capabilities against a base, with CIs and provenance."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from forgetwatch import queries
from forgetwatch.identity import display_name
from forgetwatch.queries import CAPABILITY_ORDER, comparability
from forgetwatch.review import budget, trust
from forgetwatch.review.compare_map import BudgetRegion, budget_region, pareto_frontier
from forgetwatch.review.direction import capability_title, oriented
from forgetwatch.review.views import (
    NOISE_MARK,
    POINTS,
    SIGNED,
    Report,
    View,
    as_points,
    fmt_change,
    is_missing,
    ordered,
)

SUMMARY_FIRST = (
    "run_name", "kind", "step", "base_model", "target_gain", "general_change",
    "hallucination_change", "verdict", "verdict_reasons", "settings_mismatch", "method",
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
# Long text the page keeps out of its tables' rows (shown under "Details"; exports keep it).
LONG_TEXT = ("verdict_reasons", "settings_mismatch", "missing")
# Up to this many picked runs and models the URL names them (?runs=); more are saved
# as one selection in the database and the URL carries its key (?sel=).
URL_PICKS = 10
# Up to this many picks without comparable evals are named in the note; more are counted.
NAMED_UNSHOWN = 3


@dataclass(frozen=True)
class CompareSpec:
    """What to compare; the Compare page keeps exactly this in its URL."""

    run_ids: tuple[str, ...] = ()  # empty (and no model_ids) = every run
    tasks: tuple[str, ...] = ()  # empty = every suite task
    base_model: str | None = None  # None = every base: each model against its own
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
    base_model: str | None = None  # the base filter (None = every model vs its own base)
    # The page's capability x model table: each delta with its CI and significance mark.
    table_cells: View = field(default_factory=lambda: View("Comparison", pd.DataFrame()))
    bases: list[str] = field(default_factory=list)  # the compared models' bases
    frontier: pd.Series = field(default_factory=lambda: pd.Series(dtype=bool))  # per point
    region: BudgetRegion | None = None  # where the budget's target/general limits hold
    unshown: list[str] = field(default_factory=list)  # picked runs/models with no deltas

    def views(self) -> list[View]:
        return [self.summary, self.table, self.deltas, self.provenance]

    def report(self, title: str, figures: list[Any] | None = None) -> Report:
        """All views in one export; CSV writes the long deltas table (one row per result).

        The compact capability × model table (``report_table``) leads, so a review file
        opens on it. Pass figures through ``exports.figures.faded`` first, so the report
        greys what the page greys (the review layer knows no plotly).
        """
        from forgetwatch.review.report_table import comparison_review_table

        views = [comparison_review_table(self), *self.views()]
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
    """Column header per row's model: run name (@step), plus the model id when names clash.

    With more than one base among the rows, each header also says its base ("vs b"),
    since each column is measured against its own.
    """
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
    if "base_model_id" in firsts and firsts["base_model_id"].nunique() > 1:
        bases = firsts.set_index("model_id")["base_model_id"].map(base_name)
        per_model = per_model + " · vs " + bases.reindex(per_model.index).fillna("?")
    labels = frame["model_id"].map(per_model).astype(object)
    labels.index = frame.index
    return labels


def base_name(base_model_id: Any) -> str:
    """A base model's short name, as headers and hover name it."""
    return "" if is_missing(base_model_id) else display_name(str(base_model_id))


@dataclass
class _Wide:
    """The capability x model table's blocks, aligned row for row (see ``wide_table``)."""

    frame: pd.DataFrame  # capability, task, base column(s), one delta column per model, text
    models: list[str]
    base_columns: list[str]
    noise: pd.DataFrame  # True = within noise (or untested), per model column
    ci_low: pd.DataFrame
    ci_high: pd.DataFrame


def wide_table(deltas: pd.DataFrame, cap_tests: pd.DataFrame | None = None) -> View:
    """Capabilities and tasks × compared models: the base score, then each model's delta.

    Capability rows are the mean of their tasks (the ``(mean)`` task), as in the
    headline numbers; each model column holds delta points vs its base, already
    turned by ``direction.oriented`` (hallucination rows are rates, + = worse).
    Cells within noise are masked (task rows from the task's test, ``(mean)``
    rows from the capability's). A cell with no delta stays empty and ``missing``
    says why (the base, or that model, has no eval of the task), so partial
    evidence never breaks the table. ``settings_mismatch`` names, per task, the
    models whose eval settings differ from the base's. With several bases there is
    one base column per base ("Base: name") and each model header names its base.
    """
    return _numbers_view(_wide(deltas, cap_tests))


def _numbers_view(wide: _Wide) -> View:
    formats = dict.fromkeys(wide.models, SIGNED) | dict.fromkeys(wide.base_columns, POINTS)
    return View("Comparison", wide.frame, formats, noise=wide.noise)


def ci_table(deltas: pd.DataFrame, cap_tests: pd.DataFrame | None = None) -> View:
    """``wide_table`` with each delta written with its 95% CI and significance mark.

    The page's table: "+12.3 [+8.0, +16.5] *" (``views.fmt_change``), task rows with
    the task test's CI, ``(mean)`` rows with the capability test's; noise stays greyed.
    """
    return _cells_view(_wide(deltas, cap_tests))


def _cells_view(wide: _Wide) -> View:
    frame = wide.frame.copy()
    for model in wide.models:
        frame[model] = [
            fmt_change(d, lo, hi, not noisy)
            for d, lo, hi, noisy in zip(
                wide.frame[model], wide.ci_low[model], wide.ci_high[model], wide.noise[model],
                strict=True,
            )
        ]  # fmt: skip
    return View("Comparison", frame, dict.fromkeys(wide.base_columns, POINTS), noise=wide.noise)


def _wide(deltas: pd.DataFrame, cap_tests: pd.DataFrame | None) -> _Wide:
    data = deltas.assign(model=_model_labels(deltas))
    models = list(dict.fromkeys(data["model"]))
    keys = ["capability", "task"]
    bases = list(dict.fromkeys(data["base_model_id"].dropna())) if "base_model_id" in data else []
    base_columns = ["base_value"] if len(bases) <= 1 else [f"Base: {base_name(b)}" for b in bases]

    def per_task(column: str) -> pd.DataFrame:
        # groupby + first keeps a (capability, task) whose deltas are all missing, where a
        # pivot_table would silently drop it (and a later lookup would raise KeyError).
        found = data.groupby([*keys, "model"], sort=False)[column].first().unstack("model")
        return found.reindex(columns=models)

    tasks = per_task("delta")
    noisy = data.assign(noise=~data["significant"].fillna(False).astype(bool))
    task_noise = noisy.groupby([*keys, "model"], sort=False)["noise"].first().unstack("model")
    mismatch = data[data["settings_mismatch"].fillna("") != ""]
    task_settings = (
        (mismatch["model"] + ": " + mismatch["settings_mismatch"])
        .groupby([mismatch["capability"], mismatch["task"]], sort=False)
        .agg("; ".join)
        .to_dict()
    )
    base_of = data["base_model_id"] if len(bases) > 1 else pd.Series("", index=data.index)
    base_scores = data.groupby([*keys, base_of.rename("_base")], sort=False)["base_value"]
    base_tasks = base_scores.first().unstack("_base")
    base_tasks = base_tasks.reindex(columns=bases if len(bases) > 1 else [""])
    base_tasks.columns = base_columns
    # A capability's mean leaves its uninformative tasks out, as the stored tests and
    # every other face do; with every task uninformative they all count (0.0).
    flagged = (
        data["uninformative"].astype("boolean").fillna(False).astype(bool)
        if "uninformative" in data.columns
        else pd.Series(False, index=data.index)
    )
    by_cap = ["capability", "model"]
    informative = data.assign(delta=data["delta"].where(~flagged)).groupby(by_cap, sort=False)
    every = data.groupby(by_cap, sort=False)["delta"].mean()
    kept = informative["delta"].mean()
    caps = kept.where(kept.notna() | ~(flagged.groupby([data[c] for c in by_cap]).all()), every)
    caps = caps.unstack("model")
    caps = caps.reindex(columns=models)
    cap_base = base_tasks.groupby(level=0, sort=False).mean()
    # Whole blocks at once (a (mean) row per capability, then its tasks), not row by row:
    # a hundred models over two hundred tasks is 20,000 cells.
    task_rows = tasks.reset_index()
    task_rows[base_columns] = base_tasks.reindex(tasks.index).to_numpy()
    task_rows["settings_mismatch"] = [task_settings.get(k, "") for k in tasks.index]
    mean_rows = caps.reset_index().assign(task="(mean)", settings_mismatch="")
    mean_rows[base_columns] = cap_base.reindex(caps.index).to_numpy()
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

    def stacked(cap_level: pd.DataFrame, task_level: pd.DataFrame) -> pd.DataFrame:
        """Capability rows then task rows, in the table's order (as ``both``)."""
        out = pd.concat(
            [
                cap_level.reindex(index=caps.index, columns=models),
                task_level.reindex(index=tasks.index, columns=models).reset_index(drop=True),
            ],
            ignore_index=True,
        )
        return out.loc[ordering].reset_index(drop=True).rename_axis(columns=None)

    cap_ci = _capability_ci(data, cap_tests)
    columns = ["capability", "task", *base_columns, *models, "settings_mismatch"]
    frame = both[columns].rename_axis(columns=None)
    frame["capability"] = frame["capability"].map(capability_title)
    frame[models] = frame[models].astype("Float64")
    frame[base_columns] = frame[base_columns].astype("Float64")
    frame["missing"] = _missing_reasons(frame, models, base_columns)
    for optional in ("settings_mismatch", "missing"):
        if not (frame[optional] != "").any():
            frame = frame.drop(columns=optional)
    noise = stacked(_capability_noise(data, cap_tests), task_noise)
    # A missing test counts as noise; where() keeps the frame's dtype for the fill.
    mask = noise.where(noise.notna(), True).astype(bool)
    mask.index = frame.index
    ci_low = stacked(cap_ci.get("ci_low", pd.DataFrame()), per_task("ci_low"))
    ci_high = stacked(cap_ci.get("ci_high", pd.DataFrame()), per_task("ci_high"))
    return _Wide(frame, models, base_columns, mask, ci_low, ci_high)


def _missing_reasons(frame: pd.DataFrame, models: list[str], base_columns: list[str]) -> list[str]:
    """Per row, why it has empty delta cells: no base eval, or which models lack the task."""
    lacking = frame[models].isna().to_numpy()
    names = np.array(models, dtype=object)
    no_base = frame[base_columns].isna().all(axis=1)
    return [
        "the base model has no eval of this task"
        if none
        else ("no eval of this task: " + ", ".join(names[row]) if row.any() else "")
        for none, row in zip(no_base, lacking, strict=True)
    ]


def _tested(data: pd.DataFrame, cap_tests: pd.DataFrame | None) -> pd.DataFrame:
    """The capability tests of the table's models, labelled with their column header."""
    if cap_tests is None or cap_tests.empty:
        return pd.DataFrame()
    labels = dict(zip(data["model_id"], data["model"], strict=False))
    tested = cap_tests[cap_tests["model_id"].isin(labels)]
    return tested.assign(model=tested["model_id"].map(labels))


def _capability_noise(data: pd.DataFrame, cap_tests: pd.DataFrame | None) -> pd.DataFrame:
    """Within noise per capability (rows) and model label (columns), from the capability tests.

    A capability or model without a test is left out; the caller counts it as noise.
    """
    tested = _tested(data, cap_tests)
    if tested.empty:
        return pd.DataFrame()
    within = tested.assign(noise=~tested["significant"].astype(bool))
    return within.pivot_table(index="capability", columns="model", values="noise", aggfunc="last")


def _capability_ci(data: pd.DataFrame, cap_tests: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """The capability tests' CI ends in points, turned like the deltas, per capability x model."""
    tested = _tested(data, cap_tests)
    if tested.empty or "ci_low" not in tested:
        return {}
    shown = as_points(oriented(tested[["capability", "model", "ci_low", "ci_high"]]))
    return {
        end: shown.groupby(["capability", "model"], sort=False)[end].last().unstack("model")
        for end in ("ci_low", "ci_high")
    }


def details_view(view: View, keys: tuple[str, ...]) -> tuple[View, View | None]:
    """``view`` without its long text columns, and those columns for the rows that have any.

    A table that fits the page leads with its key columns; settings mismatches, why a
    cell is missing and a verdict's reasons go to a details table under it (the exports
    keep every column). ``keys`` name the rows in the details table.
    """
    long = [c for c in LONG_TEXT if c in view.frame.columns]
    if not long:
        return view, None
    frame = view.frame
    main = View(view.title, frame.drop(columns=long), view.number_formats, view.noise)
    has_text = frame[long].fillna("").astype(str).ne("").any(axis=1)
    if not has_text.any():
        return main, None
    named = [k for k in keys if k in frame.columns]
    rows = frame.loc[has_text, [*named, *long]].reset_index(drop=True)
    return main, View(f"{view.title}: details", rows, view.number_formats)


def selection_key(run_ids: tuple[str, ...], model_ids: tuple[str, ...]) -> str:
    """The short key a saved selection of runs and models is stored under (``?sel=``).

    A digest of the sorted picks, so the same selection always gets the same key and
    saving it twice stores one row.
    """
    text = "\n".join(sorted(run_ids)) + "\0" + "\n".join(sorted(model_ids))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


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
    frame = as_points(points)
    if points["base_model_id"].nunique() > 1:  # each row is against its own base
        frame["base_model"] = points["base_model_id"].map(base_name)
    frame = frame.merge(verdicts, on="model_id", how="left").merge(
        comparability.mismatch_by_model(mismatches), on="model_id", how="left"
    )
    frame["settings_mismatch"] = frame["settings_mismatch"].fillna("")
    frame = ordered(frame, SUMMARY_FIRST, LONG_LAST)
    noise = trust.noise_for(frame, trust.headline_noise(cap_tests))
    return View("Summary", frame, noise=noise)


def build_comparison(con: queries.Con, spec: CompareSpec) -> Comparison:
    """Every table of the Compare page for ``spec``, from the named queries only.

    Each model is measured against its own base (the stored deltas and tests are
    per model and base), so models fine-tuned from different bases compare together;
    ``spec.base_model`` only narrows to one base. Each delta carries its paired test
    (or the weaker stderr test), and every table carries what differs in eval settings.
    """
    picks = spec.filters()
    checkpoints = spec.include_checkpoints
    base = spec.base_model
    points = queries.compare_points(
        con, include_checkpoints=checkpoints, base_model=base, method=spec.method, **picks
    )
    scores = queries.comparison_scores(
        con, include_checkpoints=checkpoints, base_model=base, method=spec.method,
        tasks=list(spec.tasks) or None, **picks,
    )  # fmt: skip
    model_ids = list(dict.fromkeys(scores["model_id"]))
    bases = list(dict.fromkeys(points["base_model_id"].dropna()))
    tests = trust.task_tests(con, model_ids)
    cap_tests = trust.capability_tests(con, list(points["model_id"]))
    mismatches = comparability.settings_mismatches(con, model_ids)
    if spec.tasks:
        mismatches = mismatches[mismatches["task"].isin(spec.tasks)]
    plan = budget.load_budget(budget.default_budget_path())
    found_verdicts = budget.verdicts(con, list(points["model_id"]), plan) if len(points) else {}
    verdicts = trust.verdict_frame(found_verdicts)
    deltas = _with_tests(scores, tests, mismatches)
    provenance = queries.eval_provenance(con, bases + model_ids, list(spec.tasks) or None)
    names = {
        m: model_label(r.run_name, r.run_id, r.kind, r.step)
        for m, r in scores.drop_duplicates("model_id").set_index("model_id").iterrows()
    }
    empty = View("Comparison", pd.DataFrame())
    wide = _wide(deltas.frame, cap_tests) if not deltas.frame.empty else None
    if not deltas.frame.empty:
        deltas.frame["capability"] = deltas.frame["capability"].map(capability_title)
    notes, unshown = _notes(con, spec, bases, scores, tests, mismatches, names)
    return Comparison(
        summary=_summary(points, cap_tests, verdicts, mismatches),
        table=_numbers_view(wide) if wide else empty,
        deltas=deltas,
        provenance=View("Provenance", ordered(provenance, PROVENANCE_FIRST, LONG_LAST)),
        notes=notes,
        points=points,
        noise=trust.headline_noise(cap_tests),
        verdicts=found_verdicts,
        base_model=base,
        table_cells=_cells_view(wide) if wide else empty,
        bases=bases,
        frontier=pareto_frontier(points),
        region=budget_region(plan),
        unshown=unshown,
    )


def page_comparison(
    con: queries.Con, spec: CompareSpec, *, max_runs: int = TABLE_RUNS
) -> Comparison:
    """The Compare page's comparison: ``spec``'s runs, or the newest when none are picked.

    With no runs picked, ``build_comparison`` compares every evaluated run, which at
    thousands of runs is a table no one can read (and minutes of tests). The page
    then compares the newest ``max_runs`` of them (each against its base) and says so
    in the notes, so the export carries the same caveat; the chart still maps all.
    """
    if spec.picked:
        return build_comparison(con, spec)
    base = spec.base_model
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
    """Every model the Compare chart can place (``base_model`` None = any): the backdrop.

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
    bases: list[str],
    scores: pd.DataFrame,
    tests: pd.DataFrame,
    mismatches: pd.DataFrame,
    names: dict[str, str],
) -> tuple[list[str], list[str]]:
    """What a reader must know to trust the numbers, and the picks that cannot be shown.

    Picked runs and models without comparable evals are counted in one note; the
    names come back separately, for a page to list on demand.
    """
    corrections = tests["correction"].dropna() if "correction" in tests else pd.Series()
    notes = [
        f"Scores and deltas are in points (x100) vs {_bases_text(bases)}. "
        + method_note(str(corrections.iloc[0]) if not corrections.empty else None)
    ]
    warning = comparability.mismatch_warning(mismatches, names)
    if warning:
        notes.append(warning)
    pending = trust.pending_warning(con, list(scores["model_id"].dropna().unique()), names)
    if pending:
        notes.append(pending)
    missing = sorted(set(spec.run_ids) - set(scores["run_id"].dropna()))
    found = queries.run_names(con, missing) if missing else {}
    unshown = [found.get(r, r) for r in missing]
    unshown += sorted(set(spec.model_ids) - set(scores["model_id"]))
    if unshown:
        why = "not evaluated on the suite's tasks, or no evaluated base" + (
            ", or another base" if spec.base_model else ""
        )
        few = len(unshown) <= NAMED_UNSHOWN
        notes.append(
            f"No comparable evals for: {', '.join(unshown)} ({why})."
            if few
            else f"{len(unshown):,} picked runs and models have no comparable evals yet ({why})."
        )
    return notes, unshown


def _bases_text(bases: list[str]) -> str:
    """Which base the deltas are against: the one base, or each model's own."""
    if not bases:
        return "the base model (none)"
    if len(bases) == 1:
        return f"the base model {bases[0]}"
    shown = ", ".join(base_name(b) for b in bases[:5]) + (", …" if len(bases) > 5 else "")
    return f"each model's own base ({len(bases)} bases: {shown})"
