"""The Evals form's defaults, warnings and marks, on a small real DuckDB and the real suites."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgetwatch import db
from forgetwatch.evals import targets
from forgetwatch.queries import eval_defaults
from forgetwatch.review import eval_form
from forgetwatch.suite import load_suite
from tests import fixture_evals_form as fx

OFFLINE = load_suite("offline")
LIMITS = targets.suite_limits(OFFLINE)
SHOTS = targets.task_fewshot_defaults(OFFLINE)


@pytest.fixture(scope="module")
def form_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.build_form_db(tmp_path_factory.mktemp("form") / "form.duckdb")


def past(path: Path, model_id: str, base_hint: str | None = None) -> eval_form.PastSettings | None:
    with db.connect(path, read_only=True) as con:
        return eval_form.past_settings(con, model_id, OFFLINE.task_names, base_hint)


def warning(found: eval_form.PastSettings | None, limit: int | None, shots: int | None) -> str:
    return eval_form.mismatch_warning(found, LIMITS, SHOTS, limit=limit, num_fewshot=shots)


def test_the_suite_knows_each_tasks_own_nshot_and_cap() -> None:
    assert SHOTS["fw_target_facts_5shot"] == 5 and SHOTS["fw_arithmetic"] == 0
    assert LIMITS["fw_humaneval"] == 10 and LIMITS["fw_arithmetic"] is None
    assert set(targets.task_fewshot_defaults(load_suite("standard")).values()) == {None}


def test_a_checkpoint_starts_from_its_bases_limit_and_nshot(form_db: Path) -> None:
    found = past(form_db, fx.CKPT_NONE)
    assert found is not None and found.who == "base"
    assert set(found.tasks["task"]) == set(OFFLINE.task_names)
    start = eval_form.defaults(found, LIMITS, SHOTS)
    # 30 explains every cut task; fw_unknown (20 docs) and fw_humaneval (suite cap) agree.
    assert (start.limit, start.num_fewshot) == (30, None)
    assert "--limit 30" in start.note and "each task's own n-shot" in start.note
    assert warning(found, 30, None) == ""


def test_other_settings_warn_before_launch(form_db: Path) -> None:
    found = past(form_db, fx.CKPT_NONE)
    assert warning(found, None, None) == (
        "The base was evaluated with --limit 30 (on fw_target_facts, fw_knowledge_facts, "
        "fw_arithmetic, fw_code_funcs, fw_instructions, fw_target_facts_5shot); this eval uses "
        "no --limit: the deltas will be flagged as settings mismatches."
    )
    # A limit of 20 cuts every task but fw_unknown (exactly 20) and fw_humaneval (capped at 10).
    assert "--limit 30 (on fw_target_facts," in warning(found, 20, None)
    assert "fw_unknown" not in warning(found, 20, None).split(";")[0]
    text = warning(found, 30, 2)
    assert text.startswith("The base was evaluated with each task's own n-shot (0 on ")
    assert "5 on fw_target_facts_5shot" in text and "this eval uses --num_fewshot 2" in text


def test_zero_shot_overrides_only_the_five_shot_task(form_db: Path) -> None:
    assert warning(past(form_db, fx.CKPT_NONE), 30, 0) == (
        "The base was evaluated with each task's own n-shot (5 on fw_target_facts_5shot); "
        "this eval uses --num_fewshot 0: the deltas will be flagged as settings mismatches."
    )


def test_a_base_and_a_model_without_an_evaluated_base_use_their_own_evals(form_db: Path) -> None:
    base = past(form_db, fx.BASE)
    assert base is not None and base.who == "this base"
    assert warning(base, None, None).startswith("This base was evaluated before with --limit 30")
    assert "its fine-tunes' deltas will be flagged" in warning(base, None, None)
    loner = past(form_db, fx.LONER)
    assert loner is not None and loner.who == "this model"
    start = eval_form.defaults(loner, LIMITS, SHOTS)
    assert (start.limit, start.num_fewshot) == (None, 5)  # every doc; 5-shot on every task
    assert warning(loner, None, 5) == ""
    assert warning(loner, None, None) == (
        "This model was evaluated before with --num_fewshot 5 (on fw_target_facts, "
        "fw_knowledge_facts, fw_arithmetic, fw_code_funcs, fw_humaneval, fw_instructions, "
        "fw_unknown); this eval uses each task's own n-shot: the two evals will not compare "
        "like with like."
    )


def test_an_unknown_model_uses_its_hinted_base_or_has_no_defaults(form_db: Path) -> None:
    typed = "/elsewhere/base+peft=/elsewhere/adapter"
    assert past(form_db, typed) is None
    start = eval_form.defaults(None, LIMITS, SHOTS)
    assert (start.limit, start.num_fewshot, start.note) == (eval_form.FALLBACK_LIMIT, None, "")
    assert warning(None, None, None) == ""
    hinted = past(form_db, f"{fx.BASE}+peft=/elsewhere/adapter", base_hint=fx.BASE)
    assert hinted is not None and hinted.who == "base"


def test_a_quick_check_does_not_count_as_an_eval(form_db: Path) -> None:
    with db.connect(form_db, read_only=True) as con:
        rows = eval_defaults.eval_candidates(con)
        assert eval_defaults.task_settings(con, fx.CKPT_QUICK, OFFLINE.task_names).empty
    evaluated = dict(zip(rows["model_id"], rows["evaluated"], strict=True))
    assert evaluated[fx.CKPT_DONE] and not evaluated[fx.CKPT_QUICK]
    assert not evaluated[fx.CKPT_NONE] and not evaluated[fx.LONER_BASE]
    labels = dict(zip(rows["model_id"], rows["label"], strict=True))
    assert eval_form.picker_label(labels[fx.CKPT_DONE], True) == "fx-run @ step 100 ✓ evaluated"
    assert eval_form.picker_label(labels[fx.CKPT_NONE], False) == "fx-run @ step 300"
    assert list(targets.candidates(form_db).columns) == eval_defaults.CANDIDATE_COLUMNS


def test_run_is_blocked_only_for_code_tasks_without_opt_in() -> None:
    code = targets.code_tasks(OFFLINE)
    assert code == ["fw_code_funcs", "fw_humaneval"]
    reason = eval_form.code_blocked(code, allowed=False)
    assert reason.startswith("Run is disabled: fw_code_funcs, fw_humaneval execute model-written")
    assert "Allow code execution" in reason
    assert eval_form.code_blocked(code, allowed=True) == ""
    assert eval_form.code_blocked([], allowed=False) == ""
    assert "humaneval executes" in eval_form.code_blocked(["humaneval"], allowed=False)


def test_forgetwatch_eval_warns_before_queueing(form_db: Path, capsys) -> None:
    import argparse

    from forgetwatch.cli.eval import _warn_mismatch

    def warned(**given: object) -> str:
        opts = {"model": fx.CKPT_NONE, "adapter": None, "limit": 30, "num_fewshot": None,
                "quick": False, "db": str(form_db)} | given  # fmt: skip
        _warn_mismatch(argparse.Namespace(**opts), OFFLINE)
        return capsys.readouterr().err

    assert warned() == ""
    assert warned(limit=None).startswith("warning: The base was evaluated with --limit 30")
    assert warned(limit=None, quick=True) == ""  # a quick check picks its own items
    assert warned(db=str(form_db.parent / "none.duckdb")) == ""
