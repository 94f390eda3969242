"""Unit cards against their budgets (issue 16), on the default model.

- The activation index of the 10,000 test digits (every conv channel and fc1 unit: max,
  mean, where), computed and written beside the checkpoint. Budget 10 s on 2 cores.
- One unit card, cold once the index exists: the index read back and verified from disk,
  the top 16 digits with their receptive fields, the mean per class, the ablation over the
  10,000 test digits and one value taken apart. Budget 1 s. Warm (what a page run pays once
  the dashboard's caches hold it): budget 150 ms.
- A whole layer's feature visualisations (one batch, conv4's 32 units). Budget 5 s.
- Which channels carry the evidence for one digit (CRP, every channel's heatmap), per layer.
  Budget 300 ms.

    python bench/unit_speed.py [--recipe default]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from timing import median_ms

from core import units
from core.config import recipe
from core.data import load_mnist, to_tensor
from core.evaluate import evaluate
from core.runs import Point
from core.train import load_or_train

INDEX_BUDGET_S, COLD_BUDGET_S, WARM_BUDGET_MS, VISUAL_BUDGET_S, RANKING_BUDGET_MS = 10.0, 1.0, 150.0, 5.0, 300.0
CARDS = [("conv1", 2), ("conv2", 5), ("conv3", 7), ("conv4", 11), ("fc1", 3)]


def verdict(value: float, budget: float) -> str:
    return "ok" if value <= budget else "OVER"


def card(model, index, test, images, preds, layer: str, unit: int) -> None:
    """Everything the Units page computes for one unit, from core (the evaluation's
    predictions are cached beside the checkpoint, as the index is)."""
    top = index.top_digits(layer, unit, 16)
    if layer != "fc1":
        [units.receptive_field(layer, *index.peak(layer, unit, int(i))) for i in top]
        units.conv_step(model, images[:1], layer, unit, *index.peak(layer, unit, 0))
    index.mean_per_class(layer, unit, test.labels)
    active = index.maximum[layer][:, unit] > 0
    units.ablation_accuracy(model, images, test.labels, layer, unit, before=preds, active=active)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="default")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as every dashboard session thread runs (dashboard/Home.py)
    trained = load_or_train(recipe(args.recipe))
    model, data = trained.model, load_mnist(trained.info.data_source)
    test, images = data.test, to_tensor(data.test.images)
    print(f"model {trained.info.label}; {torch.get_num_threads()} thread per session, as the dashboard runs")

    preds = evaluate(model, test).preds
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        units.load_or_compute_index(model, test, Point(folder, 3, "test", data.fingerprint))
        index_s = time.perf_counter() - start
        print(
            f"activation index of {len(test):,} test digits, computed and written: {index_s:.2f} s "
            f"(budget {INDEX_BUDGET_S:.0f} s) {verdict(index_s, INDEX_BUDGET_S)}"
        )
        colds = []
        for layer, unit in CARDS:
            start = time.perf_counter()
            index = units.load_or_compute_index(
                model, test, Point(folder, 3, "test", data.fingerprint)
            )  # a verified read
            card(model, index, test, images, preds, layer, unit)
            colds.append(time.perf_counter() - start)
    cold = statistics.median(colds)
    print(
        f"unit card, cold (index read from disk): median {cold:.2f} s over {len(CARDS)} units, max {max(colds):.2f} s "
        f"(budget {COLD_BUDGET_S} s) {verdict(cold, COLD_BUDGET_S)}"
    )

    from core.config import cache_dir
    from dashboard import cache as dashboard_cache  # the page's own cached functions

    root, key, pixels = str(cache_dir()), trained.info.key, test.images[0].tobytes()
    info = trained.info  # the page reads the index beside the real checkpoint
    units.load_or_compute_index(model, test, Point(info.folder, info.epochs_done, "test", data.fingerprint))

    def warm_card() -> None:
        dashboard_cache._unit_ablation(root, key, trained.info.epochs_done, "conv3", 7)
        dashboard_cache._conv_step(root, key, None, pixels, "conv3", 7, 2, 3)

    warm = median_ms(warm_card, 7)
    print(f"unit card, warm (the dashboard's cached ablation and step): {warm:.2f} ms (budget {WARM_BUDGET_MS:.0f} ms)")

    times = []
    for seed in range(3):
        start = time.perf_counter()
        visual = units.feature_visualisation(model, "conv4", seed=seed)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    print(
        f"feature visualisation of conv4's {len(visual.images)} units in one batch: median {seconds:.2f} s "
        f"(budget {VISUAL_BUDGET_S:.0f} s) {verdict(seconds, VISUAL_BUDGET_S)}; {visual.how}"
    )
    ranking(model, images)


def ranking(model, images) -> None:
    from core.relevance import RELEVANCE_LAYERS, channel_relevance

    x = images[:1]
    target = int(model(x).argmax())
    for layer in RELEVANCE_LAYERS:
        ms = median_ms(lambda layer=layer: channel_relevance(model, x, layer, target), 5)
        print(
            f"channel ranking of {layer} for one digit, every heatmap included: {ms:.0f} ms "
            f"(budget {RANKING_BUDGET_MS:.0f} ms) {verdict(ms, RANKING_BUDGET_MS)}"
        )


if __name__ == "__main__":
    main()
