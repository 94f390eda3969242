"""Single units: what a conv channel or fc1 unit sees, which digits drive it, how one of its
values is computed, what removing it costs, and an image made to excite it.

"Units" are the channels of conv1..conv4 and the 20 units of fc1 (``UNIT_LAYERS``), read
after their ReLU as everywhere else (``core.model.TAPS``). Everything here only reads the
model it is given: no hooks, no weight or mode changes, so one cached model can serve many
threads. Where weights or gradients are needed the work happens on a private copy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from torch import nn

from core import runs
from core.data import IMAGE_SIZE, Split, to_tensor
from core.evaluate import per_class_mean
from core.model import CONV_LAYERS, LAYER_NAMES, MNIST_MEAN, MNIST_STD, TAPS, new_model

UNIT_LAYERS = (*CONV_LAYERS, "fc1")  # the layers whose units get a card
POOL_LAYERS = ("pool1", "pool2")
INDEX_BATCH = 1000  # digits per forward pass: amortises per-call overhead; its taps take ~50 MB
POSITION_DTYPE = torch.int16  # grids are at most 26x26 = 676 positions; keeps the cached index small

# Feature visualisation: a plain batched torch loop, the recipe that worked at 28x28 where lucent
# (sized for 224-px RGB images) needed several workarounds and ran slower.
FEATURE_STEPS = 200  # Adam steps: ~1.5 s for conv4 on one thread; twice as many raise the values ~10%
FEATURE_LR = 0.05  # step on the raw (pre-sigmoid) pixels
FEATURE_START = -3.0  # sigmoid(-3) = 0.047: a near-black start, so ink appears only where it helps
FEATURE_JITTER = 2  # at most this many pixels of random shift per step: strokes, not pixel tricks...
FEATURE_JITTER_SHARE = 6  # ...and at most a sixth of the receptive field: conv1 (3 px) and conv2 (5 px)
# get none, conv3 1 px. A 2 px shift shows a 3x3 unit a different patch each step: measured, conv1's
# images then reached 0.07-3.2 where unshifted ones reach 1.8-5.3 (the best of 2,000 test digits: 1.1-5.2).
FEATURE_INK = 0.01  # L1 penalty per unit of ink (pixel sum): conv4's ink 0.12 -> 0.06 a pixel, its value -1%


def _check_layer(layer: str, allowed: tuple[str, ...]) -> None:
    if layer not in allowed:
        raise ValueError(f"unknown layer {layer!r}: choose one of {', '.join(allowed)}")


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


# --- Geometry -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Geometry:
    size: int  # side of the receptive field in input pixels (R)
    jump: int  # input pixels between neighbouring positions of the layer (J)
    rows: int  # the layer's grid
    cols: int


def _forward_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's layers in forward order: ``MnistCNN`` registers them in the order ``taps``
    calls them (the ablation test checks this against a full forward pass)."""
    return list(model.named_children())


@cache
def _geometry() -> dict[str, _Geometry]:
    """Receptive field and grid of every named layer, walked from the modules' kernel sizes
    and strides (R += (k - 1) * J, J *= stride); fc1 and fc2 see the whole image."""
    size, jump, rows, cols = 1, 1, IMAGE_SIZE, IMAGE_SIZE
    after: dict[str, _Geometry] = {}  # by module name
    for name, module in _forward_modules(new_model()):
        if isinstance(module, nn.Conv2d | nn.MaxPool2d):
            padding, dilation = _pair(module.padding), _pair(module.dilation)
            if padding != (0, 0) or dilation != (1, 1) or getattr(module, "ceil_mode", False):
                # Boxes would run off the image and conv_step's windows would shift: not needed yet.
                raise NotImplementedError(f"{name}: geometry assumes unpadded, undilated windows")
            (kernel, kernel_w), (stride, stride_w) = _pair(module.kernel_size), _pair(module.stride)
            if (kernel, stride) != (kernel_w, stride_w):
                raise NotImplementedError(f"{name}: geometry assumes square kernels and strides")
            size += (kernel - 1) * jump
            jump *= stride
            rows, cols = (rows - kernel) // stride + 1, (cols - kernel) // stride + 1
        elif isinstance(module, nn.Linear):
            size, jump, rows, cols = IMAGE_SIZE, IMAGE_SIZE, 1, 1  # every unit sees every pixel
        after[name] = _Geometry(size, jump, rows, cols)
    return {layer: after[module] for layer, module in TAPS.items()}


