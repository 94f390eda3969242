"""Attribution methods, captum-style: tiny models with hand-set weights where the answer is
worked out by hand in the test (not by Captum), plus the registry, targets and shapes.

Most exact tests use ``chain_model``: the real ``MnistCNN`` with all weights zero except a
few 1s, so that three single pixels each reach one fc1 unit along a known path::

    conv1 ch0      = relu(x[i+1, j+1] - t)          (the weight and bias cancel the normalisation)
    conv2/3/4 ch0  = the previous ch0 at the kernel centre (identity), pools take 2x2 maxima
    conv4 ch0[i,j] = max relu(x - t) over rows 2i+6..2i+7, cols 2j+6..2j+7
    conv4 ch1[i,j] = max relu(x - t) over rows 2i+4..2i+5, cols 2j+4..2j+5 (kernel corner)
    pool2 ch0 (0,0) = max over rows 6..9, cols 6..9    -> fc1 unit 0
    pool2 ch0 (0,1) = max over rows 6..9, cols 10..13  -> fc1 unit 1
    pool2 ch1 (0,0) = max over rows 4..7, cols 4..7    -> fc1 unit 2
    logit[TARGET]  = a * u0 + b * u1 + c * u2          (every other logit is 0)

The test image has x[7, 8] = 0.9 (reaches u0), x[8, 11] = 0.6 (u1), x[6, 6] = 0.5 (u2, and
loses the max to x[7, 8] in unit 0's block) and x[20, 20] = 0.7 (reaches no unit).
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerActivation

from core.activations import layer_outputs
from core.attributions import (
    INPUT_METHODS,
    LAYER_METHODS,
    LAYERS,
    METHODS,
    AttributionError,
    AttributionRequest,
    attribute,
    explain,
)
from core.model import CONV_LAYERS, LAYER_NAMES, MNIST_MEAN, MNIST_STD, TAPS, MnistCNN, layer_table, tap_module


class Linear(MnistCNN):
    """A linear 'network': logits = W x. Saliency is |W[target]|, Input x Gradient is W[target] * x,
    and Integrated Gradients from a black baseline equals Input x Gradient exactly."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)  # (10, 784)

    def forward(self, x):
        return x.flatten(1) @ self.weight.T  # (B, 10)


class PixelThreshold(MnistCNN):
    """logit[k] = sum over pixels of relu(x - t): the gradient at a pixel is 1 exactly when x > t."""

    def __init__(self, t: float):
        super().__init__()
        self.t = t

    def forward(self, x):
        return torch.relu(x - self.t).flatten(1).sum(1, keepdim=True).expand(-1, 10)


@pytest.fixture
def linear():
    torch.manual_seed(0)
    return Linear(torch.randn(10, 784))


@pytest.fixture
def images():
    torch.manual_seed(1)
    return torch.rand(3, 1, 28, 28)


TARGET = 3
T = 0.2  # the threshold: black is below it, so every ReLU on the path is off for the baseline
A, B, C = 2.0, -3.0, 1.0  # fc2 weights from fc1 units 0, 1, 2 to TARGET


def chain_model(t: float = T, fc2: tuple[float, float, float] = (A, B, C)) -> MnistCNN:
    model = MnistCNN()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.conv1.weight[0, 0, 1, 1] = MNIST_STD  # s * (x - m) / s + (m - t) = x - t
        model.conv1.bias[0] = MNIST_MEAN - t
        model.conv2.weight[0, 0, 1, 1] = 1.0
        model.conv3.weight[0, 0, 1, 1] = 1.0
        model.conv4.weight[0, 0, 1, 1] = 1.0
        model.conv4.weight[1, 0, 0, 0] = 1.0  # ch1: conv3 ch0 read at the kernel's corner
        model.fc1.weight[0, 0] = 1.0  # flatten index c * 16 + i * 4 + j: pool2 ch0 (0, 0)
        model.fc1.weight[1, 1] = 1.0  # pool2 ch0 (0, 1)
        model.fc1.weight[2, 16] = 1.0  # pool2 ch1 (0, 0)
        model.fc2.weight[TARGET, :3] = torch.tensor(fc2)
    return model.eval()


def chain_image() -> torch.Tensor:
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 7, 8], x[0, 0, 8, 11], x[0, 0, 6, 6], x[0, 0, 20, 20] = 0.9, 0.6, 0.5, 0.7
    return x


