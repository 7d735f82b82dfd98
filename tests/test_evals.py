"""The offline suite: loading + validation, the code sandbox, and a real run_suite."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from forgetwatch.errors import BadInputError, EvalError  # noqa: E402
from forgetwatch.evals.sandbox import Limits, run_python  # noqa: E402
from forgetwatch.suite import CAPABILITIES, Suite, load_suite  # noqa: E402

TASKS_DIR = Path(__file__).resolve().parents[1] / "evals" / "tasks"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_bundled_offline_suite_loads() -> None:
    suite = load_suite("offline")
    assert suite.name == "offline"
    assert suite.include_path == TASKS_DIR
    # Every capability but `other` (for tasks a user has yet to map), plus the k-shot line.
    assert {t.capability for t in suite.tasks} == {*CAPABILITIES, "icl_baseline"} - {"other"}
    humaneval = next(t for t in suite.tasks if t.task == "fw_humaneval")
    assert humaneval.limit == 10 and humaneval.metric_key == "pass@1,none"
    assert all((TASKS_DIR / f"{t.task}.yaml").is_file() for t in suite.tasks)


def test_bad_capability_names_file_field_and_choices(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: x\ntasks:\n  - {task: a, capability: target, metric: acc}\n"
        "  - {task: b, capability: vibes, metric: acc}\n",
    )
    with pytest.raises(BadInputError) as err:
        load_suite(str(path))
    msg = err.value.message
    assert str(path) in msg and "tasks[1].capability" in msg and "use one of: target" in msg


def test_missing_field_names_it(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\ntasks:\n  - {task: a, capability: code}\n")
    with pytest.raises(BadInputError) as err:
        load_suite(str(path))
    assert "tasks[0].metric" in err.value.message and str(path) in err.value.message


def test_missing_file_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(BadInputError) as err:
        load_suite(str(tmp_path / "nope.yaml"))
    assert "nope.yaml" in err.value.message
    with pytest.raises(BadInputError) as err:
        load_suite("no-such-suite")
    assert "offline" in err.value.message


def test_sandbox_runs_good_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGETWATCH_ALLOW_CODE_EXEC", "1")
    ok = run_python("def add_3(x):\n    return x + 3\n\nassert add_3(2) == 5\n")
    assert ok.passed and not ok.timed_out
    bad = run_python("assert 1 == 2\n")
    assert not bad.passed and "AssertionError" in bad.output


def test_sandbox_stops_infinite_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGETWATCH_ALLOW_CODE_EXEC", "1")
    res = run_python("while True:\n    pass\n", Limits(wall_s=1.5, cpu_s=5))
    assert res.timed_out and not res.passed


def test_sandbox_stops_memory_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGETWATCH_ALLOW_CODE_EXEC", "1")
    res = run_python("x = bytearray(4 * 1024**3)\n", Limits(memory_mb=256))
    assert not res.passed and "MemoryError" in res.output


def test_sandbox_has_fresh_cwd_and_minimal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGETWATCH_ALLOW_CODE_EXEC", "1")
    monkeypatch.setenv("SECRET_TOKEN", "xyz")
    res = run_python("import os\nprint(sorted(os.listdir('.')), 'SECRET_TOKEN' in os.environ)\n")
    assert res.passed and "['main.py'] False" in res.output


def test_sandbox_refuses_without_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORGETWATCH_ALLOW_CODE_EXEC", raising=False)
    with pytest.raises(EvalError) as err:
        run_python("print(1)\n")
    assert "FORGETWATCH_ALLOW_CODE_EXEC=1" in err.value.message


@pytest.fixture(scope="module")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A really tiny, untrained GPT-2 with a BPE tokenizer: enough to exercise lm-eval."""
    from forgetwatch.demo.tinymodel import ModelShape, new_model, train_tokenizer

    out = tmp_path_factory.mktemp("tiny-model")
    tokenizer = train_tokenizer(["Q: What is 1 + 2?\nA: 3.", "def add_1(x):\n    return x"], 300)
    model = new_model(tokenizer, ModelShape(n_embd=16, n_layer=1, n_head=2, n_positions=128), 0)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _small_suite(names: list[str]) -> Suite:
    suite = load_suite("offline")
    tasks = [t for t in suite.tasks if t.task in names]
    return Suite(suite.name, suite.path, suite.description, suite.include_path, tasks)


@pytest.mark.slow
def test_run_suite_writes_cli_layout(random_model: Path, tmp_path: Path) -> None:
    from forgetwatch.evals.runner import ModelSpec, run_suite

    suite = _small_suite(["fw_target_facts", "fw_unknown", "fw_code_funcs"])
    stages: list[tuple[str, int, int]] = []
    paths = run_suite(
        [ModelSpec(str(random_model))],
        suite,
        tmp_path / "out",
        limit=4,
        allow_code_exec=True,
        progress=lambda s, d, t: stages.append((s, d, t)),
    )
    assert len(paths) == 1 and paths[0].is_file()
    folder = paths[0].parent
    assert folder.parent == tmp_path / "out"
    assert folder.name == str(random_model).replace("/", "__")
    results = json.loads(paths[0].read_text())
    for key in ("results", "configs", "versions", "n-samples", "config", "task_hashes"):
        assert key in results
    assert f"pretrained={random_model}" in results["config"]["model_args"]
    assert 0.0 <= results["results"]["fw_code_funcs"]["pass@1,none"] <= 1.0
    assert results["n-samples"]["fw_unknown"] == {"original": 40, "effective": 4}
    for task in suite.task_names:
        (samples,) = folder.glob(f"samples_{task}_*.jsonl")
        rows = [json.loads(line) for line in samples.read_text().splitlines()]
        assert len(rows) == 4 and {"doc", "resps", "filtered_resps"} <= rows[0].keys()
    assert stages[-1] == ("eval", 1, 1)


@pytest.mark.slow
def test_run_suite_refuses_code_tasks_without_opt_in(
    random_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from forgetwatch.evals.runner import ModelSpec, run_suite

    monkeypatch.delenv("FORGETWATCH_ALLOW_CODE_EXEC", raising=False)
    with pytest.raises(EvalError) as err:
        run_suite(
            [ModelSpec(str(random_model))], _small_suite(["fw_code_funcs"]), tmp_path, limit=2
        )
    assert "FORGETWATCH_ALLOW_CODE_EXEC=1" in err.value.message


def test_quick_and_repeat_base_refuse_what_they_cannot_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad flag mixes exit 2 with a titled error naming the field, before anything runs."""
    from forgetwatch.cli.main import main

    db_file = str(tmp_path / "x.duckdb")
    assert main(["eval", "--db", db_file, "--model", str(tmp_path), "--quick", "--limit", "5"]) == 2
    assert "Field --limit: a quick check chooses its own items" in capsys.readouterr().err
    argv = ["eval", "--db", db_file, "--all-checkpoints", "run", "--repeat-base"]
    assert main(argv) == 2
    assert "Field --repeat-base: it re-runs a base model" in capsys.readouterr().err
    assert not (tmp_path / "x-jobs").exists()  # nothing was queued
