"""The ``models`` rows that MLflow runs and LoggedModels stand for, upserted in one statement.

``linking.upsert_model`` writes one model per statement, about 2 ms each on a
growing table: 10,000 runs (a base and a final model each) took most of a
sync's write time. ``upsert_models`` gives the same rows for a whole batch in one
``INSERT ... ON CONFLICT``: the same key, path and label for each model, and the
same rule (never downgrade what a collector already knows: only an ``external``
model takes the new kind). Within a batch the first mention of a model wins, as
it did when the statements ran one after another.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb
import pandas as pd

from forgetwatch.identity import checkpoint_step, display_name, model_id, normalise_path

# One mention of a model: (pretrained path or hub id, adapter path or None, kind).
Mention = tuple[str, str | None, str]
_COLUMNS = ["model_id", "kind", "path", "adapter_path", "display_name"]

_UPSERT_SQL = """
INSERT INTO models (model_id, kind, path, adapter_path, display_name)
SELECT model_id, kind, path, adapter_path, display_name FROM incoming_models
ON CONFLICT (model_id) DO UPDATE SET
    kind = CASE WHEN models.kind = 'external' THEN excluded.kind ELSE models.kind END
"""


def upsert_models(con: duckdb.DuckDBPyConnection, mentions: Iterable[Mention]) -> None:
    """Insert the models mentioned, first mention first; an unseen kind never downgrades."""
    rows: dict[str, tuple[str, str, str | None, str | None, str]] = {}
    for pretrained, adapter, kind in mentions:
        mid = model_id(pretrained, adapter)
        if mid not in rows:
            rows[mid] = (
                mid,
                kind,
                normalise_path(pretrained),
                normalise_path(adapter) if adapter else None,
                display_name(pretrained, adapter),
            )
    if not rows:
        return
    frame = pd.DataFrame(list(rows.values()), columns=_COLUMNS, dtype="object")
    con.register("incoming_models", frame)
    try:
        con.execute(_UPSERT_SQL)
    finally:
        con.unregister("incoming_models")


def checkpoint_dirs(output_dir: str) -> list[str]:
    """checkpoint-N folders under a run's output_dir, when that folder is on this machine."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.glob("checkpoint-*") if checkpoint_step(str(p)) is not None]
    return sorted(str(p) for p in found)


def run_mentions(rows: pd.DataFrame) -> list[Mention]:
    """A base model per base, a final model per run, and the checkpoints we can see."""
    mentions: list[Mention] = []
    for base, output_dir, method in zip(
        rows["base_model"], rows["output_dir"], rows["method"], strict=True
    ):
        if not isinstance(base, str) or not base:  # NaN when missing
            continue
        mentions.append((base, None, "base"))
        if not isinstance(output_dir, str) or not output_dir:
            continue
        lora = method in ("lora", "qlora", "peft")
        for path in [output_dir, *checkpoint_dirs(output_dir)]:
            kind = "checkpoint" if checkpoint_step(path) is not None else "final"
            mentions.append((base if lora else path, path if lora else None, kind))
    return mentions
