"""The reference CNN, exactly as the project started from it, and its parameter table."""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
import sys
import tokenize
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

# What each layer name means, defined once for every page and method: the name of the
# module whose output is that layer's tensor. Conv layers and fc1 are read after their
# ReLU (what the next layer sees, and what "this channel fired" means); fc2 is the logits.
# Feature maps read these tensors from ``MnistCNN.taps``; layer attribution methods hook
# exactly these modules (see ``tap_module``), so "conv2" is one tensor everywhere.
TAPS = {
    "conv1": "relu1",
    "conv2": "relu2",
    "pool1": "pool1",
    "conv3": "relu3",
    "conv4": "relu4",
    "pool2": "pool2",
    "fc1": "relu5",
    "fc2": "fc2",
}
LAYER_NAMES = tuple(TAPS)  # forward order
CONV_LAYERS = ("conv1", "conv2", "conv3", "conv4")
AFTER_RELU = ("conv1", "conv2", "conv3", "conv4", "fc1")  # said once in the UI: these are post-ReLU


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
        """Raw logits float32 (B, 10): cross-entropy takes logits."""
        return self.taps(x)["fc2"]

    def taps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every named layer's output (see ``TAPS``) from one forward pass, in forward order.

        The model itself returns its intermediate tensors, so reading them needs no hook:
        hooks on a model shared by many threads would hand one caller another's tensors.
        """
        out: dict[str, torch.Tensor] = {}
        x = (x - MNIST_MEAN) / MNIST_STD  # (B, 1, 28, 28)
        x = out["conv1"] = self.relu1(self.conv1(x))  # (B, 4, 26, 26)
        x = out["conv2"] = self.relu2(self.conv2(x))  # (B, 8, 24, 24)
        x = out["pool1"] = self.pool1(x)  # (B, 8, 12, 12)
        x = out["conv3"] = self.relu3(self.conv3(x))  # (B, 16, 10, 10)
        x = out["conv4"] = self.relu4(self.conv4(x))  # (B, 32, 8, 8)
        x = out["pool2"] = self.pool2(x)  # (B, 32, 4, 4)
        x = torch.flatten(x, 1)  # (B, 512)
        x = out["fc1"] = self.relu5(self.fc1(x))  # (B, 20)
        out["fc2"] = self.fc2(x)  # (B, 10) raw logits
        return out


def last_linear(model: nn.Module) -> nn.Linear:
    """The layer whose output is the scores: fc2, or a host's network's (core.network.scored).
    (Functions here, not methods: MnistCNN's source is part of every cached model's key.)"""
    return model.fc2 if isinstance(model, MnistCNN) else model.last_linear


def head(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The scoring layer's input and output for images ``x``: fc1 after its ReLU and the logits,
    or a host's network's (its last linear layer's input, flattened, and output)."""
    if isinstance(model, MnistCNN):
        taps = model.taps(x)
        return taps["fc1"], taps["fc2"]
    return model.head(x)


def tap_module(model: nn.Module, layer: str) -> nn.Module:
    """The module whose output is ``layer``'s tensor (``TAPS``): where layer methods attach. A
    host's network (core.network.scored) finds its own, on the private copy it is called on."""
    if hasattr(model, "layer_module"):
        return model.layer_module(layer)
    if layer not in TAPS:
        raise ValueError(f"unknown layer {layer!r}: choose one of {', '.join(TAPS)}")
    return getattr(model, TAPS[layer])


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]  # per image, without the batch dimension
    parameters: int


def new_model(seed: int | None = None) -> MnistCNN:
    """A model built without touching torch's global random generator, which every thread of a
    server shares: a page drawing from it between a trainer's ``torch.manual_seed`` and its
    ``MnistCNN()`` changed the trained weights (and the cache key's signature, the checkpoint
    loader and the layer table each built a model that drew from it).

    ``seed=None``: zero parameters, to load weights into or read shapes from. A seed: PyTorch's
    default initialisation drawn from a generator of that seed, in the layers' order, bit for bit
    what ``torch.manual_seed(seed); MnistCNN()`` gives."""
    with torch.device("meta"):  # no memory and no random draws
        model = MnistCNN()
    model = model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, nn.Conv2d | nn.Linear):
                continue
            if generator is None:
                module.weight.zero_()
                module.bias.zero_()
                continue
            # nn.Conv2d / nn.Linear.reset_parameters, with the generator
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            bound = 1 / math.sqrt(module.weight[0].numel())  # 1 / sqrt(fan_in)
            nn.init.uniform_(module.bias, -bound, bound, generator=generator)
    return model


