"""Unit cards against their budgets (issues 16 and 28): the reference (the default recipe) and
pytorch/examples' Net (seeded weights: the cost does not depend on what they learned), in one run.

- The activation index of the 10,000 test digits (every unit layer: max, mean, where),
  computed and written beside a checkpoint. Budget 10 s.
- One unit card, cold once the index exists: the index read back and verified from disk, the
  top 16 digits with their receptive fields, the mean per class, the layer's sorted table, the
  incoming weights and one value taken apart. Budget 1 s. Warm (what a page run pays once the
  dashboard's caches hold it, the reference): budget 150 ms. Zeroing the unit over the 10,000
  test digits runs in the background pool with progress (timed, no budget).
- A whole layer's feature visualisations (the last conv layer's units, in batches of 64). Budget 5 s.
- Which channels carry the evidence for one digit (CRP, every channel's heatmap), per layer of
  the reference. Budget 300 ms.

    python bench/unit_speed.py [--recipe default]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from timing import median_ms, report

from core import unit_steps, units
from core.config import recipe
from core.data import load_mnist, to_tensor
from core.evaluate import evaluate
from core.geometry import Geometry
from core.network import Network, network_of
from core.network_files import import_class
from core.runs import Point
from core.train import load_or_train

ROOT = Path(__file__).resolve().parents[1]
NET = f"{ROOT / 'tests' / 'nets' / 'examples_net.py'}:Net"
INDEX_BUDGET_MS, COLD_BUDGET_MS, WARM_BUDGET_MS, VISUAL_BUDGET_MS, RANKING_BUDGET_MS = 10_000, 1000, 150, 5000, 300


def card(network: Network, index, test, images, layer: str, unit: int) -> None:
    """Everything the Units page computes for one unit before it draws (the index is kept
    beside the checkpoint; zeroing the unit is :func:`ablation`, in the background)."""
    found = units.unit_layers(network)[layer]
    top = index.top_digits(layer, unit, 16)
    if found.grid is not None:
        field = Geometry(network).field(layer)
        [field.box(*index.peak(layer, unit, int(i))) for i in top]
    unit_steps.one_value(network, images[:1], layer, unit, *index.peak(layer, unit, 0))
    units.incoming_weights(network, layer, unit)
    index.mean_per_class(layer, unit, test.labels)
    index.layer_summary(layer, test.labels, 10)


def ablation(network: Network, index, test, images, preds, layer: str, unit: int) -> None:
    """Zeroing the unit over the 10,000 test digits, as the background pool runs it for the card."""
    found = units.unit_layers(network)[layer]
    active = index.maximum[layer][:, unit] > 0 if found.nonnegative else None
    units.ablation_accuracy(network, images, test.labels, layer, unit, before=preds, active=active)


def one_network(name: str, network: Network, data, folder: Path) -> None:
    test, images = data.test, to_tensor(data.test.images)
    with torch.inference_mode():
        preds = torch.cat([network.logits(images[i : i + 1000]).argmax(1) for i in range(0, len(images), 1000)])
    at = Point(folder, 1, "test", data.fingerprint)
    start = time.perf_counter()
    units.load_or_compute_index(network, test, at)
    report(f"{name}: activation index, computed and written", (time.perf_counter() - start) * 1000, INDEX_BUDGET_MS)
    layers = units.unit_layers(network)
    colds, zeroing = [], []
    for layer, found in layers.items():
        start = time.perf_counter()
        index = units.load_or_compute_index(network, test, at)  # a verified read
        card(network, index, test, images, layer, found.units // 2)
        colds.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        ablation(network, index, test, images, preds.numpy(), layer, found.units // 2)
        zeroing.append((time.perf_counter() - start) * 1000)
    report(f"{name}: unit card, cold (median of {len(colds)} layers)", statistics.median(colds), COLD_BUDGET_MS)
    report(f"{name}: unit card, cold (slowest layer)", max(colds), COLD_BUDGET_MS)
    report(f"{name}: zeroing a unit, in the background (median)", statistics.median(zeroing))
    report(f"{name}: zeroing a unit, in the background (slowest)", max(zeroing))
    last_conv = [layer for layer, found in layers.items() if found.grid is not None][-1]
    times = []
    for seed in range(3):  # the first call also pays torch's one-time autograd start-up
        start = time.perf_counter()
        visual = units.feature_visualisation(network, last_conv, seed=seed)
        times.append((time.perf_counter() - start) * 1000)
    what = f"{name}: feature visualisation of {last_conv} ({len(visual.images)} units)"
    report(f"{what}, median of 3", statistics.median(times), VISUAL_BUDGET_MS)
    report(f"{what}, first", times[0], VISUAL_BUDGET_MS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="default")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as every dashboard session thread runs (dashboard/Home.py)
    trained = load_or_train(recipe(args.recipe))
    data = load_mnist(trained.info.data_source)
    print(f"model {trained.info.label}; {torch.get_num_threads()} thread per session, as the dashboard runs")
    digits = to_tensor(data.test.images[:16])
    reference = network_of(trained.model, 10, digits, "the reference")
    torch.manual_seed(0)
    net = Network(import_class(NET)[0]().eval(), 10, digits, where="pytorch/examples' Net")
    with tempfile.TemporaryDirectory() as tmp:
        one_network("reference", reference, data, Path(tmp) / "reference")
        one_network("Net", net, data, Path(tmp) / "net")

    from core.config import cache_dir
    from dashboard import cache as dashboard_cache  # the page's own cached functions

    root, key, pixels = str(cache_dir()), trained.info.key, data.test.images[0].tobytes()
    info = trained.info  # the page reads the index beside the real checkpoint
    units.load_or_compute_index(reference, data.test, Point(info.folder, info.epochs_done, "test", data.fingerprint))
    evaluate(trained.model, data.test)

    done = dashboard_cache._unit_ablation(root, key, info.epochs_done, "conv3", 7, None)

    def warm_card() -> None:  # the pool holds the ablation: the page reads it back
        assert done is not None
        dashboard_cache._one_value(root, key, None, pixels, "conv3", 7, 2, 3)
        dashboard_cache._geometry(root, key, None)

    report("reference: unit card, warm (the dashboard's caches)", median_ms(warm_card, 7), WARM_BUDGET_MS)
    ranking(trained.model, to_tensor(data.test.images[:1]))


def ranking(model, x) -> None:
    from core.relevance import RELEVANCE_LAYERS, channel_relevance

    target = int(model(x).argmax())
    for layer in RELEVANCE_LAYERS:
        ms = median_ms(lambda layer=layer: channel_relevance(model, x, layer, target), 5)
        report(f"reference: channel ranking of {layer} for one digit", ms, RANKING_BUDGET_MS)


if __name__ == "__main__":
    main()
