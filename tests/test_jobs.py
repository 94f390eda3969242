"""Background training jobs: one job per model key, a FIFO queue, a worker pool, failures
kept on the job until retried, and a second process that waits for the first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import core.train
from core import checkpoints, jobs
from core.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, WAITING, TrainingJobs
from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120.0  # generous: other test runs may share the two CPU cores


def until(predicate, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class TrainSpy:
    """Wraps ``core.train.train``: logs starts and ends by seed, can hold a training back
    (before it starts, or after its first progress report) and can make one fail."""

    def __init__(self, real) -> None:
        self.real = real
        self.lock = threading.Lock()
        self.events: list[tuple[str, int]] = []
        self.running = 0
        self.most_at_once = 0
        self.hold_start: dict[int, threading.Event] = {}
        self.hold_after_report: dict[int, threading.Event] = {}
        self.fail: dict[int, Exception] = {}

    def hold(self, seed: int, after_first_report: bool = False) -> threading.Event:
        gate = threading.Event()
        (self.hold_after_report if after_first_report else self.hold_start)[seed] = gate
        return gate

    def release_all(self) -> None:
        for gate in [*self.hold_start.values(), *self.hold_after_report.values()]:
            gate.set()

    def started(self, seed: int) -> bool:
        with self.lock:
            return ("start", seed) in self.events

    def starts(self, seed: int) -> int:
        with self.lock:
            return self.events.count(("start", seed))

    def __call__(self, config, data, device, progress=None, on_epoch=None, adaptive_threads=True):
        seed = config.seed
        with self.lock:
            self.events.append(("start", seed))
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            if seed in self.hold_start:
                assert self.hold_start[seed].wait(TIMEOUT), "the test never released this training"
            if seed in self.fail:
                raise self.fail[seed]
            gate = self.hold_after_report.get(seed)
            reported = []

            def report(p):
                progress(p)
                if gate is not None and not reported:
                    reported.append(p)
                    assert gate.wait(TIMEOUT), "the test never released this training"

            return self.real(config, data, device, report if progress else None, on_epoch, adaptive_threads)
        finally:
            with self.lock:
                self.running -= 1
                self.events.append(("end", seed))


@pytest.fixture
def spy(monkeypatch):
    spy = TrainSpy(core.train.train)
    monkeypatch.setattr(core.train, "train", spy)
    yield spy
    spy.release_all()  # never leave a worker thread blocked


@pytest.fixture
def trainer(tmp_path) -> TrainingJobs:
    return TrainingJobs(root=tmp_path, device="cpu")


# ---- queue and workers -------------------------------------------------------------------


def test_one_worker_trains_one_job_at_a_time_in_request_order(spy, trainer):
    spy.hold(0)
    keys = [trainer.request(tiny_config(seed=s)) for s in (0, 1, 2)]
    assert len(set(keys)) == 3
    until(lambda: spy.started(0), "the first job to start")

    first, second, third = (trainer.status(k) for k in keys)
    assert (first.state, first.position) == (RUNNING, 0)
    assert (second.state, second.position) == (QUEUED, 1)
    assert (third.state, third.position) == (QUEUED, 2)
    assert all(s.active and s.result is None for s in (first, second, third))
    assert 0 < first.estimate_s < second.estimate_s < third.estimate_s  # each waits for those before it
    assert [s.key for s in trainer.all()] == keys

    spy.hold_start[0].set()
    done = [trainer.wait(k, TIMEOUT) for k in keys]
    assert [s.state for s in done] == [DONE] * 3
    assert all(s.result.trained_now and s.result.info.key == s.key for s in done)
    assert all(s.position == 0 and s.estimate_s is None and not s.active for s in done)
    assert spy.events == [("start", 0), ("end", 0), ("start", 1), ("end", 1), ("start", 2), ("end", 2)]
    assert spy.most_at_once == 1


def test_two_workers_train_two_jobs_at_once(spy, tmp_path):
    trainer = TrainingJobs(root=tmp_path, workers=2, device="cpu")
    spy.hold(0)
    spy.hold(1)
    keys = [trainer.request(tiny_config(seed=s)) for s in (0, 1, 2)]
    until(lambda: spy.started(0) and spy.started(1), "two jobs to start")
    assert [trainer.status(k).state for k in keys] == [RUNNING, RUNNING, QUEUED]
    assert trainer.status(keys[2]).position == 1
    spy.release_all()
    assert [trainer.wait(k, TIMEOUT).state for k in keys] == [DONE] * 3
    assert spy.most_at_once == 2


def test_workers_must_be_at_least_one(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        TrainingJobs(root=tmp_path, workers=0)


def test_request_attaches_to_queued_running_and_done_jobs(spy, trainer):
    spy.hold(0)
    k0 = trainer.request(tiny_config(seed=0))
    k1 = trainer.request(tiny_config(seed=1))
    until(lambda: spy.started(0), "the first job to start")
    assert trainer.request(tiny_config(seed=0)) == k0  # running
    assert trainer.request(tiny_config(seed=1)) == k1  # queued
    assert trainer.status(k1).position == 1 and len(trainer.all()) == 2  # not queued twice

    spy.hold_start[0].set()
    first = trainer.wait(k0, TIMEOUT)
    trainer.wait(k1, TIMEOUT)
    assert trainer.request(tiny_config(seed=0)) == k0  # done: nothing new to do
    again = trainer.status(k0)
    assert again.state == DONE and again.result is first.result
    assert spy.starts(0) == spy.starts(1) == 1
    assert trainer.key(tiny_config(seed=0)) == k0 == first.result.info.key


def test_a_model_already_in_the_cache_is_loaded_not_trained(spy, tmp_path):
    core.train.load_or_train(tiny_config(), root=tmp_path)
    assert spy.starts(0) == 1
    trainer = TrainingJobs(root=tmp_path, device="cpu")
    status = trainer.wait(trainer.request(tiny_config()), TIMEOUT)
    assert status.state == DONE and not status.result.trained_now
    assert spy.starts(0) == 1


def test_the_trainer_keeps_its_threads_when_a_page_sets_one_for_its_own(monkeypatch, tmp_path):
    """A page's run sets one torch thread for itself (dashboard/Home.py) after the trainer's
    thread started: the training must still run on the trainer's two (it ran on one before)."""
    counts = []

    class Recording(core.train.ThreadChooser):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            counts.append(self.most)

    monkeypatch.setattr(core.train, "ThreadChooser", Recording)
    before = torch.get_num_threads()
    trainer = TrainingJobs(root=tmp_path, device="cpu", threads=2)
    try:
        torch.set_num_threads(1)  # as a page's run does, after the trainer's thread set its count
        status = trainer.wait(trainer.request(tiny_config()), TIMEOUT)
    finally:
        torch.set_num_threads(before)
    assert status.state == DONE and counts == [2]


# ---- cancel ------------------------------------------------------------------------------


def test_cancel_works_for_queued_jobs_only(spy, trainer):
    spy.hold(0)
    k0, k1, k2 = (trainer.request(tiny_config(seed=s)) for s in (0, 1, 2))
    until(lambda: spy.started(0), "the first job to start")

    assert trainer.cancel(k1) is True
    cancelled = trainer.status(k1)
    assert cancelled.state == CANCELLED and not cancelled.active
    assert cancelled.position == 0 and cancelled.estimate_s is None and "Cancelled" in cancelled.message
    assert trainer.status(k2).position == 1  # moved up

    assert trainer.cancel(k0) is False  # running: it finishes
    assert trainer.status(k0).state == RUNNING
    assert trainer.cancel(k1) is False  # already cancelled
    assert trainer.cancel("0123456789abcdef") is False  # unknown

    spy.hold_start[0].set()
    assert trainer.wait(k0, TIMEOUT).state == DONE
    assert trainer.wait(k2, TIMEOUT).state == DONE
    assert trainer.wait(k1, 0).state == CANCELLED
    assert spy.starts(1) == 0
    assert trainer.cancel(k0) is False  # done

    trainer.retry(k1)  # a cancelled job can be queued again
    assert trainer.wait(k1, TIMEOUT).state == DONE
    assert spy.starts(1) == 1


def test_a_cancelled_job_is_queued_again_by_a_new_request(spy, trainer):
    spy.hold(0)
    trainer.request(tiny_config(seed=0))
    k1 = trainer.request(tiny_config(seed=1))
    assert trainer.cancel(k1)
    assert trainer.request(tiny_config(seed=1)) == k1
    assert trainer.status(k1).state == QUEUED
    spy.hold_start[0].set()
    assert trainer.wait(k1, TIMEOUT).state == DONE


