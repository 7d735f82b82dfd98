"""Resolving a registered MLflow model version to a folder lm-eval can load."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from forgetwatch.demo.build import World
from forgetwatch.errors import BadInputError
from forgetwatch.evals import targets
from tests.procs import Server

pytestmark = pytest.mark.slow


def test_registered_version_resolves_to_a_loadable_model(
    mlflow_server: Server, quick_world: World
) -> None:
    """Log a fine-tune's final model as run artifacts, register it, resolve it over http."""
    client = MlflowClient(mlflow_server.url)
    full_run = next(d for d in quick_world.run_dirs if (d / "config.json").exists())
    exp = client.create_experiment(f"registry-{time.time_ns()}")
    run = client.create_run(exp, run_name="register-me")
    client.log_artifacts(run.info.run_id, str(full_run), artifact_path="model")
    client.set_terminated(run.info.run_id)
    name = f"tiny-{time.time_ns()}"
    client.create_registered_model(name)
    version = client.create_model_version(
        name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    )

    folder = Path(targets.resolve_registered(name, version.version, mlflow_server.url))
    assert (folder / "config.json").is_file()
    assert (folder / "model.safetensors").read_bytes() == (
        full_run / "model.safetensors"
    ).read_bytes()


def test_unknown_version_names_the_field(mlflow_server: Server) -> None:
    with pytest.raises(BadInputError, match="registered model"):
        targets.resolve_registered("no-such-model", "1", mlflow_server.url)
