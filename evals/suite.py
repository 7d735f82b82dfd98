"""Suites: which lm-eval tasks to run, and which capability each task measures.

A suite YAML maps tasks to one of five capabilities so the dashboard can show
"target gain vs knowledge/code/instructions erosion and hallucination". A task
of capability ``icl_baseline`` is the base model prompted with k examples of
the target task: a comparison line, never a regression. A bad
file fails here, naming the file and the field, rather than deep inside lm-eval.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from forgetwatch.errors import BadInputError

CAPABILITIES = ("target", "knowledge", "code", "instructions", "hallucination")
# Not a capability that can regress: the base model with k-shot prompting on the target
# task, shown next to a fine-tune's target score ("would few-shot prompting have been
# enough?"). Only base models need it; it never enters a delta.
ICL_BASELINE = "icl_baseline"
BASELINE_CAPABILITIES = (ICL_BASELINE,)
SUITES_DIR = Path(__file__).parent / "suites"


@dataclass(frozen=True)
class SuiteTask:
    task: str
    capability: str
    metric: str
    filter: str = "none"
    limit: int | None = None

    @property
    def metric_key(self) -> str:
        """The key of this metric in lm-eval's results JSON (``"acc,none"``)."""
        return f"{self.metric},{self.filter}"


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    include_path: Path | None
    tasks: list[SuiteTask]

    @property
    def task_names(self) -> list[str]:
        return [t.task for t in self.tasks]

    def regression_only(self) -> Suite:
        """This suite without its baseline tasks: what a fine-tune or checkpoint needs."""
        return replace(
            self, tasks=[t for t in self.tasks if t.capability not in BASELINE_CAPABILITIES]
        )

    def baselines_only(self) -> Suite | None:
        """Only the baseline tasks (run on base models), or None if the suite has none."""
        tasks = [t for t in self.tasks if t.capability in BASELINE_CAPABILITIES]
        return replace(self, tasks=tasks) if tasks else None


def bundled_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def _resolve(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.is_file():
            raise BadInputError(
                "Suite file not found",
                "check the path, or use a bundled suite: " + ", ".join(bundled_suites()),
                where=str(path),
            )
        return path.resolve()
    bundled = SUITES_DIR / f"{name_or_path}.yaml"
    if not bundled.is_file():
        raise BadInputError(
            f"Unknown suite {name_or_path!r}",
            "use a YAML path or one of: " + ", ".join(bundled_suites()),
            where=str(bundled),
        )
    return bundled


def _field(data: dict[str, Any], key: str, where: str, field: str, kind: type) -> Any:
    if key not in data:
        raise BadInputError(f"Missing field {field}", f"add `{key}:` to the suite", where=where)
    value = data[key]
    if not isinstance(value, kind) or (kind is str and not value.strip()):
        raise BadInputError(
            f"Field {field} must be a non-empty {kind.__name__}",
            f"fix `{key}:` in the suite",
            where=where,
        )
    return value


def _parse_task(entry: Any, i: int, where: str) -> SuiteTask:
    prefix = f"tasks[{i}]"
    if not isinstance(entry, dict):
        raise BadInputError(
            f"Field {prefix} must be a mapping",
            "write each task as {task: NAME, capability: CAP, metric: METRIC}",
            where=where,
        )
    task = _field(entry, "task", where, f"{prefix}.task", str)
    capability = _field(entry, "capability", where, f"{prefix}.capability", str)
    if capability not in CAPABILITIES + BASELINE_CAPABILITIES:
        raise BadInputError(
            f"Field {prefix}.capability has unknown value {capability!r}",
            "use one of: " + ", ".join(CAPABILITIES + BASELINE_CAPABILITIES),
            where=where,
        )
    metric = _field(entry, "metric", where, f"{prefix}.metric", str)
    filt = _field(entry, "filter", where, f"{prefix}.filter", str) if "filter" in entry else "none"
    limit = entry.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise BadInputError(
            f"Field {prefix}.limit must be a positive integer",
            "fix or remove `limit:`",
            where=where,
        )
    return SuiteTask(task, capability, metric, filt, limit)


def load_suite(name_or_path: str) -> Suite:
    """Load a bundled suite by name (``"offline"``) or a suite YAML by path, validated."""
    path = _resolve(name_or_path)
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise BadInputError("Suite file is not valid YAML", str(e), where=where) from e
    if not isinstance(data, dict):
        raise BadInputError(
            "Suite file must be a mapping", "see evals/suites/offline.yaml", where=where
        )
    name = _field(data, "name", where, "name", str)
    tasks_raw = _field(data, "tasks", where, "tasks", list)
    if not tasks_raw:
        raise BadInputError("Field tasks is empty", "list at least one task", where=where)
    tasks = [_parse_task(entry, i, where) for i, entry in enumerate(tasks_raw)]
    seen: set[str] = set()
    for i, t in enumerate(tasks):
        if t.task in seen:
            raise BadInputError(
                f"Field tasks[{i}].task repeats {t.task!r}", "list each task once", where=where
            )
        seen.add(t.task)
    include = data.get("include_path")
    include_path = None
    if include is not None:
        include_path = (path.parent / str(include)).resolve()
        if not include_path.is_dir():
            raise BadInputError(
                "Field include_path is not a folder",
                "make it a folder of lm-eval task YAMLs, relative to the suite file",
                where=f"{where}: {include_path}",
            )
    return Suite(name, path, str(data.get("description") or ""), include_path, tasks)