def grid_size(layer: str) -> tuple[int, int]:
    """(rows, cols) of a layer's spatial grid, e.g. conv4 (8, 8); (1, 1) for fc1 and fc2."""
    _check_layer(layer, LAYER_NAMES)
    geometry = _geometry()[layer]
    return geometry.rows, geometry.cols


def receptive_field(layer: str, row: int, col: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the input pixels that position (row, col) of ``layer`` sees.

    conv1 3x3, conv2 5x5, pool1 6x6, conv3 10x10, conv4 14x14, pool2 16x16 (every channel of
    the position alike); fc1 and fc2 (only position (0, 0)) see the whole 28x28 image.
    """
    _check_layer(layer, LAYER_NAMES)
    geometry = _geometry()[layer]
    if not (0 <= row < geometry.rows and 0 <= col < geometry.cols):
        raise ValueError(f"({row}, {col}) is outside {layer}'s {geometry.rows}x{geometry.cols} grid")
    return row * geometry.jump, col * geometry.jump, geometry.size, geometry.size


# --- Reading the model without hooks --------------------------------------------------


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _layer_input(model: nn.Module, layer: str, images: torch.Tensor) -> torch.Tensor:
    """What ``layer``'s module is applied to: the normalised pixels for conv1 (as ``taps``
    computes them), else the previous named layer's output, flattened for fc layers."""
    if layer == LAYER_NAMES[0]:
        return (images - MNIST_MEAN) / MNIST_STD  # (B, 1, 28, 28)
    source = model.taps(images)[LAYER_NAMES[LAYER_NAMES.index(layer) - 1]]
    return torch.flatten(source, 1) if isinstance(getattr(model, layer), nn.Linear) else source


def _pre_activation(model: nn.Module, layer: str, images: torch.Tensor) -> torch.Tensor:
    """``layer``'s output before its ReLU: (B, C, h, w) for conv layers, (B, 20) for fc1."""
    return getattr(model, layer)(_layer_input(model, layer, images))


def _units(model: nn.Module, layer: str) -> int:
    module = getattr(model, layer)
    return module.out_channels if isinstance(module, nn.Conv2d) else module.out_features


def _check_unit(model: nn.Module, layer: str, unit: int) -> None:
    if not 0 <= unit < _units(model, layer):
        raise ValueError(f"{layer} has units 0..{_units(model, layer) - 1}, not {unit}")


def _check_image(image: torch.Tensor) -> None:
    if tuple(image.shape) != (1, 1, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"expected one image shaped (1, 1, 28, 28), got {tuple(image.shape)}")


# --- Dataset-wide activation index ----------------------------------------------------


@dataclass(frozen=True, eq=False)
class ActivationIndex:
    """Every unit of ``UNIT_LAYERS`` on every digit of a set, after the ReLU.

    Per layer, arrays (N, C): ``maximum`` float32 (the largest value over the layer's grid),
    ``mean`` float32 (the mean over the grid) and ``position`` int16 (where the maximum
    sits, flat in the row-major h x w grid; the first such place on ties, so 0 for a digit
    the unit ignores; always 0 for fc1, which has one value per unit).
    """

    maximum: dict[str, np.ndarray]
    mean: dict[str, np.ndarray]
    position: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.maximum[UNIT_LAYERS[0]])

    def top_digits(self, layer: str, unit: int, k: int = 16) -> np.ndarray:
        """Indices int64 (k,) of the digits with the highest maximum, highest first; ties by index."""
        _check_layer(layer, UNIT_LAYERS)
        return np.argsort(-self.maximum[layer][:, unit], kind="stable")[:k].astype(np.int64)

    def firing_share(self, layer: str, unit: int) -> float:
        """Share of digits on which the unit is above zero anywhere (a rarely active unit has few)."""
        _check_layer(layer, UNIT_LAYERS)
        return float((self.maximum[layer][:, unit] > 0).mean()) if len(self) else 0.0

    def mean_per_class(self, layer: str, unit: int, labels: np.ndarray, classes: int | None = None) -> np.ndarray:
        """float64 (classes,): the per-digit mean activation averaged within each true class
        (``labels`` int64 (N,)); NaN for a class with no digits (``per_class_mean``)."""
        _check_layer(layer, UNIT_LAYERS)
        return per_class_mean(self.mean[layer][:, unit], labels, classes)

    def peak(self, layer: str, unit: int, digit: int) -> tuple[int, int]:
        """(row, col) in the layer's grid where the unit is strongest on ``digit``."""
        _check_layer(layer, UNIT_LAYERS)
        return divmod(int(self.position[layer][digit, unit]), grid_size(layer)[1])


