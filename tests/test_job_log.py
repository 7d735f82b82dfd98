"""The job log filter on real job logs (``tests/fixtures/job_logs``, written by real jobs)."""

from __future__ import annotations

from pathlib import Path

from forgetwatch.evals import job_log

LOGS = Path(__file__).resolve().parent / "fixtures" / "job_logs"


def raw(name: str) -> str:
    """The file as written: read_text would turn tqdm's carriage returns into newlines."""
    return (LOGS / name).read_bytes().decode("utf-8")


def quiet(name: str) -> job_log.QuietLog:
    return job_log.quiet(raw(name))


def test_a_succeeded_job_keeps_only_what_matters() -> None:
    log = quiet("offline-suite-succeeded.log")  # the offline suite, --limit 3, local backend
    assert log.text.splitlines() == [
        "Left truncation applied. Original sequence length was 356, truncating to last 192 "
        "tokens. Some content will be lost.",
        "[transformers] We strongly recommend passing in an `attention_mask` since your "
        "input_ids may be padded. See https://huggingface.co/docs/transformers/troubleshooting"
        "#incorrect-output-when-padding-tokens-arent-masked.",
        "lm-eval: 1 inserted, 0 updated, 0 unchanged, 0 rejected",
        "  analysis: 7 models analysed, 0 up to date, 0 removed (0.9 s)",
    ]
    # 8 tasks x 2 loads x 2 lines of "Custom kwargs", 9 progress bars (each one line,
    # redrawn with carriage returns), the git probe.
    assert log.hidden == 32 + 9 + 1


def test_a_ray_job_loses_its_progress_marks_info_records_and_bar_gaps() -> None:
    log = quiet("ray-succeeded.log")
    assert "FORGETWATCH_PROGRESS" not in log.text and "INFO" not in log.text
    assert "Custom kwargs" not in log.text and "fatal: not a git" not in log.text
    assert "\n\n" not in log.text
    assert log.text.splitlines()[0].startswith("Running entrypoint for job 20261203-163916")
    assert "Left truncation applied" in log.text


def test_a_failed_job_keeps_both_tracebacks_whole() -> None:
    text = raw("task-yaml-missing-failed.log")
    log = job_log.quiet(text)
    tracebacks = [line for line in text.split("\n") if line.startswith(("Traceback", "  File"))]
    assert tracebacks and all(line in log.text.splitlines() for line in tracebacks)
    assert log.text.count("Traceback (most recent call last):") == 2
    assert log.text.endswith("forgetwatch/schema.sql'")
    assert "FileNotFoundError: [Errno 2] No such file or directory:" in log.text
    assert log.collapsed == 0  # a traceback's frames and carets are never folded


def test_repeats_collapse_and_numbers_may_vary() -> None:
    lines = [f"Left truncation applied. Original sequence length was {n}, truncating" for n in
             (356, 401, 388)] + ["ValueError: boom"] * 2  # fmt: skip
    log = job_log.quiet("\n".join(lines))
    assert log.text == (
        "Left truncation applied. Original sequence length was 388, truncating (×3)\n"
        "ValueError: boom (×2)"
    )
    assert (log.hidden, log.collapsed) == (0, 3)


def test_lm_eval_info_records_go_and_warnings_stay() -> None:
    log = job_log.quiet(
        "2026-12-03:18:11:26 INFO     [evaluator.py:203] Setting random seed to 0\n"
        "2026-12-03:18:11:27 WARNING  [evaluator.py:310] Overwriting default num_fewshot "
        "of fw_target_facts_5shot from 5 to 0\n"
        "INFO:root:loading\n"
    )
    assert log.text.startswith("2026-12-03:18:11:27 WARNING") and log.hidden == 2


def test_the_tail_starts_at_a_line(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    words = ["alpha", "beta", "gamma", "delta"]
    path.write_text("".join(f"{words[i % 4]} {i}: a long log\n" for i in range(200)))
    tail = job_log.quiet_tail(path, 60)
    assert tail.text.splitlines()[0].split()[0] in words and len(tail.text) <= 60
    assert tail.text.endswith("delta 199: a long log")
    assert job_log.read_end(path, 30) == "delta 199: a long log\n"  # a cut first line goes
    path.write_text("".join(f"step {i} done\n" for i in range(200)))
    assert job_log.quiet_tail(path, 60).text == "step 199 done (×200)"
    assert job_log.quiet_tail(tmp_path / "missing.log", 60).text == ""