def sparse(shape: tuple[int, ...], entries: dict[tuple[int, ...], float]) -> np.ndarray:
    """A (1, *shape) array, zero except ``entries``."""
    out = np.zeros(shape, dtype=np.float32)
    for index, value in entries.items():
        out[index] = value
    return out[None]


def close(actual: np.ndarray, expected: np.ndarray, atol: float = 1e-5) -> None:
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=atol)


def test_chain_model_is_what_the_docstring_says():
    """The premise of the exact tests below: units and logit as derived by hand."""
    with torch.no_grad():
        taps = chain_model().taps(chain_image())
    close(taps["fc1"][0, :4].numpy(), np.array([0.7, 0.4, 0.3, 0.0]))
    assert taps["fc2"][0, TARGET].item() == pytest.approx(A * 0.7 + B * 0.4 + C * 0.3, abs=1e-6)
    with torch.no_grad():
        assert chain_model().taps(torch.zeros(1, 1, 28, 28))["fc2"].abs().max().item() < 1e-6


# ---- input methods: linear model ----------------------------------------------------


def test_saliency_of_a_linear_model_is_its_weight_row(linear, images):
    target = torch.tensor([3, 7, 0])
    result = attribute("Saliency", linear, images, target)
    expected = linear.weight.detach()[target].abs().reshape(3, 28, 28).numpy()
    np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_input_x_gradient_of_a_linear_model(linear, images):
    result = attribute("Input × Gradient", linear, images, 5)
    expected = (linear.weight.detach()[5].reshape(28, 28) * images[:, 0]).numpy()
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)


def test_integrated_gradients_is_exact_for_a_linear_model(linear, images):
    ig = attribute("Integrated Gradients", linear, images, 2, steps=8)
    expected = (linear.weight.detach()[2].reshape(28, 28) * images[:, 0]).numpy()
    np.testing.assert_allclose(ig, expected, rtol=1e-4, atol=1e-5)


def test_occlusion_of_a_linear_model(linear, images):
    """A 1x1 window blanking pixel p drops the score by W[t, p] * x[p]."""
    occ = attribute("Occlusion", linear, images, 4, window=1, stride=1)
    expected = (linear.weight.detach()[4].reshape(28, 28) * images[:, 0]).numpy()
    np.testing.assert_allclose(occ, expected, rtol=1e-4, atol=1e-5)


def test_occlusion_overlapping_windows_average_the_drops(linear):
    """Default window 4, stride 2 on an all-ones image: blanking a window drops the score by
    the sum of W over it, and each pixel gets the mean drop of the windows covering it."""
    x = torch.ones(1, 1, 28, 28)
    occ = attribute("Occlusion", linear, x, 6)
    w = linear.weight.detach()[6].reshape(28, 28).double().numpy()
    total, count = np.zeros((28, 28)), np.zeros((28, 28))
    for r in range(0, 28 - 4 + 1, 2):
        for c in range(0, 28 - 4 + 1, 2):
            total[r : r + 4, c : c + 4] += w[r : r + 4, c : c + 4].sum()
            count[r : r + 4, c : c + 4] += 1
    # Each drop is the difference of two float32 sums of 784 products (about 10 in size): it
    # carries ~1e-5 of rounding, which the float64 reference above has not.
    np.testing.assert_allclose(occ[0], total / count, rtol=1e-4, atol=1e-4)


def test_smoothgrad_of_a_linear_model_is_abs_weight_whatever_the_noise(linear, images):
    """The gradient of W x is W wherever the noise puts x: the mean of |gradient| is |W[t]|."""
    target = torch.tensor([0, 5, 9])
    result = attribute("SmoothGrad", linear, images, target, samples=8, noise=0.5)
    expected = linear.weight.detach()[target].abs().reshape(3, 28, 28).numpy()
    np.testing.assert_allclose(result, expected, rtol=1e-6)


# ---- input methods: the hand-set CNN ------------------------------------------------
# d logit / d x is A at (7, 8), B at (8, 11), C at (6, 6) and 0 elsewhere: each pixel
# wins every max on its path, and x[6, 6] loses unit 0's max to x[7, 8].


def test_saliency_on_the_hand_set_cnn():
    result = attribute("Saliency", chain_model(), chain_image(), TARGET)
    close(result, sparse((28, 28), {(7, 8): abs(A), (8, 11): abs(B), (6, 6): abs(C)}))


