"""Single units of any network: which digits drive a unit, what removing it costs, and an image
made to excite it (how one of its values is computed: ``core.unit_steps``).

A unit is one channel of a convolution or one output of a hidden linear layer, read where the
network's layer list reads it (``core.network``): after the block's norm and activation, e.g.
the reference CNN's conv1..conv4 and fc1 after their ReLU. The last linear layer (the logits)
has no unit cards. Everything here only reads the network it is given: no hooks, no weight or
mode changes (an ``fx.Interpreter`` per call), so one cached network serves many threads.
Where gradients are needed the work happens on the network's own graph with only the pixels
requiring them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx

from core import runs
from core.data import IMAGE_SIZE, MNIST_WORDS, Naming, Split, to_tensor
from core.evaluate import per_class_mean
from core.geometry import Geometry
from core.network import ACTIVATION, ARITHMETIC, CONV, DROPOUT, FLATTEN, LINEAR, POOL, Network

INDEX_BATCH = 1000  # digits per forward pass: amortises per-call overhead; its outputs take ~50 MB
POSITION_DTYPE = (
    torch.int16
)  # where the maximum sits, flat in the grid: grids of 28x28 inputs fit; keeps the file small

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
FEATURE_BATCH = 64  # units optimised together: a wide layer's images come in batches of this many
_RELU = ("relu", "relu_", "relu6", "ReLU", "ReLU6")  # activations whose output is never below zero


@dataclass(frozen=True)
class UnitLayer:
    """A layer whose units get cards: ``units`` channels (conv) or outputs (linear); ``grid``
    (rows, cols) of a conv's positions, None for a linear layer's single value per unit;
    ``nonnegative`` when the layer ends in a ReLU, so a unit at 0 everywhere is silent."""

    name: str
    kind: str  # CONV or LINEAR
    units: int
    grid: tuple[int, int] | None
    nonnegative: bool

    @property
    def unit_word(self) -> str:
        return "channel" if self.grid is not None else "unit"


def unit_layers(network: Network) -> dict[str, UnitLayer]:
    """The network's layers with unit cards, in forward order: each shown conv layer with a grid
    and each shown linear layer but the last (the logits)."""
    kinds = {layer.name: layer for layer in network.layers}
    linears = [layer.name for layer in network.layers if layer.kind == LINEAR]
    found: dict[str, UnitLayer] = {}
    for name, end in network.shown.items():
        start = kinds.get(name)
        if start is None or start.kind not in (CONV, LINEAR) or (linears and name == linears[-1]):
            continue
        shape = next(layer.shape for layer in network.layers if layer.node == end)
        if (start.kind == CONV and len(shape) != 3) or (start.kind == LINEAR and len(shape) != 1):
            continue  # a 1-D or 3-D convolution, a linear layer over a grid: no card shape for it
        drops = {entry.node for entry in network.layers if entry.kind == DROPOUT}
        last = [node for node in network.block(name) if node.name not in drops][-1]  # dropout: off when read
        if last.op == "call_module":
            relu = type(network.graph.get_submodule(last.target)).__name__ in _RELU
        else:  # a function or a method: F.relu, torch.relu, x.relu()
            relu = getattr(last.target, "__name__", str(last.target)) in _RELU
        grid = (shape[1], shape[2]) if len(shape) == 3 else None
        found[name] = UnitLayer(name, start.kind, shape[0], grid, relu)
    return found


def _layer(network: Network, layer: str) -> UnitLayer:
    layers = unit_layers(network)
    if layer not in layers:
        raise ValueError(f"{layer!r} has no unit cards: choose one of {', '.join(layers) or 'none'}")
    return layers[layer]


def _check_unit(network: Network, layer: str, unit: int) -> UnitLayer:
    found = _layer(network, layer)
    if not 0 <= unit < found.units:
        raise ValueError(f"{layer} has units 0..{found.units - 1}, not {unit}")
    return found


def _device(network: Network) -> torch.device:
    return next(iter(network.module.parameters()), torch.empty(0)).device


INPUT = "input"  # the source of a first layer: the pixels as the network receives them
NORMALISED_INPUT = "normalised input"  # the pixels after the network's own first arithmetic steps


def source_of(network: Network, node: fx.Node) -> tuple[str, tuple[int, ...]]:
    """What a layer reads, as the pages name it, and its shape per image: a shown layer,
    ``INPUT`` for the pixels (after the network's own normalisation steps, if any), else the
    graph's layer name; a flatten in between is looked through (a linear layer reads the pool
    before it, flattened)."""
    layers = {entry.node: entry for entry in network.layers}
    while node.name in layers and layers[node.name].kind == FLATTEN and node.all_input_nodes:
        node = node.all_input_nodes[0]
    shape = layers[node.name].shape if node.name in layers else (1, IMAGE_SIZE, IMAGE_SIZE)
    by_node = {end: name for name, end in network.shown.items()}
    if node.name in by_node:
        return by_node[node.name], shape
    ancestors = [node]
    while ancestors[-1].op != "placeholder" and len(ancestors[-1].all_input_nodes) == 1:
        ancestors.append(ancestors[-1].all_input_nodes[0])
    normalising = all(n.name in layers and layers[n.name].kind == ARITHMETIC for n in ancestors[:-1])
    if ancestors[-1].op == "placeholder" and normalising:
        return (NORMALISED_INPUT if len(ancestors) > 1 else INPUT), shape
    return (layers[node.name].name if node.name in layers else node.name), shape


# --- What a unit reads with ------------------------------------------------------------

MAPS_SHOWN = 64  # input channels drawn as maps at most; a wider input is summarised per channel


@dataclass(frozen=True, eq=False)
class IncomingWeights:
    """A unit's weights on what it reads (``source``, a layer or the input): ``maps`` float32
    (n, h, w), one map per input channel (a conv's kernel, or a linear unit's weights laid on
    the grid it reads), None when there are more than ``MAPS_SHOWN`` or the source has no
    grid; ``strength`` float32 (n,): each input channel's L2 norm of weights (for a source
    without a grid, each input's weight itself)."""

    source: str
    maps: np.ndarray | None
    strength: np.ndarray


