"""Reaching an MLflow tracking server: which URI, is it up, and errors users can act on.

Every collector and the dashboard go through here, so an unreachable server fails
within seconds (not after MLflow's default 7 retries with a 120 s timeout each)
and a 401/403 says what happened (no credentials, wrong credentials, no
permission) and which environment variables to set. Nothing is written before
these checks pass, so data already collected stays browsable.
"""

from __future__ import annotations

import base64
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, unquote, urlsplit

from forgetwatch import settings
from forgetwatch.collectors.mlflow_store import check_store
from forgetwatch.errors import BadInputError, SourceUnavailableError

if TYPE_CHECKING:  # MLflow is imported by the calls that need it: it costs ~2 s of start-up
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

# MLflow reads these per request (mlflow.utils.rest_utils), so setting them around
# our own calls bounds them without touching anyone else's configuration.
RETRIES_ENV = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
BACKOFF_ENV = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
TIMEOUT_ENV = "MLFLOW_HTTP_REQUEST_TIMEOUT"
CREDENTIAL_VARS = "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
# A cheap authenticated call: it answers 401 when the server wants a login.
_PROBE_PATH = "/api/2.0/mlflow/experiments/search?max_results=1"
# The tracking URI schemes MLflow's client serves (SQLAlchemy ones may name a driver,
# as in postgresql+psycopg2); a URI without a scheme is a local folder store.
SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "mssql", "databricks")


def resolve_tracking_uri(explicit: str | None) -> str:
    """``--tracking-uri`` wins over ``MLFLOW_TRACKING_URI``; one of them is required."""
    uri = explicit or settings.get("tracking_uri")
    if not uri:
        raise SourceUnavailableError(
            "No MLflow tracking URI given",
            "Pass --tracking-uri http://127.0.0.1:5000 or set MLFLOW_TRACKING_URI.",
        )
    check_tracking_uri(uri, "--tracking-uri" if explicit else "MLFLOW_TRACKING_URI")
    return uri


def _refuse(uri: str, where: str, problem: str, step: str) -> BadInputError:
    return BadInputError(f"{where}={uri!r} {problem}", step, where=where)


_EXAMPLES = "e.g. http://127.0.0.1:5000 or sqlite:///path/to/mlflow.db"


def _split(uri: str, where: str) -> SplitResult:
    """The URI's parts; control characters and unparseable hosts are refused here, before
    MLflow or urllib meet them (both would answer with an internal error)."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in uri):
        raise _refuse(
            uri, where, "contains control characters", f"Write the URI alone, {_EXAMPLES}."
        )
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018  (parsing the port is what raises for a bad one)
    except ValueError as exc:
        raise _refuse(
            uri, where, f"is not a valid URI ({exc})", f"Write it as {_EXAMPLES}."
        ) from exc
    return parts


def check_tracking_uri(uri: str, where: str) -> None:
    """Refuse, before MLflow sees it, a URI it cannot serve or would create.

    MLflow answers an unknown scheme with an internal exception, and opening a
    ``sqlite:///`` file or a folder store that is not there creates it (folders
    included) as an empty store: a sync must read its source, never make one up.
    """
    parts = _split(uri, where)
    scheme = parts.scheme.lower()
    family = scheme.split("+")[0]
    if len(scheme) > 1 and family not in SCHEMES:  # C:\... is a Windows path
        raise _refuse(
            uri,
            where,
            f"has an unsupported scheme '{scheme}:'",
            f"Use one of: {', '.join(s + '://' for s in SCHEMES)} ({_EXAMPLES}).",
        )
    if family in ("http", "https") and not parts.hostname:
        raise _refuse(uri, where, "names no host", f"Write it as {_EXAMPLES}.")
    if family == "sqlite":
        _check_sqlite(uri, scheme, where)
    elif len(scheme) <= 1 or family == "file":
        _check_folder_store(uri, parts, where)


def _check_sqlite(uri: str, scheme: str, where: str) -> None:
    """``sqlite:///<path>`` of an existing MLflow store (three slashes, then the path)."""
    prefix = f"{scheme}:///"
    path = uri[len(prefix) :] if uri.lower().startswith(prefix) else ""
    if not path or path.startswith(":memory:") or path.startswith("file:"):
        raise _refuse(
            uri,
            where,
            "does not name a sqlite file",
            "Write sqlite:/// and then the store's path: sqlite:///mlflow.db (relative) or "
            "sqlite:////abs/path/mlflow.db (absolute).",
        )
    store = Path(path)
    if not store.is_file():
        state = "is a folder, not a file" if store.is_dir() else "does not exist"
        raise _refuse(
            uri,
            where,
            f"names the MLflow database {store}, which {state}",
            "Point it at the server's backend store (the file `mlflow server "
            "--backend-store-uri` uses); sync never creates one.",
        )
    check_store(store, where)


def _check_folder_store(uri: str, parts: SplitResult, where: str) -> None:
    """A plain path or ``file:`` URI: MLflow's folder store, which must already exist."""
    folder = Path(unquote(parts.path) if parts.scheme.lower() == "file" else uri)
    if folder.is_dir():
        return
    if folder.is_file():
        raise _refuse(
            uri,
            where,
            "names a file, not an MLflow folder store",
            f"For a sqlite store write sqlite:///{folder}; else {_EXAMPLES}.",
        )
    raise _refuse(
        uri,
        where,
        f"names the MLflow folder store {folder}, which does not exist",
        f"Point it at an existing mlruns folder, or use {_EXAMPLES}; sync never creates one.",
    )


