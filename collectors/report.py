"""The report every collector returns, so CLI, dashboard and tests read one shape."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# progress(done, total, label): collectors call it as work advances; the CLI
# draws a tqdm bar from it and the dashboard an st.progress.
Progress = Callable[[int, int, str], None]


def no_progress(done: int, total: int, label: str) -> None:
    """Default progress sink for library callers that don't draw anything."""


@dataclass
class SyncReport:
    """What one collector run did: counts per outcome plus one line per rejected input."""

    source: str
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    # What else the collector did, e.g. evals found among run artifacts: one line each.
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        line = (
            f"{self.source}: {self.inserted} inserted, {self.updated} updated, "
            f"{self.skipped} unchanged, {len(self.errors)} rejected"
        )
        notes = (f"  {note}" for note in self.notes)
        return "\n".join([line, *notes, *(f"  - {err}" for err in self.errors)])
