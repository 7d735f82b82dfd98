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


def stage_bars(prefix: str = "demo") -> Callable[[str, int, int], None]:
    """A ``progress(stage, done, total)`` callback drawing one tqdm bar per stage.

    A stage's bar closes when the next stage starts, so long builds show one
    live bar plus a finished line for every stage already done.
    """
    bars: dict[str, tqdm] = {}

    def report(stage: str, done: int, total: int) -> None:
        pbar = bars.get(stage)
        if pbar is None:
            for other in bars.values():
                other.close()
            pbar = bars[stage] = tqdm(desc=f"[{prefix}] {stage}", total=total, dynamic_ncols=True)
        pbar.total = total
        pbar.update(done - pbar.n)
        if done >= total:
            pbar.close()

    return report
