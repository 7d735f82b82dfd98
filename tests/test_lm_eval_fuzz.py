"""Malformed lm-eval files mixed with valid ones in one batch: reported, never half-written.

Hypothesis draws a batch of copies of a real 0.4.13 output folder, each either
left valid or damaged in its results file or one of its samples files
(truncated, wrong types, NaN/Inf, missing keys, huge strings, non-UTF-8 bytes).
One ingest over the whole batch must not raise; each rejection names the file
and the field; every valid copy is stored; an eval is stored with all its
samples or not at all.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from forgetwatch import db
from forgetwatch.collectors import lm_eval_results

SOURCE = next(
    p.parent
    for p in sorted((Path(__file__).parent / "fixtures" / "lm_eval" / "0.4.13").rglob("results_*"))
    if "plain" in p.parts
)
EXAMPLES = 25

MUTATIONS = (
    "truncate",
    "wrong_type",
    "nan",
    "inf",
    "drop_key",
    "huge_string",
    "non_utf8",
    "not_an_object",
)


def _mutate_json_text(text: str, how: str, key: str, cut: float) -> bytes:
    """Damage one JSON document (a results file or one samples line)."""
    if how == "truncate":
        return text[: max(1, int(len(text) * cut))].encode()
    if how == "non_utf8":
        return text.encode()[:-3] + b'\xff\xfe"}'
    data = json.loads(text)
    if how == "not_an_object":
        return json.dumps([data]).encode()
    if how == "drop_key":
        data.pop(key, None)
    elif how == "wrong_type":
        data[key] = {"unexpected": [1, 2]} if not isinstance(data.get(key), dict) else "text"
    elif how == "nan":
        data[key] = float("nan")
    elif how == "inf":
        data[key] = float("-inf")
    elif how == "huge_string":
        data[key] = "x" * 3_000_000
    return json.dumps(data).encode()


RESULTS_KEYS = ("results", "config", "task_hashes", "date", "n-shot", "groups", "lm_eval_version")
SAMPLE_KEYS = ("doc_id", "filter", "target", "filtered_resps", "exact_match", "doc_hash")

copy_spec = st.tuples(
    st.sampled_from(("valid", "results", "samples")),
    st.sampled_from(MUTATIONS),
    st.integers(min_value=0, max_value=10),
    st.floats(min_value=0.05, max_value=0.95),
)


def _make_copy(root: Path, index: int, spec: tuple) -> tuple[Path, Path | None]:
    """A copy of the source folder with a distinct results file; returns (results, damaged)."""
    where, how, pick, cut = spec
    folder = root / f"copy{index}"
    shutil.copytree(SOURCE, folder)
    results = next(folder.glob("results_*.json"))
    data = json.loads(results.read_text())
    data["date"] = float(data["date"]) + index  # a distinct eval_id per copy
    results.write_text(json.dumps(data))
    if where == "valid":
        return results, None
    if where == "results":
        key = RESULTS_KEYS[pick % len(RESULTS_KEYS)]
        results.write_bytes(_mutate_json_text(results.read_text(), how, key, cut))
        return results, results
    samples = sorted(folder.glob("samples_*.jsonl"))
    target = samples[pick % len(samples)]
    lines = target.read_text().splitlines()
    line_no = pick % len(lines)
    key = SAMPLE_KEYS[pick % len(SAMPLE_KEYS)]
    damaged = _mutate_json_text(lines[line_no], how, key, cut)
    encoded = [line.encode() for line in lines]
    encoded[line_no] = damaged
    target.write_bytes(b"\n".join(encoded) + b"\n")
    return results, target


def _metrics_per_task() -> dict[str, int]:
    data = json.loads(next(SOURCE.glob("results_*.json")).read_text())
    return {
        task: len({key.split(",")[0] for key in entry if "," in key and "_stderr" not in key})
        for task, entry in data["results"].items()
    }


def _expected_rows(results: Path) -> int:
    """One samples row per (line, metric of its task): what a whole eval stores."""
    stamp = results.stem.removeprefix("results_")
    metrics = _metrics_per_task()
    return sum(
        len(results.with_name(f"samples_{task}_{stamp}.jsonl").read_bytes().splitlines()) * n
        for task, n in metrics.items()
    )


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no minutes-long shrinking
)
@given(st.lists(copy_spec, min_size=2, max_size=4))
def test_malformed_files_are_rejected_by_name_and_valid_ones_kept(specs: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        copies = [_make_copy(root / "out", i, spec) for i, spec in enumerate(specs)]
        path = root / "fw.duckdb"
        report = lm_eval_results.ingest([root / "out"], path)  # must not raise
        # A damaged copy can equal another (same results bytes): then it is "unchanged".
        assert report.inserted + report.skipped + len(report.errors) == len(copies)
        for error in report.errors:
            assert re.search(r"field `[^`]+`", error), error
            assert "Next step:" in error
        with db.connect(path, read_only=True) as con:
            stored = dict(
                con.execute(
                    "SELECT e.source_file, count(s.eval_id) FROM evals e "
                    "LEFT JOIN samples s USING (eval_id) GROUP BY ALL"
                ).fetchall()
            )
            orphans = con.execute(
                "SELECT count(*) FROM samples WHERE eval_id NOT IN (SELECT eval_id FROM evals)"
            ).fetchone()[0]
        assert orphans == 0
        for results, damaged in copies:
            key = str(results.resolve())
            if damaged is None:
                assert key in stored, report.summary()  # valid copies are ingested
            if key in stored:
                # All or nothing: every samples line of a stored eval is there.
                assert stored[key] == _expected_rows(results), (key, report.summary())
            else:
                assert damaged is not None
                named = any(str(damaged) in e for e in report.errors)
                assert named or report.skipped, report.summary()


# --- lm-eval 0.3 files (*-res.json): one JSON file per eval, no samples -------------

V03_SOURCES = sorted((Path(__file__).parent / "fixtures" / "lm_eval_03").rglob("*-res.json"))
# Where damage lands: whole sections, one task's entry, one value, the model's one home.
V03_KEYS = (
    "results", "config", "versions", "results.hellaswag", "results.lambada_openai.ppl",
    "results.arc_easy.acc_stderr", "config.model_args", "config.num_fewshot", "config.limit",
)  # fmt: skip


def _mutate_v03(text: str, how: str, dotted: str, cut: float) -> bytes:
    """Damage one 0.3 results file at ``dotted`` (a key, or a key inside a key)."""
    if how in ("truncate", "non_utf8", "not_an_object"):
        return _mutate_json_text(text, how, "", cut)
    data = json.loads(text)
    *parents, key = dotted.split(".")
    node = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        damaged = json.loads(_mutate_json_text(json.dumps(node), how, key, cut))
        node.clear()
        node.update(damaged)
    return json.dumps(data).encode()


v03_spec = st.tuples(
    st.booleans(),  # damaged?
    st.sampled_from(MUTATIONS),
    st.integers(min_value=0, max_value=len(V03_KEYS) - 1),
    st.integers(min_value=0, max_value=len(V03_SOURCES) - 1),
    st.floats(min_value=0.05, max_value=0.95),
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(st.lists(v03_spec, min_size=2, max_size=5))
def test_malformed_0_3_files_are_rejected_by_name_and_valid_ones_read(specs: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "old"
        copies: list[tuple[Path, bool]] = []
        for index, (damaged, how, key_no, source_no, cut) in enumerate(specs):
            data = json.loads(V03_SOURCES[source_no].read_text())
            data["config"]["model_args"] += f",revision=step{index}"  # a distinct eval each
            text = json.dumps(data, indent=2)
            target = root / f"run{index}" / f"run{index}-res.json"
            target.parent.mkdir(parents=True)
            body = _mutate_v03(text, how, V03_KEYS[key_no], cut) if damaged else text.encode()
            target.write_bytes(body)
            copies.append((target, damaged))
        shutil.copytree(SOURCE, root / "new")  # a 0.4.13 eval in the same ingest
        path = Path(tmp) / "fw.duckdb"
        report = lm_eval_results.ingest([root], path)  # must not raise
        assert report.inserted + report.skipped + len(report.errors) == len(copies) + 1
        for error in report.errors:
            assert re.search(r"field `[^`]+`", error), error
            assert "Next step:" in error and "were ingested" not in error
        with db.connect(path, read_only=True) as con:
            stored = dict(
                con.execute(
                    "SELECT e.source_file, count(s.task) FROM evals e "
                    "LEFT JOIN scores s USING (eval_id) GROUP BY ALL"
                ).fetchall()
            )
            v03_samples = con.execute(
                "SELECT count(*) FROM samples JOIN evals USING (eval_id) "
                "WHERE lm_eval_version = '0.3'"
            ).fetchone()[0]
        assert v03_samples == 0
        assert all(count > 0 for count in stored.values())  # no eval without scores
        for target, damaged in copies:
            key = str(target.resolve())
            if not damaged:
                scores = json.loads(target.read_text())["results"]
                expected = sum(not m.endswith("_stderr") for e in scores.values() for m in e)
                assert stored.get(key) == expected, report.summary()
            elif key not in stored:
                assert any(str(target) in e for e in report.errors) or report.skipped
