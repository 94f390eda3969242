"""Receptive fields from a network's graph: which input pixels each position of a layer sees.

Walked node by node through the torch.fx graph of any network opened through the contract
(core.network.Network), for any kernel, stride, padding and dilation: a convolution or pooling
with kernel k, stride s, padding p and dilation d turns a field of size R, jump J (input pixels
between neighbouring positions) and start S (where position 0's field begins, negative when
padding reaches past the image) into R + d(k - 1)J, sJ and S - pJ. Element-wise steps (an
activation, a norm, dropout, a scale) keep the field; a residual addition or a concatenation of
channels takes the union of its inputs' fields (they share a grid, so a jump); a global pooling,
a flatten or a linear layer sees the whole image. Any other operation ends the walk with a
sentence ("receptive field not computed past `layer`: unknown operation"), never a wrong box.

Checked against brute force in tests/test_geometry.py: the bounding box of the input pixels
whose gradient is not zero, over random images, for every position of every layer with positions.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from core.data import IMAGE_SIZE
from core.network import Network

Pair = tuple[int, int]


@dataclass(frozen=True)
class Field:
    """The receptive field of a layer's positions, per axis (rows, columns): ``size`` R, ``jump``
    J and ``start`` S, so position (a, b) sees input rows S₀ + aJ₀ … S₀ + aJ₀ + R₀ − 1 (clipped
    to the image), and columns likewise."""

    size: Pair
    jump: Pair
    start: Pair

    def box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the input pixels position (row, col) sees, clipped to the image."""
        top, left = self.start[0] + row * self.jump[0], self.start[1] + col * self.jump[1]
        bottom, right = top + self.size[0], left + self.size[1]
        top, left = max(top, 0), max(left, 0)
        return top, left, min(bottom, IMAGE_SIZE) - top, min(right, IMAGE_SIZE) - left


INPUT = Field((1, 1), (1, 1), (0, 0))
WHOLE = Field((IMAGE_SIZE, IMAGE_SIZE), (IMAGE_SIZE, IMAGE_SIZE), (0, 0))  # one position sees every pixel

_SAME = (  # element-wise: the field is the input's
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.ReLU6,
    nn.PReLU,
    nn.Softplus,
    nn.BatchNorm2d,
    nn.InstanceNorm2d,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
)
_GRID_FUNCTIONS = {  # element-wise or joining on one grid: the union of the inputs' fields
    F.relu,
    torch.relu,
    F.leaky_relu,
    F.elu,
    F.gelu,
    F.silu,
    torch.sigmoid,
    F.sigmoid,
    torch.tanh,
    F.tanh,
    F.dropout,
    F.dropout2d,
    F.batch_norm,
    operator.mul,
    operator.truediv,
    operator.sub,
    operator.add,
    torch.mul,
    torch.add,
    torch.cat,
}
_GRID_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "float", "mul", "div", "add", "add_"}
_WHOLE = (nn.Linear, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten)
_WHOLE_FUNCTIONS = {torch.flatten, F.linear, F.adaptive_avg_pool2d, F.adaptive_max_pool2d}
_WHOLE_METHODS = {"flatten", "view", "reshape", "mean", "sum", "amax"}


class Geometry:
    """Every layer's receptive field in ``network``, or the sentence saying why it is not known."""

    def __init__(self, network: Network) -> None:
        self.network = network
        modules = dict(network.graph.named_modules())
        names = {layer.node: layer.name for layer in network.layers}
        shapes = {layer.node: layer.shape for layer in network.layers}
        found: dict[str, Field | str] = {}
        for node in network.graph.graph.nodes:
            if node.op == "placeholder":
                found[node.name] = INPUT
            elif node.op not in ("output", "get_attr"):
                field = _step(node, modules, found, names)
                # "The whole image" only where no positions are left (a flatten, a linear layer, a
                # global pooling): a reshape or a mean that keeps a grid is not known, not whole.
                if field is WHOLE and len(shapes.get(node.name, ())) > 1 and not _global_pool(node, modules):
                    field = _stop(node, names)
                found[node.name] = field
        self._fields = found

    def field(self, layer: str) -> Field:
        """The field of ``layer`` (a shown name or any layer's name); ``ValueError`` with the sentence
        when the walk could not reach it."""
        node = self.network.shown.get(layer) or next(
            (entry.node for entry in self.network.layers if entry.name == layer), None
        )
        if node is None:
            raise ValueError(f"{self.network.where} has no layer {layer!r}")
        value = self._fields[node]
        if isinstance(value, str):
            raise ValueError(value)
        return value

    def why_not(self, layer: str) -> str | None:
        """The sentence saying why ``layer``'s field is not known, or None when it is."""
        try:
            self.field(layer)
        except ValueError as err:
            return str(err)
        return None


