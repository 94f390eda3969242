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
EXPLORE_EVERY = 10  # windows on fewer threads between looks at all of them (~2 s)
SLOWDOWN = 1.3  # all threads this much slower than their best so far: look at fewer


class ThreadChooser:
    """Picks the torch thread count (1 or ``most``) for the calling thread's next batches.

    Call :meth:`batch_done` after each batch; it sets ``torch.set_num_threads`` when a window
    ends. Changing the count is not free (measured: an idle epoch ~15% slower when it switched
    every few windows), so the chooser stays on all threads unless they slow down: it times
    one window on one thread early on, another whenever all threads run ``SLOWDOWN`` times
    slower than their best, and, while on one thread, all threads every ``EXPLORE_EVERY``
    windows to see whether the other work has gone. ``clock`` and ``set_threads`` are
    injectable for tests. Not thread-safe: one chooser per training loop."""

    def __init__(
        self,
        most: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
        set_threads: Callable[[int], None] = torch.set_num_threads,
    ) -> None:
        self.most = max(1, most if most is not None else torch.get_num_threads())
        self._clock, self._set = clock, set_threads
        self.seconds_per_batch: dict[int, float] = {}  # the latest window's time per batch, per count
        self.fastest: dict[int, float] = {}  # the best window's, per count
        self.threads = self.most
        self.history: list[int] = []  # the thread count of each finished window
        self._count = 0
        self._start = clock()
        self._set(self.threads)

    def batch_done(self) -> None:
        self._count += 1
        if self._count < WINDOW:
            return
        per_batch = (self._clock() - self._start) / self._count
        self.seconds_per_batch[self.threads] = per_batch
        self.fastest[self.threads] = min(per_batch, self.fastest.get(self.threads, per_batch))
        self.history.append(self.threads)
        chosen = self._next()
        if chosen != self.threads:
            self.threads = chosen
            self._set(chosen)
        self._count, self._start = 0, self._clock()

    def _next(self) -> int:
        if self.most == 1:
            return 1
        times, many = self.seconds_per_batch, self.most
        if 1 not in times:  # once, early: is one thread faster here?
            return 1 if len(self.history) >= 1 else many
        if self.threads == many:
            if times[many] > times[1]:  # one thread was faster when last timed
                return 1
            slowed = times[many] > SLOWDOWN * self.fastest[many]  # look again, at most every EXPLORE_EVERY windows
            return 1 if slowed and _since(self.history, 1) >= EXPLORE_EVERY else many
        if _since(self.history, many) >= EXPLORE_EVERY:
            return many  # look again: has the other work gone?
        return 1 if times[1] <= times[many] else many


def _since(history: list[int], threads: int) -> int:
    """How many windows ago ``threads`` was last used (a large number if never)."""
    for back, used in enumerate(reversed(history)):
        if used == threads:
            return back
    return len(history) + 1
