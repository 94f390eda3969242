"""Probe the model: bend a digit, and find the smallest change that changes its mind.

- ``bend``: a digit rotated, shifted, scaled, thinned or thickened, noised or partly hidden,
  one image per value, from batched torch ops.
- ``sweep``: one bend over a range of values and what the network makes of each variant
  (class probabilities, where the prediction flips, how alike each layer's feature maps stay).
- ``flip_summary``: over a whole split, which digits change their prediction under small
  rotations or shifts, and the share per class.
- ``counterfactual``: the smallest change of ink (preferably near the strokes) that makes the
  network read another class, found by gradient descent on the pixels.

Everything here only reads the model it is given: no hooks, no weight, mode or requires_grad
changes. Input gradients come from ``torch.autograd.grad`` with respect to the edit alone, which
never touches a parameter's ``.grad``; so one cached model can serve many threads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt
from torch import nn

from core import runs
from core.data import IMAGE_SIZE, MNIST_WORDS, Naming, Split, to_tensor
from core.evaluate import per_class_mean
from core.network import Network

SIMILARITY_LAYERS = ("conv1", "conv2", "conv3", "conv4", "fc1")
BLANK = 0.05  # a digit whose every pixel is below this has no ink
NO_INK = "the digit has no ink: draw or pick a digit first"
BAR = 4  # occlusion bar height in rows
NOISE_SEED = 0
FLIP_STEP = 5  # flip_summary's rotation step, degrees

# Counterfactual defaults, tuned on reference-model test digits (see ``counterfactual``).
CF_LR = 0.03  # Adam step on the change, in pixel intensity
CF_SIZE = 0.3  # per unit of ink changed (L1), against a classification loss of weight 1 (see CF_DOUBLING)
CF_DISTANCE = 0.05  # per unit of ink added, per pixel of distance from the original strokes
CF_STROKE = 0.3  # pixels above this are the original's strokes
CF_MARGIN = 0.2  # aim this far past the confidence's log-odds, so a step's overshoot back stays above it
CF_DOUBLING = 50  # the classification loss's weight doubles every this many steps: sparse edits first
CF_CHECK = 5  # re-run the model on the clamped image every this many steps


@dataclass(frozen=True)
class Bend:
    """One way of bending a digit: ``range`` (min, max) of the values it takes, in ``unit``;
    ``identity`` the value that leaves the digit as it is."""

    name: str
    unit: str
    range: tuple[float, float]
    identity: float
    explanation: str


KINDS: Mapping[str, Bend] = MappingProxyType(
    {
        b.name: b
        for b in (
            Bend("rotation", "degrees", (-45.0, 45.0), 0.0, "Turn about the centre; positive is counter-clockwise."),
            Bend("shift_x", "pixels", (-4.0, 4.0), 0.0, "Move sideways; positive is to the right."),
            Bend("shift_y", "pixels", (-4.0, 4.0), 0.0, "Move up or down; positive is down."),
            Bend("scale", "factor", (0.6, 1.4), 1.0, "Shrink or enlarge about the centre."),
            Bend("thickness", "-1..1", (-1.0, 1.0), 0.0, "Thin (negative) or thicken (positive) the strokes."),
            Bend("noise", "sigma", (0.0, 0.5), 0.0, "Add Gaussian noise of this standard deviation."),
            Bend("occlusion", "top row", (-float(BAR), 24.0), -float(BAR), "Black out a 4-row bar from this row."),
        )
    }
)


# --- Input checks -----------------------------------------------------------------------


def _as_image(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """float32 (28, 28) in [0, 1] on the CPU from float (28, 28), (1, 28, 28) or (1, 1, 28, 28)
    in [0, 1], or uint8 (28, 28) (divided by 255)."""
    shape = tuple(image.shape)
    if shape not in {(IMAGE_SIZE,) * 2, (1, IMAGE_SIZE, IMAGE_SIZE), (1, 1, IMAGE_SIZE, IMAGE_SIZE)}:
        raise ValueError(f"expected one digit shaped (28, 28), (1, 28, 28) or (1, 1, 28, 28), got {shape}")
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        return to_tensor(image.reshape(1, IMAGE_SIZE, IMAGE_SIZE))[0, 0]
    x = torch.as_tensor(np.asarray(image) if isinstance(image, np.ndarray) else image.detach())
    if x.dtype == torch.uint8:
        raise ValueError("a uint8 digit must be a numpy array (28, 28); give torch tensors as float32 in [0, 1]")
    x = x.to(device="cpu", dtype=torch.float32).reshape(IMAGE_SIZE, IMAGE_SIZE).clone()
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError("pixel values must lie in [0, 1]: divide uint8 images by 255")
    return x


def _check_ink(image: torch.Tensor) -> None:
    if image.max() < BLANK:
        raise ValueError(NO_INK)


def _check_kind(kind: str) -> Bend:
    if kind not in KINDS:
        raise ValueError(f"unknown kind of bend {kind!r}: choose one of {', '.join(KINDS)}")
    return KINDS[kind]


def _check_values(bend_kind: Bend, values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or len(array) == 0 or not np.isfinite(array).all():
        raise ValueError(f"values must be a non-empty 1-D sequence of finite numbers, got shape {array.shape}")
    low, high = bend_kind.range
    if array.min() < low - 1e-9 or array.max() > high + 1e-9:
        raise ValueError(
            f"{bend_kind.name} values must lie in {low:g}..{high:g} {bend_kind.unit}, "
            f"got {array.min():g}..{array.max():g}: choose values inside that range"
        )
    return np.clip(array, low, high)


def _device(model: nn.Module) -> torch.device:
    return next(iter(model.parameters()), torch.empty(0)).device


# --- Bending ----------------------------------------------------------------------------


def _thetas(angles: np.ndarray, dx: np.ndarray, dy: np.ndarray, scales: np.ndarray) -> torch.Tensor:
    """float32 (n, 2, 3) ``F.affine_grid`` matrices: output pixel -> where to read the input, in
    normalised coordinates (x right, y down, the image centre at 0). The content is scaled by
    ``scales``, turned ``angles`` degrees counter-clockwise as seen on screen, then moved
    ``dx`` pixels right and ``dy`` down; the matrix is that map's inverse."""
    radians = np.deg2rad(angles)
    c, s = np.cos(radians), np.sin(radians)
    # Forward map of the content in y-down coordinates: [[c, s], [-s, c]] (counter-clockwise on
    # screen); its inverse is the transpose, divided by the scale.
    inverse = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2) / scales[:, None, None]  # (n, 2, 2)
    shift = np.stack([dx, dy], -1) * (2.0 / IMAGE_SIZE)  # (n, 2) pixels -> normalised units
    offset = -np.einsum("nij,nj->ni", inverse, shift)
    return torch.from_numpy(np.concatenate([inverse, offset[:, :, None]], axis=2)).float()


