"""Budget files and verdicts on the hand-made world with per-sample results."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from forgetwatch import db, stats
from forgetwatch.errors import BadInputError
from forgetwatch.exports.check_report import verdict_markdown
from forgetwatch.review import budget
from tests.fixture_db import FULL_CKPT, FULL_FINAL, LORA_FINAL, build_paired_db


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    path = build_paired_db(tmp_path_factory.mktemp("budget") / "paired.duckdb")
    with db.connect(path, read_only=True) as connection:
        yield connection


def _budget(tmp_path: Path, text: str) -> budget.Budget:
    path = tmp_path / "budget.yaml"
    path.write_text(text)
    return budget.load_budget(path)


def test_bundled_default_budget_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FORGETWATCH_BUDGET", raising=False)
    default = budget.load_budget(budget.default_budget_path())
    assert default.alpha == 0.05 and default.correction == "holm"
    rules = {r.capability: r for r in default.rules}
    assert rules["target"].min_gain == 2
    assert rules["knowledge"].max_drop == 1 and rules["knowledge"].or_not_significant
    assert rules["hallucination"].not_significantly_worse
    mine = tmp_path / "mine.yaml"
    monkeypatch.setenv("FORGETWATCH_BUDGET", str(mine))
    assert budget.default_budget_path() == mine


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("knowlege: {max_drop: 1}", "`knowlege` is not a capability.*Did you mean `knowledge`"),
        ("knowledge: {max_dorp: 1}", "`knowledge.max_dorp` is not a budget rule.*`max_drop`"),
        ("code: {max_drop: -2}", "`code.max_drop` must be a number >= 0"),
        ("code: {max_drop: lots}", "`code.max_drop` must be a number"),
        ("target: {min_gain: 2}\nalpha: 1.5", "`alpha` must be a number in"),
        ("target: {min_gain: 2}\ncorrection: bonf", "`correction` must be one of holm, bh"),
        ("code: {or_not_significant: true}", "needs a max_drop"),
        ("code: {not_significantly_worse: yes please}", "must be true or false"),
        ("code: 3", "`code` must be a mapping of rules"),
        ("alpha: 0.1", "has no rules"),
        ("- just a list", "must be a mapping"),
        ("target: {min_gain: [", "is not valid YAML at line"),
    ],
)
def test_bad_budgets_name_file_field_and_fix(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(BadInputError, match=f"(?s){message}") as info:
        _budget(tmp_path, text)
    assert info.value.where.endswith("budget.yaml") and info.value.next_step
    assert "budget.yaml" in info.value.title


def test_missing_budget_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="Cannot read the budget file") as info:
        budget.load_budget(tmp_path / "nope.yaml")
    assert "--budget" in info.value.next_step


def test_default_budget_verdicts(con: duckdb.DuckDBPyConnection) -> None:
    default = budget.load_budget(budget.default_budget_path())
    found = budget.verdicts(con, [FULL_FINAL, LORA_FINAL, FULL_CKPT], default)
    full = found[FULL_FINAL]
    assert full.status == "fail"
    checks = full.checks.set_index("capability")
    assert checks.loc["knowledge", "outcome"] == "fail"  # -20 pts, significant
    assert checks.loc["hallucination", "outcome"] == "fail"  # -40 pts, significant
    assert checks.loc["code", "outcome"] == "review"  # no samples and no stderr
    assert checks.loc["target", "outcome"] == "met"
    assert checks.loc["instructions", "outcome"] == "not checked"
    assert full.reasons[0].startswith("knowledge: dropped 20.0 points")
    assert "no per-sample results and no stderr" in " ".join(full.reasons)
    assert any("facts_old: n-shot 5 vs 0" in m for m in full.mismatches)
    # The checkpoint meets every rule it has data for; code was never evaluated.
    # Its knowledge did not move on 200 items, but no flip at all is not proof of a
    # 1-point limit: the one-way floor of 200 items is ~5 points, so it is inconclusive,
    # and the missing code evals (review) outrank that.
    ckpt = found[FULL_CKPT]
    assert ckpt.status == "review"
    ckpt_checks = ckpt.checks.set_index("capability")
    assert ckpt_checks.loc["code", "outcome"] == "review"
    assert ckpt_checks.loc["knowledge", "outcome"] == "inconclusive"
    assert ckpt_checks.loc["knowledge", "mde"] == pytest.approx(
        float(stats.one_way_floor(200, 0.05 / 3))  # 3 tested capabilities
    )
    assert ckpt.reasons[:2] == [
        ckpt_checks.loc["code", "reason"],
        ckpt_checks.loc["knowledge", "reason"],
    ]
    assert ckpt.mismatches == []


def test_pass_when_every_rule_is_met(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    rules = _budget(tmp_path, "target: {min_gain: 10}\nknowledge: {max_drop: 11}")
    verdict = budget.evaluate(con, LORA_FINAL, rules)
    assert verdict.status == "pass"
    assert verdict.reasons == [
        verdict.checks.set_index("capability").loc["target", "reason"],
        verdict.checks.set_index("capability").loc["knowledge", "reason"],
    ]
    assert "gained 40.0 points" in verdict.reasons[0]
    assert "within the 11-point allowance" in verdict.reasons[1]


def test_inconclusive_when_the_eval_cannot_see_past_the_limit(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """Both limits hold on the observed deltas, but each lies closer than the eval's MDE."""
    rules = _budget(tmp_path, "target: {min_gain: 30}\nknowledge: {max_drop: 6}")
    verdict = budget.evaluate(con, LORA_FINAL, rules)
    assert verdict.status == "inconclusive"
    checks = verdict.checks.set_index("capability")
    # knowledge: -5 points on 200 pairs (10 flips, all one way), 1 point from the limit.
    knowledge = checks.loc["knowledge"]
    assert knowledge["outcome"] == "inconclusive"
    assert knowledge["mde"] > 0.06 - 0.05 and knowledge["mde"] < 0.06
    assert knowledge["reason"].startswith(
        f"knowledge: -5.0 points, but this eval detects only drops of {knowledge['mde'] * 100:.1f}"
        " or more (95% CI"
    )
    assert "too few items to tell whether the 6-point limit holds" in knowledge["reason"]
    # target: +40 on 100 pairs is significant, but 10 points from a 30-point minimum is
    # inside its ~20-point MDE (Connor, alpha 0.05 over 3 capabilities).
    target = checks.loc["target"]
    assert target["outcome"] == "inconclusive"
    assert target["mde"] == pytest.approx(float(stats.mcnemar_mde(100, 0.4, 0.05 / 3)))
    assert "the gain reaches the 30 points required" in target["reason"]