def incoming_weights(network: Network, layer: str, unit: int) -> IncomingWeights:
    """The weights unit ``unit`` of ``layer`` reads with (its own group's channels for a grouped conv)."""
    _check_unit(network, layer, unit)
    start = network.block(layer)[0]
    module = network.graph.get_submodule(start.target) if start.op == "call_module" else None
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"{layer}'s weights are not a module's: they are not drawn")
    row = weight[unit].detach().float().cpu().clone()  # never a view of the shared weights
    source, shape = source_of(network, start.all_input_nodes[0])
    if row.dim() == 3:  # a conv: (C_in / groups, kh, kw)
        maps = row
    elif len(shape) == 3 and row.numel() == int(np.prod(shape)):
        maps = row.reshape(shape)  # a linear unit's weights on the grid it reads, flattened
    else:
        return IncomingWeights(source, None, row.numpy())
    strength = maps.flatten(1).norm(dim=1)
    return IncomingWeights(source, maps.numpy() if len(maps) <= MAPS_SHOWN else None, strength.numpy())


def kernels(network: Network, layer: str) -> np.ndarray | None:
    """A conv layer's weights, float32 (out_channels, in_channels / groups, kh, kw); None for a
    layer whose convolution is not a module's (a functional call)."""
    start = network.block(layer)[0]
    module = network.graph.get_submodule(start.target) if start.op == "call_module" else None
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        return None
    return weight.detach().float().cpu().numpy().copy()  # never a view of the shared weights


def pooled_layers(network: Network) -> dict[str, str]:
    """{shown pool layer: the unit layer it pools}, for pools that read one unit layer's output
    (channel c of the pool is channel c of that layer)."""
    ends = {network.shown[name]: name for name in unit_layers(network)}
    found = {}
    for name in network.shown:
        start = next(layer for layer in network.layers if layer.name == name)
        node = network.block(name)[0]
        if start.kind == POOL and node.all_input_nodes and node.all_input_nodes[0].name in ends:
            found[name] = ends[node.all_input_nodes[0].name]
    return found