def _warp(images: torch.Tensor, thetas: torch.Tensor) -> torch.Tensor:
    """Every image (B, 1, 28, 28) through every matrix (V, 2, 3): (B * V, 1, 28, 28), image b's
    variant v at row b * V + v. One ``affine_grid`` call; bilinear, zeros outside."""
    b, v = len(images), len(thetas)
    grid = F.affine_grid(thetas.to(images.device), [v, 1, IMAGE_SIZE, IMAGE_SIZE], align_corners=False)
    grid = grid.repeat(b, 1, 1, 1)  # (B * V, 28, 28, 2)
    inputs = images.repeat_interleave(v, dim=0)
    return F.grid_sample(inputs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _geometry(kind: str, values: np.ndarray) -> torch.Tensor:
    zeros, ones = np.zeros_like(values), np.ones_like(values)
    args = {
        "rotation": (values, zeros, zeros, ones),
        "shift_x": (zeros, values, zeros, ones),
        "shift_y": (zeros, zeros, values, ones),
        "scale": (zeros, zeros, zeros, values),
    }[kind]
    return _thetas(*args)


def bend(image: np.ndarray | torch.Tensor, kind: str, values: Sequence[float], seed: int = NOISE_SEED) -> torch.Tensor:
    """One digit bent by each of ``values``: float32 (n, 1, 28, 28) in [0, 1] on the CPU.

    ``image``: float (28, 28) or (1, 28, 28) in [0, 1], or uint8 (28, 28) numpy (divided by 255).
    ``kind`` (see ``KINDS``), values inside its range, else ValueError:

    - ``rotation`` degrees about the image centre, positive = counter-clockwise as seen on
      screen (row 0 at the top), as ``np.rot90``; ``shift_x`` / ``shift_y`` pixels, positive =
      right / down; ``scale`` a factor about the centre. All four go through one
      ``F.affine_grid`` + ``F.grid_sample`` (bilinear, zeros outside, align_corners=False).
    - ``thickness`` t: t = 1 is the 3x3 grey dilation (``F.max_pool2d``, nothing outside the
      image), t = -1 the 3x3 grey erosion (``-F.max_pool2d(-x)``, the border judged on the
      pixels inside the image); between, a linear blend with the original (0.5 = halfway).
    - ``noise`` sigma: one Gaussian pattern (seeded by ``seed``) scaled by each sigma, added and
      clipped to [0, 1]; the same call gives the same images, and a sweep changes smoothly.
    - ``occlusion`` top row r: rows r..r+3 set to 0. r = -4 is the identity (the bar above the
      image); a fractional r covers its edge rows in part (a pixel keeps 1 - covered share), so
      an integer r zeroes exactly 4 rows (fewer at the edges).

    A value equal to the identity gives the original exactly.
    """
    info = _check_kind(kind)
    array = _check_values(info, values)
    x = _as_image(image)[None, None]  # (1, 1, 28, 28)
    n = len(array)
    v = torch.from_numpy(array).float()[:, None, None, None]  # (n, 1, 1, 1)
    if kind in ("rotation", "shift_x", "shift_y", "scale"):
        out = _warp(x, _geometry(kind, array))
    elif kind == "thickness":
        dilated = F.max_pool2d(x, 3, stride=1, padding=1)
        eroded = -F.max_pool2d(-x, 3, stride=1, padding=1)
        out = x + v.clamp(min=0) * (dilated - x) + (-v).clamp(min=0) * (eroded - x)
    elif kind == "noise":
        pattern = torch.randn(IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))
        out = (x + v * pattern).clamp(0.0, 1.0)
    else:  # occlusion: the share of row r inside [top, top + BAR)
        rows = torch.arange(IMAGE_SIZE, dtype=torch.float64)
        top = torch.from_numpy(array)[:, None]  # (n, 1)
        covered = (torch.minimum(rows + 1, top + BAR) - torch.maximum(rows, top)).clamp(0.0, 1.0)  # (n, 28)
        out = x * (1.0 - covered.float())[:, None, :, None]
    out = out.expand(n, 1, IMAGE_SIZE, IMAGE_SIZE).clone()
    out[torch.from_numpy(array == info.identity)] = x[0]  # exactly the original, no resampling error
    return out