def test_input_x_gradient_on_the_hand_set_cnn():
    result = attribute("Input × Gradient", chain_model(), chain_image(), TARGET)
    close(result, sparse((28, 28), {(7, 8): 0.9 * A, (8, 11): 0.6 * B, (6, 6): 0.5 * C}))


def test_deeplift_rescale_rule_where_the_baseline_is_below_the_threshold():
    """conv1's ReLU is off for black (pre-activation -t) and on for the pixel (x - t): the
    rescale multiplier is (relu(x - t) - relu(-t)) / (x - 0) = (x - t) / x, so pixel x gets
    (x - t) * weight, not Input x Gradient's x * weight; the map adds up to f(x) - f(0)."""
    result = attribute("DeepLift", chain_model(), chain_image(), TARGET, baseline="black")
    expected = sparse((28, 28), {(7, 8): (0.9 - T) * A, (8, 11): (0.6 - T) * B, (6, 6): (0.5 - T) * C})
    close(result, expected)
    assert result.sum() == pytest.approx(A * 0.7 + B * 0.4 + C * 0.3, abs=1e-5)
    ixg = attribute("Input × Gradient", chain_model(), chain_image(), TARGET)
    assert np.abs(result - ixg).max() > 0.3  # the rule matters here


def test_deeplift_equals_input_x_gradient_and_ig_where_everything_stays_linear():
    """With t = -0.5 every ReLU on the path is on for both the image and black, and the
    maxima keep their winners along the way: DeepLift, IG and Input x Gradient agree."""
    model = chain_model(t=-0.5)
    expected = sparse((28, 28), {(7, 8): 0.9 * A, (8, 11): 0.6 * B, (6, 6): 0.5 * C})
    close(attribute("DeepLift", model, chain_image(), TARGET), expected)
    close(attribute("Integrated Gradients", model, chain_image(), TARGET, steps=4), expected, atol=1e-4)
    close(attribute("Input × Gradient", model, chain_image(), TARGET), expected)


def test_deeplift_mean_pixel_baseline():
    """Baseline m = 0.1307 everywhere: the pixel-wise deltas are x - m, and with t = -0.5
    everything is linear, so DeepLift = (x - m) * gradient on the path pixels; the other
    pixels change by -m but reach no unit (their gradient is zero)."""
    result = attribute("DeepLift", chain_model(t=-0.5), chain_image(), TARGET, baseline="mean pixel")
    m = MNIST_MEAN
    expected = sparse((28, 28), {(7, 8): (0.9 - m) * A, (8, 11): (0.6 - m) * B, (6, 6): (0.5 - m) * C})
    close(result, expected)


def test_guided_backprop_stops_negative_gradients():
    """Unit 1 enters the score with weight B < 0: the plain gradient at (8, 11) is B, but
    Guided Backprop clips it to zero at relu5; the positive paths pass unchanged."""
    result = attribute("Guided Backprop", chain_model(), chain_image(), TARGET)
    close(result, sparse((28, 28), {(7, 8): A, (6, 6): C}))
    plain = torch.autograd.functional.jacobian(lambda x: chain_model()(x)[0, TARGET], chain_image())
    assert plain[0, 0, 8, 11].item() == pytest.approx(B, abs=1e-5)


def test_smoothgrad_noise_is_gaussian_with_the_given_std_in_pixel_units():
    """For sum(relu(x - t)) the gradient at a pixel is 1 when the noisy pixel is above t, so
    SmoothGrad is the fraction of copies above t: 1/2 where x = t, Phi(1) = 0.8413 where
    x = t + std. 392 pixels x 64 samples per half: standard errors below 0.004."""
    t, std = 0.4, 0.2
    x = torch.full((1, 1, 28, 28), t)
    x[..., 14:] = t + std
    result = attribute("SmoothGrad", PixelThreshold(t), x, 0, samples=64, noise=std)[0]
    assert np.allclose(result * 64, np.round(result * 64), atol=1e-4)  # fractions of 64 copies
    assert result[:, :14].mean() == pytest.approx(0.5, abs=0.02)
    assert result[:, 14:].mean() == pytest.approx(0.8413, abs=0.02)
    # noise 0: no pixel moves, every gradient is exactly known (relu'(0) = 0 at x = t)
    still = attribute("SmoothGrad", PixelThreshold(t), x, 0, samples=3, noise=0.0)[0]
    close(still[None], np.concatenate([np.zeros((28, 14)), np.ones((28, 14))], axis=1)[None].astype(np.float32))


