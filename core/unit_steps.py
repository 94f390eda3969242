"""How one value of a unit is computed, step by step, in any network.

A unit's value at one position is taken apart along the layer's own nodes (``Network.block``):

- a **convolution** (``nn.Conv2d``, any kernel, stride, padding, dilation and groups): the
  window of its input it reads (zeros, or the padding mode's values, where the window runs past
  the edge), the kernel, their products (no flip: PyTorch convolutions are cross-correlations),
  the sum per input channel, plus the bias;
- a **linear** layer: the weighted sum of its (flattened) inputs, plus the bias;
- a **BatchNorm** in eval mode, as its own step and folded: (x − mean) / √(var + eps) · γ + β
  = scale · x + shift;
- the **activation**, whatever it is (ReLU, GELU, sigmoid…), applied to the one number;
- dropout, which does nothing when the network is read;
- then the **pool** that reads the layer, if one does (max or average, of any window), for the
  pool cell whose window holds the position.

Every step's number is computed here from the weights and the recorded input, and the tests
check the last one against the network's own output to 1e-5 on every test architecture. An
operation this module cannot take apart ends the steps with a sentence, never a wrong number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from core.data import IMAGE_SIZE
from core.network import ACTIVATION, DROPOUT, NORM, POOL, Network
from core.units import source_of, unit_layers


@dataclass(frozen=True, eq=False)
class ConvStep:
    """``patch``, ``kernel`` and ``products`` float32 (C, kh, kw) over the ``in_channels`` the
    unit's group reads; ``channel_sums`` (C,); ``value`` = sum(channel_sums) + ``bias``.
    ``top``/``left``: where the window starts in ``source``'s grid (negative into the padding)."""

    source: str
    in_channels: tuple[int, ...]
    top: int
    left: int
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: str | None  # the padding mode where the window runs past the input's edge, else None
    patch: np.ndarray
    kernel: np.ndarray
    products: np.ndarray
    channel_sums: np.ndarray
    bias: float
    value: float


@dataclass(frozen=True, eq=False)
class LinearStep:
    """``inputs`` and ``weights`` float32 (n,): ``source`` flattened and the unit's row of the
    weight matrix; ``value`` = ``weighted_sum`` + ``bias``."""

    source: str
    inputs: np.ndarray
    weights: np.ndarray
    weighted_sum: float
    bias: float
    value: float


@dataclass(frozen=True)
class NormStep:
    """A BatchNorm in eval mode on one number: (``before`` − ``mean``) / √(``var`` + ``eps``) · ``gamma``
    + ``beta`` = ``scale`` · before + ``shift`` (the norm folded into one multiply-add)."""

    name: str
    before: float
    mean: float
    var: float
    eps: float
    gamma: float
    beta: float
    scale: float
    shift: float
    value: float


@dataclass(frozen=True)
class ActivationStep:
    """An element-wise step on one number: ``what`` (e.g. "ReLU", "GELU", "sigmoid", "dropout")."""

    name: str
    what: str
    before: float
    value: float


@dataclass(frozen=True, eq=False)
class PoolStep:
    """The pool ``name`` that reads the layer: ``kind`` "max" or "average" over ``block`` float32
    (kh, kw) of the unit's channel (NaN where the window runs into padding that a max ignores or
    an average leaves out), at cell (``row``, ``col``) of the pool's grid; ``winner`` (row, col)
    inside the block for a max (the first on ties); ``value`` the pool's output there."""

    name: str
    kind: str
    row: int
    col: int
    top: int
    left: int
    block: np.ndarray
    winner: tuple[int, int] | None
    value: float


@dataclass(frozen=True, eq=False)
class OneValue:
    """Unit ``unit`` of ``layer`` at (``row``, ``col``) (0, 0 for a linear layer) on one image:
    ``steps`` in order; ``value`` the last step's number, which is the layer's value there;
    ``stopped``: the sentence where a step could not be taken apart (then ``steps`` ends early
    and ``value`` is None)."""

    layer: str
    unit: int
    row: int
    col: int
    steps: tuple
    value: float | None
    stopped: str | None = None


