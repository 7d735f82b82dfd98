"""Shared fixtures: a real MLflow server, the quick demo world, and a database built from them.

Everything here is real: ``mlflow server`` over http on 127.0.0.1 with a sqlite
backend, a tiny GPT-2 trained on CPU with the HF Trainer logging to that
server, real lm-eval runs, and the real collectors writing a DuckDB file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from forgetwatch.demo.build import World, build_world
from tests.procs import Server, free_port, start_server

# No hub, ever: these machines have none, and a test that reaches for one must fail fast.
os.environ.update(
    {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # MLflow's default of 7 retries stalls a failing test for minutes; one retry, as
        # forgetwatch's own default, rides out a single connection reset from a busy server.
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    }
)

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def start_mlflow(root: Path) -> Server:
    """``mlflow server`` with a sqlite backend, in its own process group."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    return start_server(
        cmd,
        url=f"http://127.0.0.1:{port}",
        health_path="/health",
        log=root / "server.log",
        # Job execution spawns huey consumers that survive SIGTERM; we need none.
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        timeout=120,
    )


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_mlflow(tmp_path_factory.mktemp("mlflow"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def quick_world(tmp_path_factory: pytest.TempPathFactory, mlflow_server: Server) -> World:
    """The quick demo world, trained for real, its runs logged to the http server."""
    return build_world(
        tmp_path_factory.mktemp("world"), tracking_uri=mlflow_server.url, profile="quick"
    )


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory, quick_world: World) -> Path:
    """A DuckDB file filled by the real collectors: MLflow over http, then lm-eval outputs."""
    from forgetwatch.collectors import lm_eval_results, mlflow_runs
    from forgetwatch.suite import load_suite

    path = tmp_path_factory.mktemp("db") / "forgetwatch.duckdb"
    sync = mlflow_runs.sync(quick_world.tracking_uri, path)
    ingest = lm_eval_results.ingest([quick_world.eval_dir], path, suite=load_suite("offline"))
    assert sync.ok and ingest.ok, (sync.summary(), ingest.summary())
    return path


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests save screenshots and other artifacts a reviewer may want to see."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# Under pytest-xdist, session fixtures are built once per worker. Tests that share the
# expensive real world (the MLflow server, the trained quick world, its database) are
# kept on one worker (``--dist loadgroup``), so the world is trained once per run; the
# rest spread over the other workers.
SHARED_WORLD = {"mlflow_server", "quick_world", "demo_db"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        # Fixtures named in the signature, and those a parametrized fixture fetches by name
        # (``request.getfixturevalue(request.param)``, e.g. ``any_db`` and ``browser_db``).
        wanted = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        wanted |= {v for v in (callspec.params.values() if callspec else ()) if isinstance(v, str)}
        if SHARED_WORLD & wanted:
            item.add_marker(pytest.mark.xdist_group("shared-world"))
