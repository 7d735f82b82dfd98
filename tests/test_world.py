"""The benchmark world: built small, loaded only through the CLI, and checked in the database.

``bench/world.py`` writes an MLflow store and lm-eval output folders for the
scale benchmark. If what it writes drifted from what MLflow and lm-eval write,
or stopped linking the way the collectors link, the benchmark would time the
wrong thing; this test loads a small world the way a user would
(``python -m forgetwatch sync`` / ``ingest``) and checks every count.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from bench.world import WorldInfo, build

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = next((ROOT / "tests/fixtures/lm_eval/0.4.13").glob("mlflow-run-*/*/results_*.json"))
SMALL = {"runs": 30, "bases": 3, "models": 12, "tasks": 6, "docs": 40}


def _forgetwatch(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "forgetwatch", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> WorldInfo:
    return build(tmp_path_factory.mktemp("world") / "w", **SMALL)


@pytest.fixture(scope="module")
def loaded(world: WorldInfo) -> Iterator[duckdb.DuckDBPyConnection]:
    db = world.root.parent / "forgetwatch.duckdb"
    _forgetwatch("sync", "--tracking-uri", world.tracking_uri, "--db", str(db))
    _forgetwatch(
        "ingest", str(world.lm_eval_dir), "--suite", str(world.suite_path), "--db", str(db)
    )
    con = duckdb.connect(str(db), read_only=True)
    yield con
    con.close()


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    return con.execute(sql).fetchone()[0]


def test_counts_match_the_world(world: WorldInfo, loaded: duckdb.DuckDBPyConnection) -> None:
    assert (world.models, world.bases, world.finals + world.checkpoints) == (12, 3, 9)
    assert _one(loaded, "SELECT count(*) FROM runs") == world.runs
    assert _one(loaded, "SELECT count(*) FROM run_metrics") == world.metric_points
    assert _one(loaded, "SELECT count(*) FROM evals") == world.evals == world.models
    assert _one(loaded, "SELECT count(*) FROM samples") == world.sample_rows == 12 * 6 * 40
    assert _one(loaded, "SELECT count(*) FROM models WHERE kind = 'base'") == world.bases


def test_evaluated_models_link_to_their_runs_and_bases(
    world: WorldInfo, loaded: duckdb.DuckDBPyConnection
) -> None:
    rows = loaded.execute(
        """SELECT m.kind, count(*), count(m.run_id), count(b.model_id)
           FROM models m JOIN (SELECT DISTINCT model_id FROM evals) e USING (model_id)
           LEFT JOIN models b ON b.model_id = m.base_model_id AND b.kind = 'base'
           GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    assert rows == [
        ("base", world.bases, 0, 0),
        ("checkpoint", world.checkpoints, world.checkpoints, world.checkpoints),
        ("final", world.finals, world.finals, world.finals),
    ]
    linked = loaded.execute(
        "SELECT r.run_name FROM models m JOIN runs r USING (run_id) WHERE m.kind = 'final' "
        "AND EXISTS (SELECT 1 FROM evals e WHERE e.model_id = m.model_id) ORDER BY 1"
    ).fetchall()
    assert [name for (name,) in linked] == sorted(world.evaluated_runs)


def test_scores_are_the_mean_of_their_samples(loaded: duckdb.DuckDBPyConnection) -> None:
    worst = _one(
        loaded,
        """SELECT max(abs(s.value - x.mean)) FROM scores s
           JOIN (SELECT eval_id, task, metric, avg(value) AS mean FROM samples GROUP BY ALL) x
           USING (eval_id, task, metric)""",
    )
    assert worst < 1e-12


def test_a_finetune_gains_on_target_and_keeps_less_elsewhere(
    loaded: duckdb.DuckDBPyConnection,
) -> None:
    by_model = """
        SELECT e.model_id, t.capability, avg(s.value) AS score
        FROM scores s JOIN evals e USING (eval_id) JOIN suite_tasks t USING (task)
        WHERE NOT s.is_group GROUP BY ALL"""
    rows = loaded.execute(
        f"""WITH c AS ({by_model})
        SELECT f.capability = 'target', avg(f.score - b.score), count(DISTINCT m.model_id)
        FROM models m JOIN c f ON f.model_id = m.model_id
        JOIN c b ON b.model_id = m.base_model_id AND b.capability = f.capability
        WHERE m.kind = 'final' GROUP BY 1 ORDER BY 1"""
    ).fetchall()
    (_, general, _), (_, target, finals) = rows
    assert finals == 5 and target > 0.05 and general < 0
    best = _one(
        loaded,
        f"""WITH c AS ({by_model})
        SELECT max(f.score - b.score) FROM models m
        JOIN c f ON f.model_id = m.model_id AND f.capability = 'target'
        JOIN c b ON b.model_id = m.base_model_id AND b.capability = 'target'
        WHERE m.kind = 'final'""",
    )
    assert best > 0.1


def test_files_have_lm_eval_s_layout(world: WorldInfo) -> None:
    template = json.loads(FIXTURE.read_text())
    results = sorted(world.lm_eval_dir.glob("*checkpoint-*/results_*.json"))[0]
    ours = json.loads(results.read_text())
    assert list(ours) == list(template)
    assert list(ours["config"]) == list(template["config"])
    sample = next(FIXTURE.parent.glob("samples_fx_mmlu_geo_*.jsonl"))
    expected = list(json.loads(sample.read_text().splitlines()[0]))
    stamp = results.stem.removeprefix("results_")
    mine = results.with_name(f"samples_fwb_mmlu_001_{stamp}.jsonl").read_text().splitlines()
    assert len(mine) == world.docs
    assert list(json.loads(mine[0])) == expected
    assert results.parent.name.startswith("__scratch__fwbench__")  # /a/b -> __a__b


def test_the_lm_eval_tree_is_deterministic(world: WorldInfo, tmp_path: Path) -> None:
    from bench import world as world_module

    plan = world_module.plan_world(steps=52, seed=0, **SMALL)
    bank = world_module.doc_bank(plan)
    model = plan.models[-1]
    world_module.write_eval(plan, bank, model, tmp_path)
    folder = world_module.sanitize_model_name(model.name)
    for path in (tmp_path / folder).iterdir():
        assert path.read_bytes() == (world.lm_eval_dir / folder / path.name).read_bytes()
