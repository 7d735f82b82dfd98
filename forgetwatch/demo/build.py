"""Build the embedded demo world: pretrain a base, fine-tune it, evaluate everything.

Stages run in order and each is skipped when its output is complete, so a
second build reuses the first. Outputs are made atomic: the base model and each
model's eval folder are written to a temp folder and renamed into place; a
fine-tune must train in its final ``runs/<name>`` folder (the Trainer logs that
path to MLflow), so it is complete only once a marker file is written last,
and an unmarked folder (an interrupted build) is deleted and trained again.
This module never touches DuckDB: collectors ingest ``eval_dir`` and MLflow.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from forgetwatch.demo import corpus
from forgetwatch.demo.profiles import Profile, get_profile
from forgetwatch.demo.training import (
    COMPLETE_MARKER,
    FinetunePlan,
    delete_unfinished_runs,
    finetune,
    finished_run_exists,
)

if TYPE_CHECKING:
    from tqdm.auto import tqdm

    from forgetwatch.evals.runner import ModelSpec
    from forgetwatch.suite import Suite

Progress = Callable[[str, int, int], None]
EXPERIMENT = "forgetwatch-demo"


@dataclass
class World:
    """Where the demo's outputs live; collectors ingest ``eval_dir`` and the MLflow store."""

    workspace: Path
    base_model_dir: Path
    tracking_uri: str
    experiment_name: str
    run_dirs: list[Path]
    eval_dir: Path
    profile: str
    result_files: list[Path] = field(default_factory=list)


class _TqdmProgress:
    """Default progress: one tqdm bar per stage."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.bar: tqdm | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm.auto import tqdm

        bar = self.bar
        # The bar is None exactly when no stage is open, so a new stage opens one.
        if stage != self.stage or bar is None:
            if bar is not None:
                bar.close()
            bar = tqdm(total=total, desc=stage)
            self.stage, self.bar = stage, bar
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()
            self.stage, self.bar = None, None


def docs_by_skill() -> dict[str, list[str]]:
    """The bundled pretraining documents, grouped by the skill each teaches."""
    docs: dict[str, list[str]] = {}
    for row in corpus.read_jsonl(corpus.DATA_DIR / "pretrain.jsonl"):
        docs.setdefault(row["skill"], []).append(row["text"])
    return docs


def replay_docs(count: int, *, seed: int = 0) -> list[str]:
    """``count`` pretraining documents for data replay, in the pretraining mix.

    Pretraining samples its skills evenly (``tinymodel.pretrain``), so replay does too:
    ``count`` is split evenly over the skills, each drawn without replacement and
    cycled when a skill has fewer documents than its share (the abstentions and the
    code). A corpus-share draw would starve the small skills, and the model would
    stop saying "unknown." first. The seed makes the mix reproducible.
    """
    if count <= 0:
        return []
    docs = docs_by_skill()
    skills = sorted(docs)
    rng = random.Random(seed)
    picked: list[str] = []
    for i, skill in enumerate(skills):
        share = count // len(skills) + (1 if i < count % len(skills) else 0)
        pool = docs[skill]
        while share > 0:
            take = min(share, len(pool))
            picked += rng.sample(pool, take)
            share -= take
    return picked


def _build_base(base_dir: Path, profile: Profile, progress: Progress) -> None:
    from forgetwatch.demo.tinymodel import build_base_model

    if (base_dir / "config.json").is_file():
        progress("pretrain", 1, 1)
        return
    tmp = base_dir.with_name(base_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    build_base_model(
        tmp, docs_by_skill(), profile.pretrain, lambda d, t: progress("pretrain", d, t)
    )
    tmp.rename(base_dir)


def _build_run(
    base_dir: Path, plan: FinetunePlan, run_dir: Path, tracking_uri: str, progress: Progress
) -> None:
    stage = f"finetune:{plan.name}"
    done = (run_dir / COMPLETE_MARKER).is_file()
    if done and finished_run_exists(tracking_uri, EXPERIMENT, plan.name):
        progress(stage, 1, 1)
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    delete_unfinished_runs(tracking_uri, EXPERIMENT, plan.name)
    texts = [r["text"] for r in corpus.read_jsonl(corpus.DATA_DIR / "finetune_target.jsonl")]
    texts += replay_docs(round(plan.replay * len(texts)), seed=plan.seed)
    texts += corpus.abstention_docs(plan.abstain)
    finetune(
        base_dir,
        texts,
        plan,
        run_dir,
        tracking_uri=tracking_uri,
        experiment=EXPERIMENT,
        progress=lambda d, t: progress(stage, d, t),
    )


def _model_spec(base: str, plan: FinetunePlan, folder: Path) -> ModelSpec:
    """A final model or checkpoint folder: a plain model, or a LoRA adapter over the base."""
    from forgetwatch.evals.runner import ModelSpec

    return ModelSpec(base, peft=str(folder)) if plan.method == "lora" else ModelSpec(str(folder))


def _is_last_step(checkpoint: Path) -> bool:
    """True for the checkpoint saved at the end of training: the final model's weights."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        return bool(state["global_step"] == state["max_steps"])
    return False


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """The run's ``checkpoint-N`` folders by step, except the one equal to the final model."""
    found = [
        p
        for p in run_dir.glob("checkpoint-*")
        if p.name.split("-")[-1].isdigit() and not _is_last_step(p)
    ]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def eval_groups(
    world: World, plans: list[FinetunePlan], profile: Profile
) -> list[tuple[list[ModelSpec], Suite]]:
    """What to evaluate on which suite: the base on the whole suite (its k-shot baseline
    included), final models and the profile's checkpoint run on the regression tasks only.
    """
    from forgetwatch.evals.runner import ModelSpec
    from forgetwatch.suite import load_suite

    suite = load_suite("offline")
    base = str(world.base_model_dir)
    tuned = []
    for plan, run_dir in zip(plans, world.run_dirs, strict=True):
        tuned.append(_model_spec(base, plan, run_dir))
        if plan.name == profile.checkpoint_run:
            tuned += [_model_spec(base, plan, ckpt) for ckpt in checkpoint_dirs(run_dir)]
    return [([ModelSpec(base)], suite), (tuned, suite.regression_only())]


