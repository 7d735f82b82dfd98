"""What can be evaluated, and the checks a model and a suite must pass before a job starts.

A job runs detached for minutes, so every mistake we can see up front (a path
without ``config.json``, an adapter without ``adapter_config.json``, a suite
that needs the hub while it is unreachable, code tasks without opt-in) fails
here with a ``BadInputError`` naming the field and the next step, before
anything is launched.
"""

from __future__ import annotations

import contextlib
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from forgetwatch import db, settings
from forgetwatch.errors import BadInputError, DatabaseMissingError, SourceUnavailableError
from forgetwatch.evals.jobs import JobSpec
from forgetwatch.identity import normalise_path
from forgetwatch.queries import eval_defaults
from forgetwatch.suite import Suite

# The choices the Evals page and `forgetwatch eval` offer, declared once for both faces.
DEVICES = ("cpu", "cuda", "auto")
DTYPES = ("float32", "bfloat16", "float16", "auto")
HUB_URL = "https://huggingface.co"
HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")  # "gpt2" or "org/name"
# Hub tasks whose scoring executes model-written code (bundled tasks say `unsafe_code: true`).
HUB_CODE_TASKS = {"humaneval", "humaneval_plus", "mbpp", "mbpp_plus"}


def candidates(db_path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Base, final and checkpoint models the collectors know, labelled, with ``evaluated``."""
    try:
        with db.connect(db_path, read_only=True) as con:
            return eval_defaults.eval_candidates(con)
    except DatabaseMissingError:
        return pd.DataFrame(columns=eval_defaults.CANDIDATE_COLUMNS)


def validate_model(ref: str, field: str = "model") -> str:
    """A local model folder (made absolute) or a valid hub id (``gpt2``, ``org/name``)."""
    ref = (ref or "").strip()
    if not ref:
        raise BadInputError(f"Field {field} is empty", "pick a model or type a folder or hub id")
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise BadInputError(
                f"Field {field}: folder has no config.json",
                "point at a saved Hugging Face model (the folder save_pretrained wrote)",
                where=str(path),
            )
        # The collectors' spelling (no symlink resolution), so the eval links to its run.
        return normalise_path(str(path))
    if ref.startswith(("/", ".", "~")) or path.exists() or not HUB_ID.match(ref):
        raise BadInputError(
            f"Field {field}: no model folder at this path, and it is not a hub id",
            "give an existing folder containing config.json, or a hub id like org/name",
            where=ref,
        )
    return ref


def validate_adapter(ref: str, field: str = "adapter") -> str:
    """A LoRA adapter folder (absolute path): it must hold ``adapter_config.json``."""
    path = Path((ref or "").strip()).expanduser()
    if not ref or not (path / "adapter_config.json").is_file():
        raise BadInputError(
            f"Field {field}: no adapter_config.json in this folder",
            "point at the folder a PEFT LoRA adapter was saved to",
            where=ref or "(empty)",
        )
    return normalise_path(str(path))


def hub_reachable(timeout: float = 3.0) -> bool:
    """False under ``HF_HUB_OFFLINE=1`` or when the hub does not answer within ``timeout``."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes"}:
        return False
    try:
        with urllib.request.urlopen(
            urllib.request.Request(HUB_URL, method="HEAD"), timeout=timeout
        ):
            return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _local_task_yamls(suite: Suite) -> dict[str, dict]:
    """Task name -> parsed YAML for the tasks defined under the suite's include_path."""
    if suite.include_path is None:
        return {}
    found: dict[str, dict] = {}
    for path in suite.include_path.rglob("*.yaml"):
        with contextlib.suppress(yaml.YAMLError, OSError):
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_IgnoreTags)
            if isinstance(data, dict) and isinstance(data.get("task"), str):
                found[data["task"]] = data
    return found


class _IgnoreTags(yaml.SafeLoader):
    """Reads lm-eval task YAMLs without running their ``!function`` tags."""


_IgnoreTags.add_multi_constructor("!", lambda loader, suffix, node: None)


def hub_tasks(suite: Suite) -> list[str]:
    """Tasks that are not defined locally, so lm-eval will fetch them from the hub."""
    local = _local_task_yamls(suite)
    return [t for t in suite.task_names if t not in local]


def code_tasks(suite: Suite) -> list[str]:
    """Tasks whose scoring executes model-written code."""
    local = _local_task_yamls(suite)
    return [
        t
        for t in suite.task_names
        if (local.get(t) or {}).get("unsafe_code") or (t not in local and t in HUB_CODE_TASKS)
    ]


