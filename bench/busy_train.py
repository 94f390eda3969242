"""The trainer on an idle machine and on a busy one (issue 20, item 4), in the same run.

One epoch of the default recipe (``core.train.train``) with two threads, with one, and with
the thread count chosen as it goes (``core.thread_choice``), first on an otherwise quiet
machine, then with one core kept busy by another process: a single-threaded matrix-multiply
loop, as a browser or a session computing maps would keep it. Prints each time and the
adaptive trainer's ratio to the best fixed choice in each condition.

    python bench/busy_train.py
"""

from __future__ import annotations

import multiprocessing
import time

import torch

from core.config import recipe
from core.data import load_mnist
from core.train import train


def _busy(stop) -> None:
    torch.set_num_threads(1)
    a = torch.randn(512, 512)
    while not stop.is_set():
        a = (a @ a).clamp_(-1, 1)


CHOICES = (("2 threads", 2), ("1 thread", 1), ("adaptive", None))


def _epoch(data, threads: int | None) -> float:
    torch.set_num_threads(threads or 2)
    start = time.perf_counter()
    train(recipe("default", epochs=1), data, torch.device("cpu"), adaptive_threads=threads is None)
    return time.perf_counter() - start


def main() -> None:
    data = load_mnist()
    train(recipe("default", epochs=1, train_limit=5000), data, torch.device("cpu"))  # warm-up
    for condition in ("idle", "one core busy"):
        stop = multiprocessing.Event()
        other = None
        if condition != "idle":
            other = multiprocessing.Process(target=_busy, args=(stop,))
            other.start()
            time.sleep(1.0)
        times = {name: _epoch(data, threads) for name, threads in CHOICES}
        if other is not None:
            stop.set()
            other.join()
        best = min(times["2 threads"], times["1 thread"])
        print(
            f"{condition:>14}: "
            + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in times.items())
            + f"; adaptive / best fixed = {times['adaptive'] / best:.2f}"
        )


if __name__ == "__main__":
    main()
