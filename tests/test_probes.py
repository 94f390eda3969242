from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from scipy.ndimage import affine_transform, distance_transform_edt, grey_dilation, grey_erosion, rotate
from torch import nn

from core import probes
from core.data import Split, load_mnist, to_tensor
from core.probes import (
    KINDS,
    SIMILARITY_LAYERS,
    _geometry,
    _pearson,
    _warp,
    bend,
    counterfactual,
    default_values,
    flip_summary,
    nearest_training_digit,
    sweep,
)
from core.runs import Point

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # as the dashboard runs (conftest.py)


@pytest.fixture(scope="module")
def mnist_test() -> Split:
    return load_mnist().test


@pytest.fixture(scope="module")
def model(reference_model) -> nn.Module:
    return reference_model.model


def _letter() -> np.ndarray:
    """float32 (28, 28): an asymmetric shape with graded values, well inside the image."""
    image = np.zeros((28, 28), dtype=np.float32)
    image[6:22, 9:12] = 1.0  # a vertical bar
    image[19:22, 12:20] = 0.6  # a foot to the right at the bottom
    image[6:9, 12:15] = 0.3  # a short flag at the top
    image[14, 16] = 0.8  # a lone dot
    return image


def _predict(model: nn.Module, images: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return model(images).argmax(dim=1).numpy()


def _state(model: nn.Module) -> dict:
    return {
        "weights": {k: v.clone() for k, v in model.state_dict().items()},
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "training": [m.training for m in model.modules()],
    }


# --- Bending ----------------------------------------------------------------------------


def test_kinds_describe_their_ranges():
    assert list(KINDS) == ["rotation", "shift_x", "shift_y", "scale", "thickness", "noise", "occlusion"]
    for name, kind in KINDS.items():
        low, high = kind.range
        assert kind.name == name and low <= kind.identity <= high and kind.explanation
    assert KINDS["rotation"].range == (-45, 45) and KINDS["scale"].identity == 1
    values = default_values("rotation", 50)
    assert len(values) == 51 and 0.0 in values and np.all(np.diff(values) > 0)
    assert values[0] == -45 and values[-1] == 45
    assert len(default_values("occlusion", 50)) == 50  # -4, the identity, is already the first value


def test_rotation_is_counter_clockwise_as_rot90():
    image = _letter()
    # Quarter turns lie outside the rotation range bend accepts: through its own warp.
    out = _warp(torch.from_numpy(image)[None, None], _geometry("rotation", np.array([90.0, 180.0, -90.0])))
    for got, k in zip(out.numpy()[:, 0], (1, 2, -1), strict=True):
        np.testing.assert_allclose(got, np.rot90(image, k), atol=1e-5)  # rot90 k=1: counter-clockwise on screen
    assert not np.allclose(out[0], out[2], atol=0.1)  # the directions differ
    # Inside the range: bilinear rotation about the centre, as scipy's (positive = rot90's way).
    angles = [-45, -30, 17.5, 45]
    for got, angle in zip(bend(image, "rotation", angles).numpy()[:, 0], angles, strict=True):
        np.testing.assert_allclose(got, rotate(image, angle, reshape=False, order=1), atol=1e-5)


def test_scale_is_a_zoom_about_the_centre():
    image = _letter()
    centre = (28 - 1) / 2
    factors = [0.6, 0.83, 1.4]
    for got, factor in zip(bend(image, "scale", factors).numpy()[:, 0], factors, strict=True):
        expected = affine_transform(image, np.eye(2) / factor, offset=centre * (1 - 1 / factor), order=1)
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_integer_shifts_are_rolls_with_the_wrapped_part_zeroed():
    image = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    for kind, axis in (("shift_x", 1), ("shift_y", 0)):
        shifts = [-3, -1, 2, 4]
        out = bend(image, kind, shifts).numpy()[:, 0]
        for got, s in zip(out, shifts, strict=True):
            expected = np.roll(image, s, axis=axis)
            wrapped = [slice(None), slice(None)]
            wrapped[axis] = slice(0, s) if s > 0 else slice(28 + s, 28)
            expected[tuple(wrapped)] = 0.0
            np.testing.assert_allclose(got, expected, atol=1e-5)


def test_identity_values_give_the_original_exactly():
    image = np.random.default_rng(1).random((28, 28)).astype(np.float32)
    for kind in KINDS.values():
        out = bend(image, kind.name, [kind.identity])
        assert out.shape == (1, 1, 28, 28) and torch.equal(out[0, 0], torch.from_numpy(image)), kind.name
    # uint8 digits are divided by 255; (1, 28, 28) is accepted too.
    digit = (image * 255).astype(np.uint8)
    assert torch.equal(bend(digit, "scale", [1.0])[0, 0], torch.from_numpy(digit / np.float32(255)))
    assert torch.equal(bend(torch.from_numpy(image)[None], "rotation", [0]), bend(image, "rotation", [0]))


def test_thickness_is_grey_dilation_and_erosion():
    image = np.random.default_rng(2).random((28, 28)).astype(np.float32) ** 3
    thick, thin, half, thin_half = bend(image, "thickness", [1.0, -1.0, 0.5, -0.5]).numpy()[:, 0]
    dilated = grey_dilation(image, size=3, mode="constant", cval=0.0)
    eroded = grey_erosion(image, size=3)
    np.testing.assert_allclose(thick, dilated, atol=1e-6)
    np.testing.assert_allclose(thin[1:-1, 1:-1], eroded[1:-1, 1:-1], atol=1e-6)
    np.testing.assert_allclose(half, (image + dilated) / 2, atol=1e-6)
    np.testing.assert_allclose(thin_half[1:-1, 1:-1], ((image + eroded) / 2)[1:-1, 1:-1], atol=1e-6)
    assert (thick >= image).all() and (thin <= image).all()


def test_occlusion_zeroes_exactly_four_rows():
    image = np.random.default_rng(3).random((28, 28)).astype(np.float32) + 0.1
    image = np.clip(image, 0, 1)
    top5, top24, partial = bend(image, "occlusion", [5, 24, 5.5]).numpy()[:, 0]
    for got, top in ((top5, 5), (top24, 24)):
        rows = np.zeros(28, bool)
        rows[top : top + 4] = True
        assert (got[rows] == 0).all() and np.array_equal(got[~rows], image[~rows])
    # A fractional top row covers its edge rows in part: rows 5 and 9 keep half their ink.
    np.testing.assert_allclose(partial[[5, 9]], image[[5, 9]] / 2, rtol=1e-6)
    assert (partial[6:9] == 0).all() and np.array_equal(partial[10:], image[10:])


def test_noise_is_seeded_clipped_and_one_pattern():
    image = _letter()
    sigmas = [0.1, 0.3, 0.5]
    first, again = bend(image, "noise", sigmas), bend(image, "noise", sigmas)
    assert torch.equal(first, again) and not torch.equal(first, bend(image, "noise", sigmas, seed=1))
    out = first.numpy()[:, 0]
    assert out.min() == 0.0 and out.max() == 1.0  # clipped, and clipping happened
    # Where nothing was clipped, each sigma adds the same pattern scaled by it.
    inside = ((out > 0) & (out < 1)).all(axis=0)
    patterns = (out - image) / np.array(sigmas)[:, None, None]
    np.testing.assert_allclose(patterns[0][inside], patterns[2][inside], atol=1e-4)
    assert inside.sum() > 100


def test_bend_refuses_bad_input():
    image = _letter()
    with pytest.raises(ValueError, match=r"rotation values must lie in -45\.\.45 degrees"):
        bend(image, "rotation", [0, 50])
    with pytest.raises(ValueError, match="unknown kind of bend 'twist'"):
        bend(image, "twist", [0])
    with pytest.raises(ValueError, match="non-empty 1-D sequence"):
        bend(image, "scale", [[1.0]])
    with pytest.raises(ValueError, match=r"shaped \(28, 28\), \(1, 28, 28\) or \(1, 1, 28, 28\), got \(27, 28\)"):
        bend(image[:27], "scale", [1.0])
    with pytest.raises(ValueError, match=r"pixel values must lie in \[0, 1\]"):
        bend(image * 255, "scale", [1.0])


# --- Sweep ------------------------------------------------------------------------------


@pytest.mark.parametrize(("index", "kind"), [(4, "rotation"), (2, "shift_x")])
def test_sweep_matches_the_model_one_variant_at_a_time(model, mnist_test, index, kind):
    digit = mnist_test.images[index]
    result = sweep(model, digit, kind)
    identity = KINDS[kind].identity
    assert len(result.values) == 51 and result.values.dtype == np.float64 and identity in result.values
    assert result.images.shape == (51, 28, 28) and result.probs.shape == (51, 10) and result.preds.dtype == np.int64
    variants = bend(digit, kind, result.values)
    np.testing.assert_array_equal(result.images, variants.numpy()[:, 0])
    with torch.inference_mode():
        alone = np.stack([torch.softmax(model(v[None]), dim=1)[0].numpy() for v in variants])
        taps = [model.taps(v[None]) for v in variants]
        original = model.taps(to_tensor(digit[None]))
    np.testing.assert_allclose(result.probs, alone, atol=1e-5)
    assert np.array_equal(result.preds, alone.argmax(axis=1))
    assert result.original_pred == int(original["fc2"].argmax())
    # Flips by walking outward from the identity in plain Python.
    for side, flip in zip((-1, 1), result.flips, strict=True):
        outward = sorted((v for v in result.values if (v - identity) * side > 0), key=lambda v: abs(v - identity))
        expected = next((v for v in outward if result.preds[result.values == v][0] != result.original_pred), None)
        assert flip == expected
        if flip is not None:
            between = (result.values - identity) * side >= 0
            between &= np.abs(result.values - identity) < abs(flip - identity)
            assert (result.preds[between] == result.original_pred).all()
            assert result.preds[result.values == flip][0] != result.original_pred
    assert None not in result.flips  # these digits flip on both sides: the checks above ran
    # Similarity: 1 at the identity, Pearson's r against the original's maps elsewhere.
    at = int(np.flatnonzero(result.values == identity)[0])
    for layer in SIMILARITY_LAYERS:
        assert result.similarity[layer].shape == (51,) and result.similarity[layer][at] == pytest.approx(1.0)
        for i in (0, 30, 50):
            a, b = taps[i][layer].numpy().ravel(), original[layer].numpy().ravel()
            assert result.similarity[layer][i] == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-6)


