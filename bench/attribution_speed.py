"""Attribution speed: every registered method on one digit, and batched against looped.

For each method (each layer, for layer methods) it prints the time for one image and, for
100 images, one batched call against a Python loop of 100 single-image calls, with the
ratio (goal: batched at least 5x faster). The total for one sample over every method is
checked against the issue's 500 ms budget. Medians of warm runs.

    python bench/attribution_speed.py [--recipe reference]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from timing import median_ms

from core.attributions import METHODS, attribute
from core.config import recipe
from core.data import load_mnist, to_tensor
from core.train import load_or_train

BATCH = 100
ONE_SAMPLE_BUDGET_MS = 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="default")
    args = parser.parse_args()
    trained = load_or_train(recipe(args.recipe))
    model = trained.model
    test = load_mnist(trained.info.data_source).test
    images = to_tensor(test.images[:BATCH])
    targets = torch.from_numpy(test.labels[:BATCH])
    print(f"model {trained.info.label}; {torch.get_num_threads()} threads\n")
    print(f"{'method':<30} {'layer':<6} {'1 image':>9} {'100 batched':>12} {'100 looped':>11} {'looped/batched':>15}")
    one_sample_total = total_batched = total_looped = 0.0
    ratios = []
    for name, method in METHODS.items():
        for layer in method.layers or (None,):
            one = median_ms(
                lambda name=name, layer=layer: attribute(
                    name, model, images[:1], targets[:1], layer=layer, upsample=True
                ),
                5,
            )
            batched = median_ms(
                lambda name=name, layer=layer: attribute(name, model, images, targets, layer=layer, upsample=True), 3
            )
            looped = median_ms(
                lambda name=name, layer=layer: [
                    attribute(name, model, images[i : i + 1], targets[i : i + 1], layer=layer, upsample=True)
                    for i in range(BATCH)
                ],
                1,
            )
            one_sample_total += one
            total_batched += batched
            total_looped += looped
            ratios.append(looped / batched)
            print(
                f"{name:<30} {layer or '':<6} {one:7.1f} ms {batched:9.1f} ms {looped:8.0f} ms "
                f"{looped / batched:13.1f}x"
            )
    print(
        f"\nevery method and layer for one sample: {one_sample_total:.0f} ms "
        f"({one_sample_total / ONE_SAMPLE_BUDGET_MS:.2f}x the {ONE_SAMPLE_BUDGET_MS} ms budget)"
    )
    print(
        f"batched vs looped for {BATCH} images, all methods together: {total_looped / 1000:.2f} s looped / "
        f"{total_batched / 1000:.2f} s batched = {total_looped / total_batched:.1f}x (goal >= 5x); per method: median "
        f"{statistics.median(ratios):.1f}x, lowest {min(ratios):.1f}x"
    )


if __name__ == "__main__":
    main()
