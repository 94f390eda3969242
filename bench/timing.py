"""The one timing helper the benchmarks share."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` in milliseconds over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def report(name: str, ms: float, budget: float | None = None) -> None:
    """One timed line, against its budget when it has one."""
    if budget is None:
        print(f"{name:<52} {ms:8.1f} ms")
        return
    verdict = "ok" if ms <= budget else "OVER"
    print(f"{name:<52} {ms:8.1f} ms   budget {budget:5.0f} ms   {ms / budget:5.2f}x budget  {verdict}")