def test_smoothgrad_noise_is_seeded_by_the_image_only():
    """Same pixels, same noise: alone or batched, before or after anything draws from the
    global generator, which it leaves as it was; different pixels draw different noise."""
    t, std = 0.4, 0.3
    x = torch.full((1, 1, 28, 28), t)
    other = x.clone()
    other[0, 0, 0, 0] += 0.01  # one pixel differs
    model = PixelThreshold(t)

    torch.manual_seed(0)
    state = torch.get_rng_state()
    alone = attribute("SmoothGrad", model, x, 0, samples=8, noise=std)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(12345)
    batch = attribute("SmoothGrad", model, torch.cat([other, x, x]), 0, samples=8, noise=std)
    assert np.array_equal(batch[1], alone[0]) and np.array_equal(batch[2], alone[0])
    assert (batch[0] != alone[0]).mean() > 0.2  # fresh noise, not the same draw


def test_smoothgrad_is_deterministic_on_the_cnn(reference_model, images):
    model = reference_model.model
    target = torch.tensor([1, 4, 7])
    first = attribute("SmoothGrad", model, images, target, samples=4)
    again = attribute("SmoothGrad", model, images, target, samples=4)
    assert np.array_equal(first, again)
    single = np.concatenate(
        [attribute("SmoothGrad", model, images[i : i + 1], target[i : i + 1], samples=4) for i in range(3)]
    )
    # Same noise; only the convolution batch size differs, which may reorder float sums.
    np.testing.assert_allclose(first, single, rtol=1e-5, atol=1e-7)


def test_smoothgrad_without_noise_is_saliency(reference_model, images):
    model = reference_model.model
    target = torch.tensor([2, 0, 6])
    smooth = attribute("SmoothGrad", model, images, target, samples=1, noise=0.0)
    np.testing.assert_allclose(smooth, attribute("Saliency", model, images, target), rtol=1e-6, atol=1e-9)


# ---- layer methods: the hand-set CNN ------------------------------------------------
# conv4 (8x8), with t = 0.2:
#   ch0 = 0.3 at (0,0) [x(6,6)], 0.7 at (0,1) [x(7,8)], 0.4 at (1,2) [x(8,11)], 0.5 at (7,7) [x(20,20)]
#   ch1 = 0.3 at (1,1) [x(6,6)], 0.7 at (1,2) [x(7,8)], 0.4 at (2,3) [x(8,11)]
# d logit / d conv4: ch0 = A at (0,1), B at (1,2); ch1 = C at (1,1) (the pool2 winners).
CONV4_CH0 = {(0, 0): 0.3, (0, 1): 0.7, (1, 2): 0.4, (7, 7): 0.5}
CONV4_CH1 = {(1, 1): 0.3, (1, 2): 0.7, (2, 3): 0.4}


def test_conv4_of_the_hand_set_cnn_is_as_derived():
    conv4 = layer_outputs(chain_model(), chain_image())["conv4"]
    close(conv4[:, 0], sparse((8, 8), CONV4_CH0))
    close(conv4[:, 1], sparse((8, 8), CONV4_CH1))
    assert np.abs(conv4[:, 2:]).max() == 0


def test_grad_cam_on_conv4_by_hand():
    """w_c = spatial mean of the gradient: w0 = (A + B) / 64 = -1/64, w1 = C / 64 = 1/64.
    map = relu(w0 * ch0 + w1 * ch1): ch0's cells go negative and are cut, except (1, 2)
    where ch1 outweighs it; x(20, 20) reaches no unit yet would show with a positive w0."""
    result = attribute("Grad-CAM", chain_model(), chain_image(), TARGET, layer="conv4")
    w0, w1 = (A + B) / 64, C / 64
    expected = sparse((8, 8), {(1, 1): w1 * 0.3, (1, 2): w0 * 0.4 + w1 * 0.7, (2, 3): w1 * 0.4})
    close(result, expected, atol=1e-7)
    # a positive w0 keeps all of ch0, the unit-less x(20, 20) included
    result = attribute("Grad-CAM", chain_model(fc2=(2.0, 1.0, 0.0)), chain_image(), TARGET, layer="conv4")
    close(result, sparse((8, 8), CONV4_CH0) * 3.0 / 64, atol=1e-7)


