"""Generated bad tracking URIs and database paths: a titled error and exit 2, never a
traceback, and the source is never created.

Hypothesis draws URIs from the mistakes users make (unknown schemes, typos of
``sqlite:///``, missing files and folders, files that are not MLflow stores, bad
hosts and ports, control and non-ASCII characters) and database paths that cannot
be used (folders, files where a folder should be, read-only places, names too
long or holding a NUL byte). Each runs ``forgetwatch sync`` in this process through
the CLI's own ``main``: an exception that is not forgetwatch's would escape it and
fail the test with its traceback. Names that are odd but usable must sync.
"""

from __future__ import annotations

import contextlib
import io
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient

from forgetwatch.cli.main import main
from forgetwatch.collectors.mlflow_access import SCHEMES

NAME = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=10)
CONTROL = st.sampled_from(["\n", "\t", "\r", "\x00", "\x1b", "\x7f"])
UNKNOWN_SCHEME = st.from_regex(r"[a-z][a-z0-9+.-]{1,8}", fullmatch=True).filter(
    lambda s: s.split("+")[0] not in SCHEMES
)
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)


@contextlib.contextmanager
def _world() -> Iterator[Path]:
    """A folder with the things users point at by mistake: an empty file, a sqlite file
    that is not an MLflow store, a folder."""
    with tempfile.TemporaryDirectory(prefix="fw-fuzz-") as tmp:
        root = Path(tmp)
        (root / "empty.db").write_bytes(b"")
        with contextlib.closing(sqlite3.connect(root / "notes.db")) as con:
            con.execute("CREATE TABLE notes (text)")
            con.commit()
        (root / "folder").mkdir()
        yield root


def _listing(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*"))


def _sync(uri: str, db: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["sync", "--tracking-uri", uri, "--db", db])
    return code, err.getvalue()


def _assert_refused(code: int, stderr: str) -> None:
    assert code == 2, stderr
    assert "error: " in stderr and "Next step" in stderr, stderr
    assert "Traceback" not in stderr, stderr


@st.composite
def bad_uris(draw: st.DrawFn) -> str:
    """A tracking URI template with ``{root}`` for the world's folder."""
    name = draw(NAME)
    return draw(
        st.sampled_from(
            [
                f"{draw(UNKNOWN_SCHEME)}://{name}",
                f"sqlite:/{{root}}/{name}.db",
                f"sqlite://{name}",
                "sqlite:///",
                "sqlite:///:memory:",
                f"sqlite:///{{root}}/missing/{name}.db",
                "sqlite:///{root}/empty.db",
                "sqlite:///{root}/notes.db",
                "sqlite:///{root}/folder",
                f"sqlite+pysqlite:///{{root}}/{name}missing.db",
                f"file://{{root}}/missing-{name}",
                f"{{root}}/missing-{name}",
                "{root}/notes.db",
                "http://",
                f"http://:{draw(st.integers(0, 65535))}",
                f"http://[{name}",
                f"http://127.0.0.1:{draw(st.integers(65536, 10**7))}",
                f"http://127.0.0.1:1/{name}",
                f"https://127.0.0.1:1/{name}",
                f"http://local host{name}:5000",
                f"http://a{draw(CONTROL)}b:5000",
                f"sqlite:///{{root}}/a{draw(CONTROL)}b.db",
                f"postgresql://u@127.0.0.1:1/{name}",
            ]
        )
    )


@SETTINGS
@given(template=bad_uris())
def test_bad_tracking_uris_are_refused_without_creating_anything(template: str) -> None:
    with _world() as root:
        before = _listing(root)
        uri = template.replace("{root}", str(root))
        code, stderr = _sync(uri, str(root / "out" / "fw.duckdb"))
        _assert_refused(code, stderr)
        assert _listing(root) == before, uri  # no store, no database, no folder made


@pytest.fixture(scope="module")
def store() -> Iterator[str]:
    """An existing MLflow store with no runs, so only the database path is at fault."""
    with tempfile.TemporaryDirectory(prefix="fw-fuzz-store-") as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        MlflowClient(uri).search_experiments()
        yield uri


@st.composite
def bad_db_paths(draw: st.DrawFn) -> str:
    """A database path template with ``{root}``, each unusable."""
    name = draw(NAME.filter(lambda s: "/" not in s and "\x00" not in s))
    return draw(
        st.sampled_from(
            [
                "{root}/folder",
                f"{{root}}/empty.db/{name}x.duckdb",
                f"{{root}}/notes.db/sub/{name}x.duckdb",
                "{root}/notes.db",
                f"/proc/fw-{abs(hash(name))}.duckdb",
                f"{{root}}/{'n' * draw(st.integers(256, 400))}.duckdb",
                f"{{root}}/a\x00{name}.duckdb",
            ]
        )
    )


@settings(SETTINGS, max_examples=20)
@given(template=bad_db_paths())
def test_unusable_database_paths_are_refused_and_named(store: str, template: str) -> None:
    with _world() as root:
        before = _listing(root)
        path = template.replace("{root}", str(root))
        code, stderr = _sync(store, path)
        _assert_refused(code, stderr)
        assert _listing(root) == before, path


# A backslash is left out: DuckDB 2.0 reads it as a folder separator, so it opens
# another path than the one named (a path error, named as such, not a traceback).
ODD_BUT_USABLE = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="/\\"),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))


@settings(SETTINGS, max_examples=6)
@given(name=ODD_BUT_USABLE)
def test_odd_but_usable_database_names_sync(store: str, name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="fw-fuzz-db-") as tmp:
        path = Path(tmp) / f"{name} 'x'; dir" / f"{name}.duckdb"
        code, stderr = _sync(store, str(path))
        assert code == 0, stderr
        assert path.is_file()
