"""`forgetwatch check`: exit codes and the Markdown summary on the hand-made world."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from forgetwatch.cli import main
from tests.fixture_db import build_paired_db

PASSING = "target: {min_gain: 10}\nknowledge: {max_drop: 11}\n"
# Both limits hold on the observed deltas, but lie inside the eval's MDE (tests/test_budget.py).
THIN = "target: {min_gain: 30}\nknowledge: {max_drop: 6}\n"


@pytest.fixture(scope="module")
def paired_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_paired_db(tmp_path_factory.mktemp("check") / "paired.duckdb")


@pytest.fixture(autouse=True)
def _bundled_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORGETWATCH_BUDGET", raising=False)


def _check(capsys: pytest.CaptureFixture[str], paired_db: Path, *args: str) -> tuple[int, str, str]:
    code = main(["check", *args, "--db", str(paired_db)])
    out, err = capsys.readouterr()
    return code, out, err


def test_pass_exits_0(capsys: pytest.CaptureFixture[str], paired_db: Path, tmp_path: Path) -> None:
    budget = tmp_path / "budget.yaml"
    budget.write_text(PASSING)
    code, out, _ = _check(capsys, paired_db, "lora-r8", "--budget", str(budget))
    assert code == 0
    assert out.startswith("### forgetwatch check: ✅ PASS — lora-r8 (final model)")
    assert "| target | 20.0 | 60.0 | +40.0 \\[+31.0, +50.0\\] \\* |" in out  # fmt_change
    assert "| gain ≥ 10 pts | ✅ met |" in out
    assert "- target: gained 40.0 points" in out


def test_fail_exits_1_with_reasons(capsys: pytest.CaptureFixture[str], paired_db: Path) -> None:
    code, out, _ = _check(capsys, paired_db, "run-full")  # bundled default budget
    assert code == 1
    assert "❌ FAIL — full-lr3e-3 (final model)" in out
    assert "budget `default.yaml`" in out
    assert "- knowledge: dropped 20.0 points" in out and "- hallucination:" in out
    assert "**Settings mismatch**" in out


def test_review_exits_1_unless_review_ok(
    capsys: pytest.CaptureFixture[str], paired_db: Path, tmp_path: Path
) -> None:
    code, out, _ = _check(capsys, paired_db, "full-lr3e-3", "--checkpoint", "50")
    assert code == 1
    assert "⚠️ REVIEW — full-lr3e-3 @ step 50" in out
    assert "- code: no delta to check" in out
    report = tmp_path / "comment.md"
    code, out, _ = _check(
        capsys, paired_db, "run-full", "--checkpoint", "50", "--review-ok", "--out", str(report)
    )
    assert code == 0
    assert report.read_text() == out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-run"], "No run or model named 'no-such-run'"),
        (["run-new"], "final model has no evals"),
        (["run-full", "--checkpoint", "999"], "no evaluated checkpoint at step 999"),
        (["run-full", "--budget", "/nonexistent/budget.yaml"], "Cannot read the budget file"),
    ],
)
def test_unusable_input_exits_2(
    capsys: pytest.CaptureFixture[str], paired_db: Path, args: list[str], message: str
) -> None:
    code, out, err = _check(capsys, paired_db, *args)
    assert code == 2 and out == ""
    assert message in err and "Next step:" in err


def test_bad_budget_and_missing_db_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    budget = tmp_path / "typo.yaml"
    budget.write_text("knowledge: {max_dorp: 1}\n")
    code = main(["check", "run-full", "--budget", str(budget), "--db", str(tmp_path / "x.duckdb")])
    err = capsys.readouterr().err
    assert code == 2 and "`knowledge.max_dorp` is not a budget rule" in err
    assert "Did you mean `max_drop`?" in err
    assert main(["check", "run-full", "--db", str(tmp_path / "missing.duckdb")]) == 2
    assert "No forgetwatch database yet" in capsys.readouterr().err


def test_entry_point_exit_status(paired_db: Path) -> None:
    """The real command line, in its own process: the status a CI job sees."""
    done = subprocess.run(
        [sys.executable, "-m", "forgetwatch.cli", "check", "run-full", "--db", str(paired_db)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert "❌ FAIL" in done.stdout


def test_inconclusive_exits_1_unless_inconclusive_ok(
    capsys: pytest.CaptureFixture[str], paired_db: Path, tmp_path: Path
) -> None:
    budget = tmp_path / "thin.yaml"
    budget.write_text(THIN)
    code, out, _ = _check(capsys, paired_db, "lora-r8", "--budget", str(budget))
    assert code == 1
    assert out.startswith("### forgetwatch check: ❔ INCONCLUSIVE — lora-r8 (final model)")
    assert "| drop ≤ 6 pts | ❔ inconclusive |" in out
    assert "- knowledge: -5.0 points, but this eval detects only drops of" in out
    for flag in ("--inconclusive-ok", "--review-ok"):  # review-ok accepts the milder status too
        code, _, _ = _check(capsys, paired_db, "lora-r8", "--budget", str(budget), flag)
        assert code == 0, flag


def test_inconclusive_ok_does_not_let_review_through(
    capsys: pytest.CaptureFixture[str], paired_db: Path
) -> None:
    code, out, _ = _check(
        capsys, paired_db, "full-lr3e-3", "--checkpoint", "50", "--inconclusive-ok"
    )
    assert code == 1 and "⚠️ REVIEW" in out  # code has no evals: review outranks inconclusive
    assert "❔ inconclusive" in out  # its knowledge did not move on 200 items: too few to tell


def test_help_lists_the_inconclusive_exit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    out = capsys.readouterr().out
    assert "inconclusive: every limit holds on the observed deltas" in out
    assert "--inconclusive-ok" in out
