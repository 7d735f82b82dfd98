"""An lm-eval model that wraps the real one and reports how far each request phase got.

lm-eval 0.4.13 has no progress callback: the evaluator hands the model every
request of one type (``loglikelihood``, ``generate_until``, ...) in one call
and only tqdm on stderr sees it advance. This wrapper forwards each phase to
the real model (``HFLM``) in chunks and calls ``report(phase, done, total)``
after each chunk, so a background job can publish a progress fraction.

Chunks are ~1/20 of a phase (never smaller than a batch): the real model still
sorts and batches inside each chunk, so the cost is a few partly-filled batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from lm_eval.api.model import LM

# report(phase, done, total): called after every chunk of every phase.
Report = Callable[[str, int, int], None]
CHUNKS_PER_PHASE = 20

# lm-eval task output types -> the LM method whose requests they produce.
PHASE_OF_OUTPUT_TYPE = {
    "multiple_choice": "loglikelihood",
    "loglikelihood": "loglikelihood",
    "loglikelihood_rolling": "loglikelihood_rolling",
    "generate_until": "generate_until",
}


class ProgressLM(LM):
    """Delegates everything to ``inner``; request methods run in reported chunks."""

    def __init__(self, inner: LM, report: Report, min_chunk: int = 1) -> None:
        super().__init__()
        self.inner = inner
        self.report = report
        self.min_chunk = max(1, min_chunk)

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes LM itself lacks (config, batch_sizes, get_model_info...).
        return getattr(self.inner, name)

    def _chunked(self, phase: str, requests: list[Any]) -> list[Any]:
        total = len(requests)
        size = max(self.min_chunk, math.ceil(total / CHUNKS_PER_PHASE))
        method = getattr(self.inner, phase)
        out: list[Any] = []
        self.report(phase, 0, total)
        for start in range(0, total, size):
            out.extend(method(requests[start : start + size], disable_tqdm=True))
            self.report(phase, len(out), total)
        return out

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        return self._chunked("loglikelihood", requests)

    def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
        return self._chunked("loglikelihood_rolling", requests)

    def generate_until(self, requests: list[Any]) -> list[str]:
        return self._chunked("generate_until", requests)

    # LM defines these itself, so __getattr__ would never forward them.
    @property
    def rank(self) -> int:
        return self.inner.rank

    @property
    def world_size(self) -> int:
        return self.inner.world_size

    @property
    def device(self) -> Any:
        return self.inner.device

    @property
    def tokenizer_name(self) -> str:
        return self.inner.tokenizer_name

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self.inner.chat_template(chat_template)

    def apply_chat_template(self, chat_history: list[dict[str, str]], **kwargs: Any) -> str:
        return self.inner.apply_chat_template(chat_history, **kwargs)

    def all_gather(self, tensor: Any) -> Any:
        return self.inner.all_gather(tensor)

    def gather_object(self, obj: Any, dst: int = 0) -> Any:
        return self.inner.gather_object(obj, dst)

    def barrier(self) -> None:
        self.inner.barrier()

    def set_cache_hook(self, cache_hook: Any) -> None:
        self.inner.set_cache_hook(cache_hook)
