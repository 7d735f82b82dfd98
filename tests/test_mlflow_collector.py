"""The MLflow collector against a real ``mlflow server`` over http."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from forgetwatch import db
from forgetwatch.collectors import mlflow_access, mlflow_runs
from forgetwatch.errors import SourceUnavailableError
from tests.procs import Server, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def logged_runs(mlflow_server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two runs logged through MLflow's client: one full fine-tune, one LoRA with 3 checkpoints."""
    client = MlflowClient(mlflow_server.url)
    exp = client.create_experiment(f"collector-{time.time_ns()}")
    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for name, params in {
        "full-lr1e-3": {"_name_or_path": "/models/base", "learning_rate": "0.001"},
        "lora-r8": {"_name_or_path": "/models/base", "peft_config": "{'default': LoraConfig()}"},
    }.items():
        run = client.create_run(exp, run_name=name)
        run_dir = out / name
        for step in (10, 20, 30):
            (run_dir / f"checkpoint-{step}").mkdir(parents=True)
        client.log_param(run.info.run_id, "output_dir", str(run_dir))
        for key, value in params.items():
            client.log_param(run.info.run_id, key, value)
        client.set_tag(run.info.run_id, "team", "nlp")
        for step in range(50):
            client.log_metric(run.info.run_id, "loss", 2.0 / (step + 1), step=step)
        client.log_metric(run.info.run_id, "eval_loss", 1.5, step=49)
        client.set_terminated(run.info.run_id)
        runs[name] = run.info.run_id
    return {"experiment": client.get_experiment(exp).name, "runs": runs, "out": out}


def _snapshot(path: Path) -> dict[str, list]:
    with db.connect(path, read_only=True) as con:
        return {
            table: con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            for table in ("runs", "run_metrics", "models")
        }


def test_sync_reads_runs_params_tags_and_full_histories(
    mlflow_server: Server, logged_runs: dict, tmp_path: Path
) -> None:
    path = tmp_path / "fw.duckdb"
    report = mlflow_runs.sync(mlflow_server.url, path, experiments=[logged_runs["experiment"]])
    assert report.ok and report.inserted == 2

    with db.connect(path, read_only=True) as con:
        rows = con.execute(
            "SELECT run_name, base_model, method, status, params['learning_rate'], tags['team'] "
            "FROM runs ORDER BY run_name"
        ).fetchall()
        history = con.execute(
            "SELECT count(*), min(step), max(step), max(value) FROM run_metrics "
            "WHERE run_id = ? AND key = 'loss'",
            [logged_runs["runs"]["full-lr1e-3"]],
        ).fetchone()
        models = con.execute(
            "SELECT kind, step, base_model_id FROM models WHERE run_id = ? "
            "ORDER BY step NULLS LAST",
            [logged_runs["runs"]["lora-r8"]],
        ).fetchall()
    assert rows == [
        ("full-lr1e-3", "/models/base", "full", "FINISHED", "0.001", "nlp"),
        ("lora-r8", "/models/base", "lora", "FINISHED", None, "nlp"),
    ]
    assert history == (50, 0, 49, 2.0)
    assert models == [
        ("checkpoint", 10, "/models/base"),
        ("checkpoint", 20, "/models/base"),
        ("checkpoint", 30, "/models/base"),
        ("final", None, "/models/base"),
    ]


def test_second_sync_changes_nothing(
    mlflow_server: Server, logged_runs: dict, tmp_path: Path
) -> None:
    path = tmp_path / "fw.duckdb"
    mlflow_runs.sync(mlflow_server.url, path, experiments=[logged_runs["experiment"]])
    first = _snapshot(path)
    report = mlflow_runs.sync(mlflow_server.url, path, experiments=[logged_runs["experiment"]])
    assert (report.inserted, report.updated, report.skipped) == (0, 0, 2)
    assert _snapshot(path) == first


def test_unreachable_server_fails_fast_with_next_step(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(SourceUnavailableError) as err:
        mlflow_runs.sync(f"http://127.0.0.1:{free_port()}", tmp_path / "fw.duckdb")
    assert time.monotonic() - started < 6
    assert "unreachable" in err.value.title and "mlflow server" in err.value.next_step


def test_missing_tracking_uri_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(SourceUnavailableError, match="No MLflow tracking URI"):
        mlflow_access.resolve_tracking_uri(None)


@pytest.mark.parametrize(
    ("params", "tags", "method"),
    [
        ({"_name_or_path": "gpt2"}, {}, "full"),
        ({"peft_config": "LoraConfig(r=8)"}, {}, "lora"),
        ({"peft_config": "LoraConfig(r=8)", "load_in_4bit": "True"}, {}, "qlora"),
        ({}, {"method": "LoRA"}, "lora"),
        ({}, {}, "unknown"),
    ],
)
def test_method_inference(params: dict, tags: dict, method: str) -> None:
    assert mlflow_runs.infer_method(params, tags) == method
