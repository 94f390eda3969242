"""Unit cards on any network: every step of one value against the network's own nodes, a
hand-set padded, strided convolution and a BatchNorm by hand, ablation against a zeroed private
copy, the activation index against brute force, and feature visualisation's objective, on the
reference, pytorch/examples' Net, LeNet-5 (sigmoid, average pooling), an MLP, a residual network
with BatchNorm and an odd network (padding, stride, dilation, groups, reflect padding, GELU,
average pooling without the padding)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.data import load_mnist, to_tensor
from core.model import MnistCNN
from core.network import Network, network_of
from core.network_files import import_class
from core.unit_steps import ActivationStep, ConvStep, LinearStep, NormStep, PoolStep, one_value
from core.units import (
    FEATURE_JITTER,
    ablation_accuracy,
    activation_index,
    feature_visualisation,
    incoming_weights,
    jitter_for,
    objective_node,
    pooled_layers,
    unit_layers,
)

NETS = Path(__file__).parent / "nets"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Odd(nn.Module):
    """Every convolution setting the steps must follow, and activations other than ReLU."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, padding=1, stride=2)  # 14x14
        self.b = nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2, padding_mode="reflect")  # 14x14
        self.bn = nn.BatchNorm2d(6)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)  # 7x7
        self.c = nn.Conv2d(6, 8, (3, 2), padding="same")  # 7x7
        self.fc = nn.Linear(8 * 7 * 7, 12)
        self.slope = nn.PReLU(12)  # one slope per unit
        self.out = nn.Linear(12, 10)

    def forward(self, x):
        x = F.gelu(self.a(x))
        x = self.pool(torch.sigmoid(self.bn(self.b(x))))
        x = F.max_pool2d(F.relu(self.c(x)), 3, stride=1, padding=1)
        return self.out(self.slope(self.fc(x.flatten(1))))


def _randomised_norms(module: nn.Module) -> nn.Module:
    """BatchNorm statistics and weights that are not the identity, so folding them is tested."""
    generator = torch.Generator().manual_seed(1)
    for norm in module.modules():
        if isinstance(norm, nn.BatchNorm2d):
            with torch.no_grad():
                norm.running_mean.copy_(torch.rand(norm.num_features, generator=generator) - 0.5)
                norm.running_var.copy_(torch.rand(norm.num_features, generator=generator) + 0.5)
                norm.weight.copy_(torch.rand(norm.num_features, generator=generator) * 2 - 1)
                norm.bias.copy_(torch.rand(norm.num_features, generator=generator) - 0.5)
    return module.eval()


