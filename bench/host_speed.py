"""A host's network beside the reference, in one run: every page's warm run, a trust badge cold,
and the background runs over the data (evaluation, data map, TracIn banks).

pytorch/examples' Net (1,199,882 parameters, about 20x the reference's multiply-adds per digit)
is opened with seeded weights (the cost does not depend on what they learned) into a temporary
cache beside the reference recipe trained there. Page runs are AppTest runs of the same script
the server runs, medians of warm runs, against the issue's 300 ms per page run; a badge is the
five checks of one new digit's map, against 1.5 s cold; background runs are timed once each
(they show progress on the pages).

    python bench/host_speed.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch
from page_speed import page_runs
from safetensors.torch import save_file
from timing import report

from core import influence, projection
from core.attributions import AttributionRequest, explainer
from core.config import NetSpec, recipe
from core.data import load_mnist, to_tensor
from core.evaluate import evaluate
from core.explanation_checks import verdicts
from core.host_networks import open_into_cache
from core.network_files import import_class
from core.thread_choice import use_threads
from core.train import load_cached, load_or_train

ROOT = Path(__file__).resolve().parents[1]
NET = f"{ROOT / 'tests' / 'nets' / 'examples_net.py'}:Net"
PAGES = ("overview", "browse", "errors", "feature_maps", "attributions", "your_digit", "probe")
PAGE_BUDGET_MS = 300
BADGE_BUDGET_MS = 1500
BADGE_METHODS = ("Saliency", "Integrated Gradients", "Input × Gradient", "Guided Backprop", "Occlusion")


def badges(model, data) -> None:
    for i, method in enumerate(BADGE_METHODS):
        x = to_tensor(data.test.images[100 + i : 101 + i])  # a digit no earlier call saw
        target = model(x).argmax(1)
        run = explainer(AttributionRequest.of(method, {}, upsample=True))
        start = time.perf_counter()
        verdicts(run, model, x, target, seed=i)
        report(f"badge, cold: {method}", (time.perf_counter() - start) * 1000, BADGE_BUDGET_MS)


def background(model, data) -> None:
    start = time.perf_counter()
    evaluate(model, data.test)
    report("evaluation of the 10,000 test digits", (time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    projection.fc1_features(model, to_tensor(data.test.images))
    report("data map features, 10,000 test digits", (time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    influence.compute_bank(model, data.train.images, epoch=1)
    report("TracIn bank, 60,000 training digits", (time.perf_counter() - start) * 1000)


def main() -> None:
    use_threads(1)  # as a dashboard session runs
    data = load_mnist()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        os.environ["MNIST_CNN_CACHE"] = str(root / "cache")
        os.environ["MNIST_CNN_TRAINING"] = "off"
        reference = load_or_train(recipe("reference"), root=root / "cache", adaptive_threads=False)
        torch.manual_seed(0)
        weights = root / "net.safetensors"
        save_file({k: v.contiguous() for k, v in import_class(NET)[0]().state_dict().items()}, weights)
        host = open_into_cache(NetSpec(NET, str(weights), 0.1307, 0.3081), data, root / "cache")
        models = {
            "reference CNN (16,614 parameters)": reference.info.key,
            "pytorch/examples Net (1,199,882 parameters)": host.key,
        }
        print("one thread; page runs are medians of warm runs, the rest single runs")
        for title, key in models.items():
            print(f"\n{title}, model {key}")
            model = load_cached(key, root=root / "cache").model
            page_runs(key, {page: PAGE_BUDGET_MS for page in PAGES})
            badges(model, data)
            background(model, data)


if __name__ == "__main__":
    main()
