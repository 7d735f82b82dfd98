"""What an evaluated model's own folder says: its base model, and when it was written.

An lm-eval run with no MLflow run behind it still usually says what its base
was; this module reads the evidence when the results file is parsed, so the
collector can store it on the eval (``evals.base_hint``) and
``linking.relink_models`` can apply the rules in their order of precedence
(docs/schema.md, "Base models"):

0. a pairing the user made (``model_bases``: ``forgetwatch pair``, ``ingest --base``,
   the dashboard's base picker) wins over everything inferred;
1. a peft adapter's base: ``pretrained=`` beside ``peft=`` in ``model_args``, or
   ``base_model_name_or_path`` in the evaluated folder's ``adapter_config.json``;
2. the MLflow run that produced the model (its ``base_model``);
3. ``_name_or_path`` in the evaluated folder's ``config.json``, when it names
   another model (HF writes it from the ``from_pretrained`` argument);
4. ``--metadata '{"base_model": ...}'`` on the lm_eval command line.

Only rules 1 (adapter_config.json), 3 and 4 are read here; the others come from
``model_args`` and the runs table, which the linking step already has.

``files_mtime`` says when the model's weights were written, so that an eval of
a path two runs share as ``output_dir`` (a re-run script) is tied to the run
that was alive then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forgetwatch.identity import model_id, normalise_path

# Where an inferred base came from, as stored in evals.base_hint_source / models.base_source.
ADAPTER_CONFIG, CONFIG_JSON, METADATA = "adapter_config.json", "config.json", "metadata"
# A model's own config.json is at most a few hundred kB; anything larger is not one.
MAX_CONFIG_BYTES = 4 * 2**20
# The files whose modification time says when a model was saved (weights first).
MODEL_FILES = (
    "model.safetensors", "adapter_model.safetensors", "pytorch_model.bin", "adapter_model.bin",
    "model.safetensors.index.json", "config.json", "adapter_config.json",
)  # fmt: skip


@dataclass(frozen=True)
class BaseHint:
    """A base named by the eval's files: the base's model id and the rule that named it."""

    base_model_id: str
    source: str


def _json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or {} when it is absent, unreadable or not an object.

    The evaluated folder may sit on another machine or have been deleted since the
    eval ran: a missing file is the normal case, never an error.
    """
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            return {}
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


def base_hint(pretrained: str, adapter: str | None, metadata_base: str | None) -> BaseHint | None:
    """The base the evaluated model's own files name, by the first rule that applies.

    ``adapter`` set (``peft=``) means the base is ``pretrained`` itself; the linking
    step records that without a hint.
    """
    if adapter:
        return None
    own = model_id(pretrained)
    folder = Path(normalise_path(pretrained))
    named = _text(_json_object(folder / ADAPTER_CONFIG), "base_model_name_or_path")
    if named and model_id(named) != own:
        return BaseHint(model_id(named), ADAPTER_CONFIG)
    named = _text(_json_object(folder / CONFIG_JSON), "_name_or_path")
    if named and model_id(named) != own:
        return BaseHint(model_id(named), CONFIG_JSON)
    if metadata_base and model_id(metadata_base) != own:
        return BaseHint(model_id(metadata_base), METADATA)
    return None


def files_mtime(pretrained: str, adapter: str | None = None) -> datetime | None:
    """When the evaluated model's files were last written (naive UTC, as ``runs.start_time``
    is stored), or None when the folder cannot be read here."""
    folder = Path(normalise_path(adapter or pretrained))
    for name in MODEL_FILES:
        try:
            return datetime.fromtimestamp((folder / name).stat().st_mtime, UTC).replace(tzinfo=None)
        except OSError:
            continue
    return None