def layer_table(model: MnistCNN | None = None) -> list[LayerRow]:
    """One row per named layer (conv, pool, linear): type, output shape, parameter count.

    Reads shapes from ``model.taps`` (no hooks), so the model may be shared between threads.
    """
    model = model or new_model()
    rows: list[LayerRow] = []
    with torch.inference_mode():
        outputs = model.taps(torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE, device=next(model.parameters()).device))
    shapes = {name: tuple(out.shape[1:]) for name, out in outputs.items()}
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


def multiply_adds(model: MnistCNN | None = None) -> dict[str, int]:
    """Multiply-adds of one image's forward pass per conv and linear layer, from the layer
    shapes: a conv does out_h x out_w x out_channels x in_channels x kernel_h x kernel_w, a
    linear layer in x out (biases, ReLUs and pools are a rounding error next to these)."""
    model = model or new_model()
    counts: dict[str, int] = {}
    for row in layer_table(model):
        module = getattr(model, row.name)
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            counts[row.name] = math.prod(row.output_shape) * module.in_channels * kh * kw
        elif isinstance(module, nn.Linear):
            counts[row.name] = module.in_features * module.out_features
    return counts


def training_flops(model: MnistCNN | None = None, images: int = 1) -> int:
    """Floating-point operations to train on ``images`` images once: a multiply-add is 2 FLOPs,
    and a training step costs about 3 forward passes (the forward, then the gradients with
    respect to the inputs and to the weights, each as large as the forward)."""
    return 3 * 2 * sum(multiply_adds(model).values()) * images


def format_layer_table(rows: list[LayerRow]) -> str:
    """The parameter breakdown as aligned text, as the CLI prints it."""
    lines = [f"{'layer':<7} {'type':<10} {'output shape':<14} {'parameters':>10}"]
    for row in rows:
        shape = "x".join(str(d) for d in row.output_shape)
        lines.append(f"{row.name:<7} {row.kind:<10} {shape:<14} {row.parameters:>10,}")
    lines.append(f"{'total':<33} {sum(r.parameters for r in rows):>10,}")
    return "\n".join(lines)


def class_source(cls: type) -> str:
    """``inspect.getsource(cls)`` for a top-level class, without its ``ast.parse`` of the whole
    module: Python 3.11's AST conversion keeps its recursion depth per interpreter, so a parse
    while another thread parses can fail ("SystemError: AST constructor recursion depth
    mismatch"; seen when the trainer keyed a model while another thread compiled). The class's
    line (and its decorators') is found by name and its block read with ``tokenize``, as
    ``inspect`` then does; a class it cannot find so (nested in another) falls back to
    ``inspect.getsource``."""
    lines, _ = inspect.getsourcelines(sys.modules[cls.__module__])  # a module's lines: no parse
    pattern = re.compile(rf"class\s+{re.escape(cls.__name__)}\b")
    start = next((i for i, line in enumerate(lines) if pattern.match(line)), None)
    if start is None:
        return inspect.getsource(cls)
    while start > 0 and lines[start - 1].startswith("@"):
        start -= 1
    try:
        return "".join(inspect.getblock(lines[start:]))
    except (tokenize.TokenError, SyntaxError):
        return inspect.getsource(cls)


def architecture_signature(cls: type[nn.Module] = MnistCNN) -> str:
    """A hash that changes whenever the model's code does: part of the cache key.

    It covers the class's source (``forward`` and ``taps`` included), the layer
    definitions (``repr``), what each layer name means (``TAPS``), the normalisation
    constants and every parameter's name and shape. ``repr`` alone misses a changed ``forward``.
    """
    with torch.device("meta"):  # shapes and layers only: no memory, no random draws
        model = cls()
    shapes = {name: list(p.shape) for name, p in model.state_dict().items()}
    try:
        source = class_source(cls)
    except (OSError, TypeError):  # no source (e.g. frozen): the rest still identifies the layers
        source = ""
    constants = {"mean": MNIST_MEAN, "std": MNIST_STD, "flatten": FLATTEN_SIZE}  # used by taps(), not in its source
    payload = json.dumps(
        {"source": source, "repr": repr(model), "taps": TAPS, "shapes": shapes, "constants": constants}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()
