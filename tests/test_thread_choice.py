"""The trainer's thread count, chosen by measuring (core.thread_choice), on a simulated clock."""

from __future__ import annotations

import threading

import pytest
import torch

from core.thread_choice import EXPLORE_EVERY, LOOK, WINDOW, IdleCores, ThreadChooser, use_threads


class Machine:
    """A fake clock whose batch time depends on the thread count set: ``speed[threads]``."""

    def __init__(self, speed: dict[int, float], idle: float | None = None) -> None:
        self.speed, self.now, self.threads, self.calls = speed, 0.0, None, []
        self.idle = idle  # cores standing idle meanwhile, as /proc/stat would say (None: unknown)

    def idle_cores(self) -> float | None:
        return self.idle

    def clock(self) -> float:
        return self.now

    def set_threads(self, n: int) -> None:
        self.threads = n
        self.calls.append(n)

    def run(self, chooser: ThreadChooser, batches: int) -> None:
        for _ in range(batches):
            self.now += self.speed[self.threads]
            chooser.batch_done()


def test_idle_machine_keeps_every_thread():
    machine = Machine({1: 0.010, 2: 0.006})  # two threads faster, as on an idle machine
    chooser = ThreadChooser(2, machine.clock, machine.set_threads, machine.idle_cores)
    machine.run(chooser, WINDOW * 60)
    assert chooser.seconds_per_batch[2] == pytest.approx(0.006) and chooser.seconds_per_batch[1] == pytest.approx(0.01)
    used = chooser.history
    assert used.count(2) / len(used) >= 1 - 1 / EXPLORE_EVERY - 0.02  # one window in EXPLORE_EVERY looks at 1
    assert 2 in used[-2:]


def test_a_busy_core_moves_training_to_one_thread_and_back():
    machine = Machine({1: 0.011, 2: 0.020})  # another process holds a core: two threads wait on each other
    chooser = ThreadChooser(2, machine.clock, machine.set_threads, machine.idle_cores)
    machine.run(chooser, WINDOW * 30)
    late = chooser.history[10:]
    assert late.count(1) / len(late) >= 1 - 1 / EXPLORE_EVERY - 0.05
    machine.speed = {1: 0.010, 2: 0.006}  # the other process ends
    machine.run(chooser, WINDOW * 30)
    late = chooser.history[-15:]
    assert late.count(2) / len(late) >= 1 - 1 / EXPLORE_EVERY - 0.1  # found again by looking


def test_time_lost_to_looking_is_bounded():
    """Against always using the best count: at most about one window in EXPLORE_EVERY is slower."""
    machine = Machine({1: 0.011, 2: 0.020})
    chooser = ThreadChooser(2, machine.clock, machine.set_threads, machine.idle_cores)
    batches = WINDOW * 120
    machine.run(chooser, batches)
    best = batches * 0.011
    assert machine.now <= best * (1 + (0.020 / 0.011 - 1) / EXPLORE_EVERY + 0.05)


def test_a_core_gone_idle_brings_every_thread_back_at_once():
    """A browser's page load pushes training onto one thread; when it goes quiet the idle core
    brings all threads back after two windows, not EXPLORE_EVERY."""
    machine = Machine({1: 0.011, 2: 0.020}, idle=0.05)  # the other core is busy
    chooser = ThreadChooser(2, machine.clock, machine.set_threads, machine.idle_cores)
    machine.run(chooser, WINDOW * 12)
    assert chooser.threads == 1
    machine.speed, machine.idle = {1: 0.010, 2: 0.006}, 0.95  # the browser went quiet: a core idles
    machine.run(chooser, WINDOW * 2)
    assert chooser.threads == 2
    machine.run(chooser, WINDOW * 20)
    assert chooser.history[-20:].count(2) == 20


