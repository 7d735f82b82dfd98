"""The comparison table: models x tasks and capabilities against a base, with CIs and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from forgetwatch import queries
from forgetwatch.exports import trust
from forgetwatch.exports.figures import grey_noise
from forgetwatch.exports.views import (
    NOISE_MARK,
    SIGNED,
    Report,
    View,
    as_points,
    is_missing,
    ordered,
)
from forgetwatch.queries import CAPABILITY_ORDER, comparability

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


@dataclass(frozen=True)
class CompareSpec:
    """What to compare; the Compare page keeps exactly this in its URL."""

    run_ids: tuple[str, ...] = ()  # empty = every run
    tasks: tuple[str, ...] = ()  # empty = every suite task
    base_model: str | None = None  # None = the most common base of the chosen models
    method: str | None = None
    include_checkpoints: bool = True


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

    def views(self) -> list[View]:
        return [self.summary, self.table, self.deltas, self.provenance]

    def faded(self, figures: list[Any]) -> list[Any]:
        """``figures`` (built from ``points``) with within-noise models faded."""
        return grey_noise(figures, self.points, self.noise)

    def report(self, title: str, figures: list[Any] | None = None) -> Report:
        """All views in one export; CSV writes the long deltas table (one row per result).

        Figures are faded like the page's, so the report greys what the page greys.
        """
        views = self.views()
        shown = self.faded(figures or [])
        return Report(title, views, self.notes, shown, views.index(self.deltas))

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
    labels = pd.Series(
        [
            model_label(n, r, k, s)
            for n, r, k, s in zip(
                frame["run_name"], frame["run_id"], frame["kind"], frame["step"], strict=True
            )
        ],
        index=frame.index,
        dtype=object,
    )
    firsts = frame.drop_duplicates("model_id").index
    if labels[firsts].duplicated(keep=False).any():  # two runs with one name
        labels = labels + " (" + frame["model_id"] + ")"
    return labels


def wide_table(deltas: pd.DataFrame, cap_tests: pd.DataFrame | None = None) -> View:
    """Capabilities and tasks × compared models: the base score, then each model's delta.

    Capability rows are the mean of their tasks (the ``(mean)`` task), as in the
    headline numbers; each model column holds delta points vs the base. Cells
    within noise are masked (task rows from the task's test, ``(mean)`` rows from
    the capability's), and ``settings_mismatch`` names, per task, the models
    whose eval settings differ from the base's.
    """
    data = deltas.assign(model=_model_labels(deltas))
    models = list(dict.fromkeys(data["model"]))
    tasks = data.pivot_table(
        index=["capability", "task"], columns="model", values="delta", aggfunc="first", sort=False
    )
    task_noise = data.assign(noise=~data["significant"].fillna(False).astype(bool)).pivot_table(
        index=["capability", "task"], columns="model", values="noise", aggfunc="first", sort=False
    )
    mismatch = data[data["settings_mismatch"].fillna("") != ""]
    task_settings = (
        (mismatch["model"] + ": " + mismatch["settings_mismatch"])
        .groupby([mismatch["capability"], mismatch["task"]], sort=False)
        .agg("; ".join)
    )
    cap_noise = _capability_noise(data, cap_tests)
    base = data.groupby(["capability", "task"], sort=False)["base_value"].first()
    caps = data.groupby(["capability", "model"], sort=False)["delta"].mean().unstack("model")
    cap_base = base.groupby(level="capability", sort=False).mean()
    rows, noise = [], []
    order = {c: i for i, c in enumerate(CAPABILITY_ORDER)}
    for capability in sorted(dict.fromkeys(data["capability"]), key=lambda c: order.get(c, 99)):
        rows.append({"capability": capability, "task": "(mean)", "base_value": cap_base[capability],
                     **caps.loc[capability].to_dict(), "settings_mismatch": ""})  # fmt: skip
        noise.append({m: cap_noise.get((capability, m), True) for m in models})
        for (cap, task), row in tasks.loc[[capability]].iterrows():
            rows.append({"capability": cap, "task": task, "base_value": base[(cap, task)],
                         **row.to_dict(),
                         "settings_mismatch": task_settings.get((cap, task), "")})  # fmt: skip
            flags = task_noise.loc[(cap, task)]
            noise.append({m: bool(flags.get(m, True)) for m in models})
    frame = pd.DataFrame(
        rows, columns=["capability", "task", "base_value", *models, "settings_mismatch"]
    )
    frame[models] = frame[models].astype("Float64")
    frame["base_value"] = frame["base_value"].astype("Float64")
    if not mismatch.shape[0]:
        frame = frame.drop(columns="settings_mismatch")
    mask = pd.DataFrame(noise, columns=models, index=frame.index).fillna(True).astype(bool)
    return View("Comparison", frame, dict.fromkeys(models, SIGNED), noise=mask)


def _capability_noise(
    data: pd.DataFrame, cap_tests: pd.DataFrame | None
) -> dict[tuple[str, str], bool]:
    """(capability, model label) -> within noise, from the capability tests."""
    if cap_tests is None or cap_tests.empty:
        return {}
    labels = dict(zip(data["model_id"], data["model"], strict=False))
    return {
        (r.capability, labels[r.model_id]): not bool(r.significant)
        for r in cap_tests.itertuples()
        if r.model_id in labels
    }


def _chosen_base(con: queries.Con, spec: CompareSpec) -> str | None:
    """The spec's base, or the base most of the chosen models were fine-tuned from."""
    if spec.base_model:
        return spec.base_model
    points = queries.compare_points(
        con, include_checkpoints=spec.include_checkpoints, run_ids=list(spec.run_ids) or None,
        method=spec.method,
    )  # fmt: skip
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
    frame = as_points(frame)
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
    filters = {
        "include_checkpoints": spec.include_checkpoints,
        "run_ids": list(spec.run_ids) or None,
        "base_model": base,
        "method": spec.method,
    }
    points = queries.compare_points(con, **filters)
    scores = queries.comparison_scores(con, **filters, tasks=list(spec.tasks) or None)
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
    return Comparison(
        summary=_summary(points, cap_tests, verdicts, mismatches),
        table=wide_table(deltas.frame, cap_tests)
        if not deltas.frame.empty
        else View("Comparison", pd.DataFrame()),
        deltas=deltas,
        provenance=View("Provenance", ordered(provenance, PROVENANCE_FIRST, LONG_LAST)),
        notes=_notes(con, spec, base, scores, tests, mismatches, names),
        points=points,
        noise=trust.headline_noise(cap_tests),
        verdicts=found_verdicts,
    )


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
    missing = sorted(set(spec.run_ids) - set(scores["run_id"]))
    if missing:
        found = queries.run_names(con, missing)
        notes.append(
            "No comparable evals for: "
            + ", ".join(found.get(r, r) for r in missing)
            + " (not evaluated, or a different base)."
        )
    return notes
