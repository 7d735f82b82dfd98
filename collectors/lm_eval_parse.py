"""Validate one lm-eval results file and flatten it into rows, without touching the database.

Results files are small and read through the field table in ``lm_eval_fields``;
every rejection names the file and the field. The samples files that belong to
a results file are found here too: ``task_hashes`` is filled only when lm-eval
ran with ``--log_samples``, so its tasks are exactly the samples files to expect.

lm-eval's group structure and sample counts are read by ``lm_eval_groups``, and
lm-eval 0.3's ``*-res.json`` files (bare metric keys, no samples) by
``lm_eval_v03``: both end up in the same rows.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from forgetwatch.collectors.linking import run_id_from_path
from forgetwatch.collectors.lm_eval_fields import RESULTS_FIELDS, lookup, to_float
from forgetwatch.collectors.lm_eval_groups import GroupEdge, group_edges, sample_counts
from forgetwatch.collectors.lm_eval_v03 import (
    FORMAT_V03,
    direction,
    metric_items,
    results_format,
    v03_fields,
)
from forgetwatch.collectors.model_files import BaseHint, base_hint, files_mtime
from forgetwatch.errors import BadInputError

RESULTS_GLOB = "results_*.json"
# lm-eval 0.3 writes wherever --output_path says; ``<name>-res.json`` is the usual name.
RESULTS_V03_GLOB = "*-res.json"
RESULTS_GLOBS = (RESULTS_GLOB, RESULTS_V03_GLOB)
SCORE_COLUMNS = [
    "task",
    "metric",
    "filter",
    "value",
    "stderr",
    "n_samples",
    "higher_is_better",
    "is_group",
    "n_original",
]


@dataclass
class ParsedResults:
    """One results file, validated and flattened into rows ready to insert."""

    path: Path
    eval_id: str
    fields: dict[str, Any]
    pretrained: str
    adapter: str | None
    scores: list[dict[str, Any]]  # one row per (task, metric, filter), keys SCORE_COLUMNS
    samples: dict[str, Path]  # task -> samples file that exists
    metrics: dict[str, list[str]]  # task -> metric names
    expected_samples: dict[str, Path] = field(default_factory=dict)  # when --log_samples
    filters: dict[str, list[str]] = field(default_factory=dict)  # task -> filter_list order
    run_id: str | None = None  # from the path convention or the metadata tag
    base_hint: BaseHint | None = None  # the base the eval's own files name (model_files)
    model_mtime: datetime | None = None  # when the evaluated model's files were written
    groups: list[GroupEdge] = field(default_factory=list)  # lm-eval's group_subtasks

    @property
    def missing_samples(self) -> list[Path]:
        return [p for t, p in self.expected_samples.items() if t not in self.samples]


def find_results_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every results file under the given folders, plus results files given directly."""
    found: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            found.extend(sorted({p for glob in RESULTS_GLOBS for p in entry.rglob(glob)}))
        elif entry.is_file():
            found.append(entry)
        else:
            raise BadInputError(
                f"{entry} does not exist",
                "Pass an lm-eval --output_path folder or a results_*.json file.",
                where=str(entry),
            )
    return found


def no_results_error(paths: Iterable[str | os.PathLike[str]]) -> BadInputError:
    """What an ingest that found no results file at all says: the folders, and what to pass."""
    where = ", ".join(str(Path(p)) for p in paths) or "(no paths)"
    return BadInputError(
        "No lm-eval results file found",
        "Pass the folder lm-eval wrote with --output_path: it holds results_*.json "
        "(lm-eval 0.4) or *-res.json (lm-eval 0.3) files, in it or in its subfolders.",
        where=where,
    )


def parse_model_args(text: str) -> dict[str, str]:
    """``pretrained=/x,peft=/y,dtype=float32`` as a dict."""
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {key.strip(): value.strip() for key, value in pairs}


def bad_results(path: Path, field_name: str, reason: str) -> BadInputError:
    return BadInputError(
        f"{path.name}: field `{field_name}` {reason}",
        "Re-run lm-eval for this model, or move the file out of the folder; "
        "only this file was skipped.",
        where=str(path),
    )


