"""View models of partial evals: the harness's noise floor and the quick checks' outcomes.

The words are decided here once: pages and commands show a noise floor as
"within the harness's own noise: base vs base flips X% of items here" (0 flips
is a measurement, said as such), and a quick check's outcome per capability.
"""

from __future__ import annotations

import pandas as pd

from forgetwatch.queries import partial
from forgetwatch.queries.deltas import Con

OUTCOME_TEXT = {
    "met": "settled early: within the budget",
    "fail": "settled early: breaks the budget",
    "full": "not settled early: decided on every item (the full verdict)",
    "unruled": "no budget rule",
}


def noise_sentence(flip_rate: float) -> str:
    """The one wording of a noise floor; 0 flips reads as measured, not missing."""
    if flip_rate == 0:
        return "measured: base vs base flips 0% of items here (the harness is deterministic)"
    return f"within the harness's own noise: base vs base flips {flip_rate:.0%} of items here"


def noise_floor_view(con: Con, model_ids: list[str]) -> pd.DataFrame:
    """Per base and task: pairs, flips and the sentence pages show."""
    floors = partial.noise_floors(con, model_ids)
    out = floors[["model_id", "task", "n_pairs", "flips", "flip_rate", "settings"]].copy()
    out["noise floor"] = [noise_sentence(float(r)) for r in out["flip_rate"]]
    return out


def quick_check_view(con: Con, job_ids: list[str] | None = None) -> pd.DataFrame:
    """Per quick-check job and capability: outcome, estimate and CI (points), items used."""
    found = partial.quick_checks(con, job_ids)
    out = pd.DataFrame(
        {
            "job": found["job_id"],
            "model": found["model_id"],
            "capability": found["capability"],
            "outcome": [OUTCOME_TEXT.get(o, o) for o in found["outcome"]],
            "delta (pts)": found["delta"] * 100,
            "CI low": found["ci_low"] * 100,
            "CI high": found["ci_high"] * 100,
            "items": [
                f"{u} of {n}" for u, n in zip(found["n_used"], found["n_items"], strict=True)
            ],
        }
    )
    return out


def base_noise_line(con: Con, model_id: str) -> str | None:
    """The noise floor of ``model_id``'s base over all its tasks, in the one wording, or
    None when the base was never evaluated twice (``forgetwatch eval --repeat-base``)."""
    row = con.execute("SELECT base_model_id FROM models WHERE model_id = ?", [model_id]).fetchone()
    if row is None or row[0] is None:
        return None
    floors = partial.noise_floors(con, [str(row[0])])
    pairs = int(floors["n_pairs"].sum()) if not floors.empty else 0
    if pairs == 0:
        return None
    rate = float(floors["flips"].sum()) / pairs
    return f"Base evaluated twice, {pairs:,} items: {noise_sentence(rate)}."
