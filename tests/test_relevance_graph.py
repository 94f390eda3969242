"""CRP on any network's graph: the same numbers as the reference's own CRP, conservation on every
test architecture, a norm it cannot fold refused with a sentence, the shared network untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core.data import load_mnist, to_tensor
from core.model import MNIST_STD
from core.network import network_of
from core.relevance import channel_relevance as reference_relevance
from core.relevance_graph import RelevanceOff, channel_relevance
from core.units import unit_layers
from tests.test_unit_steps import _module
from tests.test_units import _assert_unchanged, _state

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SEQUENTIAL = ["examples_net.py:Net", "lenet.py:LeNet5", "mlp.py:MLP"]


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return to_tensor(load_mnist().test.images[:8])


def _without_biases(module: nn.Module) -> nn.Module:
    """Every bias 0 and every BatchNorm centred: then LRP's rules pass the whole score down."""
    with torch.no_grad():
        for part in module.modules():
            if isinstance(getattr(part, "bias", None), nn.Parameter):
                part.bias.zero_()
            if isinstance(part, nn.BatchNorm2d):
                part.running_mean.zero_()
    return module


@pytest.mark.parametrize("layer", ["conv1", "conv3", "fc1"])
def test_the_reference_through_its_graph_is_its_own_crp(reference_model, digits, layer):
    """The converted graph gives the reference's hand-written CRP: the same rules on the same modules."""
    model = reference_model.model
    network = network_of(model, 10, digits, "the reference")
    image = digits[5:6]
    target = int(model(image).argmax())
    ours, theirs = channel_relevance(network, image, layer, target), reference_relevance(model, image, layer, target)
    np.testing.assert_allclose(ours.relevance, theirs.relevance, rtol=1e-4, atol=1e-6)
    assert ours.ranking[:5].tolist() == theirs.ranking[:5].tolist() and ours.logit == pytest.approx(theirs.logit)
    # The reference normalises inside its own forward; the contract's std is 1 for it.
    np.testing.assert_allclose(ours.heatmaps * MNIST_STD, theirs.heatmaps, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("name", [*SEQUENTIAL, "resnet.py:SmallResNet"])
def test_relevance_is_conserved_on_every_architecture(name, digits):
    """Without biases: each channel's input heatmap holds exactly the channel's relevance (with a
    residual addition too: the shortcut's relevance is not counted for a branch's channel), and
    on a network without branches every layer holds the whole score."""
    network = network_of(_without_biases(_module(name)), 10, digits, name)
    image = digits[2:3]
    target = int(network.logits(image).argmax())
    for layer, found in unit_layers(network).items():
        got = channel_relevance(network, image, layer, target)
        scale = np.abs(got.relevance).sum() + abs(got.logit)
        per_channel = got.heatmaps.reshape(found.units, -1).sum(axis=1, dtype=np.float64)
        np.testing.assert_allclose(per_channel, got.relevance, atol=2e-3 * scale)
        assert got.total == pytest.approx(got.relevance.sum())
        if name in SEQUENTIAL:
            assert got.total == pytest.approx(got.logit, rel=2e-3), layer


def test_a_residual_branch_holds_only_its_part(digits):
    """The stem before the blocks holds the whole score; a block's first convolution, on a branch
    beside an identity shortcut, holds only what went through it."""
    network = network_of(_without_biases(_module("resnet.py:SmallResNet")), 10, digits, "resnet")
    image = digits[2:3]
    target = int(network.logits(image).argmax())
    stem = channel_relevance(network, image, "stem", target)
    branch = channel_relevance(network, image, "block1.conv1", target)
    assert stem.total == pytest.approx(stem.logit, rel=1e-3)
    assert abs(branch.total) < abs(stem.total)


def test_a_norm_it_cannot_fold_turns_the_view_off(digits):
    class Normed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.norm = nn.GroupNorm(2, 4)
            self.fc = nn.Linear(4 * 26 * 26, 10)

        def forward(self, x):
            return self.fc(torch.relu(self.norm(self.conv(x))).flatten(1))

    network = network_of(Normed().eval(), 10, digits, "normed")
    with pytest.raises(RelevanceOff, match="norm that does not directly follow"):
        channel_relevance(network, digits[:1], "conv", 0)


def test_the_shared_network_is_untouched(digits):
    module = _module("resnet.py:SmallResNet")
    network = network_of(module, 10, digits, "resnet")
    before = _state(module)
    channel_relevance(network, digits[:1], "block2.conv2", 3)
    _assert_unchanged(module, before)
    assert all(p.grad is None for p in module.parameters())
    with pytest.raises(ValueError, match="no unit cards"):
        channel_relevance(network, digits[:1], "pool", 3)


def test_a_layer_written_as_a_function_turns_the_view_off(digits):
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(4, 1, 3, 3))
            self.fc = nn.Linear(4 * 26 * 26, 10)

        def forward(self, x):
            return self.fc(torch.relu(torch.nn.functional.conv2d(x, self.weight)).flatten(1))

    network = network_of(Functional().eval(), 10, digits, "functional")
    with pytest.raises(RelevanceOff, match="written as a function"):
        channel_relevance(network, digits[:1], "conv2d", 0)