# --- Dataset-wide activation index ----------------------------------------------------


@dataclass(frozen=True, eq=False)
class ActivationIndex:
    """Every unit of the network's unit layers on every digit of a set, where the layer list reads it.

    Per layer, arrays (N, C): ``maximum`` float32 (the largest value over the layer's grid),
    ``mean`` float32 (the mean over the grid) and ``position`` integers (where the maximum
    sits, flat in the row-major grid; the first such place on ties, so 0 for a digit the unit
    ignores; always 0 for a linear layer, which has one value per unit). ``grids``: each
    layer's (rows, cols), (1, 1) for a linear layer.
    """

    maximum: dict[str, np.ndarray]
    mean: dict[str, np.ndarray]
    position: dict[str, np.ndarray]
    grids: dict[str, tuple[int, int]]

    def __len__(self) -> int:
        return len(next(iter(self.maximum.values()))) if self.maximum else 0

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.maximum)

    def _check(self, layer: str) -> None:
        if layer not in self.maximum:
            raise ValueError(f"unknown layer {layer!r}: choose one of {', '.join(self.maximum)}")

    def top_digits(self, layer: str, unit: int, k: int = 16) -> np.ndarray:
        """Indices int64 (k,) of the digits with the highest maximum, highest first; ties by index."""
        self._check(layer)
        return np.argsort(-self.maximum[layer][:, unit], kind="stable")[:k].astype(np.int64)

    def firing_share(self, layer: str, unit: int) -> float:
        """Share of digits on which the unit is above zero anywhere (a rarely active unit has few)."""
        self._check(layer)
        return float((self.maximum[layer][:, unit] > 0).mean()) if len(self) else 0.0

    def mean_per_class(self, layer: str, unit: int, labels: np.ndarray, classes: int | None = None) -> np.ndarray:
        """float64 (classes,): the per-digit mean activation averaged within each true class
        (``labels`` int64 (N,)); NaN for a class with no digits (``per_class_mean``)."""
        self._check(layer)
        return per_class_mean(self.mean[layer][:, unit], labels, classes)

    def layer_summary(self, layer: str, labels: np.ndarray, classes: int) -> dict[str, np.ndarray]:
        """Every unit of ``layer`` at once, for a sorted list of a wide layer: ``share`` float64
        (C,) as :meth:`firing_share`, ``mean`` float64 (C,) the mean over digits of the per-digit
        mean, ``favourite`` int64 (C,) the class with the highest :meth:`mean_per_class` (the
        lowest class on ties; -1 for a unit that is the same on every class)."""
        self._check(layer)
        values = self.mean[layer].astype(np.float64)  # (N, C)
        counts = np.bincount(labels, minlength=classes)[:classes].astype(np.float64)  # (K,)
        sums = np.zeros((classes, values.shape[1]))
        np.add.at(sums, labels, values)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class = sums / counts[:, None]  # (K, C); NaN for a class without digits
        filled = np.where(np.isnan(per_class), -np.inf, per_class)
        favourite = filled.argmax(axis=0)
        flat = np.nanmax(per_class, axis=0) == np.nanmin(per_class, axis=0)
        return {
            "share": (self.maximum[layer] > 0).mean(axis=0).astype(np.float64) if len(self) else np.zeros(0),
            "mean": values.mean(axis=0),
            "favourite": np.where(flat, -1, favourite).astype(np.int64),
        }

    def peak(self, layer: str, unit: int, digit: int) -> tuple[int, int]:
        """(row, col) in the layer's grid where the unit is strongest on ``digit``."""
        self._check(layer)
        return divmod(int(self.position[layer][digit, unit]), self.grids[layer][1])