def test_severity_fail_then_review_then_inconclusive(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    thin = "knowledge: {max_drop: 6}\n"
    assert budget.evaluate(con, LORA_FINAL, _budget(tmp_path, thin)).status == "inconclusive"
    missing = thin + "code: {max_drop: 3}\n"  # no code evals: review
    assert budget.evaluate(con, LORA_FINAL, _budget(tmp_path, missing)).status == "review"
    failed = missing + "hallucination: {not_significantly_worse: true}\n"
    verdict = budget.evaluate(con, LORA_FINAL, _budget(tmp_path, failed))
    assert verdict.status == "fail"
    outcomes = [verdict.checks.set_index("capability").loc[c, "outcome"] for c in
                ("hallucination", "code", "knowledge")]  # fmt: skip
    assert outcomes == ["fail", "review", "inconclusive"]
    assert [r.split(":")[0] for r in verdict.reasons] == ["hallucination", "code", "knowledge"]


def test_inconclusive_failure_rates_read_as_rises(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """Hallucination rose 10 points, within a 15-point allowance but inside its MDE."""
    verdict = budget.evaluate(con, LORA_FINAL, _budget(tmp_path, "hallucination: {max_drop: 15}"))
    assert verdict.status == "inconclusive"
    assert verdict.reasons[0].startswith(
        "hallucination: +10.0 points (hallucination change, + = worse), but this eval detects "
        "only rises of"
    )
    # not_significantly_worse names no size: no eval is too small for it.
    plain = budget.evaluate(
        con, FULL_CKPT, _budget(tmp_path, "hallucination: {not_significantly_worse: true}")
    )
    assert plain.status == "pass"


def test_min_gain_fails_only_when_the_ci_is_short(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    short = budget.evaluate(con, LORA_FINAL, _budget(tmp_path, "target: {min_gain: 60}"))
    assert short.status == "fail"  # +40, CI about +31..+50: clearly short of 60
    assert "clearly short of the 60-point gain required" in short.reasons[0]
    near = budget.evaluate(con, LORA_FINAL, _budget(tmp_path, "target: {min_gain: 45}"))
    assert near.status == "review"  # +40 but the CI reaches 45
    assert "the CI still reaches it" in near.reasons[0]


def test_or_not_significant_and_stderr_evidence(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # instructions: -20 pts from stderrs only (z = -2.83): significant, so it fails even with
    # or_not_significant, and the reason says the evidence is unpaired.
    verdict = budget.evaluate(
        con, FULL_FINAL, _budget(tmp_path, "instructions: {max_drop: 1, or_not_significant: true}")
    )
    assert verdict.status == "fail"
    assert "stderr-based, unpaired" in verdict.reasons[0]
    # With alpha 0.001 the same drop is not significant. or_not_significant lets it off
    # review, but an eval that detects only drops of ~32 points cannot vouch for a
    # 1-point limit: inconclusive, never a pass ...
    relaxed = _budget(
        tmp_path, "instructions: {max_drop: 1, or_not_significant: true}\nalpha: 0.001"
    )
    verdict = budget.evaluate(con, FULL_FINAL, relaxed)
    assert verdict.status == "inconclusive"
    assert verdict.reasons[0].startswith(
        "instructions: -20.0 points, more than the 1 allowed but not significantly, but this "
        "eval detects only drops of"
    )
    assert "stderr-based, unpaired" in verdict.reasons[0]
    # ... and a review without it.
    strict = _budget(tmp_path, "instructions: {max_drop: 1}\nalpha: 0.001")
    verdict = budget.evaluate(con, FULL_FINAL, strict)
    assert verdict.status == "review" and "but not significantly" in verdict.reasons[0]


def test_verdict_markdown(con: duckdb.DuckDBPyConnection) -> None:
    default = budget.load_budget(budget.default_budget_path())
    text = verdict_markdown("full-lr3e-3 | final", budget.evaluate(con, FULL_FINAL, default))
    lines = text.splitlines()
    assert lines[0] == "### forgetwatch check: ❌ FAIL — full-lr3e-3 \\| final"
    assert "alpha 0.05 after Holm correction" in text
    assert "| knowledge | 70.0 | 50.0 | -20.0 \\[" in text  # the change, then its CI
    assert "| drop ≤ 1 pts or not significant | ❌ fail |" in text
    assert "| instructions | 50.0 | 30.0 | -20.0 \\[" in text and "| — | — |" in text
    assert "**Why**" in text and "- knowledge: dropped 20.0 points" in text
    assert "**Settings mismatch**" in text and "facts\\_old: n-shot 5 vs 0" in text


def test_verdict_markdown_shows_the_mde_and_inconclusive(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rules = _budget(tmp_path, "knowledge: {max_drop: 6}")
    verdict = budget.evaluate(con, LORA_FINAL, rules)
    text = verdict_markdown("lora-r8", verdict)
    assert text.startswith("### forgetwatch check: ❔ INCONCLUSIVE — lora-r8")
    assert "| p (adj.) | detects ≥ | evidence |" in text
    mde = verdict.checks.set_index("capability").loc["knowledge", "mde"] * 100
    assert f"| {mde:.1f} | paired, paired-bootstrap | drop ≤ 6 pts | ❔ inconclusive |" in text
    assert "- knowledge: -5.0 points, but this eval detects only drops of" in text
