"""Sanity checks and faithfulness scores for attribution maps (core.explanation_checks).

Every expected number is worked out here, by hand or with a few lines of plain numpy/math
(formula written out in the test), never by calling the code path under test. The exact
tests use ``Linear``: a model whose logits are ``W x``, so the class probability after any
deletion or insertion is a softmax of sums computed in the test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from core import explanation_checks as checks
from core.attributions import AttributionRequest, attribute
from core.attributions import explainer as make_explainer
from core.data import load_mnist, to_tensor
from core.evaluate import predict_logits
from core.explanation_checks import (
    CASCADE,
    PASS_EXCESS,
    STEPS,
    Verdict,
    cascade,
    data_randomisation,
    deletion,
    digit_seed,
    floor,
    gini,
    impute,
    independent,
    insertion,
    max_sensitivity,
    pixel_order,
    randomized,
    rank_correlation,
    road,
    similarity,
    ssim,
    uninformative,
    verdicts,
)
from core.model import MnistCNN


class Linear(MnistCNN):
    """logits = W x (no bias, no normalisation). Saliency is |W[t]|, Input x Gradient W[t] * x."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)  # (10, 784)

    def forward(self, x):
        return x.flatten(1) @ self.weight.T


def fresh_model(seed: int = 100) -> MnistCNN:
    """An untrained network. Not seed 0: ``randomized(..., seed=0)`` would redraw conv1 (the
    first layer initialised) exactly as ``torch.manual_seed(0)`` drew it."""
    torch.manual_seed(seed)
    return MnistCNN().eval()


def saliency(model, images, targets):
    return attribute("Saliency", model, images, targets)


def input_x_gradient(model, images, targets):
    return attribute("Input × Gradient", model, images, targets)


def guided_backprop(model, images, targets):
    return attribute("Guided Backprop", model, images, targets)


def ignores_model(model, images, targets):
    """A map that depends on the image only: a fixed ramp times (image + 0.1)."""
    ramp = np.arange(784, dtype=np.float32).reshape(28, 28) / 784
    return (ramp * (images[:, 0].numpy() + 0.1)).astype(np.float32)


def blank(model, images, targets):
    return np.zeros((len(images), 28, 28), dtype=np.float32)


def softmax_prob(logits: list[float], k: int) -> float:
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    return exps[k] / sum(exps)


def trapezoid(ys: list[float]) -> float:
    """Area under ys over 0, 0.1, ..., 1 (equal spacing 1 / STEPS), written out."""
    h = 1.0 / (len(ys) - 1)
    return sum((ys[i] + ys[i + 1]) / 2 * h for i in range(len(ys) - 1))


# ---- gini --------------------------------------------------------------------------------


def test_gini_one_hot_of_four_is_three_quarters():
    # sorted ascending [0, 0, 0, 1], weights 2i - n - 1 = -3, -1, 1, 3: 3 / (4 * 1)
    assert gini(np.array([[0.0, 0.0, 0.0, 1.0]]))[0] == pytest.approx(0.75, abs=1e-12)


def test_gini_unsorted_and_signed_values_by_hand():
    # |[4, -1, 3, -2]| sorted = 1, 2, 3, 4: (-3*1 - 1*2 + 1*3 + 3*4) / (4 * 10) = 10 / 40
    assert gini(np.array([[4.0, -1.0, 3.0, -2.0]]))[0] == pytest.approx(0.25, abs=1e-12)
    assert gini(np.array([[-1.0, 0.0, 0.0, 0.0]]))[0] == pytest.approx(0.75, abs=1e-12)


def test_gini_on_28x28_maps_batch():
    maps = np.zeros((3, 28, 28), dtype=np.float32)
    maps[0, 5, 5] = -2.0  # one pixel carries it all: (n - 1) / n
    maps[1] = 0.3  # uniform
    # map 2: all zero -> NaN
    result = gini(maps)
    assert result.shape == (3,)
    assert result[0] == pytest.approx(783 / 784, abs=1e-12)
    assert result[1] == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(result[2])


def test_gini_half_and_half_by_hand():
    # 784 pixels, 392 zeros then 392 ones: sum over i=393..784 of (2i - 785) / (784 * 392)
    values = np.zeros((1, 28, 28))
    values[0, 14:] = 1.0
    expected = sum(2 * i - 785 for i in range(393, 785)) / (784 * 392)
    assert expected == pytest.approx(0.5, abs=1e-12)
    assert gini(values)[0] == pytest.approx(expected, abs=1e-12)


# ---- rank correlation, ssim, similarity ---------------------------------------------------


def test_rank_correlation_monotone_and_reversed():
    a = np.linspace(-2, 3, 784).reshape(28, 28)
    assert rank_correlation(a, np.exp(3 * a)) == pytest.approx(1.0, abs=1e-12)
    assert rank_correlation(a, -(a**3)) == pytest.approx(-1.0, abs=1e-12)


def test_rank_correlation_with_ties_uses_average_ranks():
    a = np.array([1.0, 2.0, 2.0, 3.0])
    b = np.array([10.0, 30.0, 20.0, 40.0])
    # ranks a = 1, 2.5, 2.5, 4; ranks b = 1, 3, 2, 4; both means 2.5
    # deviations a: -1.5, 0, 0, 1.5; b: -1.5, 0.5, -0.5, 1.5
    # cov 4.5, var a 4.5, var b 5 -> 4.5 / sqrt(22.5)
    assert rank_correlation(a, b) == pytest.approx(4.5 / math.sqrt(22.5), abs=1e-12)