def _read_fields(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_results(path, "<file>", f"is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise bad_results(path, "<file>", "is not a JSON object")
    fields: dict[str, Any] = {}
    for spec in RESULTS_FIELDS:
        value = next((v for p in spec.paths if (v := lookup(data, p)) is not None), None)
        if value is None and spec.required:
            raise bad_results(path, spec.paths[0], "is missing")
        try:
            fields[spec.name] = spec.convert(value) if spec.convert else value
        except (TypeError, ValueError, OverflowError, OSError) as exc:
            raise bad_results(path, spec.paths[0], f"has an unusable value ({exc})") from exc
    if not isinstance(fields["results"], dict) or not fields["results"]:
        raise bad_results(path, "results", "must be a non-empty object of tasks")
    fields["run_tag"] = _metadata_tag(data, "mlflow_run_id")
    fields["base_tag"] = _metadata_tag(data, "base_model")
    fields["format"] = results_format(fields["results"])
    return v03_fields(fields) if fields["format"] == FORMAT_V03 else fields


def _metadata_tag(data: dict[str, Any], key: str) -> str | None:
    """``--metadata '{"<key>": ...}'`` lands in every task's config metadata."""
    configs = data.get("configs")
    if not isinstance(configs, dict):
        return None
    for config in configs.values():
        tag = lookup(config, f"metadata.{key}") if isinstance(config, dict) else None
        if isinstance(tag, str) and tag.strip():
            return tag.strip()
    return None


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _group_names(fields: dict[str, Any]) -> set[str]:
    """Tasks listed in `groups`, or with subtasks in `group_subtasks` (older files)."""
    listed = _as_dict(fields["group_subtasks"])
    return set(_as_dict(fields["groups"])) | {task for task, subs in listed.items() if subs}


def _score_rows(path: Path, fields: dict[str, Any]) -> tuple[list[dict[str, Any]], dict]:
    """One row per (task, metric, filter), with lm-eval's sizes and direction."""
    groups = _group_names(fields)
    hib = _as_dict(fields["higher_is_better"])
    v03 = fields["format"] == FORMAT_V03  # 0.3 files record no direction: the task's own
    results = fields["results"]
    for task, entry in results.items():
        if not isinstance(entry, dict):
            raise bad_results(path, f"results.{task}", "must be an object of metrics")
    sizes = sample_counts(results, _as_dict(fields["n_samples"]), groups, fields["group_edges"])
    rows: list[dict[str, Any]] = []
    metrics: dict[str, list[str]] = {}
    for task, entry in results.items():
        task_hib = _as_dict(hib.get(task))
        is_group = task in groups
        for metric, filt, value, stderr in metric_items(entry, fields["format"]):
            if not is_group:
                metrics.setdefault(task, []).append(metric)
            rows.append(
                {
                    "task": task,
                    "metric": metric,
                    "filter": filt,
                    "value": to_float(value),
                    "stderr": to_float(stderr),
                    "n_samples": sizes[task].effective,
                    "higher_is_better": direction(metric)
                    if v03
                    else _as_bool(task_hib.get(metric)),
                    "is_group": is_group,
                    "n_original": sizes[task].original,
                }
            )
    if not rows:
        raise bad_results(path, "results", "holds no scores (no metric keys in any task)")
    return rows, {task: list(dict.fromkeys(names)) for task, names in metrics.items()}


def _as_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _filter_order(fields: dict[str, Any], scores: list[dict[str, Any]]) -> dict[str, list]:
    """Each task's filter names in filter_list order (the order old samples files use)."""
    order: dict[str, list[str]] = {}
    for row in scores:  # results keys are written in filter order too
        names = order.setdefault(row["task"], [])
        if row["filter"] not in names:
            names.append(row["filter"])
    for task, config in _as_dict(fields["configs"]).items():
        listed = _as_dict(config).get("filter_list")
        if isinstance(listed, list):
            found = [f.get("name") for f in listed if isinstance(f, dict)]
            named = [n for n in found if isinstance(n, str)]
            if named and len(named) == len(found):
                order[task] = named
    return order


def _samples_files(path: Path, fields: dict[str, Any], metrics: dict) -> tuple[dict, dict]:
    """(existing samples files, expected samples files) by task."""
    stamp = path.stem.removeprefix("results_") if path.stem.startswith("results_") else ""
    if not stamp:
        return {}, {}
    candidates = {task: path.with_name(f"samples_{task}_{stamp}.jsonl") for task in metrics}
    existing = {task: p for task, p in candidates.items() if p.exists()}
    expected = {t: p for t, p in candidates.items() if t in fields["task_hashes"]}
    return existing, expected


def parse_results(path: Path) -> ParsedResults:
    """Validate one results file and find its samples files; raises BadInputError."""
    raw = path.read_bytes()
    fields = _read_fields(path, raw)
    args = parse_model_args(fields["model_args"] or "")
    pretrained = args.get("pretrained") or args.get("model") or fields["model_name"]
    if not pretrained or not isinstance(pretrained, str):
        raise bad_results(path, "config.model_args", "names no model (no pretrained=)")
    fields["group_edges"] = group_edges(_as_dict(fields["group_subtasks"]))
    rows, metrics = _score_rows(path, fields)
    existing, expected = _samples_files(path, fields, metrics)
    return ParsedResults(
        path=path,
        eval_id=hashlib.sha256(raw).hexdigest(),
        fields=fields,
        pretrained=pretrained,
        adapter=args.get("peft"),
        scores=rows,
        samples=existing,
        metrics=metrics,
        expected_samples=expected,
        filters=_filter_order(fields, rows),
        run_id=run_id_from_path(path) or fields["run_tag"],
        base_hint=base_hint(pretrained, args.get("peft"), fields["base_tag"]),
        model_mtime=files_mtime(pretrained, args.get("peft")),
        groups=fields["group_edges"],
    )