def test_similarity_of_constant_maps():
    original = torch.zeros(5, dtype=torch.float32)
    rows = torch.tensor([[0.0] * 5, [1.0] * 5, [1.0, 2, 3, 4, 5]])
    assert _pearson(rows, original).tolist() == [1.0, 0.0, 0.0]
    assert _pearson(torch.tensor([[2.0, 4, 6], [3.0, 2, 1]]), torch.tensor([1.0, 2, 3])).tolist() == pytest.approx(
        [1.0, -1.0]
    )


def test_sweep_refuses_blank_digits_and_bad_values(model):
    with pytest.raises(ValueError, match="the digit has no ink: draw or pick a digit first"):
        sweep(model, np.zeros((28, 28), np.uint8), "rotation")
    with pytest.raises(ValueError, match=r"scale values must lie in 0\.6\.\.1\.4"):
        sweep(model, _letter(), "scale", values=[0.5, 1.0])


# --- Flip summary -----------------------------------------------------------------------


def test_flip_summary_matches_a_loop_over_digits(model, mnist_test):
    images, labels = mnist_test.images[:200], mnist_test.labels[:200]
    seen = []
    summary = flip_summary(model, images, labels, progress=lambda f, t: seen.append((f, t)))
    assert summary.angles == (-15, -10, -5, 5, 10, 15) and summary.shifts == (-2, -1, 1, 2)
    assert [f for f, _ in seen] == pytest.approx([0.25, 0.5, 0.75, 1.0]) and "200 of 200" in seen[-1][1]
    rotation, shift = summary.rotation_flips, summary.shift_flips
    assert rotation.dtype == shift.dtype == bool and rotation.shape == shift.shape == (200,)
    assert 0 < rotation.sum() < 200 and 0 < shift.sum() < 200  # both answers occur
    for i in range(200):  # every digit by hand: a flip at one angle or shift alone must count
        before = _predict(model, to_tensor(images[i : i + 1]))[0]
        turned = _predict(model, bend(images[i], "rotation", [-15, -10, -5, 5, 10, 15]))
        moved = [_predict(model, bend(images[i], axis, [-2, -1, 1, 2])) for axis in ("shift_x", "shift_y")]
        assert rotation[i] == (turned != before).any(), i
        assert shift[i] == (np.concatenate(moved) != before).any(), i
    for share, flags in ((summary.rotation_share, rotation), (summary.shift_share, shift)):
        assert share.shape == (10,)
        np.testing.assert_allclose(share, [flags[labels == c].mean() for c in range(10)])
    with pytest.raises(ValueError, match=r"pixels must be a whole number in 1\.\.4"):
        flip_summary(model, images, labels, pixels=5)
    with pytest.raises(ValueError, match="expected uint8 digits"):
        flip_summary(model, images / 255, labels)


