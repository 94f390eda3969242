"""Probing the model (issue 18) against its budgets, on the default model, one torch thread
as a dashboard session runs.

- A stroke on the Edit tool: the canvas's strokes painted over the digit, the network's
  answer and one attribution map (Integrated Gradients; Saliency too), all computed afresh
  as on a new stroke. Budget 100 ms. The map's trust badge is timed separately (it runs
  its checks once per edited digit).
- A bend: 50 versions of a digit in one batched pass with every layer's similarity.
- The smallest change toward another class, on 20 test digits: time and whether it reached
  0.9 (budget 2 s).
- Flips across the test set: every test digit rotated within ±15° and shifted within ±2 px.

    python bench/probe_speed.py [--recipe default]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from timing import median_ms

from core import explanation_checks, probes
from core.attributions import AttributionRequest, explain, explainer
from core.config import recipe
from core.data import load_mnist, to_tensor
from core.evaluate import predict_logits
from core.preprocess import edit_digit
from core.train import load_or_train

STROKE_BUDGET_MS, CHANGE_BUDGET_S = 100.0, 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="default")
    args = parser.parse_args()
    trained = load_or_train(recipe(args.recipe))
    torch.set_num_threads(1)
    model, test = trained.model, load_mnist(trained.info.data_source).test
    digit = test.images[4]
    strokes = np.zeros((280, 280, 4), dtype=np.uint8)
    rng = np.random.default_rng(0)

    for method in ("Integrated Gradients", "Saliency"):
        request = AttributionRequest.of(method, {}, target="predicted", upsample=True)

        def stroke(request=request) -> None:
            y, x = rng.integers(40, 240, 2)
            strokes[y : y + 22, x : x + 22] = (0, 0, 0, 255)  # a new dab of ink: nothing cached can help
            edited = to_tensor(edit_digit(digit, strokes)[None])
            target = predict_logits(model, edited).argmax(1)
            explain(request, model, edited, target, None)

        ms = median_ms(stroke, 20)
        print(f"a stroke, {method}: {ms:.1f} ms ({ms / STROKE_BUDGET_MS:.2f} of the {STROKE_BUDGET_MS:.0f} ms budget)")
        x = to_tensor(edit_digit(digit, strokes)[None])
        target = predict_logits(model, x).argmax(1)
        badge = median_ms(
            lambda r=request, x=x, t=target: explanation_checks.verdicts(
                explainer(r), model, x, t, explanation_checks.digit_seed(x[0])
            ),
            3,
        )
        print(f"  its trust badge, once per edited digit: {badge:.0f} ms")

    for kind in probes.KINDS:
        ms = median_ms(lambda k=kind: probes.sweep(model, digit, k), 5)
        print(f"a bend of 50 versions, {kind}: {ms:.1f} ms")

    logits = predict_logits(model, to_tensor(test.images[:20]))
    times, reached = [], 0
    for i in range(20):
        target = int(logits[i].argsort(descending=True)[1])  # the runner-up class
        start = time.perf_counter()
        found = probes.counterfactual(model, test.images[i], target, 0.9)
        times.append(time.perf_counter() - start)
        reached += found.reached
    print(
        f"the smallest change toward the runner-up, 20 digits: median {statistics.median(times):.2f} s, worst "
        f"{max(times):.2f} s ({max(times) / CHANGE_BUDGET_S:.2f} of the {CHANGE_BUDGET_S:.0f} s budget); reached 0.9 "
        f"on {reached} of 20"
    )

    start = time.perf_counter()
    summary = probes.flip_summary(model, test.images, test.labels)
    print(
        f"flips across the 10,000 test digits: {time.perf_counter() - start:.1f} s; "
        f"{summary.rotation_flips.mean():.1%} flip within ±15°, {summary.shift_flips.mean():.1%} within ±2 px"
    )


if __name__ == "__main__":
    main()