def test_an_idle_core_that_does_not_help_costs_about_one_window_in_explore_every():
    """/proc/stat may show idle cores this process cannot use (a container's CPU quota, a core
    shared by hyperthreads): each look that does not pay doubles the wait before the next."""
    machine = Machine({1: 0.010, 2: 0.013}, idle=1.0)
    chooser = ThreadChooser(2, machine.clock, machine.set_threads, machine.idle_cores)
    machine.run(chooser, WINDOW * 200)
    late = chooser.history[50:]
    assert late.count(2) / len(late) <= 1 / EXPLORE_EVERY + 0.02
    machine.speed = {1: 0.010, 2: 0.006}  # now the idle core helps: found again, and kept
    machine.run(chooser, WINDOW * (EXPLORE_EVERY + 10))
    assert chooser.history[-10:] == [2] * 10
    machine.speed, machine.idle = {1: 0.011, 2: 0.020}, 0.0  # busy again: one thread
    machine.run(chooser, WINDOW * 12)
    assert chooser.threads == 1
    machine.speed, machine.idle = {1: 0.010, 2: 0.006}, 1.0  # quiet: back within two windows, not ten
    machine.run(chooser, WINDOW * 2)
    assert chooser.threads == 2


def test_idle_cores_from_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    lines = "cpu0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0\n"

    def write(user, idle, iowait):
        stat.write_text(f"cpu  {user} 0 0 {idle} {iowait} 0 0 0 0 0\n{lines}")

    write(100, 100, 0)
    idle = IdleCores(str(stat))
    write(150, 140, 10)  # of 100 ticks on two cores, 50 idle (40 idle, 10 waiting on disk)
    assert idle() == pytest.approx(1.0)
    write(250, 140, 10)  # both cores busy
    assert idle() == pytest.approx(0.0)
    assert IdleCores(str(tmp_path / "missing"))() is None


def test_a_look_at_a_count_is_a_short_window_and_staying_a_full_one():
    """A look at the wrong count is what a busy machine pays for: it lasts LOOK batches."""
    machine = Machine({1: 0.011, 2: 0.020})
    chooser = ThreadChooser(2, machine.clock, machine.set_threads, machine.idle_cores)
    machine.run(chooser, LOOK)
    assert chooser.history == [2] and chooser.threads == 1  # the first window: a look
    machine.run(chooser, LOOK)
    assert chooser.history == [2, 1] and chooser.threads == 1  # a look at one thread, kept
    machine.run(chooser, WINDOW - 1)
    assert chooser.history == [2, 1]
    machine.run(chooser, 1)
    assert chooser.history == [2, 1, 1]  # staying: full windows


def test_one_thread_machines_never_switch():
    machine = Machine({1: 0.01})
    chooser = ThreadChooser(1, machine.clock, machine.set_threads, machine.idle_cores)
    machine.run(chooser, WINDOW * 10)
    assert set(machine.calls) == {1}


# ---- one thread's count, whatever other threads set (use_threads) ------------------------


def _count_after_another_thread_sets_one(set_count) -> int:
    """A fresh thread sets two threads before its first torch operation, the main thread then
    sets one (as a page's run does), and the fresh thread reports what its operations use."""
    before = torch.get_num_threads()
    ready, go, seen = threading.Event(), threading.Event(), []

    def worker() -> None:
        set_count(2)
        ready.set()
        go.wait(10)
        torch.ones(4).sum()  # a first operation
        seen.append(torch.get_num_threads())

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        ready.wait(10)
        torch.set_num_threads(1)
    finally:
        go.set()
        thread.join(10)
        torch.set_num_threads(before)
    return seen[0]


def test_use_threads_keeps_a_threads_count_when_another_thread_sets_its_own():
    assert _count_after_another_thread_sets_one(use_threads) == 2


def test_torch_set_num_threads_alone_loses_it_which_is_why_use_threads_exists():
    """What use_threads guards against, on this torch: if this stops being 1, torch changed
    and use_threads' reading of the count may no longer be needed."""
    assert _count_after_another_thread_sets_one(torch.set_num_threads) == 1