def test_rank_correlation_mask_restricts_pixels():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    b = np.array([1.0, 2.0, 3.0, 6.0, 5.0, 4.0])  # agree on the first three, reversed on the rest
    first = np.array([True, True, True, False, False, False])
    assert rank_correlation(a, b, first) == pytest.approx(1.0, abs=1e-12)
    assert rank_correlation(a, b, ~first) == pytest.approx(-1.0, abs=1e-12)
    # whole: ranks b = 1, 2, 3, 6, 5, 4; d = 0, 0, 0, 2, 0, 2; 1 - 6 * 8 / (6 * 35)
    assert rank_correlation(a, b) == pytest.approx(1 - 6 * 8 / (6 * 35), abs=1e-12)


def test_rank_correlation_constant_is_nan():
    a = np.arange(784.0).reshape(28, 28)
    assert math.isnan(rank_correlation(a, np.zeros((28, 28))))
    assert math.isnan(rank_correlation(np.full((28, 28), 2.0), a))
    mask = np.zeros((28, 28), dtype=bool)
    mask[0, :3] = True
    b = a.copy()
    b[0, :3] = 7.0  # constant where the mask is, not elsewhere
    assert math.isnan(rank_correlation(a, b, mask))
    one = np.zeros((28, 28), dtype=bool)
    one[3, 3] = True
    assert math.isnan(rank_correlation(a, a, one))  # a single pixel has no ranking


