"""Which maps to trust: every attribution method scored by every check over a fixed sample
of test digits, as a mean with a 95% interval, cached beside the checkpoint.

    python -m core.scorecard                      # the default model, 500 digits
    python -m core.scorecard --model KEY@2 --digits 200

The sample is fixed for a data set: every misclassified test digit (they are where
explanations matter most) and then digits drawn per class in turn (seeded), up to the
size asked for. Each check is computed batched over the sample by ``core.explanation_checks``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from core import checkpoints, runs
from core import explanation_checks as checks
from core.attributions import INPUT_METHODS, LAYER_METHODS, AttributionRequest, explainer
from core.checkpoints import ModelRef
from core.config import RECIPES
from core.data import MNIST_WORDS, Naming, load_mnist, to_tensor
from core.evaluate import Evaluation, evaluate
from core.model import MnistCNN
from core.train import load_cached, shuffled_label_network

SCORED_LAYER = "conv4"  # layer methods are scored at the last conv layer (after its ReLU), as Grad-CAM is used


HOST_SHUFFLED = (
    "Not scored for a host's network: the check needs its architecture trained here on shuffled labels, "
    "and it was trained elsewhere."
)


def rows_at(layer: str | None) -> dict[str, AttributionRequest]:
    """Each input method, then each layer method at ``layer`` (None: no layer with positions, no
    layer rows), its map upsampled to the input grid."""
    inputs = {m: AttributionRequest.of(m, {}, upsample=True) for m in INPUT_METHODS}
    if layer is None:
        return inputs
    return inputs | {f"{m} @ {layer}": AttributionRequest.of(m, {}, layer=layer, upsample=True) for m in LAYER_METHODS}


def scored_layer(model: torch.nn.Module) -> str | None:
    """Where layer methods are scored: the reference's conv4; a host's network's last shown layer
    with positions (None for one without, such as an MLP)."""
    if isinstance(model, MnistCNN):
        return SCORED_LAYER
    spatial = [name for name, (_, shape) in list(model.shown.items())[:-1] if len(shape) == 3]
    return spatial[-1] if spatial else None


ROWS = rows_at(SCORED_LAYER)  # the reference's rows
DIGITS = 500  # sample size: all mistakes, then stratified by class
BATCH = 100  # digits per batched check (bounds memory: IG at 32 steps makes 3,200 rows)
SEED = 0
Z95 = 1.96  # a normal 95% interval of the mean
FORMAT = 5  # bump when the columns change, so cached scorecards are recomputed

# Columns: (key, title, which way is better, what it means: {plural} stands for the images, see meaning())
COLUMNS = (
    (
        "randomisation_excess",
        "randomisation: similarity above the floor",
        "lower",
        "after the top three layers with weights (the reference's fc2, fc1, conv4) are random",
    ),
    ("passes", "passes randomisation", "higher", "share of {plural} within 0.3 of the floor"),
    ("data_randomisation", "shuffled-label net: similarity", "lower", "ink |rank| similarity to its map"),
    ("deletion_gain", "deletion: beats random by", "higher", "random orders' mean area minus the map's"),
    ("deletion_passes", "passes deletion", "higher", "share of {plural} beating 8 random orders by 2 SD"),
    ("deletion_vs_random_net", "deletion: beats a random net's map by", "higher", "that map's area minus this one's"),
    ("shape_flags", "a random net's map deletes as well", "lower", "share of {plural} within 0.1 of it"),
    ("deletion_vs_ink", "deletion: beats brightest-first by", "higher", "ink order's area minus the map's"),
    ("insertion_gain", "insertion: beats random by", "higher", "the map's area minus random order's"),
    ("road_gain", "ROAD: beats random by", "higher", "deletion with removed ink imputed from its neighbours"),
    ("sensitivity", "max-sensitivity", "lower", "relative change under ±2% noise"),
    ("gini", "sparseness (Gini)", "higher", "0 spread evenly, 1 one pixel"),
    ("uninformative", "blank maps", "lower", "share of {plural} whose map is constant"),
)


def meaning(text: str, words: Naming = MNIST_WORDS) -> str:
    """A column's meaning (``COLUMNS``' last field) with the images called as ``words`` calls them."""
    return text.format(plural=words.plural)


@dataclass(frozen=True)
class Cell:
    mean: float
    low: float  # 95% interval
    high: float
    n: int


@dataclass(frozen=True)
class Scorecard:
    model: str  # the ModelRef, as text
    digits: int
    mistakes: int
    seconds: float
    rows: dict[str, dict[str, Cell]]  # method -> column key -> cell
    shuffled: str  # how the data-randomisation column's network was made and fit, or why it is not scored

    def best(self, column: str) -> str | None:
        """The method with the best mean in a column (by its direction), or None."""
        better = next(b for k, _, b, _ in COLUMNS if k == column)
        scored = {m: row[column].mean for m, row in self.rows.items() if not math.isnan(row[column].mean)}
        if not scored:
            return None
        return (max if better == "higher" else min)(scored, key=scored.get)

    def checks_passed(self, method: str) -> int:
        """How many of four tests the method passes: the badge's three on most digits
        (randomisation, deletion against random orders, not flagged "a random network's map
        deletes as well") and, on average, deletion beating brightest-first order. Shares of
        digits, not mean margins: a mean margin near a threshold flips from model to model."""
        row = self.rows[method]
        return sum(
            [
                _value(row["passes"]) >= 0.5,
                _value(row["deletion_passes"]) >= 0.5,
                _value(row["shape_flags"], worst=math.inf) < 0.5,
                _value(row["deletion_vs_ink"]) > checks.BEATS_MARGIN,
            ]
        )

    def ranking(self) -> list[str]:
        """Methods, most trustworthy first: most tests passed, then how far the map beats a
        random network's map at deletion."""
        return sorted(
            self.rows, key=lambda m: (-self.checks_passed(m), -_value(self.rows[m]["deletion_vs_random_net"]))
        )

    def summary(self, words: Naming = MNIST_WORDS) -> str:
        """A paragraph of plain words that ranks the methods for this model (``words``: what one
        image is called)."""
        plural = words.plural
        order = self.ranking()
        fails = [m for m in order if _value(self.rows[m]["passes"]) < 0.5]
        shape = [m for m in order if _value(self.rows[m]["shape_flags"], worst=math.inf) >= 0.5]
        text = [
            f"Over {self.digits} test {plural} ({self.mistakes} of them misread), the maps to trust most are "
            f"{', '.join(order[:3])} ({self.checks_passed(order[0])} of 4 tests passed by the first); "
            f"the least, {', '.join(order[-2:])} ({self.checks_passed(order[-1])} of 4 by the last)."
        ]
        if fails:
            text.append(
                f"{_join(fails)} {'fails' if len(fails) == 1 else 'fail'} the randomisation check on most {plural}: "
                f"{'its' if len(fails) == 1 else 'their'} maps stay alike when the "
                f"top layers' weights are replaced by random ones, so they show the {words.noun} more than what the "
                "network learned (Adebayo et al. 2018 found this for Guided Backprop)."
            )
        else:
            text.append("Every method's map changes when the top layers are randomised, as a faithful map should.")
        data_cells = [self.rows[m]["data_randomisation"] for m in order]
        if all(c.n == 0 for c in data_cells):
            text.append(f"The data-randomisation check is not scored. {self.shuffled}")
        else:
            alike = [m for m in order if _value(self.rows[m]["data_randomisation"]) >= 0.5]
            if alike:
                text.append(
                    f"{_join(alike)} draw{'s' if len(alike) == 1 else ''} nearly the same map for a network trained "
                    f"on shuffled labels, which learned nothing about {plural}."
                )
        if shape:
            text.append(
                f"For {_join(shape)}, on most {plural} a map taken from a fully random network deletes the "
                f"{words.noun} almost as well as the trained network's map: the ranking they give follows the "
                f"{words.noun}'s shape."
            )
        return " ".join(text)

    def to_json(self) -> dict:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict) -> Scorecard:
        if data.get("format") != FORMAT:
            raise ValueError("scorecard written by another version")
        rows = {m: {k: Cell(**c) for k, c in row.items()} for m, row in data["rows"].items()}
        return cls(data["model"], data["digits"], data["mistakes"], data["seconds"], rows, data["shuffled"])


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _value(cell: Cell, worst: float = -math.inf) -> float:
    return worst if math.isnan(cell.mean) else cell.mean


