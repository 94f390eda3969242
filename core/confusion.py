"""Why a confusion cell fails: what separates the test digits of class a read as b from the a's
read correctly.

For one cell (true class ``a``, predicted ``b``, a != b) of a split's confusion matrix:

* :func:`cell_digits` and :func:`correct_digits` pick the digits: the cell's, and a seeded
  sample of the correctly read a's to compare them with;
* :func:`contrast_maps` averages, per pixel, the evidence for b over a (the attribution for
  target b minus the attribution for target a, per digit) over the cell and over the sample;
* :func:`channel_differences` ranks each unit layer's channels by how much their mean
  activation (``core.units.ActivationIndex.mean``) differs between the two groups;
* :func:`nearest_training_digits` finds, for each cell digit, the closest training a's and
  b's in fc1 space (``core.projection.fc1_features``);
* :func:`explain_cell` puts the contrast map and the last conv layer's channels into one
  sentence; :func:`evidence_region` is the region it names, computed from the map.

Nothing here changes the model it is given (no hooks, no mode or weight changes); attribution
methods run on private copies inside ``core.attributions.attribute``, so one cached model can
serve many threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
from torch import nn

from core.attributions import AttributionRequest, explainer
from core.data import DIGIT_NAMES, IMAGE_SIZE, Naming, some_of
from core.evaluate import Evaluation
from core.model import CONV_LAYERS
from core.units import ActivationIndex, UnitLayer

# Correctly read a's compared with the cell: ~1,000 per class in the MNIST test set. A seeded
# sample of 200 keeps a contrast map under a few seconds on one CPU thread (attribution cost
# grows with the digits) while the mean of 200 maps or activations moves little with more.
CORRECT_SAMPLE = 200
SAMPLE_SEED = 0  # the same cell always compares with the same correct digits
CHANNELS_SHOWN = 5  # channels per layer that channel_differences returns by default
NEIGHBOURS = 3  # training digits per class per cell digit
DEFAULT_METHOD = "Integrated Gradients"  # signed and complete: the b-minus-a map adds up to the logit gap's change
EXPLAINED_LAYER = CONV_LAYERS[-1]  # conv4: the last layer with positions, the most class-specific channels
CHANNELS_NAMED = 2  # channels of EXPLAINED_LAYER the sentence names
# Thirds of the image for the region sentence: rows/columns 0-8, 9-18 and 19-27, so the middle
# third (10 pixels) sits symmetrically about the image's centre line.
THIRDS = (0, 9, 19, IMAGE_SIZE)
MAJORITY = 0.5  # a third holding at least half the positive mass is where the evidence "concentrates"
DISTANCE_CHUNK = 1_000_000  # float64 differences per block in nearest_training_digits (8 MB)


def _check_cell(a: int, b: int, classes: int) -> None:
    """``classes``: how many the network scores (its output width)."""
    if not (0 <= a < classes and 0 <= b < classes):
        raise ValueError(f"classes must be 0..{classes - 1}, got true {a} and predicted {b}")
    if a == b:
        raise ValueError(f"true and predicted class are both {a}: that cell holds the correct digits, not a confusion")


# --- Which digits ---------------------------------------------------------------------


def top_confusions(matrix: np.ndarray, k: int) -> list[tuple[int, int, int]]:
    """The ``k`` largest non-zero off-diagonal cells of a confusion matrix (K, K), as (true,
    predicted, count), largest first; ties in row order."""
    off = np.asarray(matrix).copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off.ravel(), kind="stable")[:k]
    return [(int(i // len(off)), int(i % len(off)), int(off.flat[i])) for i in order if off.flat[i] > 0]


def cell_digits(evaluation: Evaluation, a: int, b: int) -> np.ndarray:
    """Indices int64 (n,) of the digits of true class ``a`` predicted as ``b`` (a != b), most
    confident first, as ``Evaluation.cell`` orders them; empty when the cell is."""
    _check_cell(a, b, evaluation.classes)
    return evaluation.cell(a, b).astype(np.int64)


def correct_digits(evaluation: Evaluation, a: int, limit: int = CORRECT_SAMPLE, seed: int = SAMPLE_SEED) -> np.ndarray:
    """Indices int64 (m,), ascending, of digits of class ``a`` predicted as ``a``.

    For speed this is a sample: when more than ``limit`` a's are read correctly, ``limit`` of
    them drawn without replacement by a private generator seeded with ``seed`` (the same call
    gives the same digits; global random state is untouched); otherwise all of them.
    """
    if not 0 <= a < evaluation.classes:
        raise ValueError(f"class must be 0..{evaluation.classes - 1}, got {a}")
    if limit < 1:
        raise ValueError(f"the sample needs at least one digit, got limit {limit}")
    correct = np.flatnonzero((evaluation.labels == a) & (evaluation.preds == a)).astype(np.int64)
    if len(correct) <= limit:
        return correct
    chosen = np.random.default_rng(seed).choice(correct, size=limit, replace=False)
    return np.sort(chosen).astype(np.int64)


# --- Where the evidence differs -------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ContrastMaps:
    """Mean "b minus a" attribution maps of a cell and of correctly read a's.

    ``cell`` and ``correct`` float32 (28, 28): per pixel, the attribution for target ``b``
    minus that for target ``a``, per digit, averaged over ``cell_count`` cell digits and over
    ``correct_count`` correctly read a's. Positive: the pixel pushes towards b rather than a.
    A map over no digits (count 0) is all zero: check the count before reading it.
    """

    a: int
    b: int
    method: str
    cell: np.ndarray
    correct: np.ndarray
    cell_count: int
    correct_count: int


def contrast_maps(
    model: nn.Module,
    images_cell: torch.Tensor,
    images_correct: torch.Tensor,
    a: int,
    b: int,
    method: str = DEFAULT_METHOD,
    options: dict[str, object] | None = None,
) -> ContrastMaps:
    """The mean b-minus-a maps (see :class:`ContrastMaps`) of float32 images (n, 1, 28, 28)
    of the cell and (m, 1, 28, 28) of correctly read a's, in [0, 1].

    ``method`` and ``options`` name an input attribution method of
    ``core.attributions.METHODS`` (missing options take their defaults). All n + m digits go
    through one call for both targets, which the method batches; the method runs on a private
    copy of the model.
    """
    with torch.inference_mode():
        device = next(model.parameters()).device
        classes = int(model(images_cell[:1].float().to(device)).shape[1]) if len(images_cell) else max(a, b) + 1
    _check_cell(a, b, classes)
    run = explainer(AttributionRequest.of(method, options or {}))
    n, m = len(images_cell), len(images_correct)
    images = torch.cat([images_cell, images_correct]).float()  # (n + m, 1, 28, 28)
    difference = np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    if len(images):
        targets = torch.cat([torch.full((n + m,), b), torch.full((n + m,), a)]).long()  # (2(n + m),)
        maps = run(model, torch.cat([images, images]), targets)  # (2(n + m), 28, 28)
        difference = maps[: n + m] - maps[n + m :]  # (n + m, 28, 28): b minus a, per digit
    return ContrastMaps(
        a=a,
        b=b,
        method=method,
        cell=_mean_map(difference[:n]),
        correct=_mean_map(difference[n:]),
        cell_count=n,
        correct_count=m,
    )


def _mean_map(maps: np.ndarray) -> np.ndarray:
    """float32 (28, 28): the mean of maps (k, 28, 28), summed in float64; zeros for k = 0."""
    if not len(maps):
        return np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    return maps.mean(axis=0, dtype=np.float64).astype(np.float32)


# --- Which channels differ ------------------------------------------------------------


@dataclass(frozen=True)
class ChannelDifference:
    """One channel's mean activation (``ActivationIndex.mean``, after the ReLU, averaged over
    the grid per digit, then over digits) on the cell's digits and on the correctly read a's;
    ``difference`` = ``cell_mean`` - ``correct_mean`` (positive: fires more on the confused digits)."""

    channel: int
    cell_mean: float
    correct_mean: float
    difference: float


def channel_differences(
    index: ActivationIndex, cell: np.ndarray, correct: np.ndarray, k: int = CHANNELS_SHOWN
) -> dict[str, list[ChannelDifference]]:
    """Per unit layer of the index, the ``k`` channels (fewer if the layer has fewer) whose
    mean activation differs most between digits ``cell`` and ``correct`` (int64 indices into
    ``index``), largest |difference| first, ties by channel.

    Ranked by the raw difference of means, not a standardised one: all channels of a layer are
    read on the same post-ReLU scale, a cell often holds one or two digits (no spread to divide
    by), and dividing by the spread of a nearly silent channel turns a tiny difference into the
    largest. Means are taken in float64. Empty lists when either group has no digits.
    """
    cell, correct = np.asarray(cell, dtype=np.int64), np.asarray(correct, dtype=np.int64)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not len(cell) or not len(correct):
        return {layer: [] for layer in index.layers}
    result: dict[str, list[ChannelDifference]] = {}
    for layer in index.layers:
        means = index.mean[layer]  # (N, C) float32
        cell_mean = means[cell].mean(axis=0, dtype=np.float64)  # (C,)
        correct_mean = means[correct].mean(axis=0, dtype=np.float64)  # (C,)
        difference = cell_mean - correct_mean  # (C,)
        order = np.argsort(-np.abs(difference), kind="stable")[:k]
        result[layer] = [
            ChannelDifference(int(c), float(cell_mean[c]), float(correct_mean[c]), float(difference[c])) for c in order
        ]
    return result


# --- Which training digits look alike -------------------------------------------------


@dataclass(frozen=True, eq=False)
class NearestDigits:
    """For each of n cell digits, its nearest training digits of class ``a`` and of ``b`` in
    fc1 space: ``a_indices`` and ``b_indices`` int64 (n, k) into the training set, nearest
    first (ties by index); ``a_distances`` and ``b_distances`` float32 (n, k), Euclidean.
    k is fewer than asked when a class has fewer training digits."""

    a: int
    b: int
    a_indices: np.ndarray
    a_distances: np.ndarray
    b_indices: np.ndarray
    b_distances: np.ndarray


def nearest_training_digits(
    cell_features: np.ndarray,
    train_features: np.ndarray,
    train_labels: np.ndarray,
    a: int,
    b: int,
    k: int = NEIGHBOURS,
) -> NearestDigits:
    """Exact k nearest training digits of class a and of class b (see :class:`NearestDigits`)
    for cell features (n, 20) among training features (M, 20) with labels int64 (M,).

    Distances are computed from float64 differences (no |x|^2 - 2xy + |y|^2 shortcut, which
    cancels digits), in blocks of cell digits to bound memory.
    """
    _check_cell(a, b, int(np.max(train_labels)) + 1 if len(train_labels) else 0)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    queries = np.asarray(cell_features, dtype=np.float64)
    train = np.asarray(train_features, dtype=np.float64)
    labels = np.asarray(train_labels)
    if queries.ndim != 2 or train.ndim != 2 or queries.shape[1] != train.shape[1] or len(labels) != len(train):
        raise ValueError(
            f"expected cell features (n, D), training features (M, D) and labels (M,), got"
            f" {queries.shape}, {train.shape} and {labels.shape}"
        )
    a_indices, a_distances = _nearest(queries, train, np.flatnonzero(labels == a), k)
    b_indices, b_distances = _nearest(queries, train, np.flatnonzero(labels == b), k)
    return NearestDigits(a, b, a_indices, a_distances, b_indices, b_distances)


def _nearest(queries: np.ndarray, train: np.ndarray, members: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices int64 (n, k'), distances float32 (n, k')), k' = min(k, len(members)), of each
    query's nearest ``members`` (training indices, ascending) of ``train``."""
    k = min(k, len(members))
    indices = np.empty((len(queries), k), dtype=np.int64)
    distances = np.empty((len(queries), k), dtype=np.float32)
    candidates = train[members]  # (M_c, D)
    step = max(1, DISTANCE_CHUNK // max(candidates.size, 1))
    for start in range(0, len(queries), step):
        block = queries[start : start + step]  # (s, D)
        gap = np.sqrt(((block[:, None, :] - candidates[None, :, :]) ** 2).sum(axis=2))  # (s, M_c)
        order = np.argsort(gap, axis=1, kind="stable")[:, :k]  # members ascend, so ties go to the lower index
        indices[start : start + step] = members[order]
        distances[start : start + step] = np.take_along_axis(gap, order, axis=1)
    return indices, distances


# --- In one sentence ------------------------------------------------------------------

_ROWS = ("top", "middle", "bottom")
_COLUMNS = ("left", "middle", "right")


def evidence_region(heatmap: np.ndarray) -> tuple[str, float]:
    """Where a map's positive mass concentrates, and the share of that mass found there.

    ``heatmap`` float (28, 28). Only positive values count (for a b-minus-a map: the pixels
    that favour b). The image is cut into thirds (``THIRDS``) both ways; a band of rows or of
    columns holding at least ``MAJORITY`` of the mass is where it concentrates. The name is
    "the top third", "the left third", "the top-right corner" (a row band and a side column
    band), "the centre" (the middle of both), "the top centre" (a row band and the middle
    column band), "a band across the middle", "a band down the middle", or "no one region"
    when no band holds a majority. The share is the mass inside the named region (the whole
    image for "no one region"); ("nowhere", 0.0) when nothing is positive.
    """
    values = np.asarray(heatmap, dtype=np.float64)
    if values.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"expected a ({IMAGE_SIZE}, {IMAGE_SIZE}) map, got {values.shape}")
    positive = np.clip(values, 0.0, None)
    total = positive.sum()
    if not total > 0:
        return "nowhere", 0.0
    bands = list(pairwise(THIRDS))
    row_shares = np.array([positive[lo:hi].sum() for lo, hi in bands]) / total  # (3,)
    column_shares = np.array([positive[:, lo:hi].sum() for lo, hi in bands]) / total  # (3,)
    row = int(row_shares.argmax()) if row_shares.max() >= MAJORITY else None
    column = int(column_shares.argmax()) if column_shares.max() >= MAJORITY else None
    rows = slice(*bands[row]) if row is not None else slice(None)
    columns = slice(*bands[column]) if column is not None else slice(None)
    share = float(positive[rows, columns].sum() / total)
    return _region_name(row, column), share


