"""core.geometry: receptive fields walked through any network's graph, against brute force.

For every layer with positions of five architectures (the reference CNN; pytorch/examples' Net;
LeNet-5 with its padded first convolution and average pools; a residual network with BatchNorm,
padding and a strided shortcut; a network with dilation, stride and a padded functional max-pool),
the box a position sees equals the bounding box of the input pixels whose gradient is not zero,
over random images; an operation the walk does not know ends it with a sentence.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.data import load_mnist, to_tensor
from core.geometry import Geometry
from core.model import MnistCNN
from core.network import Network, _Recorder
from core.network_files import import_class
from tests.test_unit_steps import Odd

NETS = Path(__file__).parent / "nets"


class Dilated(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, dilation=2, padding=2)
        self.conv3 = nn.Conv2d(6, 8, (3, 5), padding=(0, 1))
        self.fc = nn.Linear(8 * 5 * 5, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 3, stride=2, padding=1)
        x = torch.tanh(self.conv3(x))
        return self.fc(x.flatten(1))


class Rolled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.conv2 = nn.Conv2d(4, 4, 3)
        self.fc = nn.Linear(4 * 24 * 24, 10)

    def forward(self, x):
        x = torch.roll(F.relu(self.conv1(x)), 1, 2)  # a shift the walk does not know
        return self.fc(F.relu(self.conv2(x)).flatten(1))


def _net(spec: str) -> nn.Module:
    return import_class(str(NETS / spec))[0]()


ARCHITECTURES = {
    "reference": MnistCNN,
    "examples Net": lambda: _net("examples_net.py:Net"),
    "LeNet-5": lambda: _net("lenet.py:LeNet5"),
    "residual": lambda: _net("resnet.py:SmallResNet"),
    "dilated": Dilated,
    "odd (same and reflect padding, groups, average pooling)": lambda: Odd(),
}


def _support_box(network: Network, node: str, row: int, col: int, images: torch.Tensor) -> tuple[int, ...]:
    """The bounding box of the input pixels whose gradient of the position's summed channels is
    not zero, over ``images``: (top, left, height, width)."""
    x = images.clone().requires_grad_(True)
    recorder = _Recorder(network.graph, [node], keep_graph=True)
    with torch.enable_grad():
        recorder.run((x - network.contract.mean) / network.contract.std)
        value = recorder.kept[node][:, :, row, col].sum()
        (grad,) = torch.autograd.grad(value, x)
    seen = grad.abs().sum(dim=(0, 1)) > 0
    rows, cols = torch.nonzero(seen.any(1)).flatten(), torch.nonzero(seen.any(0)).flatten()
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_position_sees_the_box_the_gradient_reaches(name):
    torch.manual_seed(0)
    module = ARCHITECTURES[name]().eval()
    network = Network(module, 10, to_tensor(load_mnist().test.images[:8]))
    geometry = Geometry(network)
    images = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    shapes = {layer.node: layer.shape for layer in network.layers}
    checked = 0
    for layer, node in network.shown.items():
        shape = shapes[node]
        if len(shape) != 3:
            assert geometry.field(layer).box(0, 0) == (0, 0, 28, 28), layer  # a unit sees the whole image
            continue
        rows, cols = shape[1], shape[2]
        for row, col in {(0, 0), (rows - 1, cols - 1), (rows // 2, cols // 2), (0, cols - 1), (rows - 1, 0)}:
            expected = _support_box(network, node, row, col, images)
            assert geometry.field(layer).box(row, col) == expected, (name, layer, row, col)
            checked += 1
    assert checked >= 5


def test_the_reference_fields_are_the_published_ones():
    """conv1 3, conv2 5, pool1 6, conv3 10, conv4 14, pool2 16 pixels (units-and-relevance notes)."""
    network = Network(MnistCNN().eval(), 10, to_tensor(load_mnist().test.images[:8]))
    geometry = Geometry(network)
    sizes = {layer: geometry.field(layer).size[0] for layer in ("conv1", "conv2", "pool1", "conv3", "conv4", "pool2")}
    assert sizes == {"conv1": 3, "conv2": 5, "pool1": 6, "conv3": 10, "conv4": 14, "pool2": 16}
    assert geometry.field("conv4").box(7, 7) == (14, 14, 14, 14)


def test_an_unknown_operation_ends_the_walk_with_a_sentence():
    network = Network(Rolled().eval(), 10, to_tensor(load_mnist().test.images[:8]))
    geometry = Geometry(network)
    assert geometry.field("conv1").size == (3, 3)
    assert geometry.why_not("conv2") == "receptive field not computed past roll: unknown operation"
    with pytest.raises(ValueError, match="not computed past roll"):
        geometry.field("fc")
    assert geometry.why_not("conv1") is None


class Reshaped(nn.Module):
    """Reshapes its input before any convolution, and takes a channel mean that keeps the grid."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(26 * 26, 10)

    def forward(self, x):
        x = self.conv(x.view(-1, 1, 28, 28))
        return self.fc(x.mean(1, keepdim=True).flatten(1))


def test_a_reshape_or_a_mean_that_keeps_a_grid_is_not_taken_for_the_whole_image():
    network = Network(Reshaped().eval(), 10, to_tensor(load_mnist().test.images[:8]))
    geometry = Geometry(network)
    assert geometry.why_not("conv").startswith("receptive field not computed past view")
    residual = Network(_net("resnet.py:SmallResNet").eval(), 10, to_tensor(load_mnist().test.images[:8]))
    assert Geometry(residual).field("pool").box(0, 0) == (0, 0, 28, 28)  # a global pooling does see everything


def test_circular_padding_ends_the_walk():
    """Circular padding reads the far edge of the image: no box can say that."""

    class Circular(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular")
            self.fc = nn.Linear(2 * 28 * 28, 10)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).flatten(1))

    geometry = Geometry(Network(Circular().eval(), 10, torch.rand(2, 1, 28, 28)))
    assert "receptive field not computed past conv" in geometry.why_not("conv")
