"""Training as background jobs: one job per model key, run by a small worker pool in the
server process, watched by any number of sessions.

A web page's script reruns whenever its user clicks; training inside it would restart on
every click. Here a session *requests* a model and then only *reads* the job's status:
page switches, reruns and closed tabs neither restart nor cancel it. Requests for a key
that is queued, running or done attach to that job instead of adding work. At most
``workers`` jobs train at once (one by default: two trainings on two cores only slow
each other and every page); the others wait in a queue, in order, and a queued job can
be cancelled. A failure is kept on the job with its message until someone retries.

Across processes the file lock in :func:`core.train.load_or_train` makes one process
train while another waits, then loads the result; the waiting job says so.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core import checkpoints
from core.config import TrainConfig
from core.data import load_mnist
from core.thread_choice import use_threads
from core.train import Progress, TrainedModel, load_or_train

log = logging.getLogger(__name__)
QUEUED, WAITING, RUNNING, DONE, FAILED, CANCELLED = "queued", "waiting", "running", "done", "failed", "cancelled"
ACTIVE = (QUEUED, WAITING, RUNNING)
SECONDS_PER_EPOCH_GUESS = 5.0  # a full-data epoch on two CPU cores, until a job here has measured one


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of one job, safe to hand to any thread."""

    key: str
    config: TrainConfig
    state: str  # one of QUEUED, WAITING (another process trains it), RUNNING, DONE, FAILED, CANCELLED
    progress: Progress | None  # the latest report while running
    position: int  # 1-based place in the queue while queued, else 0
    estimate_s: float | None  # seconds until it should be done (queued or running), else None
    message: str  # why it failed, or a notice from training (e.g. a damaged checkpoint retrained)
    result: TrainedModel | None  # when done

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


class _Job:
    def __init__(self, key: str, config: TrainConfig) -> None:
        self.key = key
        self.config = config
        self.state = QUEUED
        self.progress: Progress | None = None
        self.message = ""
        self.result: TrainedModel | None = None
        self.started = 0.0