# ---- failures ----------------------------------------------------------------------------


@pytest.mark.parametrize("blocked", ["models is a file", "root is a file"])
def test_an_unwritable_cache_fails_with_a_clear_message_and_retry_recovers(tmp_path, blocked):
    root = tmp_path / "cache"
    if blocked == "root is a file":
        root.write_text("not a folder")
    else:
        root.mkdir()
        checkpoints.models_root(root).write_text("not a folder")
    trainer = TrainingJobs(root=root, device="cpu")
    key = trainer.request(tiny_config())

    failed = trainer.wait(key, TIMEOUT)
    assert failed.state == FAILED and not failed.active
    assert "cache cannot be written" in failed.message and "retry" in failed.message
    assert failed.result is None and failed.estimate_s is None and failed.position == 0
    assert trainer.wait(key, 0).state == FAILED  # it stays failed until someone retries

    if blocked == "root is a file":
        root.unlink()
    else:
        checkpoints.models_root(root).unlink()
    trainer.retry(key)
    assert trainer.status(key).state in (QUEUED, RUNNING, DONE)
    done = trainer.wait(key, TIMEOUT)
    assert done.state == DONE and done.result.trained_now and done.message == ""
    assert (checkpoints.models_root(root) / key / checkpoints.META).is_file()


def test_any_failure_is_kept_on_its_job_and_the_worker_carries_on(spy, trainer):
    spy.fail[5] = RuntimeError("boom")
    bad = trainer.request(tiny_config(seed=5))
    good = trainer.request(tiny_config(seed=6))
    failed = trainer.wait(bad, TIMEOUT)
    assert failed.state == FAILED and "RuntimeError: boom" in failed.message
    assert trainer.wait(good, TIMEOUT).state == DONE  # the worker survived

    del spy.fail[5]
    assert trainer.request(tiny_config(seed=5)) == bad  # a failed job is queued again on request
    assert trainer.wait(bad, TIMEOUT).state == DONE
    assert trainer.status(bad).message == ""


def test_retry_of_an_unknown_job(trainer):
    with pytest.raises(KeyError):
        trainer.retry("0123456789abcdef")
    assert trainer.status("0123456789abcdef") is None


def test_the_disk_full_message():
    message = jobs._explain(OSError(28, "No space left on device"))
    assert "disk is full" in message
    assert "cannot be written" in jobs._explain(PermissionError(13, "Permission denied"))


# ---- status, progress, estimates, wait ---------------------------------------------------


def test_status_reports_progress_and_estimates(spy, trainer):
    config = tiny_config(epochs=2)  # 20 batches an epoch: one report at the end of each
    gate = spy.hold(0, after_first_report=True)
    key = trainer.request(config)
    until(lambda: trainer.status(key).progress is not None, "the first progress report")

    running = trainer.status(key)
    assert running.state == RUNNING and running.active and running.position == 0
    assert (running.progress.epoch, running.progress.epochs, running.progress.fraction) == (1, 2, 0.5)
    full = config.epochs * jobs.SECONDS_PER_EPOCH_GUESS * config.train_limit / 60_000
    assert running.estimate_s == pytest.approx(full / 2)  # half done, at the guessed speed

    gate.set()
    done = trainer.wait(key, TIMEOUT)
    assert done.state == DONE and done.progress.fraction == 1.0 and done.estimate_s is None
    assert len(done.result.history) == 2 and done.result.info.epochs_done == 2

    # The next estimate uses the speed just measured, not the guess.
    per_epoch = sum(r["seconds"] for r in done.result.history) / 2
    spy.hold(1)
    other = trainer.request(tiny_config(seed=1, epochs=3))
    until(lambda: spy.started(1), "the second job to start")
    assert trainer.status(other).estimate_s == pytest.approx(3 * per_epoch)


def test_wait_returns_at_the_timeout_while_the_job_runs(spy, trainer):
    spy.hold(0)
    key = trainer.request(tiny_config())
    until(lambda: spy.started(0), "the job to start")
    start = time.monotonic()
    status = trainer.wait(key, timeout=0.3)
    assert 0.25 <= time.monotonic() - start < 30
    assert status.state == RUNNING
    spy.hold_start[0].set()
    assert trainer.wait(key, TIMEOUT).state == DONE


