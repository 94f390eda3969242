"""Trust badges and the scorecard against their budgets.

- The badges of one digit (the five maps the Attributions page shows by default): cold
  (fresh verdicts: 1 + 2 x 3 maps each plus the deletion and insertion curves) and warm
  (what a page run pays once they are cached: the dashboard's st.cache_data lookups, with
  their hashing and unpickling). Budgets 1.5 s cold, 100 ms warm.
- The scorecard over 500 digits (every method x every check). Budget 3 min on 2 cores.

    python bench/trust_speed.py [--digits 500] [--recipe default]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from core import explanation_checks as checks
from core import scorecard
from core.attributions import AttributionRequest, explainer
from core.checkpoints import ModelRef
from core.config import recipe
from core.data import load_mnist, to_tensor
from core.train import load_or_train

DEFAULT_METHODS = ["Saliency", "Integrated Gradients", "Input × Gradient", "Guided Backprop", "Occlusion"]
COLD_BUDGET_S, WARM_BUDGET_MS, SCORECARD_BUDGET_S = 1.5, 100, 180


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="default")
    parser.add_argument("--digits", type=int, default=scorecard.DIGITS)
    parser.add_argument("--skip-scorecard", action="store_true")
    args = parser.parse_args()
    trained = load_or_train(recipe(args.recipe))
    model, test = trained.model, load_mnist(trained.info.data_source).test
    print(f"model {trained.info.label}; {torch.get_num_threads()} threads")

    colds = []
    for index in range(5):  # five different digits, each cold
        x = to_tensor(test.images[index : index + 1])
        with torch.no_grad():
            target = model(x).argmax(1)
        start = time.perf_counter()
        for method in DEFAULT_METHODS:
            request = AttributionRequest.of(method, {}, upsample=True)
            checks.verdicts(explainer(request), model, x, target, checks.digit_seed(x[0]))
        colds.append(time.perf_counter() - start)
    from core.config import cache_dir
    from dashboard import cache as dashboard_cache  # the page's own cached function

    pixels = test.images[0].tobytes()
    requests = [AttributionRequest.of(m, {}, target="predicted") for m in DEFAULT_METHODS]
    args_of = [(str(cache_dir()), trained.info.key, None, pixels, int(test.labels[0]), r) for r in requests]
    for a in args_of:
        dashboard_cache._verdict(*a)  # fill the cache
    start = time.perf_counter()
    texts = [dashboard_cache._verdict(*a).text for a in args_of]
    warm_ms = (time.perf_counter() - start) * 1000
    cold = statistics.median(colds)
    print(
        f"badges for one digit, cold: median {cold:.2f} s over 5 digits (budget {COLD_BUDGET_S} s) "
        f"{'ok' if cold <= COLD_BUDGET_S else 'OVER'}"
    )
    print(f"badges for one digit, warm (cached verdicts): {warm_ms:.3f} ms (budget {WARM_BUDGET_MS} ms); {texts[0]!r}")

    if args.skip_scorecard:
        return
    with tempfile.TemporaryDirectory() as tmp:  # a fresh cache folder: nothing read back
        root = Path(tmp)
        fresh = load_or_train(trained.info.config, root=root)
        start = time.perf_counter()
        card = scorecard.load_or_compute(ModelRef(fresh.info.key), args.digits, root=root)
        seconds = time.perf_counter() - start
    print(
        f"scorecard over {card.digits} digits: {seconds:.0f} s (budget {SCORECARD_BUDGET_S} s) "
        f"{'ok' if seconds <= SCORECARD_BUDGET_S else 'OVER'}"
    )
    print(card.summary())


if __name__ == "__main__":
    main()
