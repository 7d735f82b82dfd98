"""lm-eval 0.3 results files (``*-res.json``): read as aggregate-only evals.

lm-eval 0.3 (``python main.py --model hf-causal --model_args pretrained=... --tasks ...
--output_path run-res.json``) writes one JSON file and nothing else::

    {"results": {"hellaswag": {"acc": 0.29, "acc_stderr": 0.0045, ...}},
     "versions": {"hellaswag": 0},
     "config": {"model": "hf-causal", "model_args": "pretrained=...", "num_fewshot": 0,
                "batch_size": ..., "device": ..., "no_cache": ..., "limit": null,
                "bootstrap_iters": 100000, "description_dict": {}}}

Its metric keys carry no ``,filter`` part, the stderr sits under ``<metric>_stderr``,
and there are no samples, groups, ``n-samples``, ``higher_is_better``, date or
version. Such a file is stored as an eval whose scores use filter ``none`` (what a
suite names for them), its n-shot is ``num_fewshot`` for every task, and its
``lm_eval_version`` reads ``0.3`` (inferred from the format). With no samples, a
delta against it rests on the stderrs (*stderr (unpaired, weaker)*).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from forgetwatch.collectors.lm_eval_fields import NON_METRIC_KEYS, to_float

FORMAT_V03 = "0.3"
FORMAT_V04 = "0.4"
STDERR_SUFFIX = "_stderr"
NO_FILTER = "none"
# 0.3 files do not record direction; these are the metrics lm-eval 0.3's own tasks
# declare lower-is-better (lambada's ppl, wikitext's perplexities and bits_per_byte,
# the translation tasks' ter). Every other 0.3 metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"ppl", "word_perplexity", "byte_perplexity", "bits_per_byte", "ter"})


def _is_metric(key: str, value: Any) -> bool:
    return key not in NON_METRIC_KEYS and to_float(value) is not None


def results_format(results: Mapping[str, Any]) -> str:
    """``0.3`` when no task has a ``metric,filter`` key but some task has a number, else ``0.4``.

    Every 0.4 release writes ``metric,filter`` keys; a file with none and no number
    either is left to the 0.4 reading, which rejects it for holding no scores.
    """
    entries = [entry for entry in results.values() if isinstance(entry, Mapping)]
    if any("," in str(key) for entry in entries for key in entry):
        return FORMAT_V04
    numeric = any(_is_metric(str(k), v) for entry in entries for k, v in entry.items())
    return FORMAT_V03 if numeric else FORMAT_V04


def metric_items(entry: Mapping[str, Any], file_format: str) -> Iterator[tuple[str, str, Any, Any]]:
    """(metric, filter, value, stderr) for every score of one ``results`` entry."""
    for key, value in entry.items():
        if key in NON_METRIC_KEYS:
            continue
        if file_format == FORMAT_V03:
            if not key.endswith(STDERR_SUFFIX):
                yield key, NO_FILTER, value, entry.get(f"{key}{STDERR_SUFFIX}")
        elif "," in key and f"{STDERR_SUFFIX}," not in key:
            metric, filt = key.split(",", 1)
            yield metric, filt, value, entry.get(f"{metric}{STDERR_SUFFIX},{filt}")


def direction(metric: str) -> bool:
    """A 0.3 metric's higher_is_better, as lm-eval 0.3's task declares it."""
    return metric not in LOWER_IS_BETTER


def v03_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The 0.4-shaped provenance of a 0.3 file: n-shot per task and the format as version."""
    shots = fields["num_fewshot"]
    n_shot = {str(task): shots for task in fields["results"]} if shots is not None else {}
    return fields | {
        "n_shot": fields["n_shot"] or n_shot,
        "lm_eval_version": fields["lm_eval_version"] or FORMAT_V03,
    }