def ssim_by_hand(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over every 7x7 window inside the image, sample (co)variances, data range 1."""
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(a.shape[0] - 6):
        for j in range(a.shape[1] - 6):
            x, y = a[i : i + 7, j : j + 7].ravel(), b[i : i + 7, j : j + 7].ravel()
            ux, uy = x.mean(), y.mean()
            vx, vy = x.var(ddof=1), y.var(ddof=1)
            cxy = ((x - ux) * (y - uy)).sum() / (x.size - 1)
            values.append(((2 * ux * uy + c1) * (2 * cxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_identical_and_scaled_maps_are_one():
    a = np.random.default_rng(0).random((28, 28))
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-9)
    assert ssim(a, 5 * a) == pytest.approx(1.0, abs=1e-9)  # each scaled to its own maximum


def test_ssim_constant_map_is_nan():
    a = np.random.default_rng(0).random((28, 28))
    assert math.isnan(ssim(a, np.zeros((28, 28))))
    assert math.isnan(ssim(np.full((28, 28), 0.4), a))


def test_ssim_of_different_maps_by_hand():
    rng = np.random.default_rng(1)
    a, b = rng.random((28, 28)), 3 * rng.random((28, 28))
    expected = ssim_by_hand(a / a.max(), b / b.max())
    assert expected < 0.2
    assert ssim(a, b) == pytest.approx(expected, abs=1e-6)


def test_similarity_ink_variants_look_only_at_ink():
    image = np.zeros((28, 28))
    image[10:14, 10:14] = 0.8  # 16 ink pixels
    ink = image > 0
    ramp = np.arange(784.0).reshape(28, 28) + 1.0
    # Agree on ink (same order), reversed on the background.
    a = ramp.copy()
    b = np.where(ink, ramp, -ramp)
    same_on_ink = similarity(a, b, image)
    assert same_on_ink.spearman_ink == pytest.approx(1.0, abs=1e-12)
    assert same_on_ink.spearman < 0.5
    # Reversed on ink, agree on the background.
    c = np.where(ink, 1000.0 - ramp, ramp)
    other = similarity(a, c, image)
    assert other.spearman_ink == pytest.approx(-1.0, abs=1e-12)
    assert other.spearman_abs_ink == pytest.approx(-1.0, abs=1e-12)
    assert other.spearman > 0.9


def test_similarity_abs_variants_take_the_absolute_value():
    image = np.zeros((28, 28))
    image[5:9, 5:20] = 1.0
    ramp = np.arange(784.0).reshape(28, 28) + 1.0
    sims = similarity(ramp, -ramp, image)
    assert sims.spearman == pytest.approx(-1.0, abs=1e-12)
    assert sims.spearman_ink == pytest.approx(-1.0, abs=1e-12)
    assert sims.spearman_abs == pytest.approx(1.0, abs=1e-12)
    assert sims.spearman_abs_ink == pytest.approx(1.0, abs=1e-12)
    assert sims.ssim_abs == pytest.approx(1.0, abs=1e-9)


def test_similarity_on_a_blank_image_has_nan_ink_scores():
    ramp = np.arange(784.0).reshape(28, 28)
    sims = similarity(ramp, ramp, np.zeros((28, 28)))
    assert sims.spearman == pytest.approx(1.0)
    assert math.isnan(sims.spearman_ink) and math.isnan(sims.spearman_abs_ink)


def test_uninformative():
    maps = np.zeros((4, 28, 28), dtype=np.float32)
    maps[1] = 0.3
    maps[2, 27, 27] = 1e-6
    maps[3] = np.random.default_rng(0).random((28, 28))
    assert uninformative(maps).tolist() == [True, True, False, False]


# ---- randomised models --------------------------------------------------------------------


def fan_in_bound(layer: torch.nn.Module) -> float:
    fan_in = layer.weight[0].numel()  # in_features, or in_channels * kh * kw
    return math.sqrt(6 / ((1 + 5) * fan_in))  # kaiming_uniform, a = sqrt(5): 1 / sqrt(fan_in)


def test_randomized_changes_only_the_listed_layers_and_leaves_the_original():
    model = fresh_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    private = randomized(model, ("fc2", "conv3"), seed=4)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name  # the original is untouched
    for name, value in private.state_dict().items():
        layer = name.split(".")[0]
        if layer in ("fc2", "conv3"):
            assert not torch.equal(value, before[name]), name
        else:
            assert torch.equal(value, before[name]), name
    assert private is not model and not private.training


def test_randomized_is_seeded_and_leaves_the_global_generator_alone():
    model = fresh_model()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = randomized(model, CASCADE, seed=7)
    assert torch.equal(torch.rand(3), expected_next)  # no draw from torch's global state
    b = randomized(model, CASCADE, seed=7)
    c = randomized(model, CASCADE, seed=8)
    for name in CASCADE:
        for part in ("weight", "bias"):
            pa, pb, pc = (getattr(getattr(m, name), part) for m in (a, b, c))
            assert torch.equal(pa, pb), (name, part)
            assert not torch.equal(pa, pc), (name, part)


def test_randomized_values_lie_in_pytorch_default_init_bounds():
    model = fresh_model()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(10.0)  # anything not re-initialised would stand out
    private = randomized(model, CASCADE, seed=0)
    for name in CASCADE:
        layer = getattr(private, name)
        bound = fan_in_bound(layer)
        assert bound == pytest.approx(1 / math.sqrt(layer.weight[0].numel()))
        assert layer.weight.abs().max().item() <= bound
        assert layer.bias.abs().max().item() <= bound
        if layer.weight.numel() >= 100:  # uniform over the whole range, not a narrower one
            assert layer.weight.abs().max().item() > 0.8 * bound
    fc1 = private.fc1.weight  # 10,240 values: uniform(-b, b) has mean 0 and std b / sqrt(3)
    b = fan_in_bound(private.fc1)
    assert abs(fc1.mean().item()) < 0.02 * b
    assert fc1.std().item() == pytest.approx(b / math.sqrt(3), rel=0.03)


# ---- pixel order --------------------------------------------------------------------------


def test_pixel_order_is_descending_by_score():
    scores = np.random.default_rng(0).integers(0, 5, size=(2, 28, 28)).astype(np.float32)
    order = pixel_order(scores, seed=0)
    assert order.shape == (2, 784) and order.dtype == np.int64
    for row, s in zip(order, scores.reshape(2, -1), strict=True):
        assert sorted(row.tolist()) == list(range(784))
        assert np.all(np.diff(s[row]) <= 0)
    one = np.zeros((1, 28, 28))
    one[0, 27, 27], one[0, 0, 3] = 5.0, 4.0
    assert pixel_order(one, seed=0)[0, :2].tolist() == [783, 3]


def test_pixel_order_breaks_ties_at_random_seeded():
    equal = np.ones((1, 28, 28))
    a, b, c = pixel_order(equal, 0), pixel_order(equal, 0), pixel_order(equal, 1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a[0], np.arange(784))  # not reading order
    assert (a[0, :100] < 100).mean() < 0.5  # the first pixels are not the top rows


# ---- deletion and insertion: a linear model, worked out by hand ---------------------------
# Image 0: 10 ink pixels, target 0; image 1: 20 ink pixels (two per step), target 1.
# logit 0 = sum W0[p] x[p], logit 1 = sum W1[p] x[p], logits 2..9 = 0.

INK0 = [(3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20), (21, 22)]
INK1 = [(r, c) for r in (8, 9) for c in range(5, 15)]


def linear_problem():
    rng = np.random.default_rng(3)
    weight = torch.zeros(10, 784)
    image = torch.zeros(2, 1, 28, 28)
    values0, values1 = {}, {}
    for k, (r, c) in enumerate(INK0):
        p = r * 28 + c
        image[0, 0, r, c] = 0.2 + 0.08 * k
        weight[0, p] = float(rng.uniform(0.5, 1.5)) * (1 if k % 3 else -1)
        weight[1, p] = 0.3
        values0[p] = float(image[0, 0, r, c])
    for k, (r, c) in enumerate(INK1):
        p = r * 28 + c
        image[1, 0, r, c] = 0.5 + 0.02 * k
        weight[1, p] = weight[1, p] + float(rng.uniform(-0.5, 1.0))
        weight[0, p] = -0.1
        values1[p] = float(image[1, 0, r, c])
    return Linear(weight).eval(), image, torch.tensor([0, 1]), weight.double().numpy(), [values0, values1]


def logits_by_hand(weight: np.ndarray, pixels: dict[int, float]) -> list[float]:
    return [sum(weight[k, p] * v for p, v in pixels.items()) for k in range(10)]


def hand_order(ink: list[tuple[int, int]], seed: int) -> np.ndarray:
    """The ink pixels in a shuffled order, then every other pixel."""
    ink_flat = [r * 28 + c for r, c in ink]
    shuffled = np.random.default_rng(seed).permutation(ink_flat).tolist()
    rest = [p for p in range(784) if p not in ink_flat]
    return np.array(shuffled + rest, dtype=np.int64)


def test_deletion_curve_by_hand():
    model, images, targets, weight, pixels = linear_problem()
    order = np.stack([hand_order(INK0, 0), hand_order(INK1, 1)])
    curve = deletion(model, images, targets, order)
    assert curve.fractions.shape == (STEPS + 1,)
    np.testing.assert_allclose(curve.fractions, [k / 10 for k in range(11)], atol=1e-12)
    assert curve.probs.shape == (2, STEPS + 1)
    for i, per_step in enumerate((1, 2)):
        expected = []
        for k in range(11):
            removed = set(order[i, : k * per_step].tolist())
            remaining = {p: v for p, v in pixels[i].items() if p not in removed}
            expected.append(softmax_prob(logits_by_hand(weight, remaining), int(targets[i])))
        assert expected[-1] == pytest.approx(0.1)  # all ink gone: every logit 0
        np.testing.assert_allclose(curve.probs[i], expected, rtol=1e-5, atol=1e-6)
        assert curve.area[i] == pytest.approx(trapezoid(expected), abs=1e-5)


def test_insertion_curve_by_hand_starts_from_black():
    model, images, targets, weight, pixels = linear_problem()
    order = np.stack([hand_order(INK0, 2), hand_order(INK1, 3)])
    curve = insertion(model, images, targets, order)
    np.testing.assert_allclose(curve.fractions, [k / 10 for k in range(11)], atol=1e-12)
    with torch.no_grad():
        on_black = torch.softmax(model(torch.zeros(1, 1, 28, 28)), dim=1)[0]
    for i, per_step in enumerate((1, 2)):
        expected = []
        for k in range(11):
            added = set(order[i, : k * per_step].tolist())
            present = {p: v for p, v in pixels[i].items() if p in added}
            expected.append(softmax_prob(logits_by_hand(weight, present), int(targets[i])))
        assert expected[0] == pytest.approx(0.1)
        assert curve.probs[i, 0] == pytest.approx(on_black[int(targets[i])].item(), abs=1e-6)
        assert expected[-1] == pytest.approx(softmax_prob(logits_by_hand(weight, pixels[i]), int(targets[i])))
        np.testing.assert_allclose(curve.probs[i], expected, rtol=1e-5, atol=1e-6)
        assert curve.area[i] == pytest.approx(trapezoid(expected), abs=1e-5)


ROAD_WEIGHTS = {(-1, 0): 1 / 6, (1, 0): 1 / 6, (0, -1): 1 / 6, (0, 1): 1 / 6}
ROAD_WEIGHTS |= {(dr, dc): 1 / 12 for dr in (-1, 1) for dc in (-1, 1)}


def neighbour_mean(image: np.ndarray, r: int, c: int, skip: tuple[int, int] | None = None) -> tuple[float, float]:
    """Weighted sum of the known neighbours of (r, c) inside the image, and their total weight."""
    total = weight = 0.0
    for (dr, dc), w in ROAD_WEIGHTS.items():
        rr, cc = r + dr, c + dc
        if 0 <= rr < 28 and 0 <= cc < 28:
            weight += w
            if (rr, cc) != skip:
                total += w * image[rr, cc]
    return total, weight


def test_road_imputation_by_hand():
    """A lone removed pixel takes its neighbours' weighted mean (1/6 direct, 1/12 diagonal;
    at a corner only the three neighbours inside count); two adjacent removed pixels solve
    a = (Ka + b/6) / W, b = (Kb + a/6) / W together; plus the seeded noise."""
    image = np.random.default_rng(5).uniform(0.3, 0.7, (28, 28)).astype(np.float32)
    removed = np.zeros((28, 28), dtype=bool)
    for r, c in [(10, 10), (0, 0), (20, 5), (20, 6)]:
        removed[r, c] = True
    out = impute(torch.from_numpy(image)[None, None], torch.from_numpy(removed)[None, None], seed=4)[0, 0].numpy()
    noise = (torch.randn((1, 1, 28, 28), generator=torch.Generator().manual_seed(4)) * 0.01)[0, 0].numpy()
    for r, c in [(10, 10), (0, 0)]:
        total, weight = neighbour_mean(image, r, c)
        assert out[r, c] == pytest.approx(total / weight + noise[r, c], abs=1e-5)
    ka, wa = neighbour_mean(image, 20, 5, skip=(20, 6))
    kb, wb = neighbour_mean(image, 20, 6, skip=(20, 5))
    a = (ka / wa + kb / (6 * wa * wb)) / (1 - 1 / (36 * wa * wb))
    b = (kb + a / 6) / wb
    assert out[20, 5] == pytest.approx(a + noise[20, 5], abs=1e-5)
    assert out[20, 6] == pytest.approx(b + noise[20, 6], abs=1e-5)
    np.testing.assert_array_equal(out[~removed], image[~removed])


def test_road_curve_is_the_model_on_imputed_digits():
    model, images, targets, _, _ = linear_problem()
    order = np.stack([hand_order(INK0, 0), hand_order(INK1, 1)])
    curve = road(model, images, targets, order, seed=2)
    deleted = deletion(model, images, targets, order)
    np.testing.assert_allclose(curve.probs[:, 0], deleted.probs[:, 0], rtol=1e-6)  # nothing removed yet
    # Every ink pixel of digit 0 is isolated on black: removed, each becomes its black
    # neighbours' mean plus noise, so the last point is near the all-black one.
    assert curve.probs[0, -1] == pytest.approx(deleted.probs[0, -1], abs=0.02)
    # Digit 1 is two rows of ink: removing pixels keeps their neighbours' ink, unlike deletion.
    assert not np.allclose(curve.probs[1, 1:-1], deleted.probs[1, 1:-1], atol=1e-4)
    assert curve.area.shape == (2,)


def test_deletion_in_map_order_from_pixel_order():
    """A map that ranks the ink by the target's evidence W0[p] x[p]: deletion removes the
    strongest evidence first, so its area is the smallest of these orders."""
    model, images, targets, weight, pixels = linear_problem()
    evidence = np.zeros((2, 784))
    for p, v in pixels[0].items():
        evidence[0, p] = weight[0, p] * v + 10.0  # ink above the background, ranked by evidence
    for p, v in pixels[1].items():
        evidence[1, p] = weight[1, p] * v + 10.0
    best = deletion(model, images, targets, pixel_order(evidence.reshape(2, 28, 28), 0)).area
    worst = deletion(model, images, targets, pixel_order(-evidence.reshape(2, 28, 28) + 20.0, 0)).area
    assert np.all(best < worst)
    # The best order's first step removes image 0's single strongest pixel, by hand.
    top = max(pixels[0], key=lambda p: weight[0, p] * pixels[0][p])
    rest = {p: v for p, v in pixels[0].items() if p != top}
    first_step = deletion(model, images, targets, pixel_order(evidence.reshape(2, 28, 28), 0)).probs[0, 1]
    assert first_step == pytest.approx(softmax_prob(logits_by_hand(weight, rest), 0), rel=1e-5)


# ---- max-sensitivity ----------------------------------------------------------------------


@pytest.fixture
def linear_case():
    torch.manual_seed(0)
    weight = torch.randn(10, 784)
    images = torch.rand(2, 1, 28, 28)
    images[1, 0, :10] = 0.0  # black rows: the clamp at 0 matters there
    images[1, 0, 10:12] = 1.0  # and at 1
    return Linear(weight).eval(), weight, images, torch.tensor([1, 2])


def test_max_sensitivity_of_saliency_on_a_linear_model_is_zero(linear_case):
    model, _, images, targets = linear_case
    result = max_sensitivity(saliency, model, images, targets, seed=0)
    assert result.shape == (2,)
    assert np.all(result == 0.0)


def test_max_sensitivity_of_input_x_gradient_by_hand(linear_case):
    """map = W[t] * x. Captum repeats each image ``samples`` times (repeat_interleave) and the
    noise for the whole expanded batch is one draw, uniform in [-r, r], then clamped to [0, 1]."""
    model, weight, images, targets = linear_case
    seed, r, n = 5, 0.02, 8
    result = max_sensitivity(input_x_gradient, model, images, targets, seed=seed, radius=r, samples=n)
    generator = torch.Generator().manual_seed(seed)
    expanded = images.repeat_interleave(n, dim=0)
    noise = torch.rand(expanded.shape, generator=generator) * 2 * r - r
    perturbed = (expanded + noise).clamp(0, 1).double()
    w = weight.double()[targets].reshape(2, 1, 28, 28)
    for i in range(2):
        base = (w[i] * images[i].double()).flatten()
        changes = [
            ((w[i] * perturbed[i * n + s]).flatten() - base).norm().item() / base.norm().item() for s in range(n)
        ]
        assert result[i] == pytest.approx(max(changes), rel=1e-5)
        # |d| <= r everywhere: the change is at most r * ||W[t]|| / ||W[t] x||
        assert result[i] <= r * w[i].norm().item() / base.norm().item() + 1e-9


def test_max_sensitivity_is_seeded(linear_case):
    model, _, images, targets = linear_case
    a = max_sensitivity(input_x_gradient, model, images, targets, seed=1)
    b = max_sensitivity(input_x_gradient, model, images, targets, seed=1)
    c = max_sensitivity(input_x_gradient, model, images, targets, seed=2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(a > 0)


# ---- cascade, independent, floor ----------------------------------------------------------


def small_batch() -> tuple[torch.Tensor, torch.Tensor]:
    test = load_mnist().test
    return to_tensor(test.images[:2]), torch.from_numpy(test.labels[:2]).long()


class Recorder:
    """An explainer that notes which layers differ from the trained model's, then maps the image."""

    def __init__(self, model: MnistCNN):
        self.reference = {k: v.clone() for k, v in model.state_dict().items()}
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, model, images, targets):
        changed = {
            name.split(".")[0] for name, v in model.state_dict().items() if not torch.equal(v, self.reference[name])
        }
        self.calls.append(tuple(sorted(changed)))
        return ignores_model(model, images, targets)


