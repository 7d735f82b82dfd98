"""LoggedModel checkpoints, registered versions, artifact evals and nested runs, end to end.

Everything is real: a tiny GPT-2 fine-tuned by the HF Trainer whose own
``MLflowCallback`` logs checkpoints as LoggedModels (``HF_MLFLOW_LOG_ARTIFACTS=1``),
a version registered from one of them, lm-eval output written by a real eval
and logged as run artifacts, and the collectors reading the http server.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.entities import LoggedModel, Metric
from mlflow.entities.file_info import FileInfo
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from forgetwatch import db
from forgetwatch.collectors import mlflow_artifacts, mlflow_runs, mlflow_structure
from forgetwatch.collectors.report import SyncReport
from forgetwatch.demo.tinymodel import ModelShape, new_model, train_tokenizer
from forgetwatch.demo.training import FinetunePlan, finetune
from forgetwatch.evals.runner import ModelSpec, run_suite
from forgetwatch.identity import normalise_path
from forgetwatch.settings import temporary_env
from forgetwatch.suite import load_suite
from tests.procs import Server

EXPERIMENT = "structure-e2e"
REGISTERED = "fw-structure-tiny"
TEXTS = [f"q: {a} plus {b} is? a: {a + b}." for a in range(12) for b in range(6)]
EVAL_TASK = "fw_arithmetic"


@dataclass
class StructureWorld:
    uri: str
    base_dir: Path
    output_dir: Path
    train_run: str
    eval_run: str
    parent_run: str
    child_runs: list[str]
    registered_model_id: str  # the LoggedModel the registered version points at


def _tiny_base(folder: Path) -> Path:
    """A saved, randomly initialised GPT-2 small enough to train in seconds."""
    tokenizer = train_tokenizer(TEXTS, vocab_size=300)
    shape = ModelShape(vocab_size=300, n_embd=32, n_layer=1, n_head=2, n_positions=128)
    new_model(tokenizer, shape, seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _eval_output(model_dir: Path, out: Path) -> Path:
    """A real lm-eval output folder (results + samples) from one bundled task."""
    suite_file = out / "suite.yaml"
    tasks = Path(__file__).resolve().parent.parent / "evals" / "tasks"
    suite_file.parent.mkdir(parents=True, exist_ok=True)
    suite_file.write_text(
        f"name: one\ninclude_path: {tasks}\n"
        f"tasks:\n  - {{task: {EVAL_TASK}, capability: knowledge, metric: acc, filter: none}}\n",
        encoding="utf-8",
    )
    [results] = run_suite([ModelSpec(str(model_dir))], load_suite(str(suite_file)), out, limit=4)
    return results.parent


def _run_ids(client: MlflowClient, experiment_id: str) -> dict[str, str]:
    return {r.info.run_name: r.info.run_id for r in client.search_runs([experiment_id])}


@pytest.fixture(scope="module")
def world(mlflow_server: Server, tmp_path_factory: pytest.TempPathFactory) -> StructureWorld:
    root = tmp_path_factory.mktemp("structure")
    torch.set_num_threads(1)
    base = _tiny_base(root / "base")
    out = root / "ft"
    plan = FinetunePlan(name="ft-ckpt", method="full", lr=1e-3, epochs=1, save_steps=2)
    # max 4 steps of batch 16 over 72 texts: checkpoints at steps 2 and 4.
    with temporary_env(HF_MLFLOW_LOG_ARTIFACTS="1"):
        finetune(
            base, TEXTS[:64], plan, out,
            tracking_uri=mlflow_server.url, experiment=EXPERIMENT, progress=lambda d, t: None,
        )  # fmt: skip
    client = MlflowClient(mlflow_server.url)
    exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    train_run = _run_ids(client, exp_id)["ft-ckpt"]
    ckpt2 = next(
        m for m in client.search_logged_models(experiment_ids=[exp_id]) if m.name == "checkpoint-2"
    )
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.register_model(f"models:/{ckpt2.model_id}", REGISTERED)

    eval_folder = _eval_output(out, root / "lm-eval")
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="eval-logged") as run:
        mlflow.log_artifacts(str(eval_folder), artifact_path="lm_eval/ft")
        eval_run = run.info.run_id
    shutil.rmtree(eval_folder)  # the collector must fetch it from MLflow
    with mlflow.start_run(run_name="sweep") as parent:
        children = []
        for i in range(2):
            with mlflow.start_run(run_name=f"trial-{i}", nested=True) as child:
                mlflow.log_metric("loss", 1.0 / (i + 1), step=1)
                children.append(child.info.run_id)
    return StructureWorld(
        uri=mlflow_server.url,
        base_dir=base,
        output_dir=out,
        train_run=train_run,
        eval_run=eval_run,
        parent_run=parent.info.run_id,
        child_runs=children,
        registered_model_id=ckpt2.model_id,
    )


def _sync(world: StructureWorld, path: Path) -> SyncReport:
    """The CLI's sync: runs first, then (inside it) the structure pass over changed runs."""
    report = mlflow_runs.sync(world.uri, path, experiments=[EXPERIMENT])
    assert report.ok, report.summary()
    return report


