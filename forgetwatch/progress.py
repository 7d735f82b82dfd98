"""Terminal progress bars for long CLI work, fed by collectors' progress callbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


@contextmanager
def bar(desc: str) -> Iterator[Callable[[int, int, str], None]]:
    """A ``progress(done, total, label)`` callback that draws one tqdm bar on stderr."""
    with tqdm(desc=desc, unit="item", dynamic_ncols=True, leave=True) as pbar:

        def update(done: int, total: int, label: str) -> None:
            if pbar.total != total:
                pbar.total = total
            pbar.set_postfix_str(label[-40:], refresh=False)
            pbar.update(done - pbar.n)

        yield update


def stage_printer(prefix: str = "demo") -> Callable[[str, int, int], None]:
    """A ``progress(stage, done, total)`` callback that prints one line per stage step."""
    last: dict[str, int] = {}

    def report(stage: str, done: int, total: int) -> None:
        if last.get(stage) == done:
            return
        last[stage] = done
        tqdm.write(f"[{prefix}] {stage}: {done}/{total}")

    return report