class TrainingJobs:
    """The background trainer of one server process. Thread-safe; create one and share it."""

    def __init__(
        self,
        root: Path | None = None,
        workers: int = 1,
        device: str = "auto",
        threads: int | None = None,
        max_models: int | None = None,
        keep: Callable[[], set[str]] = set,
    ) -> None:
        """``max_models``: after each training, evict the least recently used cached models
        beyond this many, never one whose key ``keep()`` returns (None: keep everything)."""
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self._root = root
        self._device = device
        self._max_models = max_models
        self._keep = keep
        # torch threads per training (set per thread with use_threads, so pages' threads keep theirs)
        self._torch_threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self._jobs: dict[str, _Job] = {}
        self._queue: deque[str] = deque()
        self._lock = threading.Condition()
        self._epoch_seconds = SECONDS_PER_EPOCH_GUESS
        self._closing = False
        # A training thread still inside torch when the interpreter exits aborts the process
        # ("terminate called without an active exception"): stop it first.
        atexit.register(self.close)
        self._threads = [threading.Thread(target=self._work, name=f"trainer-{i}", daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def key(self, config: TrainConfig) -> str:
        """The model key ``config`` trains (loads the data set once per process)."""
        return checkpoints.model_key(config, load_mnist(config.data_source).fingerprint)

    def request(self, config: TrainConfig) -> str:
        """Ask for the model ``config`` describes; returns its key. Attaches to an existing
        queued, running or finished job for that key; a failed or cancelled one is re-queued."""
        key = self.key(config)
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.state not in (FAILED, CANCELLED):
                return key
            self._jobs[key] = _Job(key, config)
            self._queue.append(key)
            self._lock.notify_all()  # wakes an idle worker even when others wait in ``wait()``
        return key

    def retry(self, key: str) -> None:
        """Queue a failed or cancelled job again."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None:
                raise KeyError(f"no training job for model {key}")
            config = job.config
        self.request(config)

    def cancel(self, key: str) -> bool:
        """Cancel a job that is still queued; returns whether it was. A running job finishes."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None or job.state != QUEUED:
                return False
            self._queue.remove(key)
            job.state = CANCELLED
            job.message = "Cancelled before it started."
            return True

    def status(self, key: str) -> JobStatus | None:
        with self._lock:
            job = self._jobs.get(key)
            return None if job is None else self._snapshot(job)

    def all(self) -> list[JobStatus]:
        """Every job this process knows, running first, then the queue in order, then the rest."""
        with self._lock:
            order = {k: i for i, k in enumerate(self._queue)}
            jobs = sorted(
                self._jobs.values(),
                key=lambda j: (j.state not in (RUNNING, WAITING), order.get(j.key, len(order)), j.key),
            )
            return [self._snapshot(j) for j in jobs]

    def wait(self, key: str, timeout: float | None = None) -> JobStatus:
        """Block until the job is no longer active (or ``timeout`` passes); returns its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._jobs[key].state in ACTIVE:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._lock.wait(remaining)
            return self._snapshot(self._jobs[key])

    def close(self, timeout: float = 30.0) -> None:
        """Stop: queued jobs are dropped, a running one stops at its next progress report."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    # ---- inside ------------------------------------------------------------------------

    def _snapshot(self, job: _Job) -> JobStatus:
        position = self._queue.index(job.key) + 1 if job.state == QUEUED else 0
        return JobStatus(
            key=job.key,
            config=job.config,
            state=job.state,
            progress=job.progress,
            position=position,
            estimate_s=self._estimate(job) if job.state in ACTIVE else None,
            message=job.message,
            result=job.result,
        )

    def _remaining(self, job: _Job) -> float:
        total = job.config.epochs * self._epoch_seconds * _data_fraction(job.config)
        if job.state == RUNNING and job.progress is not None:
            return total * (1 - job.progress.fraction)
        return total

    def _estimate(self, job: _Job) -> float:
        """Seconds until ``job`` should be done: the running jobs' rest plus everything queued before it."""
        running = [j for j in self._jobs.values() if j.state in (RUNNING, WAITING)]
        if job.state != QUEUED:
            return self._remaining(job)
        ahead = [self._jobs[k] for k in list(self._queue)[: self._queue.index(job.key)]]
        busy = sum(self._remaining(j) for j in running + ahead) / max(len(self._threads), 1)
        return busy + self._remaining(job)

    def _work(self) -> None:
        use_threads(self._torch_threads)
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._lock.wait()
                if self._closing:
                    return
                job = self._jobs[self._queue.popleft()]
                job.state = RUNNING
                job.started = time.monotonic()
            self._run(job)

    def _run(self, job: _Job) -> None:
        def report(p: Progress) -> None:
            if self._closing:
                raise _ClosingError
            with self._lock:
                job.progress = p
                job.state = RUNNING
                self._lock.notify_all()

        def waiting() -> None:
            with self._lock:
                job.state = WAITING
                job.message = "Another server process is training this model; it will be loaded when done."
                self._lock.notify_all()

        try:
            result = load_or_train(job.config, progress=report, device=self._device, root=self._root, waiting=waiting)
        except _ClosingError:
            with self._lock:
                job.state = FAILED
                job.message = "The server stopped before training finished."
            return
        except Exception as err:  # any failure must reach every waiting session, not kill the worker
            log.exception("training %s failed", job.key)
            with self._lock:
                job.state = FAILED
                job.message = _explain(err)
                self._lock.notify_all()
            return
        with self._lock:
            if result.trained_now and result.history:
                per_epoch = sum(r["seconds"] for r in result.history) / job.config.epochs  # a record a saved point
                self._epoch_seconds = per_epoch / _data_fraction(job.config)
            job.result = result
            job.message = result.notice or ""
        if self._max_models is not None:
            try:
                removed = checkpoints.evict(self._max_models, {job.key, *self._keep()}, self._root)
                if removed:
                    log.info("cache over %d models: evicted %s", self._max_models, ", ".join(removed))
            except Exception:  # eviction is housekeeping: never fail the job over it
                log.exception("evicting old models failed")
        with self._lock:
            job.state = DONE
            self._lock.notify_all()


class _ClosingError(Exception):
    """Raised inside a training run to stop it when the server shuts down."""


def _data_fraction(config: TrainConfig) -> float:
    """The share of the 60,000 training images one epoch of ``config`` reads."""
    return min(config.train_limit, 60_000) / 60_000 if config.train_limit else 1.0


def _explain(err: Exception) -> str:
    """A failure in words a user can act on."""
    if isinstance(err, OSError):
        what = "the disk is full" if getattr(err, "errno", None) == 28 else "the model cache cannot be written"
        return f"Training failed: {what} ({err}). Free space or fix the cache folder's permissions, then retry."
    return f"Training failed: {type(err).__name__}: {err}. Retry, or check the data source and the cache folder."
