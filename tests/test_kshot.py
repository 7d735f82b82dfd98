"""The k-shot baseline: a suite capability that is a comparison line, never a delta.

The bundled suite prompts the base model with 5 worked examples of the target
task (``fw_target_facts_5shot``). These tests check the suite, the lm-eval
task itself, that deltas ignore it, the query the Run page reads it from, and
which models the demo evaluates on what.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forgetwatch import db, queries
from forgetwatch.demo.build import World, checkpoint_dirs, eval_groups
from forgetwatch.demo.profiles import get_profile
from forgetwatch.errors import BadInputError
from forgetwatch.suite import ICL_BASELINE, load_suite
from tests.fixture_db import FULL_FINAL, build_known_db
from tests.test_checkpoints import KSHOT_SCORE, KSHOT_TASK, build_checkpoint_db

TASKS = Path(__file__).resolve().parent.parent / "evals" / "tasks"


def test_bundled_suite_has_a_baseline_apart_from_regressions() -> None:
    suite = load_suite("offline")
    baseline = next(t for t in suite.tasks if t.capability == ICL_BASELINE)
    assert (baseline.task, baseline.metric) == ("fw_target_facts_5shot", "acc")
    assert ICL_BASELINE not in {t.capability for t in suite.regression_only().tasks}
    only = suite.baselines_only()
    assert only is not None and only.task_names == ["fw_target_facts_5shot"]
    assert load_suite("standard").baselines_only() is None


def test_unknown_capability_lists_the_baseline_too(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: x\ntasks:\n  - {task: a, capability: icl, metric: acc}\n")
    with pytest.raises(BadInputError, match="icl_baseline"):
        load_suite(str(path))


def test_kshot_task_prompts_with_five_other_examples() -> None:
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS), include_defaults=False)
    task = manager.load(["fw_target_facts_5shot"])["tasks"]["fw_target_facts_5shot"]
    assert task.config.num_fewshot == 5
    docs = list(task.test_docs())
    assert len(docs) == 50  # the same questions as the zero-shot target task
    for doc in docs[:10]:
        context = task.fewshot_context(doc, 5)
        assert context.endswith(doc["query"])
        assert context.count("Q: What is the capital of") == 6  # 5 examples + the question
        assert context.count(doc["query"]) == 1  # never its own answer as an example


def test_deltas_ignore_the_baseline(tmp_path: Path) -> None:
    """The final model was also scored on the k-shot task: deltas must not see it."""
    plain = build_known_db(tmp_path / "plain.duckdb")
    with_baseline, _ = build_checkpoint_db(tmp_path)
    results = []
    for path in (plain, with_baseline):
        with db.connect(path, read_only=True) as con:
            results.append(
                (
                    queries.model_summary(con, FULL_FINAL),
                    queries.capability_deltas(con, FULL_FINAL).to_dict("records"),
                    queries.task_deltas(con, FULL_FINAL)["task"].tolist(),
                    queries.runs_overview(con)["target_gain"].fillna(-1).tolist(),
                )
            )
    assert results[0] == results[1]
    assert KSHOT_TASK not in results[1][2]


def test_icl_baselines_reads_the_base_kshot_score(tmp_path: Path) -> None:
    path, _ = build_checkpoint_db(tmp_path)
    with db.connect(path, read_only=True) as con:
        df = queries.icl_baselines(con, "run-full")
        assert queries.icl_baselines(con, "run-new").to_dict("records") == df.to_dict("records")
    assert df.to_dict("records") == [
        {
            "task": KSHOT_TASK,
            "n_shot": 5,
            "value": pytest.approx(KSHOT_SCORE),
            "base_target": pytest.approx(0.20),
            "base_model_id": "/models/tiny-base",
            "base_path": "/models/tiny-base",
        }
    ]
    plain = build_known_db(tmp_path / "plain.duckdb")
    with db.connect(plain, read_only=True) as con:
        assert queries.icl_baselines(con, "run-full").empty


def _fake_world(tmp_path: Path) -> World:
    """Run folders with checkpoint-N folders and the Trainer's state file, no weights."""
    profile = get_profile("quick")
    run_dirs = [tmp_path / "runs" / plan.name for plan in profile.finetunes]
    for run_dir, last in zip(run_dirs, (280, 140), strict=True):
        for step in (100, 200, last) if last == 280 else (50, 100, last):
            ckpt = run_dir / f"checkpoint-{step}"
            ckpt.mkdir(parents=True)
            state = {"global_step": step, "max_steps": last}
            (ckpt / "trainer_state.json").write_text(json.dumps(state))
    return World(tmp_path, tmp_path / "base-model", "", "", run_dirs, tmp_path / "evals", "quick")


def test_demo_evaluates_the_base_kshot_and_one_runs_checkpoints(tmp_path: Path) -> None:
    world = _fake_world(tmp_path)
    full_run = world.run_dirs[0]
    # The checkpoint saved at the last step is the final model: not evaluated twice.
    assert [p.name for p in checkpoint_dirs(full_run)] == ["checkpoint-100", "checkpoint-200"]
    profile = get_profile("quick")
    (base_specs, base_suite), (tuned, tuned_suite) = eval_groups(world, profile.finetunes, profile)
    assert [s.pretrained for s in base_specs] == [str(world.base_model_dir)]
    assert "fw_target_facts_5shot" in base_suite.task_names
    assert "fw_target_facts_5shot" not in tuned_suite.task_names
    assert [(s.pretrained, s.peft) for s in tuned] == [
        (str(full_run), None),
        (str(full_run / "checkpoint-100"), None),
        (str(full_run / "checkpoint-200"), None),
        (str(world.base_model_dir), str(world.run_dirs[1])),  # LoRA: adapter over the base
    ]
    assert get_profile("full").checkpoint_run == "ft-full-lr1e-3-e60"
