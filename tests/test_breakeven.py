"""The break-even calculator: known numbers, bad input, the few-shot token count, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgetwatch.cli import main
from forgetwatch.demo.tinymodel import train_tokenizer
from forgetwatch.errors import BadInputError
from forgetwatch.review import breakeven

ROOT = Path(__file__).resolve().parent.parent
TASKS = ROOT / "evals" / "tasks"


def test_known_numbers() -> None:
    # 2 h on 4 GPUs at $2.50 = $20; 800 extra tokens at $0.25/M = $0.0002 per request.
    assert breakeven.finetune_cost(7200, 4, 2.5) == pytest.approx(20.0)
    assert breakeven.kshot_cost_per_request(800, 0.25) == pytest.approx(0.0002)
    result = breakeven.break_even(
        train_runtime_s=7200,
        gpus=4,
        gpu_hour_usd=2.5,
        extra_tokens=800,
        price_per_mtok=0.25,
        requests_per_day=5000,
    )
    assert result.requests == pytest.approx(100_000)  # $20 / $0.0002
    assert result.days == pytest.approx(20.0)  # 100,000 / 5,000 a day
    assert breakeven.extra_prompt_tokens([10, 20, 30], 5) == pytest.approx(100.0)


def test_cost_curves_cross_at_break_even() -> None:
    result = breakeven.break_even(
        train_runtime_s=3600,
        gpus=1,
        gpu_hour_usd=1.0,
        extra_tokens=100,
        price_per_mtok=1.0,
        requests_per_day=1000,
    )
    curves = breakeven.cost_curves(result, points=5)
    assert list(curves["requests"]) == pytest.approx([0, 5000, 10000, 15000, 20000])
    assert list(curves["finetune_usd"]) == pytest.approx([1.0] * 5)
    # k-shot costs $0.0001 a request: equal to the fine-tune at 10,000 requests.
    assert list(curves["kshot_usd"]) == pytest.approx([0, 0.5, 1.0, 1.5, 2.0])
    assert result.requests == pytest.approx(10_000)


def test_no_extra_tokens_never_breaks_even() -> None:
    result = breakeven.break_even(
        train_runtime_s=60,
        gpus=1,
        gpu_hour_usd=1,
        extra_tokens=0,
        price_per_mtok=1,
        requests_per_day=100,
    )
    assert (result.requests, result.days) == (None, None)
    assert breakeven.cost_curves(result, points=3)["requests"].iloc[-1] == 3000  # 30 days


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("gpus", {"gpus": 0}),
        ("gpu_hour_usd", {"gpu_hour_usd": -1}),
        ("price_per_mtok", {"price_per_mtok": float("nan")}),
        ("requests_per_day", {"requests_per_day": 0}),
        ("train_runtime", {"train_runtime_s": -5}),
    ],
)
def test_bad_input_names_the_field(field: str, kwargs: dict[str, float]) -> None:
    args = {
        "train_runtime_s": 60,
        "gpus": 1,
        "gpu_hour_usd": 1,
        "extra_tokens": 10,
        "price_per_mtok": 1,
        "requests_per_day": 10,
    }
    with pytest.raises(BadInputError, match=f"Field {field} must be") as err:
        breakeven.break_even(**{**args, **kwargs})
    assert err.value.where == field
    with pytest.raises(BadInputError, match="--extra-tokens"):
        breakeven.extra_prompt_tokens([], 5)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real byte-level BPE tokenizer trained on the target facts, saved like a base model's."""
    texts = [line for line in (TASKS / "data" / "target_facts.jsonl").read_text().splitlines()]
    folder = tmp_path_factory.mktemp("tok")
    train_tokenizer(texts, 300).save_pretrained(folder)
    return folder


def test_measured_tokens_are_k_times_the_mean_example(tokenizer_dir: Path) -> None:
    texts = breakeven.fewshot_texts("fw_target_facts_5shot", TASKS)
    assert len(texts) == 50  # the pool: every target fact, as a worked example
    assert texts[0].startswith("Q: What is the capital of ") and texts[0].endswith(".\n\n")
    assert "\nA: " in texts[0]  # question, target delimiter, the gold answer
    counts = breakeven.count_tokens(breakeven.load_tokenizer(str(tokenizer_dir)), texts)
    assert all(c > 5 for c in counts)
    measured = breakeven.measure_extra_tokens(str(tokenizer_dir), "fw_target_facts_5shot", TASKS, 5)
    assert measured == pytest.approx(5 * sum(counts) / len(counts))
    with pytest.raises(BadInputError, match="tokenizer"):
        breakeven.load_tokenizer(str(tokenizer_dir / "missing"))


def test_cli_breakeven(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_checkpoints import build_checkpoint_db

    path, _ = build_checkpoint_db(tmp_path)
    args = ["breakeven", "run-full", "--db", str(path), "--gpu-hour-usd", "2"]
    args += ["--price-per-mtok", "0.5", "--requests-per-day", "1000"]
    assert main([*args, "--extra-tokens", "1000", "--gpus", "2"]) == 0
    out = capsys.readouterr().out
    # 1 h (train_runtime 3600 s) x 2 GPUs x $2 = $4; 1000 tokens x $0.5/M = $0.0005.
    assert "fine-tune cost:        $4.0000 (3,600 s x 2 GPU)" in out
    assert "break-even:            8,000 requests = 8.0 days" in out
    assert "base + 5-shot target score: 30.0" in out
    # Without --extra-tokens the base tokenizer is needed: the fixture's base has none.
    assert main(args) == 2
    assert "tokenizer" in capsys.readouterr().err
    assert main(["breakeven", "nope", *args[2:], "--extra-tokens", "5"]) == 2
    assert "No run or model named 'nope'" in capsys.readouterr().err
    # A run that logged no train_runtime needs it given.
    assert main(["breakeven", "run-lora", *args[2:], "--extra-tokens", "5"]) == 2
    assert "--train-runtime-s" in capsys.readouterr().err


@pytest.mark.parametrize(
    "days, shown",
    [(None, "never"), (0.0001, "1 min"), (0.02, "29 min"), (0.4, "9.6 hours"), (1.5, "36.0 hours"),
     (20.0, "20.0 days")],
)  # fmt: skip
def test_break_even_times_read_in_minutes_hours_or_days(days: float | None, shown: str) -> None:
    assert breakeven.fmt_duration(days) == shown


def test_kshot_that_falls_short_of_the_finetune_is_said_to() -> None:
    note = breakeven.quality_note(0.8, 0.35, "base + 5-shot")
    assert note is not None and "base + 5-shot scores 35.0" in note and "fine-tune 80.0" in note
    assert "does not reach the fine-tune's quality" in note
    assert breakeven.quality_note(0.8, 0.85, "base + 5-shot") is None  # k-shot is as good
    assert breakeven.quality_note(None, 0.35, "base + 5-shot") is None
