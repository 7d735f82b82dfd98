"""A job log without lm-eval's noise: what the Evals page and a failed job's error show.

A job's ``job.log`` is mostly harmless chatter: lm-eval prints "Custom kwargs can
be passed to `--metadata` ..." (two lines) for every local task, twice; its git
probe prints ``fatal: not a git repository`` outside a checkout; tqdm redraws
progress bars with carriage returns; Ray and lm-eval's INFO records narrate
setup. ``quiet`` drops those, collapses runs of lines that differ only in their
numbers into the latest of them with ``(×N)``, and keeps everything else: warnings such as "Left
truncation applied", errors, tracebacks and our own summary lines. The raw file
stays on disk for the page's raw view and download.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from forgetwatch.evals.jobs import PROGRESS_MARK

# Lines dropped outright (matched after carriage-return redraws are resolved).
HARMLESS = (
    re.compile(r"^\S+: Custom kwargs can be passed to `--metadata`"),
    re.compile(r"^For example --metadata='\{.*\}'\. For details see task Readme\.$"),
    re.compile(r"^fatal: not a git repository"),
    re.compile("^" + re.escape(PROGRESS_MARK)),  # machine-readable progress (Ray jobs)
    # tqdm: "Label:  40%|████      | 8/20 [00:01<00:02, 5.1it/s]" (label optional)
    re.compile(r"^[^|]*\d+%\|.*\| *[\d.]+[kMG]?/[\d.?]+[kMG]? \["),
    # INFO / DEBUG records: lm-eval's "2026-12-03:18:11:26 INFO [..]",
    # Ray's "2026-12-03 18:11:26,123\tINFO job_manager.py:581 -- ..."
    re.compile(r"^\d{4}-\d\d-\d\d[ :T][\d:,.]+\s+(?:INFO|DEBUG)\b"),
    re.compile(r"^(?:INFO|DEBUG)(?::\S+:| )"),  # "INFO:root:..." from plain logging
)
READ_CHARS = 256 * 1024  # the page filters at most this much of a log's end per refresh
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class QuietLog:
    """The filtered text, and how many lines it left out or folded into a repeat."""

    text: str
    hidden: int
    collapsed: int


def _redrawn(line: str) -> str:
    """What a terminal shows of a line tqdm redrew with carriage returns: its last state."""
    parts = [p for p in line.split("\r") if p.strip()]
    return parts[-1] if parts else line.replace("\r", "")


def harmless(line: str) -> bool:
    return any(p.search(line) for p in HARMLESS)


def quiet(raw: str) -> QuietLog:
    """``raw`` without harmless lines, repeats collapsed to ``line (×N)``; blank runs to one.

    A blank line right after a hidden one goes with it (Ray turns each progress
    redraw into a line and a gap); one between kept lines (chained tracebacks) stays.
    """
    kept: list[tuple[str, str, int]] = []  # (latest line, its shape, count)
    hidden = collapsed = 0
    after_hidden = False
    for line in (_redrawn(x) for x in raw.split("\n")):
        if harmless(line):
            hidden += 1
            after_hidden = True
            continue
        if not line.strip() and after_hidden:
            continue  # the gap Ray leaves where a progress bar was redrawn
        after_hidden = False
        # Indented lines (a traceback's frames and carets) are never folded: each one counts.
        shape = _NUMBER.sub("#", line.rstrip()) if not line[:1].isspace() else f"\0{len(kept)}"
        if kept and kept[-1][1] == shape:  # the latest of the run stands for it
            kept[-1] = (line.rstrip(), shape, kept[-1][2] + 1)
            collapsed += bool(shape)  # a run of blank lines folds silently
            continue
        kept.append((line.rstrip(), shape, 1))
    lines = [f"{text} (×{n})" if n > 1 and text.strip() else text for text, _, n in kept]
    return QuietLog("\n".join(lines).strip("\n"), hidden, collapsed)


def read_end(path: Path, chars: int = READ_CHARS) -> str:
    """The last ``chars`` of a log, from a line start (a cut first line is dropped)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            fh.seek(max(0, size - chars))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return text.split("\n", 1)[1] if size > chars and "\n" in text else text


def quiet_tail(path: Path, chars: int) -> QuietLog:
    """The end of the filtered log: at most ``chars`` of it, cut at a line start."""
    log = quiet(read_end(path))
    text = log.text
    if len(text) > chars:
        text = text[-chars:].split("\n", 1)[-1]
    return QuietLog(text, log.hidden, log.collapsed)
