"""Heavy computations in the background: one task per key, run by a small shared pool.

A computation that takes a minute (a scorecard over 500 digits) must not run in a page's
script: a rerun or a page switch would abandon it, and many sessions starting one each
would slow every page. Here a session submits it under a key and then only reads its
status; a second request for the same key attaches to the running or finished task, and
the pool (one worker by default) makes a burst of requests queue instead of competing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from core.thread_choice import use_threads

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]  # (fraction done, what is being done)


@dataclass(frozen=True)
class TaskStatus:
    state: str  # "queued", "running", "done" or "failed"
    fraction: float
    text: str
    result: Any = None
    error: str = ""


class _Task:
    def __init__(self) -> None:
        self.state = "queued"
        self.fraction = 0.0
        self.text = "Waiting for a free worker…"
        self.future: Future | None = None


class Workers:
    """A small pool for heavy work, shared by every session of a server. Thread-safe."""

    def __init__(self, workers: int = 1) -> None:
        # One torch thread each, like a page's run: dataset-wide work shares the cores with the
        # trainer and the sessions (see core.thread_choice.use_threads for why it is set this way).
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="heavy", initializer=use_threads, initargs=(1,)
        )
        self._tasks: dict[str, _Task] = {}
        self._lock = threading.Lock()

    def submit(self, key: str, work: Callable[[Progress], Any]) -> None:
        """Run ``work(progress)`` under ``key`` unless a task for it is queued, running or done."""
        with self._lock:
            task = self._tasks.get(key)
            if task is not None and task.state != "failed":
                return
            task = self._tasks[key] = _Task()

        def progress(fraction: float, text: str) -> None:
            with self._lock:
                task.state, task.fraction, task.text = "running", fraction, text

        def run() -> Any:
            progress(0.0, "Starting…")
            return work(progress)

        task.future = self._pool.submit(run)

    def status(self, key: str) -> TaskStatus | None:
        with self._lock:
            task = self._tasks.get(key)
        if task is None:
            return None
        future = task.future
        if future is not None and future.done():
            error = future.exception()
            if error is not None:
                log.error("background task %s failed: %s", key, error)
                with self._lock:
                    task.state = "failed"
                return TaskStatus("failed", task.fraction, task.text, error=f"{type(error).__name__}: {error}")
            return TaskStatus("done", 1.0, "Done", result=future.result())
        return TaskStatus(task.state, task.fraction, task.text)


class Gate:
    """At most ``slots`` heavy computations at once across every session's thread; the rest
    wait their turn. Two cores gain nothing from a dozen attributions at once: each would
    only take longer, and so would every light page meanwhile."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"a gate needs at least one slot, not {slots}")
        self._semaphore = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self.waiting = 0  # threads queued at the gate now

    def __enter__(self) -> Gate:
        with self._lock:
            self.waiting += 1
        self._semaphore.acquire()
        with self._lock:
            self.waiting -= 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._semaphore.release()