# --- Sweep ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Sweep:
    """A digit bent over ``values`` float64 (n,) and the network's reading of each variant.

    ``images`` float32 (n, 28, 28); ``probs`` float32 (n, 10) softmax of the logits; ``preds``
    int64 (n,); ``original_pred`` the prediction on the unbent digit. ``flips`` (below, above):
    walking outward from the identity value on each side, the first value whose prediction
    differs from ``original_pred`` (None where it never does). ``similarity`` layer -> float64
    (n,): Pearson correlation of each variant's flattened feature maps with the original's
    (conv1..conv4, fc1, after the ReLU); where either is constant it is 1.0 if both are
    identical, else 0.0.
    """

    kind: str
    values: np.ndarray
    images: np.ndarray
    probs: np.ndarray
    preds: np.ndarray
    original_pred: int
    flips: tuple[float | None, float | None]
    similarity: dict[str, np.ndarray]


def default_values(kind: str, points: int = 50) -> np.ndarray:
    """``points`` values evenly spaced over the kind's range, plus its identity value if
    ``np.linspace`` misses it: float64, sorted."""
    info = _check_kind(kind)
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"points must be a whole number of at least 2, not {points!r}")
    values = np.linspace(*info.range, points)
    return values if info.identity in values else np.sort(np.append(values, info.identity))


