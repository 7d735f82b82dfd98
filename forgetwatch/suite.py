"""Suites: which lm-eval tasks to run, and which capability each task measures.

A suite YAML maps tasks to one of five capabilities so the dashboard can show
"target gain vs knowledge/code/instructions erosion and hallucination". A task
of capability ``icl_baseline`` is the base model prompted with k examples of
the target task: a comparison line, never a regression. A bad
file fails here, naming the file and the field, rather than deep inside lm-eval.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from forgetwatch.errors import BadInputError

CAPABILITIES = ("target", "knowledge", "code", "instructions", "hallucination", "other")
# ``other``: a task shown with its own delta but in no headline number. A starter suite
# (``starter_suite_yaml``) maps every task it finds to it, for the user to edit.
OTHER = "other"
# Not a capability that can regress: the base model with k-shot prompting on the target
# task, shown next to a fine-tune's target score ("would few-shot prompting have been
# enough?"). Only base models need it; it never enters a delta.
ICL_BASELINE = "icl_baseline"
BASELINE_CAPABILITIES = (ICL_BASELINE,)
# How a capability's change is read, decided once for every page, export and comment.
# Task scores are higher-is-better. A capability in WORSE_IS_UP is shown as its failure
# rate instead (hallucination: 1 - the share of correct abstentions), so its change is
# "+ = worse": the hallucination change of a model that hallucinates more is positive.
WORSE_IS_UP = frozenset({"hallucination"})
CHANGE_LABELS = {
    "target": "target gain",
    "knowledge": "knowledge change",
    "code": "code change",
    "instructions": "instructions change",
    "hallucination": "hallucination change, + = worse",
}
SUITES_DIR = Path(__file__).parent / "suites"
# ``include_path: bundled`` names the lm-eval task YAMLs shipped in forgetwatch.evals.
BUNDLED_TASKS = "bundled"


@dataclass(frozen=True)
class SuiteTask:
    task: str
    capability: str
    metric: str
    filter: str = "none"
    limit: int | None = None
    # The metric's direction when the suite sets it (perplexity, ter: False); None takes
    # the results file's higher_is_better, and a file without one means higher is better.
    higher_is_better: bool | None = None

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


def change_sign(capability: str) -> int:
    """-1 where a capability is shown as a failure rate (+ = worse), else +1."""
    return -1 if capability in WORSE_IS_UP else 1


def change_label(capability: str) -> str:
    """The one label of a capability's change ("hallucination change, + = worse")."""
    return CHANGE_LABELS.get(capability, f"{capability} change")


def bundled_tasks_dir() -> Path:
    """The folder of bundled lm-eval task YAMLs (``evals/tasks`` in the repository).

    Found through the import system without importing ``forgetwatch.evals``, so the
    ground floor reads the data file location and nothing above it.
    """
    spec = importlib.util.find_spec("forgetwatch.evals")
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError(
            "The bundled lm-eval tasks are not installed",
            "reinstall forgetwatch (`pip install -e .`)",
            where="forgetwatch.evals",
        )
    return Path(list(spec.submodule_search_locations)[0]) / "tasks"


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
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
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
    higher_is_better = entry.get("higher_is_better")
    if higher_is_better is not None and not isinstance(higher_is_better, bool):
        raise BadInputError(
            f"Field {prefix}.higher_is_better must be true or false",
            "write `higher_is_better: false` for a metric where lower is better, or remove it",
            where=where,
        )
    if higher_is_better is False and capability in WORSE_IS_UP:
        raise BadInputError(
            f"Field {prefix}.higher_is_better cannot be false for a {capability} task",
            f"{capability} is shown as a failure rate (1 - score): use a metric where "
            "higher is better (the share of correct answers)",
            where=where,
        )
    return SuiteTask(task, capability, metric, filt, limit, higher_is_better)


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
            "Suite file must be a mapping", "see forgetwatch/suites/offline.yaml", where=where
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
        include_path = (
            bundled_tasks_dir()
            if include == BUNDLED_TASKS
            else (path.parent / str(include)).resolve()
        )
        if not include_path.is_dir():
            raise BadInputError(
                "Field include_path is not a folder",
                "make it a folder of lm-eval task YAMLs, relative to the suite file",
                where=f"{where}: {include_path}",
            )
    return Suite(name, path, str(data.get("description") or ""), include_path, tasks)


# A task's primary metric where no suite names one (starter suites, flips), best first:
# the metric lm-eval lists first for its usual task types (acc before acc_norm).
PRIMARY_METRICS = ("acc", "exact_match", "pass@1", "prompt_level_strict_acc", "acc_norm", "mc2",
                   "f1", "bleu")  # fmt: skip


def starter_suite_yaml(found: list[tuple[str, str, str]], name: str = "my-suite") -> str:
    """A suite file listing ``found`` (task, metric, filter) tasks, each mapped to ``other``.

    For a user whose evals use tasks no suite names: every task is listed with the
    metric it was scored on, so the file loads as it is, and the user only moves
    each task to its capability (target, knowledge, code, instructions, hallucination).
    """
    lines = [
        f"name: {name}",
        "description: Tasks found in the forgetwatch database; map each to its capability",
        "# Edit each task's capability: target, knowledge, code, instructions or hallucination",
        "# (`other` shows its delta but counts in no headline), then re-ingest with",
        "# `forgetwatch ingest DIR --suite THIS_FILE`.",
        "tasks:",
    ]
    for task, metric, filter_ in found:
        entry = {"task": task, "capability": OTHER, "metric": metric, "filter": filter_}
        lines.append(
            "  - " + yaml.safe_dump(entry, default_flow_style=True, sort_keys=False).strip()
        )
    return "\n".join(lines) + "\n"