def _module(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "reference":
        return MnistCNN().eval()
    if name == "odd":
        return _randomised_norms(Odd())
    return _randomised_norms(import_class(str(NETS / name))[0]())


ARCHITECTURES = ["reference", "examples_net.py:Net", "lenet.py:LeNet5", "mlp.py:MLP", "resnet.py:SmallResNet", "odd"]


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return to_tensor(load_mnist().test.images[:64])


@pytest.fixture(scope="module", params=ARCHITECTURES)
def network(request, digits) -> Network:
    return network_of(_module(request.param), 10, digits[:8], request.param)


def _positions(grid):
    if grid is None:
        return [(0, 0)]
    rows, cols = grid
    return [(0, 0), (rows - 1, cols - 1), (rows // 2, cols // 2), (0, cols - 1), (rows - 1, 1 % cols)]


def test_every_step_equals_the_network_s_own_nodes(network, digits):
    """Each step's number is the value of its node in the network's own run, to 1e-5; the last
    step before the pool is the layer's value; the pool's is the pool's output at its cell."""
    layers = unit_layers(network)
    assert layers, "every test architecture has units"
    image = digits[3:4]
    for name, found in layers.items():
        chain = network.block(name)
        pool = next(iter(chain[-1].users)) if len(chain[-1].users) == 1 else None
        nodes = network.nodes(image, [n.name for n in chain] + ([pool.name] if pool is not None else []))
        for unit in sorted({0, found.units // 2, found.units - 1}):
            for row, col in _positions(found.grid):
                got = one_value(network, image, name, unit, row, col)
                assert got.stopped is None, got.stopped
                own = [s for s in got.steps if not isinstance(s, PoolStep)]
                assert len(own) == len(chain)
                for step, node in zip(own, chain, strict=True):
                    value = nodes[node.name][0, unit] if found.grid is None else nodes[node.name][0, unit, row, col]
                    assert step.value == pytest.approx(float(value), abs=1e-5), (name, node.name, unit, row, col)
                assert isinstance(own[0], ConvStep if found.grid is not None else LinearStep)
                pooled = [s for s in got.steps if isinstance(s, PoolStep)]
                if pooled:
                    step = pooled[0]
                    assert step.value == pytest.approx(float(nodes[step.name][0, unit, step.row, step.col]), abs=1e-5)


def test_a_padded_strided_convolution_by_hand():
    """One input channel, a 3x3 kernel, padding 1, stride 2: position (0, 0) reads a window whose
    first row and column are padding (zeros), and its value is worked out here by hand."""

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1, stride=2)
            self.fc = nn.Linear(2 * 14 * 14, 2)

        def forward(self, x):
            return self.fc(F.relu(self.conv(x)).flatten(1))

    tiny = Tiny().eval()
    with torch.no_grad():
        tiny.conv.weight.zero_()
        tiny.conv.weight[1, 0] = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
        tiny.conv.bias[1] = -1.0
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 0, 0], image[0, 0, 1, 1], image[0, 0, 2, 3] = 0.5, 1.0, 0.25
    network = network_of(tiny, 2, image, "tiny")
    step, relu = one_value(network, image, "conv", 1, 0, 0).steps
    # The window covers input rows -1..1 and columns -1..1: (0, 0) sits under weight 5, (1, 1) under 9.
    assert (step.top, step.left) == (-1, -1) and step.source == "input"
    assert step.patch[0, 0].tolist() == [0.0, 0.0, 0.0] and step.patch[0, :, 0].tolist() == [0.0, 0.0, 0.0]
    assert step.value == pytest.approx(0.5 * 5 + 1.0 * 9 - 1.0)
    assert relu.what == "relu" and relu.value == pytest.approx(10.5)
    # Position (1, 1) starts at input (1, 1): (1, 1) under weight 1, (2, 3) under weight 6.
    assert one_value(network, image, "conv", 1, 1, 1).steps[0].value == pytest.approx(1.0 + 0.25 * 6 - 1.0)


def test_a_batchnorm_step_by_hand():
    """(x − mean) / √(var + eps) · γ + β, and the same as one multiply-add."""
    network = network_of(_module("resnet.py:SmallResNet"), 10, torch.rand(2, 1, 28, 28), "resnet")
    image = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    conv, norm, relu = one_value(network, image, "stem", 5, 10, 11).steps
    bn = network.module.bn
    expected = (conv.value - bn.running_mean[5].item()) / math.sqrt(bn.running_var[5].item() + bn.eps)
    expected = expected * bn.weight[5].item() + bn.bias[5].item()
    assert isinstance(norm, NormStep) and norm.value == pytest.approx(expected, abs=1e-5)
    assert norm.scale * conv.value + norm.shift == pytest.approx(expected, abs=1e-5)
    assert isinstance(relu, ActivationStep) and relu.value == pytest.approx(max(expected, 0.0), abs=1e-5)


def test_the_odd_network_s_steps_say_what_they_follow(digits):
    network = network_of(_module("odd"), 10, digits[:4], "odd")
    layers = unit_layers(network)
    assert list(layers) == ["a", "b", "c", "fc"] and layers["b"].grid == (14, 14) and layers["c"].grid == (7, 7)
    assert not layers["a"].nonnegative and not layers["b"].nonnegative and layers["c"].nonnegative
    b = one_value(network, digits[:1], "b", 4, 0, 13)
    conv, norm, sigmoid, pool = b.steps
    assert conv.in_channels == (2, 3) and conv.dilation == (2, 2) and conv.patch.shape == (2, 3, 3)
    assert isinstance(norm, NormStep) and sigmoid.what == "sigmoid" and pool.kind == "average"
    assert np.isnan(pool.block).sum() == 0 and pool.block.shape == (3, 3)
    c = one_value(network, digits[:1], "c", 0, 3, 3)
    assert c.steps[0].kernel.shape == (6, 3, 2) and c.steps[-1].kind == "max"
    assert pooled_layers(network) == {"pool": "b", "max_pool2d": "c"}
    with torch.no_grad():
        network.module.slope.weight.copy_(torch.linspace(-1.0, 1.0, 12))  # a slope of each unit's own
    fc = one_value(network, digits[:1], "fc", 9)
    assert fc.steps[-1].what == "PReLU" and fc.value == pytest.approx(float(network.outputs(digits[:1])["fc"][0, 9]))


def test_a_position_the_pool_drops_has_no_pool_step():
    """A 2x2 pool of an 11x11 grid keeps 5x5 cells: row and column 10 are read by no window."""

    class Odd11(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, stride=2, padding=0)  # 13x13
            self.conv2 = nn.Conv2d(2, 2, 3)  # 11x11
            self.fc = nn.Linear(2 * 5 * 5, 10)

        def forward(self, x):
            return self.fc(F.max_pool2d(F.relu(self.conv2(F.relu(self.conv(x)))), 2).flatten(1))

    network = network_of(Odd11().eval(), 10, torch.rand(2, 1, 28, 28), "odd11")
    image = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    dropped = one_value(network, image, "conv2", 1, 10, 10)
    assert [type(s).__name__ for s in dropped.steps] == ["ConvStep", "ActivationStep"] and dropped.stopped is None
    kept = one_value(network, image, "conv2", 1, 9, 3)
    pool = kept.steps[-1]
    assert isinstance(pool, PoolStep) and (pool.row, pool.col) == (4, 1) and (pool.top, pool.left) == (8, 2)
    assert pool.value == pytest.approx(float(network.nodes(image, ["max_pool2d"])["max_pool2d"][0, 1, 4, 1]))


def test_a_module_named_relu_is_read_by_its_type():
    class Leaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.relu = nn.LeakyReLU(0.1)  # named relu, passes values below 0 on
            self.fc = nn.Linear(2 * 26 * 26, 10)

        def forward(self, x):
            return self.fc(self.relu(self.conv(x)).flatten(1))

    network = network_of(Leaky().eval(), 10, torch.rand(2, 1, 28, 28), "leaky")
    assert not unit_layers(network)["conv"].nonnegative


def _zeroed_copy(network: Network, layer: str, unit: int) -> nn.Module:
    """A private copy whose last module of the layer's block sets the unit to 0 (a hook on a
    copy nobody else reads); the functional steps after that module map 0 to 0 here."""
    module = copy.deepcopy(network.module)
    last = [n for n in network.block(layer) if n.op == "call_module"][-1]

    def zero(_module, _inputs, output):
        output = output.clone()
        output[:, unit] = 0.0
        return output

    module.get_submodule(last.target).register_forward_hook(zero)
    return module


def test_ablation_equals_a_zeroed_copy(network, digits):
    labels = load_mnist().test.labels[:64]
    for name, found in unit_layers(network).items():
        if network.block(name)[-1].op != "call_module" and network.block(name)[-1].target not in (F.relu, F.gelu):
            continue  # a functional step that does not keep 0 at 0: no module to zero in a copy
        unit = found.units - 1
        before, after = ablation_accuracy(network, digits, labels, name, unit, batch_size=25)
        with torch.no_grad():
            zeroed = _zeroed_copy(network, name, unit)(network._normalised(digits)).argmax(1).numpy()
            plain = network.logits(digits).argmax(1).numpy()
        expect_before = [np.mean(plain[labels == c] == c) if (labels == c).any() else np.nan for c in range(10)]
        expect_after = [np.mean(zeroed[labels == c] == c) if (labels == c).any() else np.nan for c in range(10)]
        np.testing.assert_array_equal(before, expect_before)
        np.testing.assert_array_equal(after, expect_after)


def test_the_index_is_brute_force(network, digits):
    """Maximum, mean and place of every unit, against each digit run alone."""
    index = activation_index(network, digits[:30], batch_size=11)
    for name, found in unit_layers(network).items():
        for d in (0, 17, 29):
            with torch.no_grad():
                values = network.outputs(digits[d : d + 1], [name])[name][0]
            flat = values.reshape(found.units, -1)
            np.testing.assert_allclose(index.maximum[name][d], flat.max(dim=1).values.numpy(), atol=1e-6)
            np.testing.assert_allclose(index.mean[name][d], flat.mean(dim=1).numpy(), atol=1e-5)
            if found.grid is not None:
                u = int(flat.max(dim=1).values.argmax())
                assert values[u][index.peak(name, u, d)] == pytest.approx(float(flat[u].max()))


def test_feature_visualisation_optimises_the_value_before_the_activation(network):
    name, found = next(iter(unit_layers(network).items()))
    node = objective_node(network, name)
    assert node in {n.name for n in network.block(name)}
    made = feature_visualisation(network, name, steps=6, seed=2)
    assert made.images.shape == (found.units, 28, 28) and 0 <= made.images.min() <= made.images.max() <= 1
    with torch.no_grad():
        values = network.nodes(torch.from_numpy(made.images)[:, None], [node])[node]
    centre = values if values.dim() == 2 else values[:, :, values.shape[2] // 2, values.shape[3] // 2]
    np.testing.assert_allclose(made.activation, centre[torch.arange(found.units), torch.arange(found.units)], atol=1e-5)
    assert all(p.grad is None for p in network.module.parameters())
    assert 0 <= jitter_for(network, name) <= FEATURE_JITTER


def test_incoming_weights_are_the_unit_s_row(network):
    for name, found in unit_layers(network).items():
        weights = incoming_weights(network, name, found.units - 1)
        start = network.graph.get_submodule(network.block(name)[0].target)
        row = start.weight[found.units - 1].detach()
        drawn = weights.maps if weights.maps is not None else weights.strength
        assert np.array_equal(np.asarray(drawn).reshape(-1), row.reshape(-1).numpy())