def _index_batches(
    network: Network,
    batches: Iterator[torch.Tensor],
    total: int,
    progress: Callable[[float, str], None] | None,
    words: Naming = MNIST_WORDS,
) -> ActivationIndex:
    """Fill the index from batches of float32 (B, 1, 28, 28) images, ``total`` in all (``words``:
    what the progress text calls them)."""
    layers = unit_layers(network)
    device = _device(network)
    maximum = {name: torch.empty(total, layer.units) for name, layer in layers.items()}
    mean = {name: torch.empty(total, layer.units) for name, layer in layers.items()}
    position = {name: torch.zeros(total, layer.units, dtype=POSITION_DTYPE) for name, layer in layers.items()}
    done = 0
    with torch.inference_mode():
        for batch in batches:
            outputs = network.outputs(batch.to(device), layers)
            rows = slice(done, done + len(batch))
            for name in layers:
                values = outputs[name].float().cpu()
                if values.dim() == 4:
                    flat = values.flatten(2)  # (B, C, h*w)
                    # ``max`` returns the first of equal maxima, as np.argmax does: 0 for a silent unit.
                    maximum[name][rows], where = flat.max(dim=2)
                    position[name][rows] = where.to(POSITION_DTYPE)
                    mean[name][rows] = flat.mean(dim=2)
                else:  # a linear layer (B, units): one value per unit
                    maximum[name][rows] = mean[name][rows] = values
            done += len(batch)
            if progress is not None:
                progress(done / total, f"Indexing unit activations: {done:,} of {total:,} {words.plural}")
    return ActivationIndex(
        maximum={k: v.numpy() for k, v in maximum.items()},
        mean={k: v.numpy() for k, v in mean.items()},
        position={k: v.numpy() for k, v in position.items()},
        grids={name: layer.grid or (1, 1) for name, layer in layers.items()},
    )


def activation_index(
    network: Network,
    images: torch.Tensor,
    batch_size: int = INDEX_BATCH,
    progress: Callable[[float, str], None] | None = None,
    words: Naming = MNIST_WORDS,
) -> ActivationIndex:
    """Index every unit over float32 images (N, 1, 28, 28) in [0, 1], in batched passes under
    inference mode; ``progress(fraction, text)`` after each batch, the images called by ``words``."""
    batches = (images[i : i + batch_size] for i in range(0, len(images), batch_size))
    return _index_batches(network, batches, len(images), progress, words)


def index_run(at: runs.Point) -> runs.Run:
    """Where a split's activation index under one saved point's weights is kept."""
    return runs.Run(at, "activation_index")


def load_or_compute_index(
    network: Network,
    split: Split,
    at: runs.Point,
    progress: Callable[[float, str], None] | None = None,
    words: Naming = MNIST_WORDS,
) -> ActivationIndex:
    """The kept activation index of ``split`` (the one ``at`` names) beside a checkpoint, or a
    fresh one (then kept): a run labelled with the model key, epoch, split and data fingerprint.
    ``words``: what the progress text calls the images."""

    def compute() -> ActivationIndex:
        # Convert the uint8 digits batch by batch: the train split as float32 at once is 188 MB.
        batches = (to_tensor(split.images[i : i + INDEX_BATCH]) for i in range(0, len(split), INDEX_BATCH))
        return _index_batches(network, batches, len(split), progress, words)

    return index_run(at).get(compute, _to_tensors, lambda tensors: _from_tensors(tensors, network, len(split)))


_FIELDS = ("maximum", "mean", "position")


def _to_tensors(index: ActivationIndex) -> dict[str, torch.Tensor]:
    return {
        f"{layer}.{field}": torch.from_numpy(np.ascontiguousarray(getattr(index, field)[layer]))
        for field in _FIELDS
        for layer in index.layers
    }