class _CannotError(Exception):
    """A step this module does not take apart; its message is the sentence the page shows."""


def one_value(network: Network, image: torch.Tensor, layer: str, unit: int, row: int = 0, col: int = 0) -> OneValue:
    """One unit's value at (row, col) taken apart, for a float32 image (1, 1, 28, 28) in [0, 1]."""
    if tuple(image.shape) != (1, 1, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"expected one image shaped (1, 1, 28, 28), got {tuple(image.shape)}")
    layers = unit_layers(network)
    if layer not in layers:
        raise ValueError(f"{layer!r} has no unit cards: choose one of {', '.join(layers) or 'none'}")
    found = layers[layer]
    if not 0 <= unit < found.units:
        raise ValueError(f"{layer} has units 0..{found.units - 1}, not {unit}")
    rows, cols = found.grid or (1, 1)
    if not (0 <= row < rows and 0 <= col < cols):
        raise ValueError(f"({row}, {col}) is outside {layer}'s {rows}x{cols} grid")
    chain = network.block(layer)
    pool = _pool_after(network, chain[-1])
    wanted = [arg.name for node in chain for arg in node.all_input_nodes] + [n.name for n in chain]
    if pool is not None:
        wanted.append(pool.name)
    with torch.inference_mode():
        recorded = {k: v[0].float().cpu() for k, v in network.nodes(image, wanted).items()}
    modules = dict(network.graph.named_modules())
    kinds = {entry.node: entry.kind for entry in network.layers}
    steps: list = []
    try:
        first = chain[0]
        source = source_of(network, first.all_input_nodes[0])[0]
        if found.grid is None:
            steps.append(_linear(first, modules, recorded, unit, source))
        else:
            steps.append(_conv(first, modules, recorded, unit, row, col, source))
        value = steps[-1].value
        for node in chain[1:]:
            step = _elementwise(node, modules, kinds.get(node.name), value, unit)
            steps.append(step)
            value = step.value
        pooled = _pool(pool, modules, recorded, chain[-1].name, unit, row, col) if pool is not None else None
        if pooled is not None:
            steps.append(pooled)
    except _CannotError as why:
        return OneValue(layer, unit, row, col, tuple(steps), None, str(why))
    return OneValue(layer, unit, row, col, tuple(steps), float(steps[-1].value) if steps else None)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _conv(node, modules, recorded, unit, row, col, source) -> ConvStep:
    module = modules.get(node.target) if node.op == "call_module" else None
    if not isinstance(module, nn.Conv2d):
        raise _CannotError(f"{node.name} is not an nn.Conv2d module: its values are not taken apart here")
    inputs = recorded[node.all_input_nodes[0].name]  # (C_in, H, W)
    pad = module._reversed_padding_repeated_twice  # (left, right, top, bottom), "same" included
    mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
    padded = F.pad(inputs[None], pad, mode=mode)[0]
    (kh, kw), (sh, sw), (dh, dw) = _pair(module.kernel_size), _pair(module.stride), _pair(module.dilation)
    group = unit // (module.out_channels // module.groups)
    width = module.in_channels // module.groups
    channels = tuple(range(group * width, (group + 1) * width))
    top, left = row * sh, col * sw  # in the padded grid
    height, width = inputs.shape[1], inputs.shape[2]
    reach = (top - pad[2], left - pad[0], top - pad[2] + dh * (kh - 1), left - pad[0] + dw * (kw - 1))
    padded_window = reach[0] < 0 or reach[1] < 0 or reach[2] >= height or reach[3] >= width
    patch = padded[list(channels), top : top + dh * (kh - 1) + 1 : dh, left : left + dw * (kw - 1) + 1 : dw]
    kernel = module.weight[unit].detach().float().cpu()  # (C_in / groups, kh, kw)
    bias = float(module.bias[unit].detach()) if module.bias is not None else 0.0
    products = patch * kernel
    channel_sums = products.sum(dim=(1, 2))
    return ConvStep(
        source=source,
        in_channels=channels,
        top=top - pad[2],
        left=left - pad[0],
        stride=(sh, sw),
        dilation=(dh, dw),
        padding=module.padding_mode if padded_window else None,
        patch=patch.numpy(),
        kernel=kernel.numpy(),
        products=products.numpy(),
        channel_sums=channel_sums.numpy(),
        bias=bias,
        value=float(channel_sums.double().sum()) + bias,
    )


