"""The reference CNN, exactly as the project started from it, and its parameter table."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from core.data import IMAGE_SIZE, NUM_CLASSES

# Normalisation constants: the mean and standard deviation of MNIST training pixels in
# [0, 1]. The model applies them itself, so every caller (attributions included) feeds
# plain pixel intensities and a black image is the natural all-zero baseline.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
FLATTEN_SIZE = 32 * 4 * 4  # conv4's 32 channels on a 4x4 grid after the second pool = 512

# Layer names in forward order, as hooks and the dashboard refer to them.
LAYER_NAMES = ("conv1", "conv2", "pool1", "conv3", "conv4", "pool2", "fc1", "fc2")
CONV_LAYERS = ("conv1", "conv2", "conv3", "conv4")


class MnistCNN(nn.Module):
    """conv1-conv2-pool-conv3-conv4-pool-fc1-fc2; input float32 (B, 1, 28, 28) in [0, 1], output logits (B, 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, kernel_size=3)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 8, kernel_size=3)
        self.relu2 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(8, 16, kernel_size=3)
        self.relu3 = nn.ReLU()
        self.conv4 = nn.Conv2d(16, 32, kernel_size=3)
        self.relu4 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(FLATTEN_SIZE, 20)
        self.relu5 = nn.ReLU()
        self.fc2 = nn.Linear(20, NUM_CLASSES)
        # Separate ReLU modules (not F.relu) so Captum's DeepLift and Guided Backprop,
        # which override module hooks, see every nonlinearity.

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - MNIST_MEAN) / MNIST_STD  # (B, 1, 28, 28)
        x = self.relu1(self.conv1(x))  # (B, 4, 26, 26)
        x = self.relu2(self.conv2(x))  # (B, 8, 24, 24)
        x = self.pool1(x)  # (B, 8, 12, 12)
        x = self.relu3(self.conv3(x))  # (B, 16, 10, 10)
        x = self.relu4(self.conv4(x))  # (B, 32, 8, 8)
        x = self.pool2(x)  # (B, 32, 4, 4)
        x = torch.flatten(x, 1)  # (B, 512)
        x = self.relu5(self.fc1(x))  # (B, 20)
        return self.fc2(x)  # (B, 10) raw logits: cross-entropy takes logits


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]  # per image, without the batch dimension
    parameters: int


def layer_table(model: nn.Module | None = None) -> list[LayerRow]:
    """One row per named layer (conv, pool, linear): type, output shape, parameter count."""
    model = model or MnistCNN()
    rows: list[LayerRow] = []
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        getattr(model, name).register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))
        )
        for name in LAYER_NAMES
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE, device=next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
    for name in LAYER_NAMES:
        module = getattr(model, name)
        rows.append(
            LayerRow(
                name=name,
                kind=type(module).__name__,
                output_shape=shapes[name],
                parameters=sum(p.numel() for p in module.parameters()),
            )
        )
    return rows


def format_layer_table(rows: list[LayerRow]) -> str:
    """The parameter breakdown as aligned text, as the CLI prints it."""
    lines = [f"{'layer':<7} {'type':<10} {'output shape':<14} {'parameters':>10}"]
    for row in rows:
        shape = "x".join(str(d) for d in row.output_shape)
        lines.append(f"{row.name:<7} {row.kind:<10} {shape:<14} {row.parameters:>10,}")
    lines.append(f"{'total':<33} {sum(r.parameters for r in rows):>10,}")
    return "\n".join(lines)


def architecture_signature() -> str:
    """A string that changes whenever the architecture does: part of the cache key."""
    return repr(MnistCNN())