def _from_tensors(tensors: dict[str, torch.Tensor], network: Network, digits: int) -> ActivationIndex | None:
    """The index in a kept file, or None when its arrays are not exactly the expected ones."""
    layers = unit_layers(network)
    expected = {
        f"{name}.{field}": ((digits, layer.units), POSITION_DTYPE if field == "position" else torch.float32)
        for field in _FIELDS
        for name, layer in layers.items()
    }
    if not runs.same_shapes(tensors, expected):
        return None
    return ActivationIndex(
        **{field: {name: tensors[f"{name}.{field}"].numpy() for name in layers} for field in _FIELDS},
        grids={name: layer.grid or (1, 1) for name, layer in layers.items()},
    )


# --- Ablation -------------------------------------------------------------------------


def ablation_accuracy(
    network: Network,
    images: torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    layer: str,
    unit: int,
    batch_size: int = INDEX_BATCH,
    before: np.ndarray | None = None,
    active: np.ndarray | None = None,
    progress: Callable[[float, str], None] | None = None,
    words: Naming = MNIST_WORDS,
) -> tuple[np.ndarray, np.ndarray]:
    """Each class's accuracy, float64 (K,) for the network's K classes (NaN for a class absent
    from ``labels``), with the unit intact and with it set to zero where the layer list reads
    it, over float32 images (N, 1, 28, 28) and int64 labels (N,). The rest of the graph runs on
    the zeroed copy (``Network.ablated_logits``): no weights change, and a residual's shortcut
    keeps its value.

    Two exact shortcuts for a caller that has them: ``before``, the network's predictions int64
    (N,) (a cached evaluation), spares the full pass; ``active``, bool (N,) the digits on which
    the unit is above zero anywhere (the activation index), spares the others: zeroing a unit
    that is already zero changes nothing, so ``active`` is refused for a layer that can go below
    zero (it does not end in a ReLU). ``progress(fraction, text)`` after each batch, the images
    called by ``words``."""
    found = _check_unit(network, layer, unit)
    if active is not None and before is None:
        raise ValueError("active digits are a shortcut for a caller that passes the predictions (before) too")
    if active is not None and not found.nonnegative:
        raise ValueError(f"{layer} can go below zero: every digit is rerun, not only the active ones")
    device = _device(network)
    truth = np.asarray(labels)
    chosen = np.arange(len(images)) if active is None else np.flatnonzero(active)
    computed_before, after = [], []
    with torch.inference_mode():
        for i in range(0, len(chosen), batch_size):
            batch = images[torch.from_numpy(chosen[i : i + batch_size])].to(device)
            if before is None:
                computed_before.append(network.logits(batch).argmax(dim=1).cpu())
            after.append(network.ablated_logits(batch, layer, unit).argmax(dim=1).cpu())
            if progress is not None:
                done = min(i + batch_size, len(chosen))
                progress(
                    done / len(chosen),
                    f"Zeroing {layer} {found.unit_word} {unit}: {done:,} of {len(chosen):,} {words.plural}",
                )
    before = torch.cat(computed_before).numpy() if before is None else np.asarray(before)  # (N,) all digits
    changed = before.copy()
    if after:
        changed[chosen] = torch.cat(after).numpy()
    classes = network.classes
    return per_class_mean(before == truth, truth, classes), per_class_mean(changed == truth, truth, classes)


# --- Feature visualisation ------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FeatureVisualisation:
    """One optimised image per unit of ``layer``: ``images`` float32 (C, 28, 28) in [0, 1];
    ``activation`` float32 (C,) each unit's final value before its activation on its own image
    (at the grid's centre for conv layers); ``how`` says in one line how they were made."""

    layer: str
    images: np.ndarray
    activation: np.ndarray
    how: str


def objective_node(network: Network, layer: str) -> str:
    """The node a unit's image is optimised for: the layer's value before its activation (after
    its norm), where a unit that starts below zero still has a gradient."""
    kinds = {entry.node: entry.kind for entry in network.layers}
    chain = network.block(layer)
    first_activation = next((i for i, node in enumerate(chain) if kinds.get(node.name) == ACTIVATION), len(chain))
    return chain[:first_activation][-1].name