def _linear(node, modules, recorded, unit, source) -> LinearStep:
    module = modules.get(node.target) if node.op == "call_module" else None
    if not isinstance(module, nn.Linear):
        raise _CannotError(f"{node.name} is not an nn.Linear module: its values are not taken apart here")
    inputs = recorded[node.all_input_nodes[0].name].reshape(-1)
    weights = module.weight[unit].detach().float().cpu()
    bias = float(module.bias[unit].detach()) if module.bias is not None else 0.0
    weighted = float((inputs.double() * weights.double()).sum())
    return LinearStep(source, inputs.numpy(), weights.numpy(), weighted, bias, weighted + bias)


def _elementwise(node: fx.Node, modules, kind: str | None, value: float, unit: int):
    if kind == DROPOUT:
        return ActivationStep(node.name, "dropout (off when the network is read)", value, value)
    if kind == NORM:
        module = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d) or not module.track_running_stats:
            raise _CannotError(f"{node.name}: only a BatchNorm with running statistics is taken apart here")
        mean, var = float(module.running_mean[unit]), float(module.running_var[unit])
        gamma = float(module.weight[unit].detach()) if module.weight is not None else 1.0
        beta = float(module.bias[unit].detach()) if module.bias is not None else 0.0
        scale = gamma / float(np.sqrt(np.float32(var) + np.float32(module.eps)))
        shift = beta - mean * scale
        return NormStep(node.name, value, mean, var, module.eps, gamma, beta, scale, shift, scale * value + shift)
    if kind == ACTIVATION:
        x = torch.tensor([value], dtype=torch.float32)
        if node.op == "call_module":
            module = modules[node.target]
            if isinstance(module, nn.PReLU):  # one slope per channel, or one for all
                slope = float(module.weight[unit if module.weight.numel() > 1 else 0].detach())
                return ActivationStep(node.name, "PReLU", value, value if value >= 0 else slope * value)
            what, out = type(module).__name__, module(x)
        elif node.op == "call_function":
            if any(isinstance(a, fx.Node) for a in node.args[1:]) or any(
                isinstance(v, fx.Node) for v in node.kwargs.values()
            ):
                raise _CannotError(f"{node.name}: an activation with inputs of its own is not taken apart here")
            kwargs = {k: v for k, v in node.kwargs.items() if k != "inplace"}
            what, out = node.target.__name__, node.target(x, *node.args[1:], **kwargs)
        else:
            what, out = node.target, getattr(x, str(node.target).rstrip("_"))(*node.args[1:])
        return ActivationStep(node.name, what, value, float(out[0]))
    raise _CannotError(f"{node.name}: a step of kind {kind or 'unknown'} is not taken apart here")


def _pool_after(network: Network, end: fx.Node) -> fx.Node | None:
    """The pool that reads the layer's output, when it is the only reader."""
    kinds = {entry.node: entry.kind for entry in network.layers}
    users = list(end.users)
    return users[0] if len(users) == 1 and kinds.get(users[0].name) == POOL else None


_MAX = (nn.MaxPool2d, F.max_pool2d)
_AVERAGE = (nn.AvgPool2d, F.avg_pool2d)
_GLOBAL_AVERAGE = (nn.AdaptiveAvgPool2d, F.adaptive_avg_pool2d)