def test_flip_summary_is_cached_beside_the_checkpoint(model, mnist_test, tmp_path):
    from core.probes import load_or_compute_flip_summary

    split = Split(mnist_test.images[:120], mnist_test.labels[:120])
    folder = tmp_path / "0123456789abcdef"
    first = load_or_compute_flip_summary(model, split, Point(folder, 1, "test", "f" * 64))
    path = probes.flip_run(Point(folder, 1, "test", "f" * 64), 15, 2).path
    assert path.is_file()
    fresh = flip_summary(model, split.images, split.labels)

    class MustNotRun(nn.Module):
        def forward(self, x):
            raise AssertionError("a cached summary was computed again")

    again = load_or_compute_flip_summary(MustNotRun(), split, Point(folder, 1, "test", "f" * 64))
    for summary in (first, again):
        assert np.array_equal(summary.rotation_flips, fresh.rotation_flips)
        assert np.array_equal(summary.shift_flips, fresh.shift_flips)
        np.testing.assert_allclose(summary.rotation_share, fresh.rotation_share)
        assert summary.angles == fresh.angles and summary.shifts == fresh.shifts
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # half-written: recomputed, not trusted
    redone = load_or_compute_flip_summary(model, split, Point(folder, 1, "test", "f" * 64))
    assert np.array_equal(redone.shift_flips, fresh.shift_flips)
    rewritten = load_or_compute_flip_summary(MustNotRun(), split, Point(folder, 1, "test", "f" * 64))  # whole again
    assert np.array_equal(rewritten.rotation_flips, fresh.rotation_flips)