def test_cascade_structure_and_an_explainer_that_ignores_the_model():
    model = fresh_model()
    images, targets = small_batch()
    recorder = Recorder(model)
    original, steps = cascade(recorder, model, images, targets, seed=0)
    assert original.shape == (2, 28, 28)
    assert [s.layers for s in steps] == [
        ("fc2",),
        ("fc2", "fc1"),
        ("fc2", "fc1", "conv4"),
        ("fc2", "fc1", "conv4", "conv3"),
        ("fc2", "fc1", "conv4", "conv3", "conv2"),
        ("fc2", "fc1", "conv4", "conv3", "conv2", "conv1"),
    ]
    assert recorder.calls == [(), *(tuple(sorted(s.layers)) for s in steps)]  # the layers really were random
    for step in steps:
        assert len(step.similarity) == 2
        for sim in step.similarity:
            for value in (sim.spearman, sim.spearman_abs, sim.spearman_ink, sim.spearman_abs_ink, sim.ssim_abs):
                assert value == pytest.approx(1.0, abs=1e-9)
    assert [s.layers for s in cascade(recorder, model, images, targets, steps=2)[1]] == [("fc2",), ("fc2", "fc1")]


def test_independent_structure():
    model = fresh_model()
    images, targets = small_batch()
    recorder = Recorder(model)
    steps = independent(recorder, model, images, targets, seed=0)
    assert [s.layers for s in steps] == [(name,) for name in CASCADE]
    assert recorder.calls == [(), *((name,) for name in CASCADE)]
    assert all(sim.spearman == pytest.approx(1.0) for s in steps for sim in s.similarity)