def _pool_settings(node: fx.Node, modules) -> tuple[str, dict]:
    if node.op == "call_module":
        module = modules[node.target]
        kind = type(module)
        names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "output_size")
        settings = {
            k: getattr(module, k) for k in (*names, "count_include_pad", "divisor_override") if hasattr(module, k)
        }
    else:
        kind = node.target
        names = {
            F.max_pool2d: ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
            F.avg_pool2d: ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
            F.adaptive_avg_pool2d: ("output_size",),
        }.get(kind, ())
        if any(isinstance(a, fx.Node) for a in node.args[1:]):
            raise _CannotError(f"{node.name}: a pool with computed settings is not taken apart here")
        settings = dict(zip(names, node.args[1:], strict=False)) | dict(node.kwargs)
    if kind in _MAX or (isinstance(kind, type) and issubclass(kind, nn.MaxPool2d)):
        return "max", settings
    if kind in _AVERAGE or (isinstance(kind, type) and issubclass(kind, nn.AvgPool2d)):
        return "average", settings
    adaptive = kind in _GLOBAL_AVERAGE or (isinstance(kind, type) and issubclass(kind, nn.AdaptiveAvgPool2d))
    if adaptive and _pair(settings.get("output_size", 0)) == (1, 1):
        return "global average", settings
    raise _CannotError(f"{node.name}: this pooling is not taken apart here")


def _cell(position: int, kernel: int, stride: int, padding: int, dilation: int, cells: int) -> int | None:
    """The first of the pool's ``cells`` along one axis whose window reads ``position``, or None."""
    for cell in range(cells):
        offset = position - (cell * stride - padding)
        if 0 <= offset <= dilation * (kernel - 1) and offset % dilation == 0:
            return cell
    return None


def _pool(node, modules, recorded, source, unit, row, col) -> PoolStep | None:
    kind, settings = _pool_settings(node, modules)
    values = recorded[source][unit]  # (H, W)
    out = recorded[node.name][unit]  # (h, w)
    if kind == "global average":
        return PoolStep(node.name, "average", 0, 0, 0, 0, values.numpy(), None, float(out.reshape(-1)[0]))
    kernel = _pair(settings["kernel_size"])
    stride = _pair(settings.get("stride") or settings["kernel_size"])
    padding, dilation = _pair(settings.get("padding", 0)), _pair(settings.get("dilation", 1))
    if settings.get("ceil_mode") or settings.get("divisor_override"):
        raise _CannotError(f"{node.name}: a pool with ceil_mode or a divisor override is not taken apart here")
    cell = tuple(
        _cell(p, k, s, pad, d, n)
        for p, k, s, pad, d, n in zip((row, col), kernel, stride, padding, dilation, out.shape, strict=True)
    )
    if None in cell:
        return None  # no window of the pool reads this position: the pool drops it
    tops = [c * s - pad for c, s, pad in zip(cell, stride, padding, strict=True)]
    filler = float("-inf") if kind == "max" else 0.0
    padded = F.pad(values[None, None], (padding[1], padding[1], padding[0], padding[0]), value=filler)[0, 0]
    block = padded[
        tops[0] + padding[0] : tops[0] + padding[0] + dilation[0] * (kernel[0] - 1) + 1 : dilation[0],
        tops[1] + padding[1] : tops[1] + padding[1] + dilation[1] * (kernel[1] - 1) + 1 : dilation[1],
    ]
    if kind == "max":
        winner = divmod(int(block.flatten().argmax()), block.shape[1])
        value = float(block.max())
        shown = torch.where(torch.isinf(block), torch.nan, block)
    else:
        include = settings.get("count_include_pad", True)
        inside = _inside(tops, kernel, values.shape)
        value = float(block.sum() / (block.numel() if include else inside))
        winner, shown = None, block
    return PoolStep(node.name, kind, cell[0], cell[1], tops[0], tops[1], shown.numpy(), winner, value)


def _inside(tops, kernel, shape) -> int:
    rows = max(0, min(tops[0] + kernel[0], shape[0]) - max(tops[0], 0))
    cols = max(0, min(tops[1] + kernel[1], shape[1]) - max(tops[1], 0))
    return rows * cols