# --- Counterfactual ---------------------------------------------------------------------


def _check_consistent(model: nn.Module, result) -> None:
    with torch.inference_mode():
        rerun = torch.softmax(model(torch.from_numpy(result.edited)[None, None]).double(), dim=1)[0].numpy()
    np.testing.assert_allclose(result.probs, rerun, atol=1e-6)
    assert result.edited.dtype == np.float32 and result.edited.min() >= 0 and result.edited.max() <= 1
    assert np.array_equal(result.difference, result.edited - result.original)
    assert result.reached == (result.probs[result.target] >= result.confidence)
    assert result.ink_changed == pytest.approx(np.abs(result.difference.astype(np.float64)).sum())


@pytest.mark.parametrize(("index", "target"), [(4, 9), (2, 7), (18, 8)])  # a 4, a 1 and a 3 (test split)
def test_counterfactual_reaches_the_target_and_reports_its_own_image(model, mnist_test, index, target):
    digit = mnist_test.images[index]
    before = _state(model)
    seen = []
    result = counterfactual(model, digit, target, progress=lambda f, t: seen.append(f))
    _check_consistent(model, result)
    assert result.reached and 0 < result.steps <= 300 and result.target == target
    assert np.array_equal(result.original, digit / np.float32(255))
    assert 0 < result.ink_changed < 60  # a change, not a new digit (one digit holds ~100)
    assert seen == pytest.approx([10 * (k + 1) / 300 for k in range(result.steps // 10)])
    after = _state(model)
    assert after["requires_grad"] == before["requires_grad"] and after["training"] == before["training"]
    assert all(torch.equal(after["weights"][k], v) for k, v in before["weights"].items())
    assert all(p.grad is None for p in model.parameters())


def test_counterfactual_of_the_current_reading_changes_nothing(model, mnist_test):
    digit = mnist_test.images[0]
    predicted = int(_predict(model, to_tensor(digit[None]))[0])
    with torch.inference_mode():  # a caller's inference mode does not get in the way
        result = counterfactual(model, digit, predicted, confidence=0.5)
    _check_consistent(model, result)
    assert result.reached and result.steps == 0 and not result.difference.any() and result.ink_changed == 0


class Stubborn(nn.Module):
    """A linear classifier whose class 3 logit is fixed far below the others: never reachable."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.linear(x.flatten(1))
        return logits.masked_fill(torch.arange(10) == 3, -30.0)


def test_unreachable_targets_end_without_reaching(model, mnist_test):
    digit = mnist_test.images[4]
    result = counterfactual(Stubborn(), digit, 3, max_steps=20)
    _check_consistent(Stubborn(), result)
    assert not result.reached and result.steps == 20 and result.probs[3] < 0.9
    result = counterfactual(model, digit, 9, confidence=0.999, max_steps=1)
    _check_consistent(model, result)
    assert not result.reached and result.steps == 1 and result.probs[9] < 0.999


def test_counterfactuals_in_threads_and_inference_mode_match_one_at_a_time(model, mnist_test):
    jobs = [(mnist_test.images[4], 9), (mnist_test.images[2], 7)]
    alone = [counterfactual(model, digit, target) for digit, target in jobs]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda job: counterfactual(model, *job), jobs))
    with torch.inference_mode():  # a caller's inference mode does not stop the search
        inside = counterfactual(model, *jobs[0])
    for a, b in zip([*alone, alone[0]], [*together, inside], strict=True):
        assert np.array_equal(a.edited, b.edited) and a.steps == b.steps > 0
    assert all(p.grad is None for p in model.parameters())


def test_distance_penalty_keeps_added_ink_near_the_strokes(model, mnist_test):
    means = []
    for weight in (0.0, 2.0):
        result = counterfactual(model, mnist_test.images[18], 8, distance_weight=weight)
        added = np.clip(result.difference, 0, None)
        distance = distance_transform_edt(result.original <= 0.3)  # to the nearest stroke pixel
        assert added.sum() > 1
        means.append((added * distance).sum() / added.sum())
    assert means[1] < means[0] / 2


def test_counterfactual_refuses_bad_input(model, mnist_test):
    digit = mnist_test.images[0]
    with pytest.raises(ValueError, match="the digit has no ink: draw or pick a digit first"):
        counterfactual(model, np.full((28, 28), 0.01, np.float32), 3)
    with pytest.raises(ValueError, match=r"target class must be an integer 0\.\.9, not 10"):
        counterfactual(model, digit, 10)
    with pytest.raises(ValueError, match="confidence must lie strictly between 0 and 1"):
        counterfactual(model, digit, 3, confidence=1.0)
    with pytest.raises(ValueError, match=r"expected one digit shaped"):
        counterfactual(model, digit[None, None, None], 3)


def test_nearest_training_digit_by_brute_force():
    rng = np.random.default_rng(4)
    features, labels = rng.random((300, 20)).astype(np.float32), rng.integers(0, 10, 300)
    for query in rng.random((5, 20)):
        for cls in (0, 7):
            best = min(np.flatnonzero(labels == cls), key=lambda i: np.sum((features[i] - query) ** 2))
            assert nearest_training_digit(features, labels, query, cls) == best
    with pytest.raises(ValueError, match="no training digit has class 3"):
        nearest_training_digit(features[labels != 3], labels[labels != 3], features[0], 3)
    with pytest.raises(ValueError, match=r"expected features \(N, D\)"):
        nearest_training_digit(features, labels, features[0, :5], 3)