def _pearson(variants: torch.Tensor, original: torch.Tensor) -> np.ndarray:
    """float64 (n,): correlation of each row of (n, D) with (D,)."""
    a, b = variants.double(), original.double()
    ac, bc = a - a.mean(dim=1, keepdim=True), b - b.mean()
    norm_a, norm_b = ac.norm(dim=1), bc.norm()
    r = (ac @ bc) / (norm_a * norm_b)
    flat = (norm_a == 0) | (norm_b == 0)
    same = (a == b).all(dim=1)
    r = torch.where(flat, same.double(), r.clamp(-1.0, 1.0))
    return r.numpy()


def _flip(values: np.ndarray, preds: np.ndarray, original: int, identity: float, side: int) -> float | None:
    order = np.argsort(values * side, kind="stable")  # outward from the identity
    for i in order:
        if (values[i] - identity) * side > 0 and preds[i] != original:
            return float(values[i])
    return None


def sweep(
    model: nn.Module,
    image: np.ndarray | torch.Tensor,
    kind: str,
    values: Sequence[float] | None = None,
    points: int = 50,
) -> Sweep:
    """``image`` (as ``bend`` takes it) bent by ``values`` (default: ``default_values(kind,
    points)``), read by one batched ``model.taps`` pass (a :class:`Network`: its shown layers)
    over the original and every variant under inference mode. A blank digit (every pixel below
    0.05) is refused. See ``Sweep``."""
    info = _check_kind(kind)
    x = _as_image(image)
    _check_ink(x)
    array = default_values(kind, points) if values is None else _check_values(info, values)
    variants = bend(x, kind, array)  # (n, 1, 28, 28)
    with torch.inference_mode():
        if isinstance(model, Network):  # any network: its shown layers but the logits
            batch = torch.cat([x[None, None], variants])
            outputs = model.outputs(batch)
            logits, layers = model.logits(batch), {name: outputs[name] for name in list(outputs)[:-1]}
        else:
            batch = torch.cat([x[None, None], variants]).to(_device(model))
            taps = model.taps(batch)
            logits, layers = taps["fc2"], {layer: taps[layer] for layer in SIMILARITY_LAYERS}
        probs = torch.softmax(logits.double(), dim=1).float().cpu()  # (n + 1, classes)
        similarity = {
            layer: _pearson(values[1:].flatten(1).cpu(), values[0].flatten().cpu()) for layer, values in layers.items()
        }
    preds = probs.argmax(dim=1).numpy()
    original = int(preds[0])
    flips = (
        _flip(array, preds[1:], original, info.identity, -1),
        _flip(array, preds[1:], original, info.identity, 1),
    )
    return Sweep(
        kind=kind,
        values=array,
        images=variants[:, 0].numpy(),
        probs=probs[1:].numpy(),
        preds=preds[1:].astype(np.int64),
        original_pred=original,
        flips=flips,
        similarity=similarity,
    )


# --- Flip summary -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FlipSummary:
    """Which digits change their prediction under small rotations or shifts.

    ``rotation_flips`` / ``shift_flips`` bool (N,): the prediction on some variant differs from
    the one on the unmodified digit; ``rotation_share`` / ``shift_share`` float64 (10,): the
    share of each true class's digits that flip (NaN for a class with no digits); ``angles``
    and ``shifts`` the values tried (degrees; pixels, each in x and in y)."""

    rotation_flips: np.ndarray
    shift_flips: np.ndarray
    rotation_share: np.ndarray
    shift_share: np.ndarray
    angles: tuple[float, ...]
    shifts: tuple[int, ...]