def _index_batches(
    model: nn.Module, batches: Iterator[torch.Tensor], total: int, progress: Callable[[float, str], None] | None
) -> ActivationIndex:
    """Fill the index from batches of float32 (B, 1, 28, 28) images, ``total`` in all."""
    device = _device(model)
    widths = {layer: _units(model, layer) for layer in UNIT_LAYERS}
    maximum = {layer: torch.empty(total, c) for layer, c in widths.items()}
    mean = {layer: torch.empty(total, c) for layer, c in widths.items()}
    position = {layer: torch.zeros(total, c, dtype=POSITION_DTYPE) for layer, c in widths.items()}
    done = 0
    with torch.inference_mode():
        for batch in batches:
            taps = model.taps(batch.to(device))
            rows = slice(done, done + len(batch))
            for layer in UNIT_LAYERS:
                values = taps[layer].float().cpu()
                if values.dim() == 4:
                    flat = values.flatten(2)  # (B, C, h*w)
                    # ``max`` returns the first of equal maxima, as np.argmax does: 0 for a silent unit.
                    maximum[layer][rows], where = flat.max(dim=2)
                    position[layer][rows] = where.to(POSITION_DTYPE)
                    mean[layer][rows] = flat.mean(dim=2)
                else:  # fc1 (B, 20): one value per unit
                    maximum[layer][rows] = mean[layer][rows] = values
            done += len(batch)
            if progress is not None:
                progress(done / total, f"Indexing unit activations: {done:,} of {total:,} digits")
    return ActivationIndex(
        maximum={k: v.numpy() for k, v in maximum.items()},
        mean={k: v.numpy() for k, v in mean.items()},
        position={k: v.numpy() for k, v in position.items()},
    )


def activation_index(
    model: nn.Module,
    images: torch.Tensor,
    batch_size: int = INDEX_BATCH,
    progress: Callable[[float, str], None] | None = None,
) -> ActivationIndex:
    """Index every unit over float32 images (N, 1, 28, 28) in [0, 1], in batched passes of
    ``model.taps`` under inference mode; ``progress(fraction, text)`` after each batch."""
    batches = (images[i : i + batch_size] for i in range(0, len(images), batch_size))
    return _index_batches(model, batches, len(images), progress)


def index_run(at: runs.Point) -> runs.Run:
    """Where a split's activation index under one saved point's weights is kept."""
    return runs.Run(at, "activation_index")


def load_or_compute_index(
    model: nn.Module, split: Split, at: runs.Point, progress: Callable[[float, str], None] | None = None
) -> ActivationIndex:
    """The kept activation index of ``split`` (the one ``at`` names) beside a checkpoint, or a
    fresh one (then kept): a run labelled with the model key, epoch, split and data fingerprint."""

    def compute() -> ActivationIndex:
        # Convert the uint8 digits batch by batch: the train split as float32 at once is 188 MB.
        batches = (to_tensor(split.images[i : i + INDEX_BATCH]) for i in range(0, len(split), INDEX_BATCH))
        return _index_batches(model, batches, len(split), progress)

    return index_run(at).get(compute, _to_tensors, lambda tensors: _from_tensors(tensors, model, len(split)))


_FIELDS = ("maximum", "mean", "position")
_DTYPES = {"maximum": torch.float32, "mean": torch.float32, "position": POSITION_DTYPE}


def _to_tensors(index: ActivationIndex) -> dict[str, torch.Tensor]:
    return {
        f"{layer}.{field}": torch.from_numpy(np.ascontiguousarray(getattr(index, field)[layer]))
        for field in _FIELDS
        for layer in UNIT_LAYERS
    }


def _from_tensors(tensors: dict[str, torch.Tensor], model: nn.Module, digits: int) -> ActivationIndex | None:
    """The index in a kept file, or None when its arrays are not exactly the expected ones."""
    expected = {
        f"{layer}.{field}": ((digits, _units(model, layer)), _DTYPES[field])
        for field in _FIELDS
        for layer in UNIT_LAYERS
    }
    if not runs.same_shapes(tensors, expected):
        return None
    return ActivationIndex(
        **{field: {layer: tensors[f"{layer}.{field}"].numpy() for layer in UNIT_LAYERS} for field in _FIELDS}
    )