def task_fewshot_defaults(suite: Suite) -> dict[str, int | None]:
    """Each task's own n-shot (a local YAML's ``num_fewshot``, else 0); None for hub tasks."""
    local = _local_task_yamls(suite)
    found: dict[str, int | None] = {}
    for t in suite.task_names:
        shots = (local[t].get("num_fewshot") or 0) if t in local else None
        found[t] = int(shots) if isinstance(shots, int | str) and str(shots).isdigit() else None
    return found


def suite_limits(suite: Suite) -> dict[str, int | None]:
    """The suite's own per-task caps (``limit:`` on a task), which every job applies."""
    return {t.task: t.limit for t in suite.tasks}


def check_suite(suite: Suite, *, allow_code_exec: bool, hub_ok: bool | None = None) -> None:
    """Refuse, before launch, a suite that needs the unreachable hub or unapproved code runs."""
    needs_hub = hub_tasks(suite)
    if needs_hub and not (hub_reachable() if hub_ok is None else hub_ok):
        raise BadInputError(
            f"Field suite: the Hugging Face hub is unreachable, and {', '.join(needs_hub)} "
            "must be downloaded from it",
            "use the bundled offline suite, or run where the hub is reachable "
            "(HF_HUB_OFFLINE unset)",
            where=str(suite.path),
        )
    code = code_tasks(suite)
    if code and not allow_code_exec:
        raise BadInputError(
            f"Field allow code execution: {', '.join(code)} execute model-written code",
            "tick 'Allow code execution' (--allow-code-exec) to run them in the sandbox, "
            "or use a suite without code tasks",
            where=str(suite.path),
        )


def _mlflow_timeouts(seconds: float) -> contextlib.AbstractContextManager[None]:
    """MLflow reads these per request; without them one call can retry for minutes."""
    return settings.temporary_env(
        MLFLOW_HTTP_REQUEST_TIMEOUT=str(int(seconds)), MLFLOW_HTTP_REQUEST_MAX_RETRIES="0"
    )


def resolve_registered(
    name: str, version: str, tracking_uri: str | None = None, timeout: float = 5.0
) -> str:
    """The local folder of registered model ``name`` version ``version`` (downloaded if remote)."""
    uri = (tracking_uri or settings.get("tracking_uri")).strip()
    if not uri:
        raise BadInputError(
            "Field registered model: no MLflow tracking URI", "set MLFLOW_TRACKING_URI"
        )
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
        except (urllib.error.URLError, OSError) as e:
            raise SourceUnavailableError(
                f"MLflow at {uri} did not answer within {timeout:.0f} s",
                "check MLFLOW_TRACKING_URI and that the server is running",
                where=uri,
            ) from e
    import mlflow
    from mlflow.exceptions import MlflowException

    with _mlflow_timeouts(timeout):
        try:
            source = mlflow.MlflowClient(uri).get_model_version(name, version).source
            local = source.removeprefix("file://")
            if Path(local).is_dir():
                return validate_model(local, "registered model")
            folder = mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=uri)
        except MlflowException as e:
            raise BadInputError(
                f"Field registered model: {name} version {version} could not be resolved",
                f"check the name and version in the MLflow model registry ({e.message})",
                where=uri,
            ) from e
    return validate_model(folder, "registered model")


def prepare(
    model: str,
    suite: Suite,
    *,
    adapter: str | None = None,
    label: str = "",
    hub_ok: bool | None = None,
    **options: Any,
) -> JobSpec:
    """Validate everything a job needs and return its spec: the button and the CLI share this."""
    pretrained = validate_model(model)
    adapter_path = validate_adapter(adapter) if adapter else None
    if not Path(pretrained).is_absolute():  # a hub id: validate_model made local paths absolute
        hub_ok = hub_reachable() if hub_ok is None else hub_ok
        if not hub_ok:
            raise BadInputError(
                f"Field model: {pretrained} is a hub id, but the hub is unreachable",
                "use a local model folder, or run where the hub is reachable",
                where=pretrained,
            )
    check_suite(suite, allow_code_exec=bool(options.get("allow_code_exec")), hub_ok=hub_ok)
    return JobSpec(
        pretrained=pretrained,
        adapter=adapter_path,
        suite=str(suite.path),
        label=label or Path(adapter_path or pretrained).name,
        **options,
    )