def client_limits_env() -> dict[str, str]:
    """The MLflow HTTP settings our calls use; a variable the user set is left as they set it."""
    ours = {
        RETRIES_ENV: str(settings.integer("mlflow_retries")),
        BACKOFF_ENV: "1",
        TIMEOUT_ENV: str(settings.integer("mlflow_timeout")),
    }
    return {key: value for key, value in ours.items() if key not in os.environ}


@contextmanager
def client_limits() -> Iterator[None]:
    """Short retries and timeouts for the MLflow client calls made inside this block."""
    with settings.temporary_env(**client_limits_env()):
        yield


def _user() -> str | None:
    from mlflow.utils.credentials import read_mlflow_creds

    return read_mlflow_creds().username or None


def _auth_header() -> dict[str, str]:
    from mlflow.utils.credentials import read_mlflow_creds

    creds = read_mlflow_creds()
    if not creds.username:
        return {}
    token = base64.b64encode(f"{creds.username}:{creds.password or ''}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def access_error(uri: str, status: int, what: str = "") -> SourceUnavailableError:
    """The message for a 401 or 403: credentials missing, refused, or lacking permission."""
    user = _user()
    if status == 403:
        target = f" to {what}" if what else ""
        return SourceUnavailableError(
            f"MLflow at {uri} answered 403: user '{user or 'anonymous'}' has no permission{target}",
            f"Ask an MLflow admin to grant READ on the experiment, or set {CREDENTIAL_VARS} "
            "to a user who has it (other experiments can be synced with --experiment).",
            where=uri,
        )
    if user is None:
        return SourceUnavailableError(
            f"MLflow at {uri} answered 401: it requires a login and no credentials are set",
            f"Set {CREDENTIAL_VARS} (or write them to ~/.mlflow/credentials).",
            where=uri,
        )
    return SourceUnavailableError(
        f"MLflow at {uri} answered 401: it refused the credentials of user '{user}'",
        f"Check {CREDENTIAL_VARS}: the user may not exist or the password is wrong.",
        where=uri,
    )


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after MLflow's default retries, when a server is down or refuses us.

    One GET of ``/health`` (unauthenticated on MLflow servers) and one small
    authenticated search, each bounded by ``timeout``.
    """
    if not uri.lower().startswith(("http://", "https://")):
        return
    base = uri.rstrip("/")
    try:
        with urllib.request.urlopen(base + "/health", timeout=timeout):
            pass
        request = urllib.request.Request(base + _PROBE_PATH, headers=_auth_header())
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise access_error(uri, exc.code, "list experiments") from exc
        return  # it answered; anything else surfaces from the client with its own message
    except (ValueError, http.client.InvalidURL) as exc:  # a host or path urllib refuses
        raise BadInputError(
            f"MLflow tracking URI {uri!r} is not a valid URL ({exc})",
            f"Write it as {_EXAMPLES}.",
            where=uri,
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise SourceUnavailableError(
            f"MLflow at {uri} is unreachable ({getattr(exc, 'reason', exc)})",
            "Check the URL and that `mlflow server` is running; data already "
            "collected stays browsable.",
            where=uri,
        ) from exc


def _http_status(exc: MlflowException) -> int | None:
    """The HTTP status behind an MlflowException, from its error code or its message."""
    code = exc.get_http_status_code()  # from the error code the server sent
    if code in (401, 403):
        return code
    text = str(exc)
    for status in (401, 403):
        if f"error code {status}" in text or f" {status} " in text:
            return status
    return None


def is_access_error(exc: MlflowException) -> bool:
    """A 401 or 403: the whole sync must stop, unlike a single missing artifact."""
    return _http_status(exc) is not None


def wrap_mlflow_error(uri: str, exc: MlflowException, what: str = "") -> SourceUnavailableError:
    """An MlflowException from a client call, as an error that says what to do next."""
    status = _http_status(exc)
    if status is not None:
        return access_error(uri, status, what)
    text = str(exc)
    return SourceUnavailableError(
        f"MLflow at {uri} failed: {text[:300]}",
        "Retry the sync; if it keeps failing, check the server's log. "
        f"Slow servers may need a larger {TIMEOUT_ENV}.",
        where=uri,
    )


def select_experiments(client: MlflowClient, uri: str, names: list[str] | None) -> dict[str, str]:
    """Active experiments to sync, id -> name: all visible ones, or those named.

    MLflow's auth filters searches to what the user may read, so a named
    experiment that search does not return is looked up directly: a 403 there
    becomes a permission error instead of a sync that silently finds nothing.
    """
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    try:
        visible = client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
    except MlflowException as exc:
        raise wrap_mlflow_error(uri, exc, "list experiments") from exc
    wanted = {e.experiment_id: e.name for e in visible if not names or e.name in names}
    for name in sorted(set(names or []) - set(wanted.values())):
        try:
            client.get_experiment_by_name(name)  # None when it does not exist
        except MlflowException as exc:
            raise wrap_mlflow_error(uri, exc, f"read experiment '{name}'") from exc
    return wanted