def test_floor_of_an_explainer_that_ignores_the_model_is_one():
    model = fresh_model()
    images, targets = small_batch()
    recorder = Recorder(model)
    sims = floor(recorder, model, images, targets, seed=0)
    assert len(sims) == 2
    assert recorder.calls == [tuple(sorted(CASCADE))] * 2
    for sim in sims:
        assert sim.spearman == pytest.approx(1.0) and sim.spearman_abs_ink == pytest.approx(1.0)


def test_randomisation_changes_a_map_that_reads_the_weights():
    model = fresh_model()
    images, targets = small_batch()
    original, steps = cascade(saliency, model, images, targets, seed=0)
    np.testing.assert_array_equal(original, saliency(model, images, targets))
    for step in steps:
        assert not np.array_equal(step.maps, original)
    assert all(sim.spearman_abs < 0.95 for sim in steps[-1].similarity)
    again = cascade(saliency, model, images, targets, seed=0)[1]
    other = cascade(saliency, model, images, targets, seed=1, steps=1)[1]
    for a, b in zip(steps, again, strict=True):
        np.testing.assert_array_equal(a.maps, b.maps)
        assert a.similarity == b.similarity
    assert not np.array_equal(other[0].maps, steps[0].maps)
    floors = floor(saliency, model, images, targets, seed=0)
    assert floors == floor(saliency, model, images, targets, seed=0)
    assert all(sim.spearman_abs < 0.999 for sim in floors)