def _region_name(row: int | None, column: int | None) -> str:
    if row is None and column is None:
        return "no one region"
    if row == 1 and column == 1:
        return "the centre"
    if column is None:
        return "a band across the middle" if row == 1 else f"the {_ROWS[row]} third"
    if row is None:
        return "a band down the middle" if column == 1 else f"the {_COLUMNS[column]} third"
    if column == 1:
        return f"the {_ROWS[row]} centre"
    if row == 1:
        return f"the middle of the {_COLUMNS[column]} side"
    return f"the {_ROWS[row]}-{_COLUMNS[column]} corner"


def explained_layer(layers: Mapping[str, UnitLayer]) -> str | None:
    """The layer whose channels a cell's sentence names: the network's last unit layer with
    positions (the reference's conv4: its most class-specific channels), else its last one;
    None for a network without unit layers."""
    if not layers:
        return None
    return ([name for name, found in layers.items() if found.grid is not None] or list(layers))[-1]


def explain_cell(
    maps: ContrastMaps,
    channels: dict[str, list[ChannelDifference]],
    classes: tuple[str, ...] = DIGIT_NAMES,
    layer: str | None = EXPLAINED_LAYER,
    unit_word: str = "channel",
    words: Naming | None = None,
) -> str:
    """One plain sentence on why digits of class ``maps.a`` are read as ``maps.b``: the region
    where the cell's mean b-minus-a map (``maps.cell``) puts its positive mass
    (:func:`evidence_region`), and the ``CHANNELS_NAMED`` channels of ``layer`` (by default the
    reference's conv4; :func:`explained_layer` for any network) that differ most from correctly
    read a's (``channels``, from :func:`channel_differences`). An empty cell gets a sentence
    saying so. Classes are called by their ``classes`` names ("test 4s" for digits, "test images of Coat"
    otherwise; ``words`` names one image, by default as ``Naming.of(classes)`` does)."""
    words = words or Naming.of(classes, "")
    a, b, n = classes[maps.a], classes[maps.b], maps.cell_count
    some = some_of(maps.a, classes, words)
    one = a if classes == DIGIT_NAMES else f"{words.noun} of {a}"
    if n == 0:
        return f"No test {one} is read as {b}, so there is nothing to explain in this cell."
    who = f"1 test {one} is read as {b}" if n == 1 else f"{n} test {some} are read as {b}"
    region, share = evidence_region(maps.cell)
    if region == "nowhere":
        where = f"on average no pixel's {maps.method} evidence favours {b} over {a}"
    elif region == "no one region":
        where = f"the {maps.method} evidence for {b} over {a} is spread over the image, no third holding half of it"
    else:
        where = (
            f"the {maps.method} evidence for {b} over {a} lies mostly in {region} of the image"
            f" ({share:.0%} of its positive mass)"
        )
    if layer is None:  # a network without conv or hidden linear layers: the map alone
        return f"{who}: {where}."
    named = channels.get(layer, [])[:CHANNELS_NAMED]
    if not named:
        which = f"there are no correctly read {some} to compare {layer}'s {unit_word}s with"
    else:
        parts = [
            f"{c.channel} ({'higher' if c.difference > 0 else 'lower'}: {c.cell_mean:.2f} against {c.correct_mean:.2f})"
            for c in named
        ]
        noun, verb = (unit_word, "differs") if len(parts) == 1 else (f"{unit_word}s", "differ")
        which = f"{layer} {noun} {' and '.join(parts)} {verb} most from correctly read {some}"
    return f"{who}: {where}, and {which}."