def _step(node: fx.Node, modules: dict[str, nn.Module], found: dict, names: dict[str, str]) -> Field | str:
    inputs = [found[a.name] for a in node.all_input_nodes if a.name in found]
    unknown = next((i for i in inputs if isinstance(i, str)), None)
    if unknown is not None:
        return unknown  # the walk ended earlier: keep its sentence
    if not inputs:
        return _stop(node, names)
    first = inputs[0]
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
            return _window(first, module, node, names)
        if isinstance(module, _SAME):
            return first
        if isinstance(module, _WHOLE):
            return WHOLE
        return _stop(node, names)
    if node.op == "call_function" and node.target in (F.max_pool2d, F.avg_pool2d, torch.max_pool2d):
        return _pool_function(first, node, names)
    grid, whole = (_GRID_FUNCTIONS, _WHOLE_FUNCTIONS) if node.op == "call_function" else (_GRID_METHODS, _WHOLE_METHODS)
    if node.target in grid:
        return _union(inputs, node, names)
    if node.target in whole:
        return WHOLE
    return _stop(node, names)


def _global_pool(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """An adaptive pooling: its (C, 1, 1) output sees the whole image at its one position."""
    if node.op == "call_module":
        return isinstance(modules[node.target], nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d)
    return node.op == "call_function" and node.target in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d)


def _stop(node: fx.Node, names: dict[str, str]) -> str:
    return f"receptive field not computed past {names.get(node.name, node.name)}: unknown operation"


def _pair(value) -> Pair:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _grow(field: Field, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Field:
    return Field(
        tuple(r + d * (k - 1) * j for r, d, k, j in zip(field.size, dilation, kernel, field.jump, strict=True)),
        tuple(s * j for s, j in zip(stride, field.jump, strict=True)),
        tuple(s - p * j for s, p, j in zip(field.start, padding, field.jump, strict=True)),
    )


def _window(field: Field, module: nn.Module, node: fx.Node, names: dict[str, str]) -> Field | str:
    padding, dilation = module.padding, getattr(module, "dilation", 1)
    if getattr(module, "ceil_mode", False) or getattr(module, "padding_mode", "zeros") == "circular":
        return _stop(node, names)  # a partial last window; circular padding reads the far edge
    if isinstance(padding, str):  # "valid": none; "same" (stride 1): d(k - 1) in all, the smaller half first
        kernel, dilated = _pair(module.kernel_size), _pair(dilation)
        padding = (
            (0, 0) if padding == "valid" else tuple(d * (k - 1) // 2 for d, k in zip(dilated, kernel, strict=True))
        )
    stride = module.stride if module.stride is not None else module.kernel_size
    return _grow(field, _pair(module.kernel_size), _pair(stride), _pair(padding), _pair(dilation))


def _pool_function(field: Field, node: fx.Node, names: dict[str, str]) -> Field | str:
    names_of = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode")
    given = dict(zip(names_of, node.args, strict=False)) | dict(node.kwargs)
    if given.get("ceil_mode") or any(isinstance(v, fx.Node) for k, v in given.items() if k != "input"):
        return _stop(node, names)
    kernel = given["kernel_size"]
    stride = given.get("stride") or kernel
    dilation = given.get("dilation", 1) if node.target in (F.max_pool2d, torch.max_pool2d) else 1
    return _grow(field, _pair(kernel), _pair(stride), _pair(given.get("padding", 0)), _pair(dilation))


def _union(inputs: list, node: fx.Node, names: dict[str, str]) -> Field | str:
    fields = [i for i in inputs if isinstance(i, Field)]
    if len(fields) == 1:
        return fields[0]
    if any(f.jump != fields[0].jump for f in fields):
        return _stop(node, names)
    start = tuple(min(f.start[a] for f in fields) for a in (0, 1))
    end = tuple(max(f.start[a] + f.size[a] for f in fields) for a in (0, 1))
    return Field((end[0] - start[0], end[1] - start[1]), fields[0].jump, start)
