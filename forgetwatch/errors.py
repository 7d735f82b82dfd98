"""One family of errors, each with a title and a next step.

Errors are wrapped where they enter our code (``raise ForgetwatchError(...) from e``)
so the CLI and the dashboard can show every failure the same way: what went
wrong, where (file, field, URL), and what to do next.
"""

from __future__ import annotations


class ForgetwatchError(Exception):
    """Base error: ``title`` says what failed, ``next_step`` says what to do."""

    def __init__(self, title: str, next_step: str = "", *, where: str = "") -> None:
        self.title = title
        self.next_step = next_step
        self.where = where
        super().__init__(self.message)

    @property
    def message(self) -> str:
        parts = [self.title]
        if self.where:
            parts.append(f"({self.where})")
        text = " ".join(parts)
        if self.next_step:
            text += f"\n  Next step: {self.next_step}"
        return text


class DatabaseBusyError(ForgetwatchError):
    """Another process holds the DuckDB write lock for longer than we wait."""


class DatabaseMissingError(ForgetwatchError):
    """The database file does not exist yet."""


class BadInputError(ForgetwatchError):
    """A file or value we were given cannot be used; names the file and field."""


class SourceUnavailableError(ForgetwatchError):
    """A remote source (an MLflow server) cannot be reached or refused us."""


class EvalError(ForgetwatchError):
    """An evaluation could not be prepared or run."""
