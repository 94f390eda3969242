"""How many CPU threads the trainer uses, chosen by measuring, batch window by batch window.

On an idle two-core machine an epoch takes 2.9 s with two threads and 4.8 s with one; with
one core kept busy by another process (a browser, a session computing maps) it takes 10.1 s
with two threads and 5.5 s with one: a second thread that has to share a core waits for it
at every synchronisation point. What the machine is doing changes while training runs, and
another process's load is only part of it (sessions of the same server compute in threads
of this process), so the trainer does not guess from load averages: it times its own
batches. ``ThreadChooser`` runs windows of batches at the thread count that has been fastest
lately and, every few windows, one window at another count to see whether that has become
faster. Measuring costs at most one slow window in ``EXPLORE_EVERY``. While on one thread it
also reads how much of the machine stood idle during each window (``/proc/stat`` on Linux):
when a whole core did, the other work has probably gone and it goes back to all threads after
two windows instead of ``EXPLORE_EVERY``. (A first start, measured: the browser's page load
pushed training onto one thread, and it stayed there for 10 windows at a time after the
browser had gone quiet; 40% of the windows ran on one thread.) Where idle cores do not help
(a container's CPU quota or a core shared by hyperthreads, which ``/proc/stat`` still shows
idle), each such look that does not pay doubles the wait before the next, up to
``EXPLORE_EVERY``: the cost stays about one slow window in ``EXPLORE_EVERY``.

Every thread of the server that runs torch sets its count with :func:`use_threads`, not
``torch.set_num_threads`` alone (see there why).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

WINDOW = 20  # batches timed together: ~0.1-0.3 s, long enough to smooth one batch's noise
# Batches in a window that looks at a count (the first window, and the first after a switch):
# a look at the wrong count is the chooser's main cost on a busy machine (measured: 20 batches
# on two threads at 72 ms each, beside a busy core, against 16 ms on one: 1.1 s of a 10 s epoch).
LOOK = 8
EXPLORE_EVERY = 10  # windows on fewer threads between looks at all of them (~2 s)
SLOWDOWN = 1.3  # all threads this much slower than their best so far: look at fewer
SPARE = 0.75  # of a core per extra thread, idle through a one-thread window: use all threads


class IdleCores:
    """How many cores of the machine stood idle since the last call, from ``/proc/stat``
    (idle and iowait time over all time); None where that cannot be read (not Linux)."""

    def __init__(self, path: str = "/proc/stat") -> None:
        self._path = path
        self._last = self._read()

    def _read(self) -> tuple[float, float, int] | None:
        try:
            with open(self._path) as f:
                lines = f.read().splitlines()
            fields = [float(x) for x in lines[0].split()[1:9]]  # user nice system idle iowait irq softirq steal
        except (OSError, ValueError, IndexError):
            return None
        cpus = sum(1 for line in lines[1:] if line.startswith("cpu"))
        return fields[3] + fields[4], sum(fields), cpus

    def __call__(self) -> float | None:
        now, last = self._read(), self._last
        self._last = now
        if now is None or last is None or now[1] <= last[1]:
            return None
        return (now[0] - last[0]) / (now[1] - last[1]) * now[2]


def use_threads(count: int) -> None:
    """Give the calling thread ``count`` torch threads, whatever other threads set later.

    ``torch.set_num_threads`` sets the calling thread's OpenMP count and also stores ``count``
    process-wide, and a thread's first parallel operation copies the stored count over its own
    (``at::internal::lazy_init_num_threads``, once per thread). So a thread that sets its count
    before its first operation takes whatever another thread set last: the dashboard's trainer set
    two threads when it started, a page's run then set one for itself, and every in-app training
    ran on one thread (measured: 1.0 CPU-second per second, where the same training alone uses
    two). Reading the count first makes that copy happen now; the count set after it stays."""
    torch.get_num_threads()  # the thread's one-time copy of the process-wide count, done now
    torch.set_num_threads(count)


class ThreadChooser:
    """Picks the torch thread count (1 or ``most``) for the calling thread's next batches.

    Call :meth:`batch_done` after each batch; it sets the thread count (:func:`use_threads`) when a window
    ends. Changing the count is not free (measured: an idle epoch ~15% slower when it switched
    every few windows), so the chooser stays on all threads unless they slow down: it times
    one window on one thread early on, another whenever all threads run ``SLOWDOWN`` times
    slower than their best, and, while on one thread, all threads every ``EXPLORE_EVERY``
    windows to see whether the other work has gone, or at once when ``idle_cores`` says the
    machine had a core to spare per extra thread during the last window. ``clock``,
    ``set_threads`` and ``idle_cores`` are injectable for tests. Not thread-safe: one chooser
    per training loop."""

    def __init__(
        self,
        most: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
        set_threads: Callable[[int], None] = use_threads,
        idle_cores: Callable[[], float | None] | None = None,
    ) -> None:
        self.most = max(1, most if most is not None else torch.get_num_threads())
        self._clock, self._set = clock, set_threads
        self._idle_cores = idle_cores if idle_cores is not None else IdleCores()
        self.idle: float | None = None  # cores idle during the latest window
        self.seconds_per_batch: dict[int, float] = {}  # the latest window's time per batch, per count
        self.fastest: dict[int, float] = {}  # the best window's, per count
        self.threads = self.most
        self.history: list[int] = []  # the thread count of each finished window
        self._idle_wait = 2  # windows on one thread before an idle core sends it back to all
        self._shortcut = False  # the current windows on all threads were sent by an idle core
        self._count = 0
        self._window = LOOK  # the first window looks at all threads
        self._start = clock()
        self._set(self.threads)

    def batch_done(self) -> None:
        self._count += 1
        if self._count < self._window:
            return
        per_batch = (self._clock() - self._start) / self._count
        self.idle = self._idle_cores()
        self.seconds_per_batch[self.threads] = per_batch
        self.fastest[self.threads] = min(per_batch, self.fastest.get(self.threads, per_batch))
        self.history.append(self.threads)
        chosen = self._next()
        self._window = LOOK if chosen != self.threads else WINDOW
        if chosen != self.threads:
            self.threads = chosen
            self._set(chosen)
        self._count, self._start = 0, self._clock()

    def restart_window(self) -> None:
        """Forget the batches timed so far in this window: call it after work that is not a
        training batch (the test pass and save at an epoch's end, 0.2-0.4 s, which made the
        window that held it look 3x slower and sent the trainer to one thread for nothing)."""
        self._count, self._start = 0, self._clock()
        self._idle_cores()  # nor is its idle time the window's (a save's disk wait counts as idle)

    def _next(self) -> int:
        if self.most == 1:
            return 1
        times, many = self.seconds_per_batch, self.most
        if 1 not in times:  # once, early: is one thread faster here?
            return 1 if len(self.history) >= 1 else many
        if self.threads == many:
            if times[many] <= times[1]:  # all threads pay (again): trust an idle core again
                self._idle_wait = 2
            elif self._shortcut:  # an idle core sent it here and that did not pay: back off
                self._idle_wait = min(EXPLORE_EVERY, 2 * self._idle_wait)
            self._shortcut = False
            if times[many] > times[1]:  # one thread was faster when last timed
                return 1
            slowed = times[many] > SLOWDOWN * self.fastest[many]  # look again, at most every EXPLORE_EVERY windows
            return 1 if slowed and _since(self.history, 1) >= EXPLORE_EVERY else many
        if _since(self.history, many) >= EXPLORE_EVERY:
            return many  # look again: has the other work gone?
        idle = self.idle is not None and self.idle >= SPARE * (many - 1)
        if idle and _since(self.history, many) >= self._idle_wait:
            self._shortcut = True
            return many  # it probably has: a core stood idle through this window
        return 1 if times[1] <= times[many] else many


def _since(history: list[int], threads: int) -> int:
    """How many windows ago ``threads`` was last used (a large number if never)."""
    for back, used in enumerate(reversed(history)):
        if used == threads:
            return back
    return len(history) + 1
