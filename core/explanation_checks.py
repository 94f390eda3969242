"""Can this map be trusted? Sanity checks and faithfulness scores for attribution maps.

Every check takes the same things: an ``Explainer`` (model, images, targets -> maps), the
model, float32 images (B, 1, 28, 28) in [0, 1] and int64 targets (B,); all are batched.

- Model-parameter randomisation (Adebayo et al. 2018): re-initialise the layers top down
  (``CASCADE``: fc2, then also fc1, conv4 ... conv1) or one at a time, and compare each
  map with the trained network's. A map that stays the same without the learned weights
  shows the input, not what the network learned. Similarity is Spearman rank correlation
  (signed and of |map|, over the whole image and over the inked pixels alone) and SSIM of
  |map|. The whole-image |map| score of a method with a black baseline (Integrated
  Gradients, DeepLift, Input × Gradient, Occlusion) is dominated by the digit's outline,
  since those maps are exactly 0 on every black pixel: the verdict uses ink pixels only.
  The *floor* is the same similarity between two independently randomised networks.
- Faithfulness: deletion and insertion curves (Petsiuk et al. 2018). Pixels are removed
  from the digit (set to black) or added to a black image in the map's order, in
  ``STEPS`` steps of a tenth of the digit's own ink-pixel count, and the target class's
  probability is read after each step; the curve's area (x from 0 to 1) sums it up.
  Lower deletion area and higher insertion area are better. The same curves for three
  other orders give the baselines: random, ink intensity (brightest first) and the map of
  the fully randomised network.
- Robustness: max-sensitivity (Yeh et al. 2019) via ``captum.metrics.sensitivity_max``,
  with seeded uniform noise. Complexity: the Gini index of |map| (sparseness).

Random draws (weights, orders, noise) come from generators seeded by the caller's
``seed``, never from torch's or numpy's global state: the same request gives the same
numbers in any thread. A constant map (all zero, as Grad-CAM at conv4 often is) is
reported as uninformative, never scored as a pass.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from core.model import MnistCNN
from core.network import draw_anew, top_down

Explainer = Callable[[MnistCNN, torch.Tensor, torch.Tensor], np.ndarray]  # -> float32 (B, 28, 28)

CASCADE = ("fc2", "fc1", "conv4", "conv3", "conv2", "conv1")  # re-initialised top down
TOP_THREE = 3  # the cascade step after which fc2, fc1 and conv4 are random: the verdict's check
STEPS = 10  # deletion/insertion steps, each a tenth of the digit's inked pixels
INK = 0.0  # a pixel is ink when brighter than this
BEATS_MARGIN = 0.02  # an area difference smaller than this is "no better"
SENSITIVITY_RADIUS = 0.02  # max-sensitivity noise: uniform in +-2% of the pixel range
SENSITIVITY_SAMPLES = 8


# ---- randomised models ------------------------------------------------------------------


def cascade_of(model: torch.nn.Module) -> tuple[str, ...]:
    """The layers a randomisation cascade re-initialises, top down: ``CASCADE`` for the reference
    network, a host's network's parameterised modules from its graph (core.network.cascade)."""
    return CASCADE if isinstance(model, MnistCNN) else top_down(model)


def randomized(model: MnistCNN, layers: tuple[str, ...], seed: int) -> MnistCNN:
    """A copy of ``model`` with ``layers`` re-initialised as PyTorch initialises them
    (Kaiming-uniform weights, uniform biases; a norm layer's constants and statistics), from
    a generator seeded by ``seed``."""
    private = copy.deepcopy(model).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in layers:
            draw_anew(private.get_submodule(name), generator, name)
    return private


# ---- similarity -------------------------------------------------------------------------


@dataclass(frozen=True)
class Similarity:
    """How alike two maps are; NaN where a map is constant (no ranking to compare)."""

    spearman: float  # signed values, whole image
    spearman_abs: float  # |values|, whole image (black-baseline maps: mostly the outline)
    spearman_ink: float  # signed values, inked pixels only
    spearman_abs_ink: float  # |values|, inked pixels only: the verdict's measure
    ssim_abs: float  # SSIM of |values|, each map scaled to its own maximum


def rank_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Spearman's rank correlation of two maps over all pixels, or those where ``mask``."""
    a, b = np.ravel(a), np.ravel(b)
    if mask is not None:
        a, b = a[np.ravel(mask)], b[np.ravel(mask)]
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    from scipy.stats import spearmanr  # imported on first use: it costs the app's first page 0.4 s

    return float(spearmanr(a, b).statistic)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two non-negative maps, each scaled to [0, 1] by its own maximum."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    a, b = a / a.max(), b / b.max()
    from skimage.metrics import structural_similarity  # imported on first use, like scipy above

    return float(structural_similarity(a, b, data_range=1.0, win_size=7))


def similarity(a: np.ndarray, b: np.ndarray, image: np.ndarray) -> Similarity:
    """Every similarity of two (28, 28) maps of one image (pixels in [0, 1])."""
    ink = image > INK
    return Similarity(
        spearman=rank_correlation(a, b),
        spearman_abs=rank_correlation(np.abs(a), np.abs(b)),
        spearman_ink=rank_correlation(a, b, ink),
        spearman_abs_ink=rank_correlation(np.abs(a), np.abs(b), ink),
        ssim_abs=ssim(np.abs(a), np.abs(b)),
    )


def uninformative(maps: np.ndarray) -> np.ndarray:
    """bool (B,): maps with one value everywhere (all zero included): nothing to rank or trust."""
    flat = maps.reshape(len(maps), -1)
    return flat.max(axis=1) == flat.min(axis=1)


# ---- model-parameter randomisation ------------------------------------------------------


@dataclass(frozen=True)
class RandomisationStep:
    layers: tuple[str, ...]  # the layers with random weights at this step
    maps: np.ndarray  # float32 (B, 28, 28) from that network
    similarity: list[Similarity]  # per image, to the trained network's map


def cascade(
    explain: Explainer, model: MnistCNN, images: torch.Tensor, targets: torch.Tensor, seed: int = 0, steps: int = 6
) -> tuple[np.ndarray, list[RandomisationStep]]:
    """The trained maps, then the first ``steps`` cascade steps (fc2; fc2+fc1; ...)."""
    original = explain(model, images, targets)
    layers = cascade_of(model)
    layer_sets = [layers[:k] for k in range(1, min(steps, len(layers)) + 1)]
    return original, _randomise(explain, model, images, targets, seed, original, layer_sets)


def independent(
    explain: Explainer,
    model: MnistCNN,
    images: torch.Tensor,
    targets: torch.Tensor,
    seed: int = 0,
    original: np.ndarray | None = None,
) -> list[RandomisationStep]:
    """Each layer re-initialised alone, compared with the trained network's map
    (``original``, when the caller has it already)."""
    original = explain(model, images, targets) if original is None else original
    return _randomise(explain, model, images, targets, seed, original, [(name,) for name in cascade_of(model)])


def _randomise(explain, model, images, targets, seed, original, layer_sets) -> list[RandomisationStep]:
    pixels = images[:, 0].numpy()
    result = []
    for layers in layer_sets:
        maps = explain(randomized(model, layers, seed), images, targets)
        result.append(RandomisationStep(layers, maps, _compare(original, maps, pixels)))
    return result


def _compare(original: np.ndarray, maps: np.ndarray, pixels: np.ndarray) -> list[Similarity]:
    return [similarity(o, m, p) for o, m, p in zip(original, maps, pixels, strict=True)]


def floor(
    explain: Explainer, model: MnistCNN, images: torch.Tensor, targets: torch.Tensor, seed: int = 0
) -> list[Similarity]:
    """Per image, the similarity of the maps of two independently randomised networks: what
    the input's own structure makes alike when nothing learned is left."""
    first = explain(randomized(model, cascade_of(model), seed), images, targets)
    second = explain(randomized(model, cascade_of(model), seed + 1), images, targets)
    return _compare(first, second, images[:, 0].numpy())


def data_randomisation(
    explain: Explainer,
    model: MnistCNN,
    shuffled: MnistCNN,
    images: torch.Tensor,
    targets: torch.Tensor,
    original: np.ndarray | None = None,
) -> tuple[np.ndarray, list[Similarity]]:
    """The maps of a network trained by the same recipe on shuffled labels, and their
    similarity to the trained network's maps (``original``, when the caller has them), per
    image. A faithful method's maps differ: that network learned nothing about digits."""
    original = explain(model, images, targets) if original is None else original
    maps = explain(shuffled, images, targets)
    return maps, _compare(original, maps, images[:, 0].numpy())


# ---- deletion and insertion -------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    fractions: np.ndarray  # float (STEPS + 1,): 0, 0.1, ..., 1 of the digit's ink-pixel count
    probs: np.ndarray  # float32 (B, STEPS + 1): the target class's probability after each step
    area: np.ndarray  # float (B,): trapezoid area under ``probs`` over ``fractions``


def pixel_order(scores: np.ndarray, seed: int, images: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
    """int64 (B, 784): pixels from highest to lowest score, ties broken at random (seeded);
    a plain argsort would break them in reading order and bias the curve. With ``images``,
    inked pixels come first (in score order) and black ones last: deleting or adding a black
    pixel changes nothing, so the curves walk the digit's own ink."""
    flat = scores.reshape(len(scores), -1).astype(np.float64)
    if images is not None:
        ink = np.asarray(images).reshape(len(flat), -1) > INK
        flat = np.where(ink, flat, -np.inf)
    tie_break = np.random.default_rng(seed).random(flat.shape)
    return np.lexsort((tie_break, -flat), axis=1)


ORDERS = ("this map", "random order", "brightest first", "random network's map")  # deletion/insertion orders


def baseline_orders(original: np.ndarray, random_net: np.ndarray, images: np.ndarray, seed: int) -> dict:
    """Pixel orders (B, 784) by name (``ORDERS``): the map's, random, brightest first and the
    fully randomised network's map; all walk the ink only, ties broken by ``seed``."""
    scores = [original, np.random.default_rng(seed).random(original.shape), images, random_net]
    return {name: pixel_order(score, seed, images) for name, score in zip(ORDERS, scores, strict=True)}


def _curve(
    model: MnistCNN, images: torch.Tensor, targets: torch.Tensor, order: np.ndarray, mode: str, seed: int = 0
) -> Curve:
    """Curves for pixel orders (B, 784): ``mode`` "delete" sets the chosen pixels to black,
    "insert" copies them onto a black image, "road" imputes them from their neighbours."""
    flat = images.reshape(len(images), -1)  # (B, 784)
    ink_counts = (flat > INK).sum(dim=1).numpy()  # (B,)
    fractions = np.linspace(0.0, 1.0, STEPS + 1)
    batch, masks = [], []
    for f in fractions:
        step = flat.clone() if mode != "insert" else torch.zeros_like(flat)
        mask = torch.zeros_like(flat, dtype=torch.bool)
        for i, (row, n) in enumerate(zip(order, ink_counts, strict=True)):
            mask[i, torch.from_numpy(row[: round(f * n)])] = True
        if mode == "insert":
            step[mask] = flat[mask]
        else:
            step[mask] = 0.0
        batch.append(step)
        masks.append(mask)
    stacked = torch.stack(batch, dim=1).reshape(-1, *images.shape[1:])  # (B * (STEPS+1), 1, 28, 28)
    if mode == "road":
        removed = torch.stack(masks, dim=1).reshape(stacked.shape)
        stacked = impute(stacked, removed, seed)
    with torch.inference_mode():
        probs = torch.softmax(model(stacked), dim=1).reshape(len(images), STEPS + 1, -1)
    target_probs = probs[torch.arange(len(images)), :, targets].numpy()  # (B, STEPS + 1)
    return Curve(fractions, target_probs, np.trapezoid(target_probs, fractions, axis=1))


def deletion(model: MnistCNN, images: torch.Tensor, targets: torch.Tensor, order: np.ndarray) -> Curve:
    """Set pixels to black in ``order``; the probability should fall fast (low area is good)."""
    return _curve(model, images, targets, order, "delete")


def insertion(model: MnistCNN, images: torch.Tensor, targets: torch.Tensor, order: np.ndarray) -> Curve:
    """Add pixels to a black image in ``order``; the probability should rise fast (high area is
    good). The all-black start is not neutral for this network: it reads it as some class."""
    return _curve(model, images, targets, order, "insert")


def road(model: MnistCNN, images: torch.Tensor, targets: torch.Tensor, order: np.ndarray, seed: int = 0) -> Curve:
    """ROAD (Rong et al. 2022, "remove and debias"): remove pixels in ``order`` like deletion,
    but fill each removed pixel from its neighbours (noisy linear imputation) instead of
    black, so the shape of the removed set cannot itself tell the network the class."""
    return _curve(model, images, targets, order, "road", seed)


ROAD_NOISE = 0.01  # standard deviation of the noise added to imputed pixels (Rong et al.'s default)
ROAD_SWEEPS = 60  # at most this many Jacobi sweeps of the imputation...
ROAD_TOLERANCE = 1e-6  # ...stopping when no pixel moves by more than this (of the [0, 1] range)


def _neighbour_sum(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, 28, 28): each pixel's neighbours weighted as Rong et al. impute (1/6 for the four
    direct ones, 1/12 diagonal; none beyond the border). Shifted slices, not a 3x3 conv2d: a
    one-channel convolution is 8x slower here (2.1 s against 0.25 s for 60 sweeps of 1,100 digits)."""
    p = torch.nn.functional.pad(images, (1, 1, 1, 1))
    direct = p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]
    diagonal = p[..., :-2, :-2] + p[..., :-2, 2:] + p[..., 2:, :-2] + p[..., 2:, 2:]
    return direct / 6 + diagonal / 12


def impute(images: torch.Tensor, removed: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """float32 (N, 1, 28, 28): every ``removed`` pixel (bool, same shape) replaced by the
    weighted mean of its neighbours (those outside the image left out), solved for all
    removed pixels together by Jacobi sweeps, plus seeded Gaussian noise; pixels in [0, 1]."""
    weight_sum = _neighbour_sum(torch.ones_like(images))  # at the border: fewer neighbours
    filled = images.clone()
    for _ in range(ROAD_SWEEPS):  # strokes are thin, so every hole is near known pixels: ~10-20 sweeps
        mean = _neighbour_sum(filled) / weight_sum
        updated = torch.where(removed, mean, images)
        converged = float((updated - filled).abs().max()) < ROAD_TOLERANCE
        filled = updated
        if converged:
            break
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)) * ROAD_NOISE
    return torch.where(removed, (filled + noise).clamp(0.0, 1.0), images)


# ---- robustness and complexity ----------------------------------------------------------


def max_sensitivity(
    explain: Explainer,
    model: MnistCNN,
    images: torch.Tensor,
    targets: torch.Tensor,
    seed: int = 0,
    radius: float = SENSITIVITY_RADIUS,
    samples: int = SENSITIVITY_SAMPLES,
) -> np.ndarray:
    """float (B,): the largest relative change ||map(x + d) - map(x)|| / ||map(x)|| over
    ``samples`` uniform perturbations d in [-radius, radius] (Captum's sensitivity_max; lower
    is steadier). The noise comes from a generator seeded by ``seed``."""
    generator = torch.Generator().manual_seed(seed)

    def perturb(inputs: torch.Tensor, perturb_radius: float) -> torch.Tensor:
        noise = torch.rand(inputs.shape, generator=generator) * 2 * perturb_radius - perturb_radius
        return (inputs + noise).clamp(0.0, 1.0)

    def explanation(inputs: tuple[torch.Tensor, ...], target: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # Captum hands the inputs as a one-tensor tuple and iterates the result as one too.
        batch = inputs[0] if isinstance(inputs, tuple) else inputs
        return (torch.from_numpy(explain(model, batch, target)),)

    from captum.metrics import sensitivity_max  # on first use: captum's import is slow (core.attributions)

    scores = sensitivity_max(
        explanation,
        images,
        perturb_func=perturb,
        perturb_radius=radius,
        n_perturb_samples=samples,
        max_examples_per_batch=len(images) * samples,
        target=targets,
    )
    return scores.double().numpy()


def gini(maps: np.ndarray) -> np.ndarray:
    """float (B,): the Gini index of |map| (Chalasani et al. 2020): 0 when every pixel has the
    same weight, near 1 when one pixel carries it all; NaN for an all-zero map."""
    flat = np.sort(np.abs(maps.reshape(len(maps), -1)).astype(np.float64), axis=1)
    n = flat.shape[1]
    weights = 2 * np.arange(1, n + 1) - n - 1
    total = flat.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (flat * weights).sum(axis=1) / (n * total), np.nan)


# ---- the verdict on one map -------------------------------------------------------------

RANDOM_DRAWS = 3  # random networks per verdict: one is too noisy for a single digit
PASS_EXCESS = 0.3  # similarity after the top three layers are random may exceed the floor by this much
RANDOM_NET_MARGIN = 0.1  # a random network's map deleting within this area of the map's "deletes as well"
# A map whose ink pixels rank this alike after the top three layers are random barely changed,
# whatever the floor: a map that ignores the model (the image itself, its edges) has floor 1.0
# too, so the floor alone would let it pass. Trained methods here stay under it (Guided
# Backprop 0.81 on average, Integrated Gradients 0.46, DeepLift 0.51; 200 digits).
SAME_MAP = 0.9
RANDOM_ORDERS = 8  # random deletion orders per digit: their mean and spread are the baseline
# The map must delete this many standard deviations of random orders' areas better than their
# mean: a pure-noise map (just another random order) then passes on ~4% of digits, not 44%.
RANDOM_ORDER_Z = 2.0
CHECK_NAMES = (  # the badge's three marks, in order (``Verdict.marks``)
    "randomisation: the map changes when the top layers get random weights",
    "deletion: removing ink in the map's order beats random order",
    "beats a random network's map at deletion: the map is not just the digit's shape",
)


@dataclass(frozen=True)
class Verdict:
    """What a badge says about one map, with the numbers behind it. NaN where not computable."""

    informative: bool
    similarity_top: float  # ink-only |rank| similarity to the map with fc2, fc1, conv4 random
    floor: float  # the same similarity between two randomised networks' maps
    deletion: float  # area under the deletion curve in the map's order (lower is better)
    deletion_random: float  # ... in random order (mean of RANDOM_ORDERS orders)
    deletion_random_sd: float  # the spread of those random orders' areas (standard deviation)
    deletion_ink: float  # ... brightest pixels first
    deletion_random_net: float  # ... in the order of the fully randomised network's map
    insertion: float  # area under the insertion curve (higher is better)
    insertion_random: float
    gini: float  # sparseness of |map|, 0..1

    @property
    def passes_randomisation(self) -> bool | None:
        if not self.informative or math.isnan(self.similarity_top):
            return None
        if self.similarity_top >= SAME_MAP:  # unchanged by random weights, whatever the floor
            return False
        floor = 0.0 if math.isnan(self.floor) else self.floor
        return self.similarity_top - floor <= PASS_EXCESS

    @property
    def shape_only(self) -> bool:
        """A random network's map deletes (nearly) as well: the map shows the digit's shape."""
        return self.deletion_random_net - self.deletion < RANDOM_NET_MARGIN

    @property
    def text(self) -> str:
        """The badge, in a few words."""
        if not self.informative:
            return "uninformative: the map is blank"
        randomisation = {True: "passes randomisation", False: "fails randomisation", None: "randomisation n/a"}[
            self.passes_randomisation
        ]
        gain = self.deletion_random - self.deletion
        deletion = (
            f"deletion beats random by {gain:.2f}" if self.beats_random_deletion else "deletes no better than random"
        )
        if self.shape_only:
            deletion += " · a random net's map deletes as well"
        return f"{randomisation} · {deletion}"

    @property
    def deletion_margin(self) -> float:
        """How far below random order's mean area the map's must be to count as better."""
        return max(BEATS_MARGIN, RANDOM_ORDER_Z * self.deletion_random_sd)

    @property
    def beats_random_deletion(self) -> bool:
        return self.deletion_random - self.deletion > self.deletion_margin

    @property
    def good(self) -> bool:
        return bool(self.passes_randomisation) and not self.shape_only and self.beats_random_deletion

    @property
    def marks(self) -> tuple[bool | None, bool | None, bool | None]:
        """One result per check (``CHECK_NAMES``): True passes, False fails, None not checked
        (a blank map is checked by none)."""
        if not self.informative:
            return (None, None, None)
        return (self.passes_randomisation, self.beats_random_deletion, not self.shape_only)

    @property
    def word(self) -> str:
        """The whole verdict in one word: "trust" (every check passes), "doubt" or "blank"."""
        return "blank" if not self.informative else "trust" if self.good else "doubt"

    @property
    def reasons(self) -> tuple[tuple[str, str], ...]:
        """The numbers behind the verdict in plain words: (check, sentence) pairs, the check
        named with which way is better ("" for a blank map's one sentence). The dashboard and the
        report set them in type (dashboard/words.py)."""
        if not self.informative:
            return (
                (
                    "",
                    "The map has one value everywhere (often all zero): it ranks no pixel, "
                    "so it cannot be checked or trusted.",
                ),
            )
        return (
            (
                "Randomisation",
                f"(lower is better): after fc2, fc1 and conv4 get random weights "
                f"the map's ink pixels still rank {self.similarity_top:.2f} alike (Spearman of |map|); "
                f"two random networks' maps rank "
                f"{self.floor:.2f} alike. It passes when the first is at most {PASS_EXCESS} above the second "
                f"(and under {SAME_MAP}: a map that barely changes fails, whatever the floor).",
            ),
            (
                "Deletion",
                f"(area under the class probability as ink is removed; lower is better): "
                f"this map {self.deletion:.2f} · random order {self.deletion_random:.2f} "
                f"(mean of {RANDOM_ORDERS} orders, which spread by {self.deletion_random_sd:.2f}: "
                f"the map must beat it by {self.deletion_margin:.2f}) · brightest first {self.deletion_ink:.2f} · "
                f"a random network's map {self.deletion_random_net:.2f}.",
            ),
            (
                "Insertion",
                f"(area as ink is added to a black image; higher is better): this map "
                f"{self.insertion:.2f} · random order {self.insertion_random:.2f}. The black image is not neutral: "
                "the network reads it as some class.",
            ),
            ("Sparseness", f"(Gini of |map|, 0 = spread evenly, 1 = one pixel): {self.gini:.2f}."),
        )


def digit_seed(image: torch.Tensor) -> int:
    """A seed from a digit's pixels: the same digit always gets the same random draws."""
    digest = hashlib.sha256(image.detach().float().contiguous().numpy().tobytes()).digest()
    return int.from_bytes(digest[:4], "little")


def verdicts(
    explain: Explainer,
    model: MnistCNN,
    images: torch.Tensor,
    targets: torch.Tensor,
    seed: int = 0,
    draws: int = RANDOM_DRAWS,
    original: np.ndarray | None = None,
) -> list[Verdict]:
    """The badge's checks for each image's map: randomisation of the top three layers against
    the floor, deletion and insertion against their baselines, sparseness. One random network
    is noisy for one digit, so similarities are means over ``draws`` random networks (and
    over as many pairs for the floor, at least one): 1 + 2 x ``draws`` batched calls of
    ``explain`` (one more when ``draws`` is 1; one less when the caller passes the trained
    network's maps as ``original``). Deletion and insertion walk the ink only."""
    original = explain(model, images, targets) if original is None else original
    if draws < 1:
        raise ValueError(f"draws must be at least 1, not {draws}")
    layers = cascade_of(model)
    tops = [explain(randomized(model, layers[:TOP_THREE], seed + k), images, targets) for k in range(draws)]
    # The floor compares two different random networks, so at least two are drawn.
    randoms = [explain(randomized(model, layers, seed + k), images, targets) for k in range(max(draws, 2))]
    pixels = images[:, 0].numpy()
    orders = baseline_orders(original, randoms[0], pixels, seed)
    mine, random_order, brightest, random_net = ORDERS
    deleted = {name: deletion(model, images, targets, order).area for name, order in orders.items()}
    # One random order's area varies by about 0.1 from draw to draw on one digit, as much as
    # many maps gain: the map is compared with several, and must beat their spread.
    extra = [
        deletion(
            model, images, targets, pixel_order(np.random.default_rng(seed + k).random(original.shape), seed, pixels)
        )
        for k in range(1, RANDOM_ORDERS)
    ]
    random_areas = np.stack([deleted[random_order], *(c.area for c in extra)])  # (RANDOM_ORDERS, B)
    inserted = {name: insertion(model, images, targets, orders[name]).area for name in (mine, random_order)}
    blank = uninformative(original)
    sparseness = gini(original)
    result = []
    for i in range(len(images)):
        ink = pixels[i] > INK  # the verdict needs only the ink-only |rank| similarity: skip the others
        top = [rank_correlation(np.abs(original[i]), np.abs(t[i]), ink) for t in tops]
        pairs = [
            (randoms[k][i], randoms[(k + 1) % len(randoms)][i]) for k in range(len(randoms) if len(randoms) > 2 else 1)
        ]
        floor_values = [rank_correlation(np.abs(a), np.abs(b), ink) for a, b in pairs]
        result.append(
            Verdict(
                informative=not blank[i],
                similarity_top=_mean(top),
                floor=_mean(floor_values),
                deletion=float(deleted[mine][i]),
                deletion_random=float(random_areas[:, i].mean()),
                deletion_random_sd=float(random_areas[:, i].std(ddof=1)),
                deletion_ink=float(deleted[brightest][i]),
                deletion_random_net=float(deleted[random_net][i]),
                insertion=float(inserted[mine][i]),
                insertion_random=float(inserted[random_order][i]),
                gini=float(sparseness[i]),
            )
        )
    return result


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan
