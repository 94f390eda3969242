"""How many CPU threads the trainer uses, chosen by measuring, batch window by batch window.

On an idle two-core machine an epoch takes 2.9 s with two threads and 4.8 s with one; with
one core kept busy by another process (a browser, a session computing maps) it takes 10.1 s
with two threads and 5.5 s with one: a second thread that has to share a core waits for it
at every synchronisation point. What the machine is doing changes while training runs, and
another process's load is only part of it (sessions of the same server compute in threads
of this process), so the trainer does not guess from load averages: it times its own
batches. ``ThreadChooser`` runs windows of batches at the thread count that has been fastest
lately and, every few windows, one window at another count to see whether that has become
faster. Measuring costs at most one slow window in ``EXPLORE_EVERY``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

WINDOW = 20  # batches timed together: ~0.1-0.3 s, long enough to smooth one batch's noise
EXPLORE_EVERY = 10  # windows: one in this many tries another thread count (~1.5 s apart)
SMOOTHING = 0.5  # weight of the newest window in each count's running time per batch


class ThreadChooser:
    """Picks the torch thread count (1..``most``) for the calling thread's next batches.

    Call :meth:`batch_done` after each batch; it sets ``torch.set_num_threads`` when a
    window ends. ``clock`` and ``set_threads`` are injectable for tests. Not thread-safe:
    one chooser per training loop."""

    def __init__(
        self,
        most: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
        set_threads: Callable[[int], None] = torch.set_num_threads,
    ) -> None:
        self.most = max(1, most if most is not None else torch.get_num_threads())
        self._clock, self._set = clock, set_threads
        self.seconds_per_batch: dict[int, float] = {}  # running estimate per thread count
        self.threads = self.most
        self.history: list[int] = []  # the thread count of each finished window
        self._count, self._window = 0, 0
        self._start = clock()
        self._set(self.threads)

    def batch_done(self) -> None:
        self._count += 1
        if self._count < WINDOW:
            return
        now = self._clock()
        per_batch = (now - self._start) / self._count
        old = self.seconds_per_batch.get(self.threads)
        self.seconds_per_batch[self.threads] = per_batch if old is None else old + SMOOTHING * (per_batch - old)
        self.history.append(self.threads)
        self._window += 1
        self.threads = self._next()
        self._set(self.threads)
        self._count, self._start = 0, self._clock()

    def _next(self) -> int:
        if self.most == 1:
            return 1
        untried = [n for n in range(self.most, 0, -1) if n not in self.seconds_per_batch]
        best = min(self.seconds_per_batch, key=self.seconds_per_batch.get)
        if self._window % EXPLORE_EVERY == 0 or (untried and self._window == 1):
            # Look again: a count never timed, else the one measured longest ago.
            if untried:
                return untried[0]
            others = [n for n in range(1, self.most + 1) if n != best]
            return max(others, key=lambda n: _since(self.history, n))
        return best


def _since(history: list[int], threads: int) -> int:
    """How many windows ago ``threads`` was last used (a large number if never)."""
    for back, used in enumerate(reversed(history)):
        if used == threads:
            return back
    return len(history) + 1
