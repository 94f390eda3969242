import numpy as np
import pytest
import torch

from core.activations import kernels, layer_outputs, strongest_channels
from core.model import MnistCNN


def test_every_layer_with_its_shape():
    torch.manual_seed(0)
    outputs = layer_outputs(MnistCNN().eval(), torch.rand(2, 1, 28, 28))
    shapes = {name: value.shape for name, value in outputs.items()}
    assert shapes == {
        "conv1": (2, 4, 26, 26),
        "conv2": (2, 8, 24, 24),
        "pool1": (2, 8, 12, 12),
        "conv3": (2, 16, 10, 10),
        "conv4": (2, 32, 8, 8),
        "pool2": (2, 32, 4, 4),
        "fc1": (2, 20),
        "fc2": (2, 10),
    }
    assert all(v.dtype == np.float32 for v in outputs.values())


def test_values_are_the_forward_pass():
    """conv outputs are after ReLU, pool is the max of each 2x2 block, fc2 is the logits."""
    torch.manual_seed(1)
    model = MnistCNN().eval()
    x = torch.rand(3, 1, 28, 28)
    outputs = layer_outputs(model, x)
    assert (outputs["conv2"] >= 0).all()
    pooled = outputs["conv2"].reshape(3, 8, 12, 2, 12, 2).max(axis=(3, 5))
    np.testing.assert_allclose(outputs["pool1"], pooled)
    with torch.no_grad():
        np.testing.assert_allclose(outputs["fc2"], model(x).numpy(), rtol=1e-5)
    assert not any(m._forward_hooks for m in model.modules())  # hooks removed


def test_hand_set_conv1():
    model = MnistCNN().eval()
    with torch.no_grad():
        model.conv1.weight.zero_()
        model.conv1.bias.zero_()
        model.conv1.weight[2, 0, 1, 1] = 1.0  # channel 2 copies the centre pixel (after normalising)
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 10, 10] = 1.0
    conv1 = layer_outputs(model, x)["conv1"][0]
    expected = (1.0 - 0.1307) / 0.3081
    assert conv1[2, 9, 9] == pytest.approx(expected, rel=1e-5)
    assert conv1[2].sum() == pytest.approx(expected, rel=1e-5)  # everything else is negative, cut by ReLU
    assert conv1[0].max() == 0


def test_kernels_and_strongest_channels():
    model = MnistCNN()
    assert kernels(model, "conv3").shape == (16, 8, 3, 3)
    with pytest.raises(ValueError, match="no convolution kernels"):
        kernels(model, "fc1")
    act = np.zeros((5, 2, 2), dtype=np.float32)
    act[3] = 2.0
    act[1] = 1.0
    assert strongest_channels(act, 2).tolist() == [3, 1]
