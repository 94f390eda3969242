"""The data set as a whole (issue 17) against its budgets, on the default model.

- The map of the 10,000 test digits (fc1, PCA, written beside the checkpoint), cold; read
  back from disk; and the WebGL figure of 10,000 points built (what a warm page run pays).
  Budgets: drawn within 5 s cold, 300 ms warm.
- Why a confusion cell fails (the most frequent one): contrast maps, channel differences,
  nearest training digits and the sentence, once the unit index and the training digits'
  fc1 exist.

    python bench/data_speed.py [--recipe default]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from timing import median_ms

from core import confusion, projection, units
from core.config import recipe
from core.data import load_mnist, to_tensor
from core.evaluate import evaluate
from core.network import network_of
from core.runs import Point
from core.train import load_or_train
from dashboard import data_figures

MAP_COLD_BUDGET_S, MAP_WARM_BUDGET_MS = 5.0, 300.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="default")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as every dashboard session thread runs (dashboard/Home.py)
    trained = load_or_train(recipe(args.recipe))
    model, data = trained.model, load_mnist(trained.info.data_source)
    evaluation = evaluate(model, data.test)
    print(f"model {trained.info.label}; 1 thread per session, as the dashboard runs")

    with tempfile.TemporaryDirectory() as tmp:
        folder, epoch = Path(tmp), trained.info.epochs_done
        start = time.perf_counter()
        found = projection.load_or_compute_projection(model, data.test, Point(folder, epoch, "test", data.fingerprint))
        figure = data_figures.data_map(
            found.points, evaluation.labels, evaluation.preds, data.classes, "true class", 0, found.explained
        )
        figure.to_json()
        cold = time.perf_counter() - start
        read_ms = median_ms(
            lambda: projection.load_or_compute_projection(
                model, data.test, Point(folder, epoch, "test", data.fingerprint)
            ),
            5,
        )

    def draw() -> None:
        data_figures.data_map(
            found.points, evaluation.labels, evaluation.preds, data.classes, "true class", 17, found.explained
        ).to_json()

    warm = median_ms(draw, 7)
    ok = lambda value, budget: "ok" if value <= budget else "OVER"  # noqa: E731
    print(
        f"data map of {len(found.points):,} digits, cold (fc1, PCA, written, figure built): {cold:.2f} s "
        f"(budget {MAP_COLD_BUDGET_S:.0f} s) {ok(cold, MAP_COLD_BUDGET_S)}"
    )
    print(f"data map read back from disk: {read_ms:.1f} ms; its figure built and serialised: {warm:.0f} ms "
          f"(budget {MAP_WARM_BUDGET_MS:.0f} ms) {ok(warm, MAP_WARM_BUDGET_MS)}")  # fmt: skip

    matrix = evaluation.confusion.copy()
    np.fill_diagonal(matrix, -1)
    a, b = divmod(int(matrix.argmax()), 10)
    index = units.activation_index(
        network_of(model, 10, to_tensor(data.test.images[:16]), "ref"), to_tensor(data.test.images)
    )
    start = time.perf_counter()
    train_features = projection.fc1_features(model, to_tensor(data.train.images))
    features_s = time.perf_counter() - start
    start = time.perf_counter()
    cell, correct = confusion.cell_digits(evaluation, a, b), confusion.correct_digits(evaluation, a)
    maps = confusion.contrast_maps(model, to_tensor(data.test.images[cell]), to_tensor(data.test.images[correct]), a, b)
    channels = confusion.channel_differences(index, cell, correct)
    shown = cell[:8]
    confusion.nearest_training_digits(
        projection.fc1_features(model, to_tensor(data.test.images[shown])), train_features, data.train.labels, a, b
    )
    sentence = confusion.explain_cell(maps, channels)
    cell_s = time.perf_counter() - start
    print(f"fc1 of the 60,000 training digits (once per model): {features_s:.2f} s")
    print(f"why cell {a} -> {b} fails ({len(cell)} digits against {len(correct)} read right): {cell_s:.2f} s")
    print(sentence)


if __name__ == "__main__":
    main()