def _structure_pass_over_all_runs(world: StructureWorld, path: Path) -> SyncReport:
    """``sync_structure`` as the sync loop calls it, told that every run changed."""
    client = MlflowClient(world.uri)
    exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = [r.info.run_id for r in client.search_runs([exp_id])]
    report = SyncReport(source="structure")
    mlflow_structure.sync_structure(
        client, world.uri, path, experiment_ids=[exp_id], changed_run_ids=runs, report=report
    )
    assert report.ok, report.summary()
    return report


@pytest.fixture(scope="module")
def synced(world: StructureWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("structure-db") / "fw.duckdb"
    _sync(world, path)
    return path


def _rows(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with db.connect(path, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.mark.slow
def test_checkpoints_become_models_with_their_steps(world: StructureWorld, synced: Path) -> None:
    logged = _rows(
        synced,
        "SELECT name, step, run_id, model_id FROM logged_models WHERE run_id = ? ORDER BY step",
        [world.train_run],
    )
    assert [(n, s) for n, s, _, _ in logged] == [("checkpoint-2", 2), ("checkpoint-4", 4)]
    ckpt_dir = normalise_path(str(world.output_dir / "checkpoint-2"))
    assert logged[0][3] == ckpt_dir  # same row as the local folder an eval would name
    models = _rows(
        synced,
        "SELECT model_id, kind, run_id, step, base_model_id FROM models "
        "WHERE model_id IN (SELECT model_id FROM logged_models) ORDER BY step",
    )
    base = normalise_path(str(world.base_dir))
    assert [(k, r, s, b) for _, k, r, s, b in models] == [
        ("checkpoint", world.train_run, 2, base),
        ("checkpoint", world.train_run, 4, base),
    ]


@pytest.mark.slow
def test_registered_version_links_to_its_checkpoint(world: StructureWorld, synced: Path) -> None:
    [(logged_id, run_id, model_id, source)] = _rows(
        synced,
        "SELECT logged_model_id, run_id, model_id, source FROM registered_versions WHERE name = ?",
        [REGISTERED],
    )
    assert logged_id == world.registered_model_id
    assert run_id == world.train_run
    assert model_id == normalise_path(str(world.output_dir / "checkpoint-2"))
    assert source.startswith("models:/")


@pytest.mark.slow
def test_artifact_evals_are_ingested_with_their_run(world: StructureWorld, synced: Path) -> None:
    evals = _rows(synced, "SELECT eval_id, run_id, source_kind, source_file FROM evals")
    assert [(r, k) for _, r, k, _ in evals] == [(world.eval_run, "artifact")]
    cache = mlflow_artifacts.cache_root(synced) / world.eval_run
    assert evals[0][3].startswith(str(cache))
    [(tasks, samples)] = _rows(
        synced,
        "SELECT count(DISTINCT s.task), (SELECT count(*) FROM samples) FROM scores s",
    )
    assert tasks == 1 and samples > 0
    # The eval names the fine-tune's output_dir, so it joins that run's final model.
    [(linked_run,)] = _rows(synced, "SELECT m.run_id FROM evals e JOIN models m USING (model_id)")
    assert linked_run == world.train_run


@pytest.mark.slow
def test_resync_keeps_cached_downloads_and_adds_nothing(
    world: StructureWorld, synced: Path
) -> None:
    cache = mlflow_artifacts.cache_root(synced) / world.eval_run
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert any(p.name.startswith("samples_") for p in before)
    _sync(world, synced)  # nothing changed: no run is walked again
    _structure_pass_over_all_runs(world, synced)  # every run walked: cached files are kept
    after = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert after == before
    counts = _rows(
        synced,
        "SELECT (SELECT count(*) FROM evals), (SELECT count(*) FROM logged_models), "
        "(SELECT count(*) FROM registered_versions WHERE name = ?)",
        [REGISTERED],
    )
    assert counts == [(1, 2, 1)]


@pytest.mark.slow
def test_nested_runs_keep_their_parent(world: StructureWorld, synced: Path) -> None:
    rows = _rows(
        synced,
        "SELECT run_id, parent_run_id FROM runs WHERE run_id IN (?, ?, ?)",
        [world.parent_run, *world.child_runs],
    )
    parents = dict(rows)
    assert parents[world.parent_run] is None
    assert [parents[c] for c in world.child_runs] == [world.parent_run, world.parent_run]


def _logged(name: str, metric_steps: list[int]) -> LoggedModel:
    metrics = [Metric("loss", 1.0, 0, step) for step in metric_steps]
    return LoggedModel("1", "m-abc", name, "mlflow-artifacts:/x", 0, 0, metrics=metrics)


def test_checkpoint_step_comes_from_the_name_then_from_mlflow() -> None:
    # The HF Trainer logs every checkpoint at step 0: the name is the only truth.
    assert mlflow_structure.logged_model_step(_logged("checkpoint-500", [0])) == 500
    assert mlflow_structure.logged_model_step(_logged("final", [10, 30])) == 30
    assert mlflow_structure.logged_model_step(_logged("final", [])) is None


def test_version_points_at_its_logged_model() -> None:
    from_source = ModelVersion("m", "1", 0, source="models:/m-0123abc")
    assert mlflow_structure.logged_model_of(from_source) == "m-0123abc"
    explicit = ModelVersion("m", "2", 0, source="s3://bucket/x", model_id="m-9")
    assert mlflow_structure.logged_model_of(explicit) == "m-9"
    legacy = ModelVersion("m", "3", 0, source="runs:/abc123/model")
    assert mlflow_structure.logged_model_of(legacy) is None


def test_only_lm_eval_folders_are_fetched() -> None:
    listing = [
        FileInfo("ev/results_2026-01-01T00-00-00.json", False, 10),
        FileInfo("ev/samples_task_2026-01-01T00-00-00.jsonl", False, 99),
        FileInfo("ev/notes.txt", False, 5),
    ]
    found = mlflow_artifacts._lm_eval_files("r1", listing)
    assert sorted(f.path for f in found) == [listing[0].path, listing[1].path]
    assert mlflow_artifacts._lm_eval_files("r1", listing[1:]) == []  # samples alone: not a result


FIXTURE_OUTPUT = Path(__file__).resolve().parent / "fixtures" / "lm_eval" / "0.4.13" / "plain"


def test_a_run_that_fails_is_reported_and_other_runs_still_ingest(tmp_path: Path) -> None:
    """A local MLflow store (no server needed) with committed real lm-eval output.

    The second run was deleted for good between the run search and the artifact
    walk, which happens on busy servers.
    """
    store = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = store.create_experiment("artifacts", artifact_location=str(tmp_path / "art"))
    good = store.create_run(exp).info.run_id
    store.log_artifacts(good, str(FIXTURE_OUTPUT), artifact_path="lm_eval")
    gone = "0" * 32
    path = tmp_path / "fw.duckdb"
    report = SyncReport(source="test")
    mlflow_artifacts.ingest_artifacts(store, path, [good, gone], report)
    assert len(report.errors) == 1 and gone in report.errors[0]
    assert _rows(path, "SELECT run_id, source_kind FROM evals") == [(good, "artifact")]
    again = SyncReport(source="test")
    mlflow_artifacts.ingest_artifacts(store, path, [good], again)
    assert again.ok and _rows(path, "SELECT count(*) FROM evals") == [(1,)]
