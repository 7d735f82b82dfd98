"""Reaching an MLflow tracking server: which URI, is it up, and errors users can act on.

Every collector and the dashboard go through here, so an unreachable server fails
within seconds (not after MLflow's default retries) and a 401/403 says which
environment variables to set.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from mlflow.exceptions import MlflowException

from forgetwatch import settings
from forgetwatch.errors import SourceUnavailableError


def resolve_tracking_uri(explicit: str | None) -> str:
    """``--tracking-uri`` wins over ``MLFLOW_TRACKING_URI``; one of them is required."""
    uri = explicit or settings.get("tracking_uri")
    if not uri:
        raise SourceUnavailableError(
            "No MLflow tracking URI given",
            "Pass --tracking-uri http://127.0.0.1:5000 or set MLFLOW_TRACKING_URI.",
        )
    return uri


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after MLflow's default retries, when a server is down."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answered; auth problems surface with a clear message below
    except (urllib.error.URLError, OSError) as exc:
        raise SourceUnavailableError(
            f"MLflow at {uri} is unreachable ({getattr(exc, 'reason', exc)})",
            "Check the URL and that `mlflow server` is running; data already "
            "collected stays browsable.",
        ) from exc


def wrap_mlflow_error(uri: str, exc: MlflowException) -> SourceUnavailableError:
    text = str(exc)
    if "401" in text or "403" in text or "Unauthorized" in text or "PERMISSION" in text:
        return SourceUnavailableError(
            f"MLflow at {uri} refused the credentials",
            "Set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.",
        )
    return SourceUnavailableError(f"MLflow at {uri} failed: {text[:300]}", "Retry the sync.")
