"""The embedded demo world (quick profile): real training and evals show real trade-offs.

``quick_world`` is the session fixture from ``tests/conftest.py``: one
``build_world(tmp_path_factory.mktemp("world"), profile="quick")`` shared by
every test that needs the demo world.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import mlflow
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from forgetwatch.demo import corpus  # noqa: E402
from forgetwatch.demo.build import World, build_world  # noqa: E402

pytestmark = pytest.mark.slow


def _scores(world: World) -> dict[str, dict[str, float]]:
    """{model folder name: {task: score}} from the lm-eval results JSON files."""
    out = {}
    for path in world.result_files:
        results = json.loads(path.read_text())["results"]
        out[path.parent.name] = {
            task: next(v for k, v in row.items() if k.endswith(",none") and "stderr" not in k)
            for task, row in results.items()
        }
    return out


def _folder(path: Path) -> str:
    return str(path).replace("/", "__")


def test_committed_data_is_what_the_generator_makes(tmp_path: Path) -> None:
    corpus.write_all(tmp_path / "train", tmp_path / "eval")
    for made in (tmp_path / "train").iterdir():
        assert made.read_bytes() == (corpus.DATA_DIR / made.name).read_bytes()
    for made in (tmp_path / "eval").iterdir():
        assert made.read_bytes() == (corpus.EVAL_DATA_DIR / made.name).read_bytes()


def test_world_layout(quick_world: World) -> None:
    w = quick_world
    assert (w.base_model_dir / "config.json").is_file()
    assert (w.base_model_dir / "tokenizer.json").is_file()
    full, lora = w.run_dirs
    assert (full / "model.safetensors").is_file() and (lora / "adapter_config.json").is_file()
    assert list(full.glob("checkpoint-*")) and list(lora.glob("checkpoint-*"))
    # The full run's checkpoints are evaluated too, except the one equal to its final model.
    checkpoints = [full / "checkpoint-100", full / "checkpoint-200"]
    assert (full / "checkpoint-280").is_dir()
    assert len(w.result_files) == 1 + len(w.run_dirs) + len(checkpoints)
    folders = {p.parent.name for p in w.result_files}
    assert folders == {_folder(p) for p in (w.base_model_dir, full, lora, *checkpoints)}
    # Only the base runs the k-shot baseline; fine-tunes run the regression tasks.
    scores = _scores(w)
    assert "fw_target_facts_5shot" in scores[_folder(w.base_model_dir)]
    assert "fw_target_facts_5shot" not in scores[_folder(full)]
    assert set(scores[_folder(checkpoints[0])]) == set(scores[_folder(full)])


def test_mlflow_runs_logged_by_the_trainer(quick_world: World) -> None:
    client = mlflow.MlflowClient(tracking_uri=quick_world.tracking_uri)
    exp = client.get_experiment_by_name(quick_world.experiment_name)
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {d.name for d in quick_world.run_dirs}
    for run_dir in quick_world.run_dirs:
        run = runs[run_dir.name]
        assert run.info.status == "FINISHED"
        assert run.data.params["output_dir"] == str(run_dir)
        assert run.data.params["_name_or_path"] == str(quick_world.base_model_dir)
        assert run.data.tags["base_model"] == str(quick_world.base_model_dir)
        assert run.data.tags["method"] in {"full", "lora"}
        assert "loss" in run.data.metrics


def test_real_trade_offs(quick_world: World) -> None:
    scores = _scores(quick_world)
    base = scores[_folder(quick_world.base_model_dir)]
    full = scores[_folder(quick_world.run_dirs[0])]
    lora = scores[_folder(quick_world.run_dirs[1])]
    # The full fine-tune learns the new facts...
    assert full["fw_target_facts"] >= base["fw_target_facts"] + 0.2
    # ...forgets general knowledge, and starts answering about countries it never saw.
    assert full["fw_knowledge_facts"] <= base["fw_knowledge_facts"] - 0.2
    assert full["fw_unknown"] <= base["fw_unknown"] - 0.3
    # LoRA changes the model too (hallucination breaks first), but forgets less.
    assert lora["fw_unknown"] < base["fw_unknown"]
    assert lora["fw_code_funcs"] > full["fw_code_funcs"]


def test_second_build_reuses_everything(quick_world: World) -> None:
    before = {p: p.stat().st_mtime_ns for p in quick_world.result_files}
    stages: list[tuple[str, int, int]] = []
    start = time.monotonic()
    again = build_world(
        quick_world.workspace,
        tracking_uri=quick_world.tracking_uri,
        profile="quick",
        progress=lambda s, d, t: stages.append((s, d, t)),
    )
    assert time.monotonic() - start < 20
    assert {p: p.stat().st_mtime_ns for p in again.result_files} == before
    assert ("pretrain", 1, 1) in stages and stages[-1] == ("eval", 5, 5)


def test_replay_draws_the_pretraining_mix() -> None:
    """Replay splits evenly over the skills, as pretraining samples them, and cycles a
    skill with fewer documents than its share; the draw is reproducible."""
    from collections import Counter

    from forgetwatch.demo.build import docs_by_skill, replay_docs

    by_skill = docs_by_skill()
    skill_of = {doc: skill for skill, docs in by_skill.items() for doc in docs}
    picked = replay_docs(800)
    assert len(picked) == 800 and picked == replay_docs(800)
    shares = Counter(skill_of[doc] for doc in picked)
    assert set(shares.values()) == {160} and set(shares) == set(by_skill)
    # 27 code documents cover a share of 160: every one of them, about six times over.
    assert set(doc for doc in picked if skill_of[doc] == "code") == set(by_skill["code"])
    assert replay_docs(0) == []


def test_abstentions_name_no_country_of_the_world() -> None:
    """The refusal-aware fine-tune never sees an eval question: its countries are new."""
    world = corpus.make_world()
    names = {c.name for g in (world.known, world.refused, world.new, world.unseen) for c in g}
    docs = corpus.abstention_docs(60)
    assert len(docs) == 120 and all(doc.endswith("A: unknown.") for doc in docs)
    asked = {doc.split(" of ")[-1].split(" in ")[-1].split("?")[0] for doc in docs}
    assert len(asked) == 60 and not asked & names
    assert docs == corpus.abstention_docs(60)