def _evaluated(folder: Path, suite: Suite) -> bool:
    """True if a results file in ``folder`` covers every task of ``suite``.

    A world built before a task joined the suite (the k-shot baseline) gets that
    model evaluated again rather than missing the task.
    """
    for path in folder.glob("results_*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            if set(suite.task_names) <= set(json.loads(path.read_text())["results"]):
                return True
    return False


def _shifted(progress: Progress, offset: int, total: int) -> Progress:
    """Report one batch's eval progress as ``offset`` models done before it, of ``total``."""
    return lambda stage, done, _total: progress(stage, offset + done, total)


def _evaluate(
    world: World, plans: list[FinetunePlan], profile: Profile, progress: Progress
) -> None:
    """Evaluate models not yet evaluated; move each finished folder into place."""
    from lm_eval.utils import sanitize_model_name

    from forgetwatch.evals.runner import run_suite

    groups = eval_groups(world, plans, profile)
    total = sum(len(specs) for specs, _ in groups)
    done = 0
    tmp = world.workspace / ".evals-partial"
    for specs, suite in groups:
        todo = [
            spec
            for spec in specs
            if not _evaluated(
                world.eval_dir / sanitize_model_name(spec.peft or spec.pretrained), suite
            )
        ]
        if todo:
            shutil.rmtree(tmp, ignore_errors=True)
            # The demo opts in to executing model-written code: the completions come from
            # models this build just trained, and they run in forgetwatch.evals.sandbox.
            offset = done + len(specs) - len(todo)
            run_suite(
                todo,
                suite,
                tmp,
                limit=profile.eval_limit,
                allow_code_exec=True,
                progress=_shifted(progress, offset, total),
            )
            world.eval_dir.mkdir(parents=True, exist_ok=True)
            for folder in tmp.iterdir():
                target = world.eval_dir / folder.name
                shutil.rmtree(target, ignore_errors=True)
                folder.rename(target)
            shutil.rmtree(tmp)
        done += len(specs)
    progress("eval", total, total)
    world.result_files = sorted(world.eval_dir.glob("*/results_*.json"))


def build_world(
    workspace: Path,
    *,
    tracking_uri: str | None = None,
    profile: str = "full",
    progress: Progress | None = None,
) -> World:
    """Build (or finish building) the demo world in ``workspace`` and return where it is.

    ``tracking_uri`` defaults to a sqlite MLflow store inside the workspace.
    """
    import torch

    prof = get_profile(profile)
    workspace = Path(workspace).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    world = World(
        workspace=workspace,
        base_model_dir=workspace / "base-model",
        tracking_uri=tracking_uri or f"sqlite:///{workspace / 'mlflow.db'}",
        experiment_name=EXPERIMENT,
        run_dirs=[workspace / "runs" / p.name for p in prof.finetunes],
        eval_dir=workspace / "evals",
        profile=prof.name,
    )
    report = progress or _TqdmProgress()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on 2 shared cores one thread is as fast and far steadier
    try:
        _build_base(world.base_model_dir, prof, report)
        for plan, run_dir in zip(prof.finetunes, world.run_dirs, strict=True):
            _build_run(world.base_model_dir, plan, run_dir, world.tracking_uri, report)
        _evaluate(world, prof.finetunes, prof, report)
    finally:
        torch.set_num_threads(threads)
    return world
