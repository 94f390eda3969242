"""The trainer's thread count, chosen by measuring (core.thread_choice), on a simulated clock."""

from __future__ import annotations

import pytest

from core.thread_choice import EXPLORE_EVERY, WINDOW, ThreadChooser


class Machine:
    """A fake clock whose batch time depends on the thread count set: ``speed[threads]``."""

    def __init__(self, speed: dict[int, float]) -> None:
        self.speed, self.now, self.threads, self.calls = speed, 0.0, None, []

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
    chooser = ThreadChooser(2, machine.clock, machine.set_threads)
    machine.run(chooser, WINDOW * 60)
    assert chooser.seconds_per_batch[2] == pytest.approx(0.006) and chooser.seconds_per_batch[1] == pytest.approx(0.01)
    used = chooser.history
    assert used.count(2) / len(used) >= 1 - 1 / EXPLORE_EVERY - 0.02  # one window in EXPLORE_EVERY looks at 1
    assert 2 in used[-2:]


def test_a_busy_core_moves_training_to_one_thread_and_back():
    machine = Machine({1: 0.011, 2: 0.020})  # another process holds a core: two threads wait on each other
    chooser = ThreadChooser(2, machine.clock, machine.set_threads)
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
    chooser = ThreadChooser(2, machine.clock, machine.set_threads)
    batches = WINDOW * 120
    machine.run(chooser, batches)
    best = batches * 0.011
    assert machine.now <= best * (1 + (0.020 / 0.011 - 1) / EXPLORE_EVERY + 0.05)


def test_one_thread_machines_never_switch():
    machine = Machine({1: 0.01})
    chooser = ThreadChooser(1, machine.clock, machine.set_threads)
    machine.run(chooser, WINDOW * 10)
    assert set(machine.calls) == {1}