# ---- Verdict ------------------------------------------------------------------------------


def verdict(**changes) -> Verdict:
    values = dict(
        informative=True,
        similarity_top=0.3,
        floor=0.25,
        deletion=0.2,
        deletion_random=0.5,
        deletion_random_sd=0.0,
        deletion_ink=0.3,
        deletion_random_net=0.45,
        insertion=0.7,
        insertion_random=0.4,
        gini=0.6,
    )
    values.update(changes)
    return Verdict(**values)


def test_verdict_passes_randomisation_against_the_floor():
    floor_value = 0.25
    assert verdict(similarity_top=floor_value + PASS_EXCESS - 0.05, floor=floor_value).passes_randomisation is True
    assert verdict(similarity_top=floor_value + PASS_EXCESS + 0.05, floor=floor_value).passes_randomisation is False
    assert verdict(similarity_top=0.85, floor=0.85 - PASS_EXCESS + 0.05).passes_randomisation is True  # floor high
    assert verdict(similarity_top=PASS_EXCESS - 0.05, floor=math.nan).passes_randomisation is True  # NaN floor: 0
    assert verdict(similarity_top=PASS_EXCESS + 0.05, floor=math.nan).passes_randomisation is False
    assert verdict(similarity_top=math.nan).passes_randomisation is None


def test_a_map_that_barely_changes_fails_randomisation_whatever_the_floor():
    assert verdict(similarity_top=checks.SAME_MAP, floor=checks.SAME_MAP).passes_randomisation is False
    assert verdict(similarity_top=1.0, floor=1.0).passes_randomisation is False
    assert verdict(similarity_top=checks.SAME_MAP - 0.01, floor=0.7).passes_randomisation is True


def test_deletion_must_beat_the_spread_of_random_orders():
    """The margin is the larger of BEATS_MARGIN and RANDOM_ORDER_Z standard deviations."""
    spread = verdict(deletion=0.3, deletion_random=0.5, deletion_random_sd=0.08)
    assert spread.deletion_margin == pytest.approx(checks.RANDOM_ORDER_Z * 0.08)
    assert spread.beats_random_deletion is (checks.RANDOM_ORDER_Z * 0.08 < 0.2)
    assert verdict(deletion=0.3, deletion_random=0.5, deletion_random_sd=0.11).beats_random_deletion is False
    assert verdict(deletion=0.3, deletion_random=0.5, deletion_random_sd=0.0).deletion_margin == checks.BEATS_MARGIN
    assert "deletes no better than random" in verdict(deletion=0.3, deletion_random=0.5, deletion_random_sd=0.11).text


def test_verdict_shape_only():
    assert verdict(deletion=0.2, deletion_random_net=0.25).shape_only is True
    assert verdict(deletion=0.2, deletion_random_net=0.125).shape_only is True  # random net even better
    assert verdict(deletion=0.2, deletion_random_net=0.5).shape_only is False


def test_verdict_text_and_good():
    passing = verdict(similarity_top=0.25, floor=0.25, deletion=0.2, deletion_random=0.5, deletion_random_net=0.5)
    assert passing.text == "passes randomisation · deletion beats random by 0.30"
    assert passing.good is True
    failing = verdict(similarity_top=0.25 + PASS_EXCESS + 0.1, floor=0.25)
    assert failing.text.startswith("fails randomisation")
    assert failing.good is False
    shape = verdict(similarity_top=0.25, floor=0.25, deletion=0.2, deletion_random=0.5, deletion_random_net=0.22)
    assert shape.text == "passes randomisation · deletion beats random by 0.30 · a random net's map deletes as well"
    assert shape.good is False
    no_gain = verdict(similarity_top=0.25, floor=0.25, deletion=0.2, deletion_random=0.21, deletion_random_net=0.5)
    assert no_gain.text == "passes randomisation · deletes no better than random"
    assert no_gain.good is False
    na = verdict(similarity_top=math.nan)
    assert na.text.startswith("randomisation n/a") and na.good is False


def test_verdict_marks_and_word():
    assert verdict(similarity_top=0.25, floor=0.25, deletion_random_net=0.5).marks == (True, True, True)
    assert verdict(similarity_top=0.25, floor=0.25, deletion_random_net=0.5).word == "trust"
    failing = verdict(
        similarity_top=0.25 + PASS_EXCESS + 0.1, floor=0.25, deletion_random=0.21, deletion_random_net=0.22
    )
    assert failing.marks == (False, False, False) and failing.word == "doubt"
    shape = verdict(similarity_top=0.25, floor=0.25, deletion_random_net=0.22)
    assert shape.marks == (True, True, False) and shape.word == "doubt"
    assert verdict(similarity_top=math.nan).marks[0] is None and verdict(similarity_top=math.nan).word == "doubt"
    assert verdict(informative=False).marks == (None, None, None) and verdict(informative=False).word == "blank"