def test_all_lists_running_then_the_queue_then_the_rest(spy, trainer):
    spy.hold(0)
    keys = [trainer.request(tiny_config(seed=s)) for s in (0, 1, 2, 3)]
    until(lambda: spy.started(0), "the first job to start")
    trainer.cancel(keys[1])
    assert [(s.key, s.state) for s in trainer.all()] == [
        (keys[0], RUNNING),
        (keys[2], QUEUED),
        (keys[3], QUEUED),
        (keys[1], CANCELLED),
    ]
    spy.hold_start[0].set()
    trainer.wait(keys[3], TIMEOUT)


# ---- two processes -----------------------------------------------------------------------

OTHER_PROCESS = """
import json, pathlib, sys, time
from core.train import load_or_train
from tests.conftest import tiny_config

root, started, go = (pathlib.Path(a) for a in sys.argv[1:4])

def progress(p):
    if not started.exists():  # hold the lock, mid-training, until the test says go
        started.write_text("training")
        deadline = time.monotonic() + 120
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.02)

t = load_or_train(tiny_config(), progress=progress, root=root, device="cpu")
print(json.dumps({"key": t.info.key, "trained": t.trained_now}))
"""


@pytest.mark.slow
def test_a_job_waits_for_another_process_training_the_same_model(tmp_path):
    root, started, go = tmp_path / "cache", tmp_path / "started", tmp_path / "go"
    proc = subprocess.Popen(
        [sys.executable, "-c", OTHER_PROCESS, str(root), str(started), str(go)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        until(lambda: started.exists() or proc.poll() is not None, "the other process to start training")
        assert proc.poll() is None, proc.communicate()[1]

        trainer = TrainingJobs(root=root, device="cpu")
        key = trainer.request(tiny_config())
        until(lambda: trainer.status(key).state == WAITING, "the job to see the other process")
        waiting = trainer.status(key)
        assert waiting.active and waiting.result is None and waiting.estimate_s is not None
        assert "Another server process" in waiting.message
        time.sleep(0.3)
        assert trainer.status(key).state == WAITING  # it keeps waiting while the other one trains
        assert not (checkpoints.models_root(root) / key / checkpoints.META).exists()

        go.write_text("go")
        done = trainer.wait(key, TIMEOUT)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        go.write_text("go")
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    other = json.loads(out.strip().splitlines()[-1])
    assert other == {"key": key, "trained": True}
    assert done.state == DONE and done.message == ""
    assert done.result.trained_now is False and done.result.info.key == key
    on_disk = checkpoints.load_checkpoint(checkpoints.models_root(root) / key)
    for a, b in zip(done.result.model.parameters(), on_disk.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_cache_stays_within_its_cap_after_each_training(tmp_path):
    """With a cap of two models, training a third evicts the least recently used one that
    is not kept (here: the first is kept, as the default model would be)."""
    kept: set[str] = set()
    trainer = TrainingJobs(root=tmp_path, max_models=2, keep=lambda: kept)
    keys = []
    for seed in (101, 102, 103):
        keys.append(trainer.request(tiny_config(seed=seed)))
        kept.add(keys[0])
        assert trainer.wait(keys[-1], timeout=120).state == DONE
        time.sleep(0.05)  # distinct use times
    left = {info.key for info in checkpoints.list_checkpoints(tmp_path)}
    assert left == {keys[0], keys[2]}  # the just-trained model and the kept one stay
    trainer.close()


@pytest.mark.slow
def test_load_many_trainings_while_others_browse(tmp_path):
    """bench/training_queue.py, small: six sessions ask for six trainings at once while two
    browse; one training at a time in the order asked, browsing never blocked by them, no
    exception, the cache within its cap."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "training_queue", Path(__file__).parents[1] / "bench" / "training_queue.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.run(tmp_path, trainers=6, browsers=2, cap=4, train_limit=2000, epochs=1)
    assert result["errors"] == []
    assert result["trainings"] == 6 and result["done"] == 6
    assert result["overlapping"] == 0 and result["in_order"]
    assert result["steps"] > 0 and result["p95"] < 3.0
    assert result["models"] <= 4