def test_grad_cam_on_conv1_by_hand():
    """conv1 ch0 = relu(x[i+1, j+1] - t) on 26x26; its gradient is A, B, C at the three path
    pixels, so w0 = (A + B + C) / 676 and the map is w0 * ch0 (one live channel)."""
    fc2 = (2.0, -1.0, 1.0)
    result = attribute("Grad-CAM", chain_model(fc2=fc2), chain_image(), TARGET, layer="conv1")
    ch0 = sparse((26, 26), {(6, 7): 0.7, (7, 10): 0.4, (5, 5): 0.3, (19, 19): 0.5})
    close(result, ch0 * sum(fc2) / 676, atol=1e-7)


def test_grad_cam_upsampled_is_bilinear_to_28x28():
    small = attribute("Grad-CAM", chain_model(), chain_image(), TARGET, layer="conv4")
    big = attribute("Grad-CAM", chain_model(), chain_image(), TARGET, layer="conv4", upsample=True)
    expected = F.interpolate(torch.from_numpy(small)[:, None], size=(28, 28), mode="bilinear", align_corners=False)
    assert big.shape == (1, 28, 28)
    np.testing.assert_allclose(big, expected[:, 0].numpy(), rtol=1e-6, atol=1e-9)
    nearest = F.interpolate(torch.from_numpy(small)[:, None], size=(28, 28), mode="nearest")[:, 0].numpy()
    assert not np.allclose(big, nearest)


def test_layer_activation_x_gradient_by_hand():
    """conv4: sum over channels of activation x gradient, nonzero only at the pool2 winners;
    fc1: (u0 A, u1 B, u2 C, 0, ...)."""
    model, x = chain_model(), chain_image()
    conv4 = attribute("Layer Activation × Gradient", model, x, TARGET, layer="conv4")
    close(conv4, sparse((8, 8), {(0, 1): 0.7 * A, (1, 2): 0.4 * B, (1, 1): 0.3 * C}))
    fc1 = attribute("Layer Activation × Gradient", model, x, TARGET, layer="fc1")
    close(fc1, sparse((20,), {(0,): 0.7 * A, (1,): 0.4 * B, (2,): 0.3 * C}))


def test_layer_integrated_gradients_subtracts_the_baseline_activation():
    """With t = -0.5 black already lights the path: fc1 is (1.4, 1.1, 1.0) for the image and
    (0.5, 0.5, 0.5) for black, and the score is linear in fc1, so LIG = (u(x) - u(0)) * w
    exactly, which Layer Activation x Gradient (u(x) * w) is not."""
    model, x = chain_model(t=-0.5), chain_image()
    lig = attribute("Layer Integrated Gradients", model, x, TARGET, layer="fc1", steps=4)
    close(lig, sparse((20,), {(0,): 0.9 * A, (1,): 0.6 * B, (2,): 0.5 * C}))
    laxg = attribute("Layer Activation × Gradient", model, x, TARGET, layer="fc1")
    close(laxg, sparse((20,), {(0,): 1.4 * A, (1,): 1.1 * B, (2,): 1.0 * C}))


def test_layer_integrated_gradients_on_conv4_by_hand():
    """t = -0.5: conv4 rises by the path pixel's value at each pool2 winner; summed over
    channels that is 0.9 A at (0, 1), 0.6 B at (1, 2) (ch1's rise there has no gradient) and
    0.5 C at (1, 1); the map adds up to f(x) - f(0)."""
    model, x = chain_model(t=-0.5), chain_image()
    lig = attribute("Layer Integrated Gradients", model, x, TARGET, layer="conv4", steps=4)
    close(lig, sparse((8, 8), {(0, 1): 0.9 * A, (1, 2): 0.6 * B, (1, 1): 0.5 * C}), atol=1e-4)
    with torch.no_grad():
        change = (model(x) - model(torch.zeros_like(x)))[0, TARGET].item()
    assert lig.sum() == pytest.approx(change, abs=1e-4)


