"""lm-eval's own group structure and sample counts, read from one results file.

lm-eval writes which task belongs to which group in ``group_subtasks``: each group
maps to its *direct* subtasks, which may be groups themselves (``mmlu`` lists
``mmlu_stem``, which lists ``mmlu_abstract_algebra``, ...). Task names follow no
rule a reader could rely on, so the structure is taken from the file, never from
names. It is stored with every descendant of a group, at its depth (1 = listed
under the group itself), so that readers find a group's leaf tasks without
recursion.

Sizes come from ``n-samples`` (``original``: the task's documents, ``effective``:
those evaluated, fewer when ``--limit`` cut the task). lm-eval writes ``n-samples``
for leaf tasks only; a group's size is the ``sample_len`` lm-eval writes for it
(0.4.10+), else the sum over its leaf tasks, as lm-eval itself sums them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from forgetwatch.collectors.lm_eval_fields import SAMPLE_LEN_KEY, to_float


@dataclass(frozen=True)
class GroupEdge:
    """``subtask`` lies under ``group``, ``depth`` levels down (1 = a direct subtask)."""

    group: str
    subtask: str
    depth: int
    position: int  # reading order under ``group``: lm-eval's listing order, depth first


def _children(group_subtasks: Mapping[str, Any], task: str) -> list[str]:
    listed = group_subtasks.get(task)
    if not isinstance(listed, list):
        return []
    return [name for name in listed if isinstance(name, str) and name != task]


def group_edges(group_subtasks: Mapping[str, Any]) -> list[GroupEdge]:
    """Every (group, descendant) pair of ``group_subtasks``, each descendant once per group.

    A malformed file that lists a group under itself (a cycle) stops at the
    repeat instead of looping.
    """
    edges: list[GroupEdge] = []
    for group in group_subtasks:
        if not isinstance(group, str):
            continue
        seen = {group}
        stack = [(child, 1) for child in reversed(_children(group_subtasks, group))]
        while stack:
            task, depth = stack.pop()
            if task in seen:
                continue
            seen.add(task)
            edges.append(GroupEdge(group, task, depth, len(seen) - 2))
            stack.extend((c, depth + 1) for c in reversed(_children(group_subtasks, task)))
    return edges


@dataclass(frozen=True)
class SampleCounts:
    """A task's size: documents evaluated (``effective``) and in the task (``original``)."""

    effective: float | None
    original: float | None


def _leaf_counts(
    n_samples: Mapping[str, Any], results: Mapping[str, Any], task: str
) -> SampleCounts:
    counts = n_samples.get(task)
    counts = counts if isinstance(counts, Mapping) else {}
    entry = results.get(task)
    reported = to_float(entry.get(SAMPLE_LEN_KEY)) if isinstance(entry, Mapping) else None
    effective = to_float(counts.get("effective"))
    return SampleCounts(
        effective if effective is not None else reported, to_float(counts.get("original"))
    )


def _total(values: list[float | None]) -> float | None:
    """The sum, or None when any part is unknown (a partial sum would understate)."""
    if not values or any(v is None for v in values):
        return None
    return float(sum(v for v in values if v is not None))


def sample_counts(
    results: Mapping[str, Any],
    n_samples: Mapping[str, Any],
    groups: set[str],
    edges: list[GroupEdge],
) -> dict[str, SampleCounts]:
    """Every results task's counts: leaf tasks as reported, groups summed over their leaves."""
    leaves: dict[str, list[str]] = {}
    for edge in edges:
        if edge.subtask not in groups:
            leaves.setdefault(edge.group, []).append(edge.subtask)
    out: dict[str, SampleCounts] = {}
    for task, entry in results.items():
        if task not in groups:
            out[task] = _leaf_counts(n_samples, results, task)
            continue
        parts = [_leaf_counts(n_samples, results, leaf) for leaf in leaves.get(task, [])]
        reported = to_float(entry.get(SAMPLE_LEN_KEY)) if isinstance(entry, Mapping) else None
        summed = _total([p.effective for p in parts])
        out[task] = SampleCounts(
            reported if reported is not None else summed, _total([p.original for p in parts])
        )
    return out