# --- One value, step by step ----------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ConvStep:
    """How conv ``layer``'s ``channel`` at (row, col) is computed for one image.

    ``patch``, ``kernel`` and ``products`` float32 (C_in, 3, 3): the window of the layer's
    input (``source``: "input" = the normalised pixels (x - MNIST_MEAN) / MNIST_STD that conv1
    sees, else the named layer's output), the weights, and their elementwise product (no
    kernel flip: PyTorch convolutions are cross-correlations). ``channel_sums`` float32
    (C_in,) sums each input channel's products; ``pre_relu`` = sum(channel_sums) + ``bias``;
    ``value`` = max(pre_relu, 0), the number ``taps`` reports.
    """

    layer: str
    channel: int
    row: int
    col: int
    source: str
    patch: np.ndarray
    kernel: np.ndarray
    products: np.ndarray
    channel_sums: np.ndarray
    bias: float
    pre_relu: float
    value: float


def conv_step(model: nn.Module, image: torch.Tensor, layer: str, channel: int, row: int, col: int) -> ConvStep:
    """One conv activation taken apart, for a float32 image (1, 1, 28, 28) in [0, 1]."""
    _check_layer(layer, CONV_LAYERS)
    _check_image(image)
    _check_unit(model, layer, channel)
    receptive_field(layer, row, col)  # raises for a position off the grid
    module = getattr(model, layer)
    (kernel_h, kernel_w), (stride, _) = _pair(module.kernel_size), _pair(module.stride)
    with torch.inference_mode():
        inputs = _layer_input(model, layer, image.to(_device(model)))[0].float().cpu()  # (C_in, H, W)
        patch = inputs[:, row * stride : row * stride + kernel_h, col * stride : col * stride + kernel_w]
        kernel = module.weight[channel].detach().float().cpu()  # (C_in, 3, 3)
        bias = float(module.bias[channel]) if module.bias is not None else 0.0
    products = patch * kernel
    channel_sums = products.sum(dim=(1, 2))  # (C_in,)
    pre_relu = float(channel_sums.double().sum()) + bias
    return ConvStep(
        layer=layer,
        channel=channel,
        row=row,
        col=col,
        source="input" if layer == LAYER_NAMES[0] else LAYER_NAMES[LAYER_NAMES.index(layer) - 1],
        patch=patch.numpy(),
        kernel=kernel.numpy(),
        products=products.numpy(),
        channel_sums=channel_sums.numpy(),
        bias=bias,
        pre_relu=pre_relu,
        value=max(pre_relu, 0.0),
    )


@dataclass(frozen=True, eq=False)
class PoolStep:
    """How pool ``layer``'s ``channel`` at (row, col) is computed for one image.

    ``block`` float32 (k, k): the window of ``source`` (the conv layer before the pool,
    after its ReLU) it takes the maximum of; ``winner`` (row, col) inside the block where
    that maximum sits (the first on ties); ``value`` the maximum, as ``taps`` reports it.
    """

    layer: str
    channel: int
    row: int
    col: int
    source: str
    block: np.ndarray
    winner: tuple[int, int]
    value: float


def pool_step(model: nn.Module, image: torch.Tensor, layer: str, channel: int, row: int, col: int) -> PoolStep:
    """One max-pool value taken apart, for a float32 image (1, 1, 28, 28) in [0, 1]."""
    _check_layer(layer, POOL_LAYERS)
    _check_image(image)
    receptive_field(layer, row, col)  # raises for a position off the grid
    module = getattr(model, layer)
    (kernel, _), (stride, _) = _pair(module.kernel_size), _pair(module.stride)
    source = LAYER_NAMES[LAYER_NAMES.index(layer) - 1]
    with torch.inference_mode():
        values = model.taps(image.to(_device(model)))[source][0].float().cpu()  # (C, H, W)
    if not 0 <= channel < len(values):
        raise ValueError(f"{layer} has channels 0..{len(values) - 1}, not {channel}")
    block = values[channel, row * stride : row * stride + kernel, col * stride : col * stride + kernel]
    winner = divmod(int(block.flatten().argmax()), kernel)
    return PoolStep(
        layer=layer,
        channel=channel,
        row=row,
        col=col,
        source=source,
        block=block.numpy(),
        winner=winner,
        value=float(block.max()),
    )


POOL_AFTER = {"conv2": "pool1", "conv4": "pool2"}  # the max-pool that reads a conv layer's output


def pool_position(row: int, col: int) -> tuple[int, int]:
    """The cell of the 2x2 max-pool that follows a conv layer which takes in (row, col)."""
    return row // 2, col // 2


