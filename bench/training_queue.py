"""A class that tries to knock the server over: N sessions each ask for a different training
run at once while M others keep browsing, against one shared trainer and one shared model,
as the sessions of one server do (each session is a thread; what a browsing step runs is
what the Feature maps and Attributions pages compute for a new digit: every layer's output,
five attribution maps through the heavy-work gate, and the class probabilities).

It checks and prints: the trainings ran one at a time, in the order they were asked; the
p50/p95 of the browsing steps meanwhile against the 3 s goal; no exception; the cache
within its cap afterwards. (Streamlit's AppTest cannot run sessions concurrently in one
process, so the UI layer is left out here; bench/classroom.py drives the real server.)

    python bench/training_queue.py                       # 30 trainings, 8 browsers, cap 20
    python bench/training_queue.py --trainers 6 --browsers 2 --cap 4 --train-limit 2000
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

import core.train
from core import checkpoints
from core.activations import layer_outputs
from core.attributions import attribute
from core.config import recipe
from core.data import load_mnist, to_tensor
from core.jobs import DONE, TrainingJobs
from core.workers import Gate

PAGE_METHODS = ["Saliency", "Integrated Gradients", "Input × Gradient", "Guided Backprop", "Occlusion"]


def run(root: Path, trainers: int, browsers: int, cap: int, train_limit: int, epochs: int) -> dict:
    """The load test (tests/test_jobs.py runs it small)."""
    browsed = core.train.load_or_train(recipe("reference", train_limit=train_limit), root=root)
    intervals: list[tuple[int, float, float]] = []
    real_train = core.train.train

    def timed_train(config, *args, **kwargs):
        start = time.perf_counter()
        try:
            return real_train(config, *args, **kwargs)
        finally:
            intervals.append((config.seed, start, time.perf_counter()))

    core.train.train = timed_train
    jobs = TrainingJobs(root=root, max_models=cap, keep=lambda: {browsed.info.key})
    gate = Gate(slots=2)
    errors: list[str] = []
    steps: list[float] = []
    asked: list[int] = []
    lock = threading.Lock()
    test = load_mnist().test

    def trainer(i: int) -> None:
        try:
            config = recipe("reference", seed=1000 + i, epochs=epochs, train_limit=train_limit)
            with lock:  # the order in which requests reach the trainer
                jobs.request(config)
                asked.append(config.seed)
        except Exception as err:
            errors.append(f"trainer {i}: {err!r}")

    def browser(i: int, stop: threading.Event) -> None:
        try:
            for k in itertools.count():
                if stop.is_set():
                    return
                x = to_tensor(test.images[(i * 997 + k * 31) % len(test) :][:1])
                start = time.perf_counter()
                outputs = layer_outputs(browsed.model, x)
                target = torch.tensor([int(outputs["fc2"].argmax())])
                with gate:
                    for method in PAGE_METHODS:
                        attribute(method, browsed.model, x, target)
                with lock:
                    steps.append(time.perf_counter() - start)
        except Exception as err:
            errors.append(f"browser {i}: {err!r}")

    stop = threading.Event()
    watchers = [threading.Thread(target=browser, args=(i, stop)) for i in range(browsers)]
    for t in watchers:
        t.start()
    askers = [threading.Thread(target=trainer, args=(i,)) for i in range(trainers)]
    for t in askers:
        t.start()
    for t in askers:
        t.join()
    states = [jobs.wait(status.key, timeout=3600).state for status in jobs.all()]
    stop.set()
    for t in watchers:
        t.join()
    jobs.close()
    core.train.train = real_train

    ordered = sorted(intervals, key=lambda x: x[1])
    return {
        "trainings": len(intervals),
        "done": states.count(DONE),
        "overlapping": sum(1 for a, b in itertools.pairwise(ordered) if b[1] < a[2]),
        "in_order": [seed for seed, _, _ in ordered] == asked,
        "steps": len(steps),
        "p50": statistics.median(steps) if steps else float("nan"),
        "p95": statistics.quantiles(steps, n=20)[-1] if len(steps) > 1 else float("nan"),
        "errors": errors,
        "models": len(checkpoints.list_checkpoints(root)),
        "cap": cap,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainers", type=int, default=30)
    parser.add_argument("--browsers", type=int, default=8)
    parser.add_argument("--cap", type=int, default=20)
    parser.add_argument("--train-limit", type=int, default=10000, help="training images per run (0 = all)")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        r = run(Path(tmp), args.trainers, args.browsers, args.cap, args.train_limit, args.epochs)
    print(
        f"{r['trainings']} trainings ({r['done']} jobs done), {r['overlapping']} overlapping, in the order asked: "
        f"{r['in_order']}"
    )
    print(f"{r['steps']} browsing steps meanwhile: p50 {r['p50']:.2f} s, p95 {r['p95']:.2f} s (goal 3 s)")
    print(f"cache: {r['models']} models (cap {r['cap']}); exceptions: {len(r['errors'])}")
    for error in r["errors"][:5]:
        print("  ", error)


if __name__ == "__main__":
    main()
