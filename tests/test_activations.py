from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from core.activations import layer_outputs, strongest_channels
from core.evaluate import predict_logits
from core.model import LAYER_NAMES, TAPS, MnistCNN, layer_table


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


def test_strongest_channels():
    act = np.zeros((5, 2, 2), dtype=np.float32)
    act[3] = 2.0
    act[1] = 1.0
    assert strongest_channels(act, 2).tolist() == [3, 1]


def test_layer_outputs_are_the_models_taps():
    torch.manual_seed(2)
    model = MnistCNN().eval()
    x = torch.rand(4, 1, 28, 28)
    outputs = layer_outputs(model, x)
    with torch.no_grad():
        taps = model.taps(x)
    assert list(outputs) == list(taps) == list(TAPS) == list(LAYER_NAMES)  # same names, forward order
    for name, value in taps.items():
        assert np.array_equal(outputs[name], value.numpy()), name


def _forbid_hooks(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a hook was registered")

    for name in ("register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook"):
        monkeypatch.setattr(torch.nn.Module, name, refuse)
    for name in ("register_module_forward_hook", "register_module_forward_pre_hook"):
        monkeypatch.setattr(torch.nn.modules.module, name, refuse)


def test_reading_layers_registers_no_hook(monkeypatch):
    """Hooks on a model shared by threads would hand one caller another's tensors."""
    torch.manual_seed(3)
    model = MnistCNN().eval()
    x = torch.rand(2, 1, 28, 28)
    _forbid_hooks(monkeypatch)
    with pytest.raises(AssertionError, match="a hook was registered"):  # the trap works
        model.conv1.register_forward_hook(lambda *a: None)

    outputs = layer_outputs(model, x)
    rows = layer_table(model)
    logits = predict_logits(model, x)
    assert [r.name for r in rows] == list(LAYER_NAMES)
    assert {r.name: r.output_shape for r in rows} == {n: v.shape[1:] for n, v in outputs.items()}
    assert np.array_equal(logits.numpy(), outputs["fc2"])
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


def test_layer_outputs_from_many_threads_at_once():
    """Each caller gets its own images' tensors from one shared model."""
    torch.manual_seed(4)
    model = MnistCNN().eval()
    inputs = [torch.rand(1, 1, 28, 28) for _ in range(8)]
    expected = [layer_outputs(model, x)["conv3"] for x in inputs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(5):
            results = list(pool.map(lambda x: layer_outputs(model, x)["conv3"], inputs))
            for got, want in zip(results, expected, strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
