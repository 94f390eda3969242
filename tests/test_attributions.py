"""Attribution methods, captum-style: tiny models with hand-set weights where the answer is
known exactly, completeness of Integrated Gradients, and shape/finiteness for everything."""

import numpy as np
import pytest
import torch

from core.attributions import (
    LAYERS,
    METHODS,
    AttributionError,
    attribute,
    attribute_for,
)
from core.model import MnistCNN


class Linear(MnistCNN):
    """A linear 'network': logits = W x. Saliency is |W[target]|, Input x Gradient is W[target] * x,
    and Integrated Gradients from a black baseline equals Input x Gradient exactly."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)  # (10, 784)

    def forward(self, x):
        return x.flatten(1) @ self.weight.T  # (B, 10)


@pytest.fixture
def linear():
    torch.manual_seed(0)
    return Linear(torch.randn(10, 784))


@pytest.fixture
def images():
    torch.manual_seed(1)
    return torch.rand(3, 1, 28, 28)


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
    ixg = attribute("Input × Gradient", linear, images, 2)
    np.testing.assert_allclose(ig, ixg, rtol=1e-4, atol=1e-5)


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


def test_contrast_target_is_predicted_minus_true(linear, images):
    predicted, true = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])
    contrast = attribute_for("Input × Gradient", linear, images, predicted, true, "predicted − true")
    expected = (
        (linear.weight.detach()[predicted] - linear.weight.detach()[true]).reshape(3, 28, 28) * images[:, 0]
    ).numpy()
    np.testing.assert_allclose(contrast, expected, rtol=1e-4, atol=1e-5)


def test_occlusion_of_a_linear_model(linear, images):
    """A 1x1 window blanking pixel p drops the score by W[t, p] * x[p]: Input x Gradient again."""
    occ = attribute("Occlusion", linear, images, 4, window=1, stride=1)
    ixg = attribute("Input × Gradient", linear, images, 4)
    np.testing.assert_allclose(occ, ixg, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "layer"),
    [(n, layer) for n, m in METHODS.items() for layer in (m.layers or (None,))],
)
def test_every_method_and_layer_gives_finite_maps(reference_model, images, name, layer):
    target = torch.tensor([1, 2, 3])
    result = attribute(name, reference_model.model, images, target, layer=layer, upsample=True)
    expected = (3, 20) if layer == "fc1" else (3, 28, 28)
    assert result.shape == expected and result.dtype == np.float32
    assert np.isfinite(result).all()


@pytest.mark.parametrize(("layer", "size"), [("conv1", 26), ("conv2", 24), ("conv3", 10), ("conv4", 8)])
def test_raw_layer_resolution(reference_model, images, layer, size):
    result = attribute("Grad-CAM", reference_model.model, images, 0, layer=layer)
    assert result.shape == (3, size, size)
    assert (result >= 0).all()  # Grad-CAM keeps the positive part


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
    attribute("Guided Backprop", model, images, 0)
    attribute("DeepLift", model, images, 0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(name="Grad-CAM", layer="fc1"), "no position"),
        (dict(name="Grad-CAM", layer=None), "Grad-CAM"),
        (dict(name="Saliency", layer="conv1"), "leave the layer unset"),
        (dict(name="Integrated Gradients", steps=1), "IG steps must lie in 2..300"),
        (dict(name="Integrated Gradients", baseline="white"), "baseline must be one of"),
        (dict(name="Occlusion", window=2, stride=5), "stride"),
        (dict(name="SmoothGrad", samples=0), "samples must lie in"),
        (dict(name="Saliency", steps=5), "takes no option steps"),
        (dict(name="Magic"), "unknown method"),
    ],
)
def test_bad_requests_get_clear_messages(reference_model, images, kwargs, message):
    kwargs = dict(kwargs)
    name = kwargs.pop("name")
    with pytest.raises(AttributionError, match=message):
        attribute(name, reference_model.model, images, 0, **kwargs)


def test_true_target_needs_a_label(reference_model, images):
    with pytest.raises(AttributionError, match="needs a true label"):
        attribute_for("Saliency", reference_model.model, images, torch.zeros(3, dtype=torch.long), None, "true")


def test_registry_layers():
    assert LAYERS == ("conv1", "conv2", "conv3", "conv4", "fc1")
    assert {m.kind for m in METHODS.values()} == {"input", "layer"}