def _centre(values: torch.Tensor) -> torch.Tensor:
    """(B, C) values at the grid's centre of a (B, C, h, w) map; linear values (B, C) as they are."""
    return values[:, :, values.shape[2] // 2, values.shape[3] // 2] if values.dim() == 4 else values


def _jitter(images: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """The batch shifted by up to ``pixels`` in each direction (one random shift per call),
    reflecting at the border so no black frame appears."""
    if pixels == 0:
        return images
    padded = F.pad(images, (pixels,) * 4, mode="reflect")
    dy, dx = torch.randint(0, 2 * pixels + 1, (2,), generator=generator).tolist()
    return padded[..., dy : dy + images.shape[-2], dx : dx + images.shape[-1]]


def jitter_for(network: Network, layer: str) -> int:
    """Pixels of random shift per step: at most ``FEATURE_JITTER`` and a sixth of the layer's
    receptive field (none where the field is not known: a shift could then be most of it)."""
    geometry = Geometry(network)
    if geometry.why_not(layer) is not None:
        return 0
    return min(FEATURE_JITTER, min(geometry.field(layer).size) // FEATURE_JITTER_SHARE)


def feature_visualisation(
    network: Network, layer: str, steps: int = FEATURE_STEPS, seed: int = 0, ink_penalty: float = FEATURE_INK
) -> FeatureVisualisation:
    """An image per unit of ``layer`` that drives the unit up, units optimised together in
    batches (image c for unit c).

    Pixels are sigmoid(raw), raw starting at -3 (near black); each of ``steps`` Adam steps
    shifts the batch by up to 2 pixels (less for small receptive fields, :func:`jitter_for`)
    and maximises each unit's value before its activation at the grid's centre (a post-ReLU
    objective gives units that start at 0 no gradient), less ``ink_penalty`` times the image's
    ink. Only the pixels require gradients; the graph runs only as far as the layer. The shifts
    come from a private generator seeded with ``seed``, so the same call gives the same images
    and global RNG state is untouched.
    """
    found = _layer(network, layer)
    node = objective_node(network, layer)
    jitter = jitter_for(network, layer)
    images, values = [], []
    # Out of any caller's inference mode: the graph's tensors must be ordinary ones for autograd.
    with torch.inference_mode(False), torch.enable_grad():
        for first in range(0, found.units, FEATURE_BATCH):
            own = torch.arange(first, min(first + FEATURE_BATCH, found.units))
            generator = torch.Generator().manual_seed(seed + first)
            raw = torch.full((len(own), 1, IMAGE_SIZE, IMAGE_SIZE), FEATURE_START, device=_device(network))
            raw.requires_grad_(True)
            optimiser = torch.optim.Adam([raw], lr=FEATURE_LR)
            rows = torch.arange(len(own))
            for _ in range(steps):
                pixels = torch.sigmoid(raw)  # (C, 1, 28, 28)
                pre = _centre(network.nodes(_jitter(pixels, jitter, generator), [node], keep_graph=True)[node])
                loss = -pre[rows, own].sum() + ink_penalty * pixels.sum()
                # Only the pixels' gradient: backward() would also fill the shared network's .grad.
                (raw.grad,) = torch.autograd.grad(loss, [raw])
                optimiser.step()
            with torch.no_grad():
                made = torch.sigmoid(raw)
                values.append(_centre(network.nodes(made, [node])[node])[rows, own])
                images.append(made[:, 0])
    where = "" if found.grid is None else f" at the centre ({found.grid[0] // 2}, {found.grid[1] // 2}) of its grid"
    shifted = f", shifted up to {jitter} px a step" if jitter else ""
    how = (
        f"{steps} Adam steps (lr {FEATURE_LR}) on sigmoid pixels from near black{shifted}, maximising"
        f" each {layer} unit's value before its activation{where} minus {ink_penalty:g} x ink (seed {seed})"
    )
    return FeatureVisualisation(
        layer=layer,
        images=torch.cat(images).float().cpu().numpy(),
        activation=torch.cat(values).float().cpu().numpy(),
        how=how,
    )