@dataclass(frozen=True, eq=False)
class LinearStep:
    """How linear ``layer``'s ``unit`` is computed for one image.

    ``inputs`` float32 (n,): ``source`` flattened (fc1 reads pool2's 32 channels × 4×4 = 512);
    ``weights`` float32 (n,) the unit's row of the weight matrix; ``weighted_sum`` = inputs ·
    weights; ``pre_relu`` = weighted_sum + ``bias``; ``value`` = max(pre_relu, 0), the number
    ``taps`` reports.
    """

    layer: str
    unit: int
    source: str
    inputs: np.ndarray
    weights: np.ndarray
    weighted_sum: float
    bias: float
    pre_relu: float
    value: float


def linear_step(model: nn.Module, image: torch.Tensor, layer: str, unit: int) -> LinearStep:
    """One unit of a hidden linear layer (fc1) taken apart, for a float32 image (1, 1, 28, 28) in [0, 1]."""
    _check_layer(layer, ("fc1",))
    _check_image(image)
    _check_unit(model, layer, unit)
    module = getattr(model, layer)
    with torch.inference_mode():
        inputs = _layer_input(model, layer, image.to(_device(model)))[0].float().cpu().reshape(-1)  # (n,)
        weights = module.weight[unit].detach().float().cpu()  # (n,)
        bias = float(module.bias[unit]) if module.bias is not None else 0.0
    weighted_sum = float((inputs.double() * weights.double()).sum())
    return LinearStep(
        layer=layer,
        unit=unit,
        source=LAYER_NAMES[LAYER_NAMES.index(layer) - 1],
        inputs=inputs.numpy(),
        weights=weights.numpy(),
        weighted_sum=weighted_sum,
        bias=bias,
        pre_relu=weighted_sum + bias,
        value=max(weighted_sum + bias, 0.0),
    )


# --- Ablation -------------------------------------------------------------------------


def _tail(model: nn.Module, layer: str, values: torch.Tensor) -> torch.Tensor:
    """Logits (B, 10) from ``layer``'s output (after its ReLU), running only the modules after it."""
    modules = _forward_modules(model)
    start = [name for name, _ in modules].index(TAPS[layer]) + 1
    x = values
    for _, module in modules[start:]:
        if isinstance(module, nn.Linear) and x.dim() > 2:
            x = torch.flatten(x, 1)  # as taps() flattens pool2 before fc1
        x = module(x)
    return x


def _head(model: nn.Module, layer: str, images: torch.Tensor) -> torch.Tensor:
    """``layer``'s output (after its ReLU), running only the modules up to it, as ``taps`` does."""
    modules = _forward_modules(model)
    stop = [name for name, _ in modules].index(TAPS[layer])
    x = (images - MNIST_MEAN) / MNIST_STD
    for _, module in modules[: stop + 1]:
        if isinstance(module, nn.Linear) and x.dim() > 2:
            x = torch.flatten(x, 1)
        x = module(x)
    return x


def ablation_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    layer: str,
    unit: int,
    batch_size: int = INDEX_BATCH,
    before: np.ndarray | None = None,
    active: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each class's accuracy, float64 (K,) for the K classes the model scores (NaN for a class
    absent from ``labels``), with the unit intact and with it zeroed after its ReLU, over
    float32 images (N, 1, 28, 28) and int64 labels (N,). Only the layers after ``layer`` are
    rerun, on a copy of its output with the unit's channel set to zero, so no weights change.

    Two exact shortcuts for a caller that has them: ``before``, the model's predictions int64
    (N,) (a cached evaluation), spares the full pass; ``active``, bool (N,) the digits on which
    the unit is above zero anywhere (the activation index), spares the others: zeroing a unit
    that is already zero changes nothing. Measured (bench/unit_speed.py): a cold unit card went
    from 1.14 s to 0.79 s."""
    _check_layer(layer, UNIT_LAYERS)
    _check_unit(model, layer, unit)
    if active is not None and before is None:
        raise ValueError("active digits are a shortcut for a caller that passes the predictions (before) too")
    device = _device(model)
    truth = np.asarray(labels)
    chosen = np.arange(len(images)) if active is None else np.flatnonzero(active)
    computed_before, after = [], []
    with torch.inference_mode():
        for i in range(0, len(chosen), batch_size):
            rows = torch.from_numpy(chosen[i : i + batch_size])
            batch = images[rows].to(device)
            if before is None:
                taps = model.taps(batch)
                values = taps[layer].clone()
                computed_before.append(taps["fc2"].argmax(dim=1).cpu())
            else:
                values = _head(model, layer, batch)
            values[:, unit] = 0.0  # a whole channel (every position) or one fc1 unit
            after.append(_tail(model, layer, values).argmax(dim=1).cpu())
    before = torch.cat(computed_before).numpy() if before is None else np.asarray(before)  # (N,) all digits
    changed = before.copy()
    if after:
        changed[chosen] = torch.cat(after).numpy()
    classes = getattr(model, LAYER_NAMES[-1]).out_features  # the logits' width
    return per_class_mean(before == truth, truth, classes), per_class_mean(changed == truth, truth, classes)


# --- Feature visualisation ------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FeatureVisualisation:
    """One optimised image per unit of ``layer``: ``images`` float32 (C, 28, 28) in [0, 1];
    ``activation`` float32 (C,) each unit's final pre-ReLU value on its own image (at the
    grid's centre for conv layers); ``how`` says in one line how they were made."""

    layer: str
    images: np.ndarray
    activation: np.ndarray
    how: str