def flip_summary(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    angle: float = 15,
    pixels: int = 2,
    batch: int = 50,
    progress: Callable[[float, str], None] | None = None,
    words: Naming = MNIST_WORDS,
) -> FlipSummary:
    """For uint8 digits (N, 28, 28) with true ``labels`` (N,): does the prediction change under a
    rotation of ±5, ±10, .. ±``angle`` degrees (5..45), or a shift of ±1..±``pixels`` (1..4) in x
    or in y? Per batch of digits, every variant comes from one affine grid (as ``bend``) and one
    forward pass; ``progress(fraction, text)`` after each batch, the images called by ``words``.
    Measured on one thread: 10,000 test digits (±15°, ±2 px: 15 images each) in 11 s with
    ``batch`` 50 (750 images a forward pass); 25 s with 500 (its activations outgrow the cache).
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"expected uint8 digits shaped (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"expected one integer label per digit, shaped ({len(images)},), got {labels.shape}")
    if len(labels) and labels.min() < 0:
        raise ValueError("labels must be classes 0, 1, 2 and so on, not negative")
    if not FLIP_STEP <= angle <= KINDS["rotation"].range[1]:
        raise ValueError(f"angle must lie in {FLIP_STEP}..45 degrees, not {angle!r}")
    if isinstance(pixels, bool) or not isinstance(pixels, int) or not 1 <= pixels <= KINDS["shift_x"].range[1]:
        raise ValueError(f"pixels must be a whole number in 1..4, not {pixels!r}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch!r}")
    steps = np.arange(FLIP_STEP, angle + 1e-9, FLIP_STEP)
    angles = np.concatenate([-steps[::-1], steps])
    shifts = np.concatenate([-np.arange(pixels, 0, -1), np.arange(1, pixels + 1)]).astype(np.float64)
    zero_r, zero_s = np.zeros(len(angles)), np.zeros(len(shifts))
    # Variant 0 is the unmodified digit (an identity matrix: bilinear reads of pixel centres).
    thetas = torch.cat(
        [
            torch.eye(2, 3)[None],
            _thetas(angles, zero_r, zero_r, np.ones(len(angles))),
            _thetas(zero_s, shifts, zero_s, np.ones(len(shifts))),
            _thetas(zero_s, zero_s, shifts, np.ones(len(shifts))),
        ]
    )
    v, r = len(thetas), len(angles)
    device = _device(model)
    rotation, shift = np.zeros(len(images), bool), np.zeros(len(images), bool)
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            digits = to_tensor(images[start : start + batch])
            variants = _warp(digits, thetas)
            variants[::v] = digits  # the originals exactly
            preds = model(variants.to(device)).argmax(dim=1).cpu().numpy().reshape(len(digits), v)
            changed = preds[:, 1:] != preds[:, :1]
            rotation[start : start + len(digits)] = changed[:, :r].any(axis=1)
            shift[start : start + len(digits)] = changed[:, r:].any(axis=1)
            if progress is not None:
                done = start + len(digits)
                progress(done / len(images), f"Bending {words.plural}: {done:,} of {len(images):,}")
    return FlipSummary(
        rotation_flips=rotation,
        shift_flips=shift,
        rotation_share=per_class_mean(rotation, labels),
        shift_share=per_class_mean(shift, labels),
        angles=tuple(float(a) for a in angles),
        shifts=tuple(int(s) for s in shifts),
    )


def flip_run(at: runs.Point, angle: float, pixels: int) -> runs.Run:
    """Where a split's flip flags under one saved point's weights are kept."""
    return runs.Run(at, "flip_summary", details=(("angle", f"{angle:g}"), ("pixels", str(pixels))))


def load_or_compute_flip_summary(
    model: nn.Module,
    split: Split,
    at: runs.Point,
    angle: float = 15,
    pixels: int = 2,
    progress: Callable[[float, str], None] | None = None,
    words: Naming = MNIST_WORDS,
) -> FlipSummary:
    """The kept flip summary of ``split`` (the one ``at`` names) beside a checkpoint, or a fresh one (then kept): a run
    of the per-digit flags as uint8, labelled with the model key (its folder), epoch, split,
    data fingerprint, angle and pixels. The shares are recomputed from the flags and the
    split's labels on load."""

    def decode(tensors: dict[str, torch.Tensor]) -> FlipSummary | None:
        expected = {name: ((len(split),), torch.uint8) for name in ("rotation_flips", "shift_flips")}
        if not runs.same_shapes(tensors, expected) or any(t.numel() and int(t.max()) > 1 for t in tensors.values()):
            return None
        rotation, shift = (tensors[k].numpy().astype(bool) for k in ("rotation_flips", "shift_flips"))
        steps = np.arange(FLIP_STEP, angle + 1e-9, FLIP_STEP)
        return FlipSummary(
            rotation_flips=rotation,
            shift_flips=shift,
            rotation_share=per_class_mean(rotation, split.labels),
            shift_share=per_class_mean(shift, split.labels),
            angles=tuple(float(a) for a in np.concatenate([-steps[::-1], steps])),
            shifts=(*range(-pixels, 0), *range(1, pixels + 1)),
        )

    def encode(summary: FlipSummary) -> dict[str, torch.Tensor]:
        return {
            "rotation_flips": torch.from_numpy(summary.rotation_flips.astype(np.uint8)),
            "shift_flips": torch.from_numpy(summary.shift_flips.astype(np.uint8)),
        }

    return flip_run(at, angle, pixels).get(
        lambda: flip_summary(model, split.images, split.labels, angle, pixels, progress=progress, words=words),
        encode,
        decode,
    )