def test_layer_integrated_gradients_mean_pixel_baseline():
    """Baseline m everywhere with t = -0.5: conv1 is m + 0.5 at every position, so every unit
    is m + 0.5 for the baseline and LIG at fc1 = (value - m) * w for each path pixel."""
    model, x, m = chain_model(t=-0.5), chain_image(), MNIST_MEAN
    lig = attribute("Layer Integrated Gradients", model, x, TARGET, layer="fc1", steps=4, baseline="mean pixel")
    close(lig, sparse((20,), {(0,): (0.9 - m) * A, (1,): (0.6 - m) * B, (2,): (0.5 - m) * C}))


# ---- layer methods attach to the Feature-maps tensor ------------------------------


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_methods_see_the_feature_maps_tensor(reference_model, images, layer):
    model = copy.deepcopy(reference_model.model)
    seen = LayerActivation(model, tap_module(model, layer)).attribute(images).detach().numpy()
    np.testing.assert_array_equal(seen, layer_outputs(model, images)[layer])


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_activation_x_gradient_is_taps_activation_times_its_gradient(reference_model, images, layer):
    model = copy.deepcopy(reference_model.model)
    target = torch.tensor([0, 5, 8])
    x = images.clone().requires_grad_(True)
    taps = model.taps(x)
    score = taps["fc2"][torch.arange(3), target].sum()  # images are independent: one backward
    (grad,) = torch.autograd.grad(score, taps[layer])
    expected = (taps[layer] * grad).detach()
    expected = expected.sum(dim=1).numpy() if expected.ndim == 4 else expected.numpy()
    result = attribute("Layer Activation × Gradient", reference_model.model, images, target, layer=layer)
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("layer", CONV_LAYERS)
def test_grad_cam_is_taps_activation_weighted_by_mean_gradient(reference_model, images, layer):
    """Grad-CAM by hand on the post-ReLU tensor: w_c = mean over positions of d score / d A_c,
    map = relu(sum_c w_c A_c). (Attached before the ReLU both A and w would differ.)"""
    model = copy.deepcopy(reference_model.model)
    target = torch.tensor([3, 9, 2])
    taps = model.taps(images)
    score = taps["fc2"][torch.arange(3), target].sum()
    (grad,) = torch.autograd.grad(score, taps[layer])
    expected = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * taps[layer]).sum(dim=1)).detach().numpy()
    result = attribute("Grad-CAM", reference_model.model, images, target, layer=layer)
    assert expected.max() > 0
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5 * expected.max())


CAPTUM_LAYER_CLASSES = {
    "Grad-CAM": "LayerGradCam",
    "Layer Integrated Gradients": "LayerIntegratedGradients",
    "Layer Activation × Gradient": "LayerGradientXActivation",
}


@pytest.mark.parametrize("name", LAYER_METHODS)
def test_layer_methods_hook_the_tap_module_of_a_private_copy(monkeypatch, name):
    """Each layer method's Captum object gets the private copy's ``TAPS[layer]`` module."""
    assert set(CAPTUM_LAYER_CLASSES) == set(LAYER_METHODS)
    model = MnistCNN().eval()
    class_name = CAPTUM_LAYER_CLASSES[name]
    import captum.attr  # core.attributions looks its classes up there when it uses them

    real = getattr(captum.attr, class_name)
    seen = []

    def spy(net, module, *args, **kwargs):
        seen.append((net is model, next(n for n, m in net.named_modules() if m is module)))
        return real(net, module, *args, **kwargs)

    monkeypatch.setattr(captum.attr, class_name, spy)
    torch.manual_seed(3)
    x = torch.rand(1, 1, 28, 28)
    for layer in METHODS[name].layers:
        attribute(name, model, x, 0, layer=layer, **({"steps": 2} if name == "Layer Integrated Gradients" else {}))
    assert seen == [(False, TAPS[layer]) for layer in METHODS[name].layers]


# ---- the CNN: completeness, batching, the shared model ------------------------------


def test_integrated_gradients_completeness_on_the_cnn(reference_model):
    """Attributions sum to f(x) - f(baseline) for the target class, within tolerance."""
    model = reference_model.model
    torch.manual_seed(2)
    x = torch.rand(4, 1, 28, 28)
    target = torch.tensor([0, 3, 5, 9])
    maps = attribute("Integrated Gradients", model, x, target, steps=200)
    with torch.no_grad():
        out = model(x)[torch.arange(4), target] - model(torch.zeros_like(x))[torch.arange(4), target]
    np.testing.assert_allclose(maps.reshape(4, -1).sum(1), out.numpy(), rtol=0.02, atol=0.02)