def _centre(pre: torch.Tensor) -> torch.Tensor:
    """(B, C) values at the grid's centre of a (B, C, h, w) map; fc values (B, C) as they are."""
    return pre[:, :, pre.shape[2] // 2, pre.shape[3] // 2] if pre.dim() == 4 else pre


def _jitter(images: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """The batch shifted by up to ``pixels`` in each direction (one random shift per call),
    reflecting at the border so no black frame appears."""
    if pixels == 0:
        return images
    padded = nn.functional.pad(images, (pixels,) * 4, mode="reflect")
    dy, dx = torch.randint(0, 2 * pixels + 1, (2,), generator=generator).tolist()
    return padded[..., dy : dy + images.shape[-2], dx : dx + images.shape[-1]]


def feature_visualisation(
    model: nn.Module, layer: str, steps: int = FEATURE_STEPS, seed: int = 0, ink_penalty: float = FEATURE_INK
) -> FeatureVisualisation:
    """An image per unit of ``layer`` (conv1..conv4, fc1) that drives the unit up, all units
    optimised together in one batch (image c for unit c).

    Pixels are sigmoid(raw), raw starting at -3 (near black); each of ``steps`` Adam steps
    shifts the batch by up to 2 pixels (less for small receptive fields, see
    ``FEATURE_JITTER_SHARE``) and maximises each unit's *pre-ReLU* value at the grid's
    centre (a post-ReLU objective gives units that start at 0 no gradient), less
    ``ink_penalty`` times the image's ink. Runs on a private copy of the model with only
    the pixels requiring gradients; the shifts come from a private generator seeded with
    ``seed``, so the same call gives the same images and global RNG state is untouched.
    """
    _check_layer(layer, UNIT_LAYERS)
    units = _units(model, layer)
    size = receptive_field(layer, 0, 0)[2]
    jitter = min(FEATURE_JITTER, size // FEATURE_JITTER_SHARE)
    generator = torch.Generator().manual_seed(seed)
    # Out of any caller's inference mode: the copy's weights must be ordinary tensors for autograd.
    with torch.inference_mode(False), torch.enable_grad():
        net = copy.deepcopy(model).requires_grad_(False)
        raw = torch.full((units, 1, IMAGE_SIZE, IMAGE_SIZE), FEATURE_START, device=_device(net), requires_grad=True)
        optimiser = torch.optim.Adam([raw], lr=FEATURE_LR)
        own = torch.arange(units)
        for _ in range(steps):
            pixels = torch.sigmoid(raw)  # (C, 1, 28, 28)
            pre = _centre(_pre_activation(net, layer, _jitter(pixels, jitter, generator)))  # (C, C)
            loss = -pre[own, own].sum() + ink_penalty * pixels.sum()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            images = torch.sigmoid(raw)
            activation = _centre(_pre_activation(net, layer, images))[own, own]
    rows, cols = grid_size(layer)
    where = "" if layer == "fc1" else f" at the centre ({rows // 2}, {cols // 2}) of its {rows}x{cols} grid"
    shifted = f", shifted up to {jitter} px a step" if jitter else ""
    how = (
        f"{steps} Adam steps (lr {FEATURE_LR}) on sigmoid pixels from near black{shifted}, maximising"
        f" each {layer} unit's pre-ReLU value{where} minus {ink_penalty:g} x ink (seed {seed})"
    )
    return FeatureVisualisation(
        layer=layer,
        images=images[:, 0].float().cpu().numpy(),
        activation=activation.float().cpu().numpy(),
        how=how,
    )