def test_an_uninformative_verdict_never_passes():
    blank_map = verdict(informative=False, similarity_top=0.0, floor=0.5, deletion=0.0, deletion_random_net=1.0)
    assert blank_map.passes_randomisation is None
    assert blank_map.good is False
    assert blank_map.text == "uninformative: the map is blank"
    assert "cannot be checked" in blank_map.reasons[0][1]


def test_verdict_reasons_say_which_way_is_better():
    reasons = dict(verdict().reasons)
    assert list(reasons) == ["Randomisation", "Deletion", "Insertion", "Sparseness"]
    assert reasons["Randomisation"].startswith("(lower is better)")
    assert "0.30" in reasons["Randomisation"] and "0.25" in reasons["Randomisation"]
    assert "lower is better" in reasons["Deletion"]
    assert all(f"{v:.2f}" in reasons["Deletion"] for v in (0.2, 0.5, 0.3, 0.45))
    assert "higher is better" in reasons["Insertion"]
    assert "0.70" in reasons["Insertion"] and "0.40" in reasons["Insertion"]
    assert "0.60" in reasons["Sparseness"]


# ---- verdicts on the trained network ------------------------------------------------------


def three_digits() -> tuple[torch.Tensor, torch.Tensor]:
    test = load_mnist().test
    return to_tensor(test.images[:3]), torch.from_numpy(test.labels[:3]).long()


def ink_spearman_abs(a: np.ndarray, b: np.ndarray, image: np.ndarray) -> float:
    ink = image > 0
    return float(spearmanr(np.abs(a[ink]), np.abs(b[ink])).statistic)


def test_verdicts_on_the_reference_model(reference_model):
    model = reference_model.model
    images, targets = three_digits()
    pixels = images[:, 0].numpy()
    draws = checks.RANDOM_DRAWS
    for explainer in (saliency, guided_backprop):
        first = verdicts(explainer, model, images, targets, seed=11)
        assert first == verdicts(explainer, model, images, targets, seed=11)  # same numbers twice
        assert len(first) == 3
        for v in first:
            assert v.informative
            for area in (
                v.deletion,
                v.deletion_random,
                v.deletion_ink,
                v.deletion_random_net,
                v.insertion,
                v.insertion_random,
            ):
                assert 0.0 <= area <= 1.0
            assert math.isfinite(v.insertion_random) and math.isfinite(v.deletion_random)
            assert 0.0 <= v.gini <= 1.0
        # By hand: the mean ink-only |rank| similarity over the draws (seeds 11, 12, ...), the
        # floor over pairs of different fully random networks, and the Gini of the map.
        original = explainer(model, images, targets)
        tops = [explainer(randomized(model, CASCADE[:3], 11 + k), images, targets) for k in range(draws)]
        randoms = [explainer(randomized(model, CASCADE, 11 + k), images, targets) for k in range(draws)]
        for i, v in enumerate(first):
            top = np.mean([ink_spearman_abs(original[i], t[i], pixels[i]) for t in tops])
            assert v.similarity_top == pytest.approx(top, abs=1e-9)
            floors = [
                ink_spearman_abs(randoms[j][i], randoms[k][i], pixels[i])
                for j in range(draws)
                for k in range(draws)
                if j != k
            ]
            assert min(floors) - 1e-9 <= v.floor <= max(floors) + 1e-9  # a mean over distinct pairs
            assert v.floor < 0.999  # never a network compared with itself
        flat = np.sort(np.abs(original[0].astype(np.float64).ravel()))
        expected = sum((2 * i - 785) * a for i, a in zip(range(1, 785), flat, strict=True)) / (784 * flat.sum())
        assert first[0].gini == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("draws", [1, 2])
def test_verdict_floor_compares_two_different_random_networks(reference_model, draws):
    """Even with one or two draws, the floor is a similarity between two distinct random
    networks' maps; a map compared with itself would give 1 and let every map pass."""
    model = reference_model.model
    images, targets = three_digits()
    pixels = images[:, 0].numpy()
    result = verdicts(saliency, model, images, targets, seed=4, draws=draws)
    first = saliency(randomized(model, CASCADE, 4), images, targets)
    second = saliency(randomized(model, CASCADE, 5), images, targets)
    for i, v in enumerate(result):
        assert v.floor == pytest.approx(ink_spearman_abs(first[i], second[i], pixels[i]), abs=1e-9)
        assert v.floor < 0.999


def test_verdicts_average_several_random_deletion_orders(reference_model):
    """deletion_random is the mean, deletion_random_sd the spread, of RANDOM_ORDERS random
    orders' deletion areas (order k drawn from seed + k, ties broken by seed)."""
    model = reference_model.model
    images, targets = three_digits()
    pixels = images[:, 0].numpy()
    result = verdicts(saliency, model, images, targets, seed=7)
    areas = np.stack(
        [
            deletion(
                model, images, targets, pixel_order(np.random.default_rng(7 + k).random((3, 28, 28)), 7, pixels)
            ).area
            for k in range(checks.RANDOM_ORDERS)
        ]
    )
    for i, v in enumerate(result):
        assert v.deletion_random == pytest.approx(areas[:, i].mean(), abs=1e-6)
        assert v.deletion_random_sd == pytest.approx(areas[:, i].std(ddof=1), abs=1e-6)


# ---- bad explainers must not be trusted ----------------------------------------------------


def image_itself(model, images, targets):
    return images[:, 0].numpy().copy()


