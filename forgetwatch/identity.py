"""Model identity: how an evaluated model is named, wherever it is mentioned.

Both collectors, the eval launcher and the identifier resolver spell a model the
same way (``model_id``), so an lm-eval result, an MLflow run's output_dir and a
path typed on the command line meet on one key. Pure functions, no database:
this is the ground floor, and ``collectors.linking`` writes the links.
"""

from __future__ import annotations

import os
import re

_CHECKPOINT = re.compile(r"checkpoint-(\d+)/?$")
# A folder named mlflow-run-<run_id> anywhere in a results file's path.
_RUN_FOLDER = re.compile(r"(?:^|/)mlflow-run-([0-9A-Za-z]+)(?:/|$)")


def run_id_from_path(path: str | os.PathLike[str]) -> str | None:
    """The MLflow run id of the innermost ``mlflow-run-<id>`` folder in ``path``, if any."""
    hits = _RUN_FOLDER.findall(os.fspath(path).replace(os.sep, "/"))
    return hits[-1] if hits else None


def normalise_path(ref: str) -> str:
    """A stable spelling of a model reference: absolute local path, or a hub id as given."""
    ref = ref.strip()
    looks_local = ref.startswith(("/", "./", "../", "~")) or os.path.exists(ref)
    if not looks_local:
        return ref
    return os.path.normpath(os.path.abspath(os.path.expanduser(ref)))


def model_id(pretrained: str, adapter: str | None = None) -> str:
    """The key of ``models``: the base path, plus ``+peft=<adapter>`` for adapters."""
    base = normalise_path(pretrained)
    return f"{base}+peft={normalise_path(adapter)}" if adapter else base


def checkpoint_step(path: str) -> int | None:
    """N for a path ending in ``checkpoint-N`` (how the HF Trainer names checkpoints)."""
    match = _CHECKPOINT.search(path)
    return int(match.group(1)) if match else None


def display_name(pretrained: str, adapter: str | None = None) -> str:
    """Short human label: the last one or two path components."""
    ref = adapter or pretrained
    parts = [p for p in ref.rstrip("/").split("/") if p]
    return "/".join(parts[-2:]) if parts else ref
