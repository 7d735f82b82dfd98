"""Whether each shown delta can be trusted: significance, noise masks and budget verdicts.

Pages and exports both read these, so a delta greyed on the page is marked in
every file, and a verdict badge says the same thing as the ``verdict`` column.
The statistics themselves live in ``forgetwatch.stats`` and are stored when data
arrives (``forgetwatch.analysis``); this module only shapes what
``forgetwatch.queries.significance`` reads back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from forgetwatch import stats
from forgetwatch.queries import GENERAL_CAPABILITIES, Con, comparability, significance
from forgetwatch.review import budget

# Per-delta test columns carried into tables and exports, in reading order. A task row
# carries ``uninformative``, a capability row ``n_uninformative`` (tasks left out of it).
TEST_COLUMNS = [
    "significant", "evidence", "test", "p_value", "p_adjusted", "ci_low", "ci_high", "mde",
    "correction", "n_pairs", "right_to_wrong", "wrong_to_right", "uninformative",
    "n_uninformative",
]  # fmt: skip
HEADLINES = ("target_gain", "general_change", "hallucination_change")
EVIDENCE_LABELS = {
    "paired": "paired",
    "stderr": stats.EVIDENCE_STDERR_LABEL,
    "none": "none",
}


def task_tests(con: Con, model_ids: list[str]) -> pd.DataFrame:
    """Per (model_id, task): the paired (or stderr) test of its delta, corrected per model."""
    if not model_ids:
        return pd.DataFrame(columns=["model_id", "task", *TEST_COLUMNS])
    found = significance.paired_task_deltas(con, list(model_ids))
    return _shaped(found, ["model_id", "task"])


def capability_tests(con: Con, model_ids: list[str]) -> pd.DataFrame:
    """Per (model_id, capability): the test of the capability's mean delta."""
    if not model_ids:
        return pd.DataFrame(columns=["model_id", "capability", *TEST_COLUMNS])
    found = significance.paired_capability_deltas(con, list(model_ids))
    return _shaped(found, ["model_id", "capability"])