# --- Counterfactual ---------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Counterfactual:
    """A digit edited until the network reads ``target`` with probability >= ``confidence``.

    ``original``, ``edited`` float32 (28, 28) in [0, 1]; ``difference`` = edited - original;
    ``probs`` float32 (10,) from the model re-run on ``edited``; ``reached`` whether
    probs[target] >= confidence; ``steps`` the optimiser steps taken; ``ink_changed`` the L1
    size of the difference (sum of |difference|, in pixel intensity)."""

    original: np.ndarray
    edited: np.ndarray
    difference: np.ndarray
    probs: np.ndarray
    reached: bool
    steps: int
    ink_changed: float
    target: int
    confidence: float


def _probs(model: nn.Module, image: torch.Tensor, device: torch.device) -> torch.Tensor:
    """float32 (10,) softmax of the model on one (28, 28) image."""
    with torch.inference_mode():
        return torch.softmax(model(image.to(device)[None, None]).double(), dim=1)[0].float().cpu()


def _distance_to_strokes(original: torch.Tensor) -> torch.Tensor:
    """float32 (28, 28): Euclidean distance in pixels to the nearest stroke pixel (> 0.3); zeros
    when there is no such pixel (no strokes to stay near)."""
    strokes = original.numpy() > CF_STROKE
    if not strokes.any():
        return torch.zeros_like(original)
    return torch.from_numpy(distance_transform_edt(~strokes)).float()