def sample_indices(evaluation: Evaluation, size: int, seed: int = SEED) -> np.ndarray:
    """int64 (size,) test indices: every misclassified digit (most confident first, at most
    ``size``), then the others drawn per class in turn, seeded."""
    chosen = list(evaluation.misclassified[:size])
    rng = np.random.default_rng(seed)
    taken = set(chosen)
    pools = [rng.permutation(np.flatnonzero(evaluation.labels == c)) for c in range(10)]
    position = [0] * 10
    while len(chosen) < min(size, len(evaluation.labels)):
        for c in range(10):
            while position[c] < len(pools[c]) and pools[c][position[c]] in taken:
                position[c] += 1
            if position[c] < len(pools[c]) and len(chosen) < size:
                chosen.append(pools[c][position[c]])
                taken.add(pools[c][position[c]])
    return np.asarray(chosen, dtype=np.int64)


def _cell(values: np.ndarray) -> Cell:
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return Cell(math.nan, math.nan, math.nan, 0)
    mean = float(values.mean())
    half = Z95 * float(values.std(ddof=1)) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return Cell(mean, mean - half, mean + half, len(values))


def compute(
    model: MnistCNN,
    images: torch.Tensor,
    targets: torch.Tensor,
    methods: tuple[str, ...] | None = None,
    progress: Callable[[float, str], None] | None = None,
    seed: int = SEED,
    shuffled: MnistCNN | None = None,
    words: Naming = MNIST_WORDS,
) -> dict[str, dict[str, Cell]]:
    """Every method x check over ``images`` (B, 1, 28, 28) for ``targets`` (B,), batched;
    ``methods`` are row names of :func:`rows_at` for the model's :func:`scored_layer` (default:
    all). ``shuffled``: the same recipe trained on shuffled labels (the data-randomisation column).
    ``words``: what the progress texts call the images."""
    requests = rows_at(scored_layer(model))
    methods = tuple(requests) if methods is None else methods
    rows = {}
    total = len(methods) * -(-len(images) // BATCH)
    done = 0
    for method in methods:
        run = explainer(requests[method])
        columns: dict[str, list[np.ndarray]] = {k: [] for k, *_ in COLUMNS}
        for start in range(0, len(images), BATCH):
            x, t = images[start : start + BATCH], targets[start : start + BATCH]
            maps = run(model, x, t)
            verdicts = checks.verdicts(run, model, x, t, seed + start, original=maps)
            blank = np.array([not v.informative for v in verdicts])
            excess = np.array([v.similarity_top - v.floor for v in verdicts])
            columns["randomisation_excess"].append(np.where(blank, np.nan, excess))
            passes = np.array([bool(v.passes_randomisation) for v in verdicts], dtype=float)
            columns["passes"].append(passes)
            columns["deletion_gain"].append(np.array([v.deletion_random - v.deletion for v in verdicts]))
            columns["deletion_passes"].append(np.array([v.beats_random_deletion for v in verdicts], dtype=float))
            columns["shape_flags"].append(np.where(blank, np.nan, [v.shape_only for v in verdicts]))
            columns["deletion_vs_random_net"].append(np.array([v.deletion_random_net - v.deletion for v in verdicts]))
            columns["deletion_vs_ink"].append(np.array([v.deletion_ink - v.deletion for v in verdicts]))
            columns["insertion_gain"].append(np.array([v.insertion - v.insertion_random for v in verdicts]))
            columns["road_gain"].append(_road_gain(model, x, t, maps, seed + start))
            columns["sensitivity"].append(
                np.where(blank, np.nan, checks.max_sensitivity(run, model, x, t, seed + start, samples=4))
            )
            columns["gini"].append(np.array([v.gini for v in verdicts]))
            if shuffled is not None:
                _, similar = checks.data_randomisation(run, model, shuffled, x, t, original=maps)
                columns["data_randomisation"].append(np.array([s.spearman_abs_ink for s in similar]))
            else:
                columns["data_randomisation"].append(np.full(len(x), np.nan))
            columns["uninformative"].append(blank.astype(float))
            done += 1
            if progress is not None:
                progress(done / total, f"{method}: {min(start + BATCH, len(images))} of {len(images)} {words.plural}")
        rows[method] = {k: _cell(np.concatenate(v)) for k, v in columns.items()}
    return rows


def _road_gain(model: MnistCNN, x: torch.Tensor, t: torch.Tensor, maps: np.ndarray, seed: int) -> np.ndarray:
    """ROAD's area in random order minus in the map's order, per digit (higher is better)."""
    pixels = x[:, 0].numpy()
    mine = checks.road(model, x, t, checks.pixel_order(maps, seed, pixels), seed).area
    shuffled = checks.pixel_order(np.random.default_rng(seed).random(maps.shape), seed, pixels)
    return checks.road(model, x, t, shuffled, seed).area - mine


def scorecard_run(folder: Path, epoch: int, data_fingerprint: str, digits: int | None = None) -> runs.Run:
    """Where the scorecard of one saved point's weights over ``digits`` (default ``DIGITS``)
    sampled test digits is kept (JSON)."""
    digits = digits or DIGITS
    at = runs.Point(folder, epoch, None, data_fingerprint)
    return runs.Run(at, "scorecard", (("digits", str(digits)),), (str(digits),), runs.JSON)


def _run(ref: ModelRef, digits: int | None, root: Path | None) -> runs.Run:
    """The run of the weights ``ref`` names; raises ``CheckpointError`` when the model is not cached."""
    info = checkpoints.read_info(checkpoints.models_root(root) / ref.key)
    return scorecard_run(info.folder, ref.epoch or info.epochs_done, info.data_fingerprint, digits)


def cached(ref: ModelRef, digits: int | None = None, root: Path | None = None) -> Scorecard | None:
    """The scorecard kept beside these weights, or None (nothing is computed)."""
    try:
        return _run(ref, digits, root).read(Scorecard.from_json)
    except checkpoints.CheckpointError:
        return None


def load_or_compute(
    ref: ModelRef,
    digits: int | None = None,
    root: Path | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> Scorecard:
    """The kept scorecard of these weights, or a fresh one (then kept beside them)."""
    digits = digits or DIGITS

    def score() -> Scorecard:
        start = time.perf_counter()
        trained = load_cached(ref.key, root=root, epoch=ref.epoch)
        data = load_mnist(trained.info.data_source)
        if trained.info.network is not None:  # trained elsewhere, so not here on shuffled labels either
            shuffled, message = None, HOST_SHUFFLED
        else:
            if progress is not None:
                progress(0.0, "Training a network to memorise shuffled labels (the data-randomisation check), once…")
            network = shuffled_label_network(trained.info.config, root=root)
            shuffled, message = network.model, network.message
        evaluation = evaluate(trained.model, data.test)
        indices = sample_indices(evaluation, digits)
        images = to_tensor(data.test.images[indices])
        targets = torch.from_numpy(evaluation.preds[indices])
        rows = compute(trained.model, images, targets, progress=progress, shuffled=shuffled, words=data.words)
        mistakes = int((evaluation.preds[indices] != evaluation.labels[indices]).sum())
        return Scorecard(str(ref), len(indices), mistakes, time.perf_counter() - start, rows, message)

    return _run(ref, digits, root).get(score, Scorecard.to_json, Scorecard.from_json)


def format_table(card: Scorecard) -> str:
    """The scorecard as aligned text: mean [95% interval], the best per column starred."""
    width = max(len(m) for m in card.rows) + 2
    lines = [f"{'method':<{width}}" + "".join(f" {title[:26]:>28}" for _, title, _, _ in COLUMNS)]
    for method in card.ranking():
        cells = []
        for key, *_ in COLUMNS:
            c = card.rows[method][key]
            star = "*" if card.best(key) == method else " "
            cells.append(f" {c.mean:>7.2f} [{c.low:5.2f},{c.high:5.2f}]{star}".rjust(29))
        lines.append(f"{method:<{width}}" + "".join(cells))
    better = ", ".join(f"{title}: {b} is better" for _, title, b, _ in COLUMNS)
    return "\n".join([*lines, "", f"* best in its column. {better}.", "", card.summary()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.scorecard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="KEY or KEY@EPOCH (default: the default recipe's model)")
    parser.add_argument("--digits", type=int, default=DIGITS, help="sample size (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        if args.model:
            ref = ModelRef.parse(args.model)
        else:
            ref = ModelRef(checkpoints.model_key(RECIPES["default"], load_mnist().fingerprint))
    except ValueError as err:
        parser.error(str(err))

    def report(fraction: float, text: str) -> None:
        print(f"[{fraction:4.0%}] {text}", file=sys.stderr, flush=True)

    try:
        card = load_or_compute(ref, args.digits, progress=report)
    except checkpoints.CheckpointError as err:
        print(f"{err}. Train it first: python -m core.train", file=sys.stderr)
        return 1
    print(format_table(card))
    print(f"\n({card.digits} digits, computed in {card.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
