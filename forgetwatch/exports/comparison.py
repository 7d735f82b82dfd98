"""The comparison table: models x tasks and capabilities against a base, with CIs and provenance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from forgetwatch import queries
from forgetwatch.exports.views import (
    CI_METHOD,
    SIGNED,
    Z_95,
    Report,
    View,
    as_points,
    is_missing,
    ordered,
)
from forgetwatch.queries import CAPABILITY_ORDER

SUMMARY_FIRST = (
    "run_name", "kind", "step", "target_gain", "general_change", "hallucination_change", "method",
)  # fmt: skip
DELTAS_FIRST = (
    "run_name", "kind", "step", "capability", "task", "base_value", "value", "delta",
    "ci_low", "ci_high", "significant", "ci_method", "settings_mismatch", "metric", "filter",
    "method",
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

    def views(self) -> list[View]:
        return [self.summary, self.table, self.deltas, self.provenance]

    def report(self, title: str, figures: list[Any] | None = None) -> Report:
        """All views in one export; CSV writes the long deltas table (one row per result)."""
        views = self.views()
        return Report(title, views, self.notes, figures or [], views.index(self.deltas))


def model_label(run_name: str | None, run_id: str, kind: str, step: Any) -> str:
    """How a compared model is named in column headers: run name, plus @step for checkpoints."""
    name = run_name or run_id
    return name if kind == "final" or is_missing(step) else f"{name} @{int(step)}"


def with_ci(deltas: pd.DataFrame) -> pd.DataFrame:
    """Add a stderr-based 95% CI and a significance marker to point-scaled deltas.

    CI = delta ± 1.96·sqrt(se_model² + se_base²), from lm-eval's own stderrs (which
    treat the two evals as independent); rows without both stderrs get no CI.
    """
    out = deltas.copy()
    half = Z_95 * (out["stderr"] ** 2 + out["base_stderr"] ** 2) ** 0.5 * 100
    half = half.astype("Float64")
    out["ci_low"] = out["delta"] - half
    out["ci_high"] = out["delta"] + half
    excludes_zero = ((out["ci_low"] > 0) | (out["ci_high"] < 0)).fillna(False)
    out["significant"] = excludes_zero.map({True: "*", False: ""})
    out["ci_method"] = half.notna().map({True: CI_METHOD, False: ""})
    return out.drop(columns=["stderr", "base_stderr"])


def wide_table(deltas: pd.DataFrame) -> View:
    """Capabilities and tasks × compared models: the base score, then each model's delta.

    Capability rows are the mean of their tasks (the ``(mean)`` task), as in the
    headline numbers; each model column holds delta points vs the base.
    """
    data = deltas.assign(
        model=[
            model_label(n, r, k, s)
            for n, r, k, s in zip(
                deltas["run_name"], deltas["run_id"], deltas["kind"], deltas["step"], strict=True
            )
        ]
    )
    duplicated = data.drop_duplicates("model_id")["model"].duplicated(keep=False)
    if duplicated.any():  # two runs with one name: tell them apart by model id
        data["model"] = data["model"] + " (" + data["model_id"] + ")"
    models = list(dict.fromkeys(data["model"]))
    tasks = data.pivot_table(
        index=["capability", "task"], columns="model", values="delta", aggfunc="first", sort=False
    )
    base = data.groupby(["capability", "task"], sort=False)["base_value"].first()
    caps = data.groupby(["capability", "model"], sort=False)["delta"].mean().unstack("model")
    cap_base = base.groupby(level="capability", sort=False).mean()
    rows = []
    order = {c: i for i, c in enumerate(CAPABILITY_ORDER)}
    for capability in sorted(dict.fromkeys(data["capability"]), key=lambda c: order.get(c, 99)):
        rows.append({"capability": capability, "task": "(mean)", "base_value": cap_base[capability],
                     **caps.loc[capability].to_dict()})  # fmt: skip
        for (cap, task), row in tasks.loc[[capability]].iterrows():
            rows.append({"capability": cap, "task": task, "base_value": base[(cap, task)],
                         **row.to_dict()})  # fmt: skip
    frame = pd.DataFrame(rows, columns=["capability", "task", "base_value", *models])
    frame[models] = frame[models].astype("Float64")
    frame["base_value"] = frame["base_value"].astype("Float64")
    return View("Comparison", frame, dict.fromkeys(models, SIGNED))


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


def build_comparison(con: queries.Con, spec: CompareSpec) -> Comparison:
    """Every table of the Compare page for ``spec``, from the named queries only.

    All compared models share one base (the chosen one), so the ``Base`` column
    means one thing per row.
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
    deltas = with_ci(as_points(scores))
    model_ids = list(dict.fromkeys(scores["model_id"]))
    provenance = queries.eval_provenance(
        con, ([base] if base else []) + model_ids, list(spec.tasks) or None
    )
    notes = _notes(con, spec, base, scores)
    return Comparison(
        summary=View("Summary", ordered(as_points(points), SUMMARY_FIRST, LONG_LAST)),
        table=wide_table(deltas) if not deltas.empty else View("Comparison", pd.DataFrame()),
        deltas=View("Deltas", ordered(deltas, DELTAS_FIRST, LONG_LAST)),
        provenance=View("Provenance", ordered(provenance, PROVENANCE_FIRST, LONG_LAST)),
        notes=notes,
        points=points,
    )


def _notes(
    con: queries.Con, spec: CompareSpec, base: str | None, scores: pd.DataFrame
) -> list[str]:
    """What a reader must know to trust the numbers: units, CI method, mismatches, gaps."""
    notes = [
        f"Scores and deltas are in points (x100) vs the base model {base or '(none)'}. "
        f"CIs are {CI_METHOD}: delta ± 1.96·sqrt(se_model² + se_base²) from lm-eval's "
        "stderr; * marks a CI that excludes zero."
    ]
    mismatched = scores[scores["settings_mismatch"] != ""]
    if not mismatched.empty:
        examples = "; ".join(
            f"{model_label(r.run_name, r.run_id, r.kind, r.step)} / {r.task}: {r.settings_mismatch}"
            for r in mismatched.head(5).itertuples()
        )
        more = f" (and {len(mismatched) - 5} more)" if len(mismatched) > 5 else ""
        notes.append(
            f"Settings mismatch: {len(mismatched)} results were evaluated with settings that "
            f"differ from the base's — {examples}{more}."
        )
    missing = sorted(set(spec.run_ids) - set(scores["run_id"]))
    if missing:
        names = queries.run_names(con, missing)
        notes.append(
            "No comparable evals for: "
            + ", ".join(names.get(r, r) for r in missing)
            + " (not evaluated, or a different base)."
        )
    return notes