def image_edges(model, images, targets):
    from scipy import ndimage

    return np.stack([np.hypot(ndimage.sobel(i, 0), ndimage.sobel(i, 1)) for i in images[:, 0].numpy()])


def pure_noise(model, images, targets):
    """Uniform noise seeded by each digit's pixels: the same map for any network."""
    return np.stack([np.random.default_rng(digit_seed(i)).random((28, 28)) for i in images]).astype(np.float32)


@pytest.fixture(scope="module")
def fixed_sample(reference_model):
    """60 test digits: the first 30 the reference model misreads, then 30 it reads right."""
    test = load_mnist().test
    images = to_tensor(test.images[:2000])
    preds = predict_logits(reference_model.model, images).argmax(1)
    wrong = torch.nonzero(preds != torch.from_numpy(test.labels[:2000])).ravel()[:30]
    right = torch.nonzero(preds == torch.from_numpy(test.labels[:2000])).ravel()[:30]
    chosen = torch.cat([wrong, right])
    return images[chosen], preds[chosen]


@pytest.mark.parametrize("explainer", [image_itself, image_edges, pure_noise])
def test_maps_that_ignore_the_model_are_never_trusted(reference_model, fixed_sample, explainer):
    """An "explanation" that ignores the model fails randomisation or is flagged "a random
    network's map deletes as well" on at least 95% of the sample, and is never trusted."""
    images, targets = fixed_sample
    result = verdicts(explainer, reference_model.model, images, targets, seed=3)
    flagged = np.mean([v.passes_randomisation is False or v.shape_only for v in result])
    assert flagged >= 0.95
    assert not any(v.good for v in result)
    assert all(v.word == "doubt" for v in result)


def test_a_pure_noise_map_does_not_pass_deletion(reference_model, fixed_sample):
    """Noise is one more random order: it may beat random orders' spread on a few digits by
    chance (about RANDOM_ORDER_Z's one-sided tail), never on average."""
    images, targets = fixed_sample
    result = verdicts(pure_noise, reference_model.model, images, targets, seed=3)
    assert np.mean([v.beats_random_deletion for v in result]) <= 0.1
    assert abs(np.mean([v.deletion_random - v.deletion for v in result])) < 0.05


def test_a_faithful_method_on_a_trained_model_passes_on_most_digits(reference_model, fixed_sample):
    images, targets = fixed_sample
    integrated = make_explainer(AttributionRequest.of("Integrated Gradients", {}))
    result = verdicts(integrated, reference_model.model, images, targets, seed=3)
    assert np.mean([v.passes_randomisation is True for v in result]) >= 0.9
    assert np.mean([v.good for v in result]) >= 0.5


def test_verdicts_on_a_blank_map_are_uninformative(reference_model):
    model = reference_model.model
    images, targets = three_digits()
    result = verdicts(blank, model, images, targets, seed=0)
    assert [v.informative for v in result] == [False, False, False]
    assert all(v.passes_randomisation is None and not v.good for v in result)
    assert all(v.text == "uninformative: the map is blank" for v in result)


# ---- digit seed ---------------------------------------------------------------------------


def test_digit_seed():
    test = load_mnist().test
    image = to_tensor(test.images[:1])[0]
    seed = digit_seed(image)
    assert isinstance(seed, int) and 0 <= seed < 2**32
    assert digit_seed(image.clone()) == seed
    assert digit_seed(image.double()) == seed  # read as float32
    nudged = image.clone()
    nudged[0, 0, 0] = 1 / 255
    assert digit_seed(nudged) != seed
    assert digit_seed(to_tensor(test.images[1:2])[0]) != seed


def test_module_constants_match_the_docstring():
    assert CASCADE == ("fc2", "fc1", "conv4", "conv3", "conv2", "conv1")
    assert STEPS == 10
    assert checks.TOP_THREE == 3 and CASCADE[: checks.TOP_THREE] == ("fc2", "fc1", "conv4")


def test_orders_walk_the_ink_only():
    """With the image given, every order (random included) puts the inked pixels first, so
    deletion ends on a black image and insertion on the whole digit, for any map: a random
    order over all 784 pixels would delete only a fifth of the ink and make 'beats random' automatic."""
    model, images, targets, _, pixels = linear_problem()
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(2, 28, 28))
    scores[0].reshape(-1)[list(pixels[0])] = -100.0  # the map ranks every ink pixel below the background
    order = pixel_order(scores, 0, images[:, 0].numpy())
    for i in range(2):
        ink = set(pixels[i])
        assert set(order[i, : len(ink)].tolist()) == ink
    deleted = deletion(model, images, targets, order)
    inserted = insertion(model, images, targets, order)
    with torch.no_grad():
        on_black = torch.softmax(model(torch.zeros(2, 1, 28, 28)), dim=1)[torch.arange(2), targets]
        on_image = torch.softmax(model(images), dim=1)[torch.arange(2), targets]
    np.testing.assert_allclose(deleted.probs[:, -1], on_black.numpy(), rtol=1e-5)
    np.testing.assert_allclose(inserted.probs[:, -1], on_image.numpy(), rtol=1e-5)


def test_data_randomisation_compares_with_the_shuffled_label_models_maps():
    model, other = fresh_model(100), fresh_model(101)
    images = torch.rand(3, 1, 28, 28)
    targets = torch.tensor([1, 2, 3])
    maps, same = data_randomisation(saliency, model, model, images, targets)
    assert maps.shape == (3, 28, 28)
    assert all(s.spearman == pytest.approx(1.0) for s in same)  # the same network: identical maps
    _, different = data_randomisation(saliency, model, other, images, targets)
    assert all(d.spearman < 0.99 for d in different)