def counterfactual(
    model: nn.Module,
    image: np.ndarray | torch.Tensor,
    target: int,
    confidence: float = 0.9,
    max_steps: int = 300,
    size_weight: float = CF_SIZE,
    distance_weight: float = CF_DISTANCE,
    lr: float = CF_LR,
    progress: Callable[[float, str], None] | None = None,
) -> Counterfactual:
    """The smallest change of ink that makes the network read ``image`` as ``target``.

    The edited image is clamp(original + delta, 0, 1), delta (28, 28) optimised by Adam (``lr``)
    from zero on: a hinge on the target's log-odds, relu(log(c / (1 - c)) + 0.2 - (target logit
    - logsumexp of the other logits)), which stops pushing once p_target is past ``confidence``
    c, weighted 2 ** (step / 50) so the first steps find sparse edits and later ones insist;
    + ``size_weight`` * L1(change) + ``distance_weight`` * sum(added ink * its distance in
    pixels from the original's strokes: pixels > 0.3, by a Euclidean distance transform).
    Every 5 steps (and at the last) the model is re-run on the clamped image and the search
    stops once the target's probability reaches ``confidence``. ``probs`` are always the
    model's on the returned ``edited`` image, so ``reached`` never claims more than it shows.
    A digit already read as ``target`` with >= ``confidence`` comes back unchanged after 0
    steps. ``progress(fraction, text)`` every 10 steps. A blank digit is refused.

    Measured (one thread, reference model, 60 test digits to 1-2 classes each, 79 searches:
    4->9, 1->7, 3->8, 7->1, 9->4, ...): 0.10 s mean, 0.3 s max (300 steps ~ 0.3 s); 75% reach
    0.9 (4->9, 9->4, 2->3, 9->7 all; 1->7 70%; 3->8 40%; 7->1 none: stuck, more steps do not
    help), median 50 steps, median ink changed 24 (of which ~6 added), added ink on average
    0.5 px from the strokes. Toward each of the first 100 test digits' runner-up class: 83%
    reach 0.9, median 0.04 s, worst 1.1 s (a busy machine). Most of the change is ink removed:
    this network is most easily swayed by erasing parts of strokes.
    """
    x = _as_image(image)
    _check_ink(x)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, not {confidence!r}")
    if max_steps < 1 or min(size_weight, distance_weight) < 0 or not lr > 0:
        raise ValueError("max_steps and lr must be positive and the weights not negative")
    device = _device(model)
    probs = _probs(model, x, device)
    classes = len(probs)  # the network's output width
    if isinstance(target, bool) or not isinstance(target, int | np.integer) or not 0 <= target < classes:
        raise ValueError(f"the target class must be an integer 0..{classes - 1}, not {target!r}")
    target = int(target)
    steps = 0
    edited = x
    if probs[target] < confidence:
        # Out of any caller's inference mode: the edit must be an ordinary tensor for autograd.
        with torch.inference_mode(False), torch.enable_grad():
            original = x.clone().to(device)
            distance = _distance_to_strokes(x).to(device)
            delta = torch.zeros_like(original, requires_grad=True)
            optimiser = torch.optim.Adam([delta], lr=lr)
            # p_target >= confidence exactly when logit_target - logsumexp(other logits) >= log(c / (1 - c)).
            goal = math.log(confidence / (1 - confidence)) + CF_MARGIN
            while steps < max_steps:
                current = (original + delta).clamp(0.0, 1.0)
                change = current - original
                logits = model(current[None, None])[0]
                others = torch.cat([logits[:target], logits[target + 1 :]]).logsumexp(dim=0)
                loss = (
                    2.0 ** (steps / CF_DOUBLING) * F.relu(goal - (logits[target] - others))
                    + size_weight * change.abs().sum()
                    + distance_weight * (change.clamp(min=0) * distance).sum()
                )
                (grad,) = torch.autograd.grad(loss, delta)  # never a parameter's .grad
                delta.grad = grad
                optimiser.step()
                steps += 1
                if progress is not None and steps % 10 == 0:
                    progress(steps / max_steps, f"Editing toward {target}: step {steps} of {max_steps}")
                if steps % CF_CHECK == 0 or steps == max_steps:
                    with torch.no_grad():
                        edited = (original + delta).clamp(0.0, 1.0).detach().cpu()
                    if _probs(model, edited, device)[target] >= confidence:
                        break
        probs = _probs(model, edited, device)  # the returned image's own reading
    difference = (edited - x).numpy()
    return Counterfactual(
        original=x.numpy(),
        edited=edited.numpy(),
        difference=difference,
        probs=probs.numpy(),
        reached=bool(probs[target] >= confidence),
        steps=steps,
        ink_changed=float(np.abs(difference, dtype=np.float64).sum()),
        target=target,
        confidence=float(confidence),
    )


def nearest_training_digit(features: np.ndarray, labels: np.ndarray, feature: np.ndarray, cls: int) -> int:
    """Index (into ``features``) of the digit of class ``cls`` nearest (Euclidean) to ``feature``
    (D,) among ``features`` (N, D) with ``labels`` (N,): e.g. fc1 from
    ``core.projection.fc1_features``, shown beside a counterfactual."""
    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
    point = np.asarray(feature, dtype=np.float64)
    if features.ndim != 2 or labels.shape != (len(features),) or point.shape != features.shape[1:]:
        raise ValueError(
            f"expected features (N, D), labels (N,) and one feature (D,), got {features.shape}, "
            f"{labels.shape} and {point.shape}"
        )
    if isinstance(cls, bool) or not isinstance(cls, int | np.integer) or cls < 0:
        raise ValueError(f"the class must be a whole number from 0, not {cls!r}")
    candidates = np.flatnonzero(labels == cls)
    if len(candidates) == 0:
        raise ValueError(f"no training digit has class {cls}: pick another class")
    distances = np.linalg.norm(features[candidates] - point, axis=1)
    return int(candidates[np.argmin(distances)])
