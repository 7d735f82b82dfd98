"""Settings that make a delta incomparable, found per task against the base's eval."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgetwatch import db
from forgetwatch.queries import comparability
from tests.fixture_db import FULL_CKPT, FULL_FINAL, LORA_FINAL, analyse, build_known_db


@pytest.fixture(scope="module")
def dtype_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The known world with dtypes: the full fine-tune's final eval ran in bfloat16.

    That eval (``e-full-new``) also ran facts_old 5-shot (fixture_db), so one eval
    differs in both n-shot and dtype from the base's float32 eval.
    """
    path = build_known_db(tmp_path_factory.mktemp("cmp") / "k.duckdb")
    with db.connect(path) as con:
        con.execute("UPDATE evals SET model_args = 'pretrained=/m,dtype=float32'")
        con.execute(
            "UPDATE evals SET model_args = 'pretrained=/runs/full,torch_dtype=bfloat16' "
            "WHERE eval_id = 'e-full-new'"
        )
        con.execute("UPDATE evals SET lm_eval_version = '0.4.13'")  # only n-shot and dtype
    analyse(path)
    return path


def test_n_shot_and_dtype_mismatch(dtype_db: Path) -> None:
    with db.connect(dtype_db, read_only=True) as con:
        found = comparability.settings_mismatches(con, [FULL_FINAL, LORA_FINAL, FULL_CKPT])
    assert set(found["model_id"]) == {FULL_FINAL}  # LoRA and the checkpoint match the base
    facts_old = found[found["task"] == "facts_old"]
    got = zip(facts_old["setting"], facts_old["value"], facts_old["base_value"], strict=True)
    assert list(got) == [("n-shot", "5", "0"), ("dtype", "bfloat16", "float32")]
    # dtype differs on all six tasks of that eval, n-shot only on facts_old.
    assert found["setting"].value_counts().to_dict() == {"dtype": 6, "n-shot": 1}
    per_task = comparability.mismatch_by_task(found).set_index("task")["settings_mismatch"]
    assert per_task["facts_old"] == "n-shot 5 vs 0, dtype bfloat16 vs float32"
    warning = comparability.mismatch_warning(found, {FULL_FINAL: "full-lr3e-3"}, shown=2)
    assert warning.startswith("Settings mismatch: 6 results")
    assert "full-lr3e-3 / arith: dtype bfloat16 vs float32" in warning
    assert "(and 4 more)" in warning


def test_matching_settings_and_no_models(tmp_path: Path) -> None:
    path = build_known_db(tmp_path / "k.duckdb")
    with db.connect(path, read_only=True) as con:
        assert comparability.settings_mismatches(con, [LORA_FINAL]).empty
        assert comparability.settings_mismatches(con, []).empty
        none = comparability.settings_mismatches(con, [])
    assert comparability.mismatch_warning(none, {}) == ""