def _shaped(found: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    out = found[[*keys, *[c for c in TEST_COLUMNS if c in found.columns]]].copy()
    out["significant"] = ~stats.within_noise(out)
    out["evidence"] = out["evidence"].map(EVIDENCE_LABELS).fillna(out["evidence"])
    if "uninformative" in out.columns:  # a file analysed before the flag reads NULL
        out["uninformative"] = out["uninformative"].astype("boolean").fillna(False).astype(bool)
    if "n_uninformative" in out.columns:
        out["n_uninformative"] = out["n_uninformative"].fillna(0).astype(int)
    return out


def _points(score: float) -> str:
    """A bound score as the reader sees it: 0 or 100 (points)."""
    return f"{round(float(score) * 100):.0f}"


def uninformative_note(task: str, capability: str, score: float, *, some: str = "") -> str:
    """Why a task is left out of its capability's mean, in the one wording every face uses.

    "humaneval: every model scores 0 — uninformative, left out of the code mean".
    ``some`` names which models, where only some of those compared are at the bound
    (e.g. "2 of 3 models"); the base always is.
    """
    who = f"{some} score" if some else "every model scores"
    also = ", as does the base" if some else ""
    return (
        f"{task}: {who} {_points(score)}{also} — uninformative, left out of the {capability} mean"
    )


def empty_capability_note(capability: str, tasks: list[str]) -> str:
    """What a capability's 0.0 means when every one of its tasks is uninformative."""
    return (
        f"{capability}: every task is uninformative ({', '.join(tasks)}), so its +0.0 "
        "says only that no item changed: model and base sit at the same bound"
    )


def uninformative_notes(con: Con, model_ids: list[str]) -> list[str]:
    """What pages say about uninformative tasks among ``model_ids``' stored tests.

    Reads the stored flag, so each sentence names exactly the tasks the capability
    means left out (``notes_from``). Two small reads of the stored tests; no samples.
    """
    if not model_ids:
        return []
    tasks = significance.paired_task_deltas(con, list(model_ids))
    caps = significance.paired_capability_deltas(con, list(model_ids))
    return notes_from(tasks, caps)


def notes_from(tasks: pd.DataFrame, caps: pd.DataFrame | None = None) -> list[str]:
    """One sentence per uninformative suite task in ``tasks``, then one per capability
    whose every task is uninformative (its 0.0 is then no evidence of anything else).

    ``tasks``/``caps`` are ``queries.significance``'s frames (TASK_COLUMNS,
    CAPABILITY_COLUMNS) of the models shown; a task only some of them are stuck on
    says how many.
    """
    if tasks.empty or "uninformative" not in tasks.columns:
        return []
    tasks = tasks[tasks["task"] == tasks["parent"]]  # suite tasks: what the means read
    flagged = tasks["uninformative"].astype("boolean").fillna(False).astype(bool)
    notes = []
    for task, rows in tasks[flagged].groupby("task", sort=False):
        shown = tasks.loc[tasks["task"] == task, "model_id"].nunique()
        hit = rows["model_id"].nunique()
        some = "" if hit == shown else f"{hit} of {shown} models"
        first = rows.iloc[0]
        notes.append(uninformative_note(str(task), str(first["capability"]), first["value"],
                                        some=some))  # fmt: skip
    if caps is None or caps.empty or "n_uninformative" not in caps.columns:
        return notes
    # A capability all of whose suite tasks are flagged, for some model shown.
    per_cap = tasks.assign(flagged=flagged).groupby(["model_id", "capability"])["flagged"]
    whole = per_cap.all()
    for capability in dict.fromkeys(whole[whole].index.get_level_values("capability")):
        names = tasks.loc[flagged & (tasks["capability"] == capability), "task"]
        notes.append(empty_capability_note(str(capability), list(dict.fromkeys(names))))
    return notes


def headline_noise(cap_tests: pd.DataFrame) -> pd.DataFrame:
    """Per model: whether target gain, general change and hallucination change are noise.

    Target and hallucination follow their capability's test. General change (the
    mean of knowledge, code and instructions) counts as real when any of those
    capabilities changed significantly, and as noise when none did.
    """
    if cap_tests.empty:
        return pd.DataFrame(columns=["model_id", *HEADLINES])
    sig = cap_tests.pivot_table(
        index="model_id", columns="capability", values="significant", aggfunc="any"
    )
    general = [c for c in GENERAL_CAPABILITIES if c in sig.columns]

    def column(name: str) -> pd.Series:
        return sig[name].fillna(False).astype(bool) if name in sig.columns else False

    out = pd.DataFrame(index=sig.index)
    out["target_gain"] = ~pd.Series(column("target"), index=sig.index, dtype=bool)
    real_general = sig[general].fillna(False).astype(bool).any(axis=1) if general else False
    out["general_change"] = ~pd.Series(real_general, index=sig.index, dtype=bool)
    out["hallucination_change"] = ~pd.Series(column("hallucination"), index=sig.index, dtype=bool)
    return out.reset_index()


def noise_for(frame: pd.DataFrame, noise: pd.DataFrame, key: str = "model_id") -> pd.DataFrame:
    """A View noise mask for ``frame`` from per-``key`` booleans (unknown rows: noise)."""
    columns = [c for c in noise.columns if c != key and c in frame.columns]
    merged = frame[[key]].merge(noise, on=key, how="left")
    mask = merged[columns].fillna(True).astype(bool)
    mask.index = frame.index
    return mask


def verdicts(con: Con, model_ids: list[str]) -> dict[str, Any]:
    """``budget.verdicts`` for ``model_ids`` with the default budget (FORGETWATCH_BUDGET)."""
    if not model_ids:
        return {}
    plan = budget.load_budget(budget.default_budget_path())
    return budget.verdicts(con, list(model_ids), plan)


def verdict_frame(found: dict[str, Any]) -> pd.DataFrame:
    """Verdicts as table columns: model_id, verdict, verdict_reasons (the sentences, joined)."""
    rows = [
        {"model_id": m, "verdict": v.status, "verdict_reasons": " ".join(v.reasons)}
        for m, v in found.items()
    ]
    return pd.DataFrame(rows, columns=["model_id", "verdict", "verdict_reasons"])


@dataclass
class Annotated:
    """A table of models with its trust columns added, plus what to show around it."""

    frame: pd.DataFrame  # the input rows + verdict, verdict_reasons, settings_mismatch
    noise: pd.DataFrame  # View noise mask of the headline columns
    verdicts: dict[str, Any]  # model_id -> budget.Verdict
    warning: str  # the settings-mismatch warning, '' when every setting matches


def annotate(con: Con, frame: pd.DataFrame, names: dict[str, str]) -> Annotated:
    """Add verdicts, settings mismatches and headline noise to rows keyed by ``model_id``.

    Rows without a model (a run never evaluated) get no verdict and count as
    noise. ``names`` maps model ids to what the reader sees, for the warning.
    """
    model_ids = [m for m in dict.fromkeys(frame["model_id"]) if isinstance(m, str)]
    found = verdicts(con, model_ids)
    mismatches = comparability.settings_mismatches(con, model_ids)
    out = frame.merge(verdict_frame(found), on="model_id", how="left").merge(
        comparability.mismatch_by_model(mismatches), on="model_id", how="left"
    )
    out.index = frame.index
    out["settings_mismatch"] = out["settings_mismatch"].fillna("")
    noise = noise_for(out, headline_noise(capability_tests(con, model_ids)))
    warning = " ".join(
        w for w in (comparability.mismatch_warning(mismatches, names),
                    pending_warning(con, model_ids, names)) if w
    )  # fmt: skip
    return Annotated(out, noise, found, warning)


def pending_warning(con: Con, model_ids: list[str], names: dict[str, str]) -> str:
    """A sentence naming evaluated models whose paired tests are not stored yet, or ''.

    Their deltas show, but untested: the sync or ingest that brought them in was
    interrupted before its analysis step, or the database predates it.
    """
    pending = significance.unanalysed(con, model_ids)
    if not pending:
        return ""
    shown = ", ".join(names.get(m, m) for m in pending[:3])
    more = f" and {len(pending) - 3} more" if len(pending) > 3 else ""
    return (
        f"{len(pending)} evaluated model(s) have no stored significance tests yet ({shown}"
        f"{more}): their changes show as untested. Run `forgetwatch analyse`."
    )