def test_batched_equals_one_by_one(reference_model, images):
    target = torch.tensor([4, 1, 8])
    batched = attribute("DeepLift", reference_model.model, images, target)
    single = np.concatenate(
        [attribute("DeepLift", reference_model.model, images[i : i + 1], target[i : i + 1]) for i in range(3)]
    )
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-6)


def test_shared_model_is_left_untouched(reference_model, images):
    model = reference_model.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    training = model.training
    for name in ("Guided Backprop", "DeepLift"):
        attribute(name, model, images, 0)
    attribute("Grad-CAM", model, images, 0, layer="conv2")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(v.is_contiguous() for v in model.state_dict().values())  # not switched to channels_last
    assert model.training == training
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


# ---- explain: targets -----------------------------------------------------------------


def test_explain_targets(linear, images):
    w = linear.weight.detach()
    predicted, true = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])

    def run(**fields):
        return explain(AttributionRequest("Input × Gradient", **fields), linear, images, predicted, true)

    def ixg(classes):
        return (w[classes].reshape(-1, 28, 28) * images[:, 0]).numpy()

    np.testing.assert_allclose(run(target="predicted"), ixg(predicted), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(run(target="true"), ixg(true), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(run(target="class", chosen_class=9), ixg([9, 9, 9]), rtol=1e-4, atol=1e-5)
    contrast = run(target="predicted − true")
    expected = ((w[predicted] - w[true]).reshape(3, 28, 28) * images[:, 0]).numpy()
    np.testing.assert_allclose(contrast, expected, rtol=1e-4, atol=1e-5)


def test_explain_passes_layer_upsample_and_options(reference_model, images):
    model = reference_model.model
    predicted = torch.tensor([1, 2, 3])
    request = AttributionRequest.of(
        "Layer Integrated Gradients", {"steps": 8, "noise": 0.3}, layer="conv3", upsample=True
    )
    assert request.options == (("steps", 8),)  # options the method does not take are dropped
    np.testing.assert_array_equal(
        explain(request, model, images, predicted, None),
        attribute("Layer Integrated Gradients", model, images, predicted, "conv3", True, steps=8),
    )
    assert hash(request) == hash(
        AttributionRequest.of("Layer Integrated Gradients", {"steps": 8}, layer="conv3", upsample=True)
    )


def test_true_target_needs_a_label(reference_model, images):
    predicted = torch.zeros(3, dtype=torch.long)
    for target in ("true", "predicted − true"):
        with pytest.raises(AttributionError, match="needs a true label"):
            explain(AttributionRequest("Saliency", target=target), reference_model.model, images, predicted, None)


@pytest.mark.parametrize(
    ("fields", "message"), [({"target": "class", "chosen_class": 10}, "0..9"), ({"target": "mine"}, "unknown target")]
)
def test_explain_bad_targets(reference_model, images, fields, message):
    predicted = torch.zeros(3, dtype=torch.long)
    with pytest.raises(AttributionError, match=message):
        explain(AttributionRequest("Saliency", **fields), reference_model.model, images, predicted, predicted)


# ---- registry, shapes and messages ----------------------------------------------------


@pytest.mark.parametrize("name", list(METHODS))
def test_registry_entry_is_consistent(name):
    method = METHODS[name]
    assert method.name == name and method.description
    assert method.kind in ("input", "layer")
    for option in method.options:
        assert option.check(name, option.default) == option.default  # defaults pass their own check
        if option.choices:
            assert option.default in option.choices
        else:
            assert option.low <= option.default <= option.high and option.low < option.high
    if method.kind == "layer":
        assert method.layers and set(method.layers) <= set(LAYERS) <= set(TAPS)
        assert all(TAPS[layer].startswith("relu") for layer in method.layers)  # post-ReLU tensors
        if set(method.layers) != set(LAYERS):
            assert method.not_applicable
    else:
        assert method.layers == ()
    assert (name in INPUT_METHODS) == (method.kind == "input") and (name in LAYER_METHODS) == (method.kind == "layer")


def test_registry_covers_the_documented_methods():
    assert set(INPUT_METHODS) == {
        "Saliency",
        "Integrated Gradients",
        "DeepLift",
        "Input × Gradient",
        "Guided Backprop",
        "Occlusion",
        "SmoothGrad",
    }
    assert set(LAYER_METHODS) == {"Grad-CAM", "Layer Integrated Gradients", "Layer Activation × Gradient"}
    assert LAYERS == ("conv1", "conv2", "conv3", "conv4", "fc1")
    assert METHODS["Grad-CAM"].layers == ("conv1", "conv2", "conv3", "conv4")


@pytest.mark.parametrize(
    ("name", "layer"),
    [(n, layer) for n, m in METHODS.items() for layer in (m.layers or (None,))],
)
def test_every_method_and_layer_gives_the_documented_shape(reference_model, images, name, layer):
    """Input methods: (B, 28, 28); conv layers: the layer's own grid, or 28x28 upsampled; fc1: (B, 20)."""
    model = reference_model.model
    target = torch.tensor([1, 2, 3])
    grid = {row.name: row.output_shape for row in layer_table(model)}
    raw = attribute(name, model, images, target, layer=layer)
    shape = grid[layer] if layer else (1, 28, 28)  # per image: (C, h, w) or (units,)
    expected = (3, *shape[-2:]) if len(shape) == 3 else (3, *shape)
    assert raw.shape == expected and raw.dtype == np.float32 and np.isfinite(raw).all()
    assert np.abs(raw).max() > 0  # a trained model's maps are not blank
    if layer is not None and layer != "fc1":
        up = attribute(name, model, images, target, layer=layer, upsample=True)
        assert up.shape == (3, 28, 28) and np.isfinite(up).all()
    if name == "Grad-CAM":
        assert (raw >= 0).all()  # Grad-CAM keeps the positive part


@pytest.mark.parametrize("name", LAYER_METHODS)
@pytest.mark.parametrize("layer", sorted(set(LAYER_NAMES) - set(LAYERS)))
def test_layer_methods_refuse_other_layers(reference_model, images, name, layer):
    with pytest.raises(AttributionError, match=repr(layer)):
        attribute(name, reference_model.model, images, 0, layer=layer)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(name="Grad-CAM", layer="fc1"), "no position"),
        (dict(name="Grad-CAM", layer=None), "Grad-CAM"),
        (dict(name="Saliency", layer="conv1"), "leave the layer unset"),
        (dict(name="Integrated Gradients", steps=1), "IG steps must lie in 2..300"),
        (dict(name="Integrated Gradients", steps="many"), "must be a number"),
        (dict(name="Integrated Gradients", baseline="white"), "baseline must be one of"),
        (dict(name="Occlusion", window=2, stride=5), "stride"),
        (dict(name="SmoothGrad", samples=0), "samples must lie in"),
        (dict(name="SmoothGrad", noise=True), "must be a number"),
        (dict(name="Saliency", steps=5), "takes no option steps"),
        (dict(name="Magic"), "unknown method"),
    ],
)
def test_bad_requests_get_clear_messages(reference_model, images, kwargs, message):
    kwargs = dict(kwargs)
    name = kwargs.pop("name")
    with pytest.raises(AttributionError, match=message):
        attribute(name, reference_model.model, images, 0, **kwargs)


