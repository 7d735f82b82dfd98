"""What a partial eval job writes besides its lm-eval files: its mark, its noise floor, its check.

* ``mark``: the ``partial_evals`` row, written *before* the ingest, so the eval is
  a partial one from its first moment in the database (a kill -9 between the
  two never leaves a quick check standing in for a full eval).
* ``store_noise_floor``: base vs base flips per task, against the base's latest
  full eval; zero flips is stored as what it is, a measurement.
* ``store_quick_check``: the sequential test's outcome per capability.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgetwatch import db
from forgetwatch.queries import partial
from forgetwatch.suite import Suite

if TYPE_CHECKING:  # forgetwatch.quick loads scipy: only quick jobs need it
    from forgetwatch.quick import QuickResult


REPEAT_SEED = 4321  # lm-eval's own seeds are 0 / 1234
MODES = ("full", "quick", "repeat-base")


def repeat_settings(batch_size: int) -> dict[str, Any]:
    """Another batch size and seed for the base's second eval (the noise floor)."""
    return {"batch_size": 1 if batch_size != 1 else 8, "seed": REPEAT_SEED}


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def results_file(output: Path) -> Path:
    """The one results JSON a job wrote under ``output`` (resolved, as the collector stores it)."""
    found = sorted(output.rglob("results_*.json"))
    return found[-1].resolve()


def mark(db_path: str, source: Path, kind: str, job_id: str, items: dict | None) -> None:
    with db.connect(db_path) as con:
        con.execute(
            "INSERT OR REPLACE INTO partial_evals VALUES (?, ?, ?, ?, ?)",
            [str(source), kind, json.dumps(items) if items is not None else None, job_id, _now()],
        )


def store_noise_floor(db_path: str, base_model_id: str, source: Path, suite: Suite,
                      settings_text: str) -> int:  # fmt: skip
    """Pair the repeat with the base's latest full eval; one noise_floor row per suite task."""
    wanted = [(t.task, t.metric, t.filter) for t in suite.tasks]
    with db.connect(db_path) as con:
        repeat = partial.eval_of_source(con, str(source))
        refs = partial.latest_full_evals(con, base_model_id, wanted)
        if repeat is None or refs.empty:
            return 0
        rows = 0
        for ref_eval, ref_source in sorted(set(zip(refs["eval_id"], refs["source_file"],
                                                   strict=True))):  # fmt: skip
            mine = refs[refs["eval_id"] == ref_eval]
            keep = set(zip(mine["task"], mine["metric"], mine["filter"], strict=True))
            for r in partial.repeat_flips(con, ref_eval, repeat).itertuples():
                if (r.task, r.metric, r.filter) not in keep:
                    continue
                con.execute(
                    "INSERT OR REPLACE INTO noise_floor VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    [base_model_id, r.task, r.metric, r.filter, int(r.n_pairs), int(r.flips),
                     int(r.flips) / int(r.n_pairs), float(r.mean_abs_diff), ref_source,
                     str(source), settings_text, _now()],
                )  # fmt: skip
                rows += 1
        return rows


def store_quick_check(db_path: str, job_id: str, outcome: dict[str, Any], source: Path) -> None:
    result: QuickResult = outcome["result"]
    with db.connect(db_path) as con:
        for c in result.capabilities.values():
            con.execute(
                "INSERT OR REPLACE INTO quick_checks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [job_id, outcome["model_id"], outcome["base_model_id"], c.capability, c.outcome,
                 c.look, c.delta, c.ci_low, c.ci_high, c.n_used, c.n_items, str(source), _now()],
            )  # fmt: skip
