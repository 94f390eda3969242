"""The heavy-work pool: one task per key, attach instead of repeat, failures kept, a queue."""

from __future__ import annotations

import threading
import time

from core.workers import Workers


def wait(workers: Workers, key: str):
    for _ in range(200):
        status = workers.status(key)
        if status.state in ("done", "failed"):
            return status
        time.sleep(0.02)
    raise AssertionError(workers.status(key))


def test_runs_once_per_key_and_reports_progress():
    workers = Workers()
    calls = []
    release = threading.Event()

    def work(progress):
        calls.append(1)
        progress(0.5, "half way")
        release.wait(5)
        return 42

    workers.submit("a", work)
    workers.submit("a", work)  # attaches
    for _ in range(100):
        if workers.status("a").state == "running":
            break
        time.sleep(0.01)
    assert workers.status("a").text == "half way" and workers.status("a").fraction == 0.5
    release.set()
    assert wait(workers, "a").result == 42
    workers.submit("a", work)  # done: attaches to the result
    assert calls == [1]


def test_one_worker_queues_a_burst():
    workers = Workers(workers=1)
    release = threading.Event()
    workers.submit("slow", lambda progress: release.wait(5))
    workers.submit("next", lambda progress: "ok")
    time.sleep(0.1)
    assert workers.status("next").state == "queued"
    release.set()
    assert wait(workers, "next").result == "ok"


def test_failure_is_kept_and_can_be_retried():
    workers = Workers()

    def broken(progress):
        raise OSError("disk full")

    workers.submit("x", broken)
    status = wait(workers, "x")
    assert status.state == "failed" and "disk full" in status.error
    workers.submit("x", lambda progress: "fixed")
    assert wait(workers, "x").result == "fixed"


def test_gate_lets_at_most_its_slots_through():
    from core.workers import Gate

    gate = Gate(slots=2)
    inside, most = [0], [0]
    lock = threading.Lock()

    def heavy():
        with gate:
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.02)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=heavy) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 2 and gate.waiting == 0