def test_bad_image_shape(reference_model):
    with pytest.raises(AttributionError, match="images must be"):
        attribute("Saliency", reference_model.model, torch.zeros(2, 28, 28), 0)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("Integrated Gradients", {"steps": 301}, "IG steps must lie in 2..300"),
        ("Layer Integrated Gradients", {"steps": 1000}, "IG steps must lie in 2..300"),
        ("SmoothGrad", {"samples": 201}, "SmoothGrad samples must lie in 1..200"),
        ("SmoothGrad", {"noise": 1.5}, "noise"),
        ("Occlusion", {"window": 15}, "occlusion window must lie in 1..14"),
        ("Occlusion", {"stride": 15}, "occlusion stride must lie in 1..14"),
        ("Integrated Gradients", {"steps": 2.5}, "must be a whole number"),
    ],
)
def test_every_option_has_a_ceiling_enforced_in_core(name, options, message):
    """Past its ceiling (which keeps one request under 2 s on two cores: bench/trust_speed.py
    gives the measured worst cases) a value is refused with a clear message."""
    layer = "conv1" if METHODS[name].kind == "layer" else None
    with pytest.raises(AttributionError, match=message):
        attribute(name, MnistCNN().eval(), torch.rand(1, 1, 28, 28), 0, layer=layer, **options)
