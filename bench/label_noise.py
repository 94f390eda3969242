"""How well the Suspicious labels page finds wrong labels: purpose-made noise (issue 17).

A copy of the training labels has a known share changed to another class at random
(``TrainConfig.flip_labels``, seeded); the recipe trains on them; confident learning
(``core.label_issues``) then ranks the training digits from that model's probabilities.
Printed per seed: how many digits cleanlab flags, and precision and recall at the flip count
(the share of the top K of the ranking that were flipped, K = the number flipped; the
ranking is cleanlab's flagged digits, then the rest by self-confidence, as the page shows it),
and the share of the flipped labels found within the first 2 K. Also the time to
build the TracIn banks (both splits, every saved point) and their size on disk, and one TracIn
query: budgets 60 s and 300 ms.

The flipped models stay in the cache: open one in the dashboard (model list, "1% labels
flipped") and the Suspicious labels page marks the digits flipped on purpose.

    python bench/label_noise.py [--recipe default] [--share 0.01] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from timing import median_ms

from core import influence, label_issues
from core.config import recipe
from core.data import load_mnist
from core.evaluate import softmax
from core.train import flipped, load_or_train, training_labels

BANKS_BUDGET_S, QUERY_BUDGET_MS = 60.0, 300.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="default")
    parser.add_argument("--share", type=float, default=0.01)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    data = load_mnist()
    for seed in args.seeds:
        config = recipe(args.recipe, seed=seed, flip_labels=args.share)
        trained = load_or_train(config)
        labels = training_labels(config, data)
        wrong, _ = flipped(config, torch.from_numpy(data.train.labels[: len(labels)]))
        start = time.perf_counter()
        banks = influence.load_or_compute_banks(trained.info, data)
        bank_seconds = time.perf_counter() - start
        issues = label_issues.find(labels.numpy(), softmax(banks["train"][-1].logits))
        precision, recall = label_issues.precision_recall(issues.ranking, wrong.numpy())
        within = label_issues.found_within(issues.ranking, wrong.numpy(), 2 * len(wrong))
        flagged_hits = np.isin(issues.flagged, wrong.numpy()).sum()
        fit = float((banks["train"][-1].logits.argmax(1) == labels.numpy()).mean())
        print(
            f"seed {seed}: {len(wrong)} of {len(labels):,} labels flipped; the model fits {fit:.1%} of its labels, "
            f"test accuracy {trained.info.test_accuracy:.2%}"
        )
        print(
            f"  cleanlab flags {len(issues.flagged):,} (precision {flagged_hits / max(len(issues.flagged), 1):.2f}, "
            f"recall {flagged_hits / len(wrong):.2f}); at the flip count {len(wrong)}: "
            f"precision {precision:.2f}, recall {recall:.2f}; found within the first {2 * len(wrong)} "
            f"(twice the flip count, the page's ranking past the flagged ones): {within:.2f}"
        )
        torch.set_num_threads(1)  # as a dashboard session's thread
        training = influence.TrainingSide.of(
            banks["train"], labels.numpy(), influence.checkpoint_weights(config, len(labels))
        )
        test_inputs = np.stack([bank.inputs[0] for bank in banks["test"]])
        test_logits = np.stack([bank.logits[0] for bank in banks["test"]])
        target = int(test_logits[-1].argmax())
        query = median_ms(
            lambda t=training, i=test_inputs, z=test_logits, c=target: influence.tracin_scores(t, i, z, c), 20
        )
        size = sum(run.path.stat().st_size for run in influence.bank_runs(trained.info, data))
        print(
            f"  TracIn banks ({trained.info.epochs_done} saved points, both splits, cold or cached; "
            f"{size / 1e6:.1f} MB on disk): {bank_seconds:.1f} s "
            f"({bank_seconds / BANKS_BUDGET_S:.2f} of the {BANKS_BUDGET_S:.0f} s budget); one query "
            f"{query:.1f} ms ({query / QUERY_BUDGET_MS:.3f} of {QUERY_BUDGET_MS:.0f} ms)"
        )
        torch.set_num_threads(2)


if __name__ == "__main__":
    main()
