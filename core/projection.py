"""The fc1 representation of a split's digits on a 2-D map: digits the network finds
alike sit close together.

fc1 is the 20-unit representation after its ReLU (``core.model.TAPS``), the last layer
before the logits. PCA, an eigendecomposition of the 20x20 covariance in numpy, finds the
two directions along which those 20 numbers vary most. PCA is linear, so a basis fitted
once (on the last epoch's features) places every other epoch's features too
(``project``): all epochs share one pair of axes and training shows as movement on a fixed
map. UMAP and t-SNE took 40-90 s a layout on two CPU cores when measured, and keep no fixed
axes across epochs, so they are not offered.

Nothing here changes the model it is given (no hooks, weights or mode), so one cached
model can serve many threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core import runs
from core.data import MNIST_WORDS, Naming, Split, to_tensor
from core.model import head, last_linear

LAYER = "fc1"  # the representation mapped: 20 numbers per digit, after the ReLU
PCA = "pca"  # the method's name, in file names and labels
AXES = 2  # a map on a screen
FEATURE_BATCH = 1000  # digits per forward pass, as core.units.INDEX_BATCH: amortises per-call overhead
ORTHONORMAL_TOLERANCE = 1e-9  # a stored basis further from orthonormal than this was not written by us


@dataclass(frozen=True, eq=False)
class Projection:
    """Digits as points on a 2-D map, with the linear basis that placed them.

    ``points`` float32 (N, 2): each digit's coordinates, ``(features - mean) @ components.T``.
    ``mean`` float64 (D,) and ``components`` float64 (2, D), orthonormal rows: the basis
    (D = 20 for fc1), fitted by ``method`` on the features of epoch ``epoch`` (``None``: not
    fitted on a checkpoint, e.g. on features handed to ``fit_pca``).
    ``explained`` float64 (2,): the share of these digits' total feature variance lying along
    each axis. For the digits the basis was fitted on, that is PCA's explained-variance ratio
    (the first the larger); other digits (another epoch) put through the same basis usually
    have less of their variance along it.
    The arrays are private, read-only copies.
    """

    points: np.ndarray
    mean: np.ndarray
    components: np.ndarray
    explained: np.ndarray
    method: str = PCA
    epoch: int | None = None

    def __post_init__(self) -> None:
        dtypes = {"points": np.float32, "mean": np.float64, "components": np.float64, "explained": np.float64}
        for name, dtype in dtypes.items():
            array = np.array(getattr(self, name), dtype=dtype)  # a copy: nobody else can change it
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        width = self.mean.shape[0] if self.mean.ndim == 1 else -1
        if not (
            self.points.ndim == 2
            and self.points.shape[1] == AXES
            and self.components.shape == (AXES, width)
            and self.explained.shape == (AXES,)
        ):
            raise ValueError(
                f"inconsistent shapes: points {self.points.shape} (want (N, {AXES})), mean {self.mean.shape}"
                f" (want (D,)), components {self.components.shape} (want ({AXES}, D)), explained"
                f" {self.explained.shape} (want ({AXES},))"
            )
        if self.epoch is not None and (type(self.epoch) is not int or self.epoch < 1):
            raise ValueError(f"epoch {self.epoch!r} is not a positive whole number")

    def __len__(self) -> int:
        return len(self.points)


# --- Features -------------------------------------------------------------------------


def _features(
    model: nn.Module,
    batches: Iterator[torch.Tensor],
    total: int,
    progress: Callable[[float, str], None] | None,
    words: Naming = MNIST_WORDS,
) -> np.ndarray:
    """fc1 of ``total`` digits arriving as batches of float32 (B, 1, 28, 28) images: float32 (N, 20)
    (``words``: what the progress text calls them)."""
    device = next(model.parameters()).device
    features = np.empty((total, last_linear(model).in_features), dtype=np.float32)
    done = 0
    with torch.inference_mode():
        for batch in batches:
            features[done : done + len(batch)] = head(model, batch.to(device))[0].float().cpu().numpy()
            done += len(batch)
            if progress is not None:
                progress(done / total, f"Mapping fc1: {done:,} of {total:,} {words.plural}")
    if done != total:
        raise ValueError(f"expected {total} digits, got {done}")
    return features


def fc1_features(
    model: nn.Module,
    images: torch.Tensor,
    batch_size: int = FEATURE_BATCH,
    progress: Callable[[float, str], None] | None = None,
    words: Naming = MNIST_WORDS,
) -> np.ndarray:
    """fc1 after its ReLU, float32 (N, 20), for float32 images (N, 1, 28, 28) in [0, 1]: batched
    passes of ``model.head`` under inference mode; ``progress(fraction, text)`` after each batch,
    the images called by ``words``."""
    batches = (images[i : i + batch_size] for i in range(0, len(images), batch_size))
    return _features(model, batches, len(images), progress, words)


# --- Fitting and projecting -----------------------------------------------------------


def _as_features(features: np.ndarray) -> np.ndarray:
    """float64 (N, D) from any real (N, D) array; refuses other shapes and non-finite values."""
    values = np.asarray(features, dtype=np.float64)  # float64: centring 10,000 float32 rows loses digits
    if values.ndim != 2:
        raise ValueError(f"expected features shaped (N, D), got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("features contain NaN or infinite values")
    return values


def _coordinates(features: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    return (features - mean) @ components.T  # (N, D) @ (D, 2) -> (N, 2)


def _variance_shares(coordinates: np.ndarray, features: np.ndarray) -> np.ndarray:
    """float64 (2,): each axis's variance over the features' total variance (0 for constant features)."""
    total = features.var(axis=0).sum()
    return coordinates.var(axis=0) / total if total > 0 else np.zeros(AXES)


def fit_pca(features: np.ndarray, epoch: int | None = None) -> Projection:
    """The two principal components of features (N, D), N >= 2, D >= 2, and the features on them.

    ``epoch`` labels the basis (which checkpoint the features came from). Each component's sign
    is fixed: its largest-magnitude loading is positive (the first such on a tie), so the map
    does not mirror between runs or machines. Where the two largest eigenvalues are equal the
    axes are not unique, and no convention can pin them down.
    """
    x = _as_features(features)
    if len(x) < 2 or x.shape[1] < AXES:
        raise ValueError(f"PCA onto {AXES} axes needs at least 2 digits and {AXES} features, got {x.shape}")
    mean = x.mean(axis=0)  # (D,)
    centred = x - mean  # (N, D)
    covariance = centred.T @ centred / (len(x) - 1)  # (D, D)
    values, vectors = np.linalg.eigh(covariance)  # ascending eigenvalues; eigenvectors in columns
    top = np.argsort(values)[::-1][:AXES]
    components = vectors[:, top].T.copy()  # (2, D)
    # An eigenvector's sign is arbitrary: LAPACK builds and tiny changes in the data flip it.
    largest = np.abs(components).argmax(axis=1)
    components *= np.sign(components[np.arange(AXES), largest])[:, None]
    total = np.trace(covariance)
    explained = np.clip(values[top], 0.0, None) / total if total > 0 else np.zeros(AXES)
    return Projection(
        points=_coordinates(x, mean, components),
        mean=mean,
        components=components,
        explained=explained,
        method=PCA,
        epoch=epoch,
    )


def _check_width(features: np.ndarray, basis: Projection) -> None:
    if features.shape[1] != basis.mean.shape[0]:
        raise ValueError(f"features have {features.shape[1]} columns, the basis {basis.mean.shape[0]}")


def project(features: np.ndarray, basis: Projection) -> np.ndarray:
    """Features (N, D) on ``basis``'s axes: float32 (N, 2). Projecting the features the basis was
    fitted on gives exactly its ``points``; another epoch's features land on the same axes."""
    x = _as_features(features)
    _check_width(x, basis)
    return _coordinates(x, basis.mean, basis.components).astype(np.float32)


def _through(features: np.ndarray, basis: Projection) -> Projection:
    """Features (N, D) put through ``basis``: its axes, their own points and variance shares."""
    x = _as_features(features)
    _check_width(x, basis)
    coordinates = _coordinates(x, basis.mean, basis.components)
    return Projection(
        points=coordinates,
        mean=basis.mean,
        components=basis.components,
        explained=_variance_shares(coordinates, x),
        method=basis.method,
        epoch=basis.epoch,
    )


# --- Cached beside the checkpoint -----------------------------------------------------


def projection_run(at: runs.Point, method: str = PCA, basis_epoch: int | None = None) -> runs.Run:
    """Where a split's 2-D map under one saved point's weights is kept, e.g.
    ``projection_pca_epoch03_test_<16 hex>.safetensors`` for an epoch's own basis and
    ``projection_pca_epoch01_basis03_test_<16 hex>.safetensors`` for epoch 1 on epoch 3's axes,
    so the two never overwrite each other."""
    basis_epoch = at.epoch if basis_epoch is None else basis_epoch
    return runs.Run(
        at,
        f"projection_{method}",
        details=(("method", method), ("basis_epoch", str(basis_epoch))),
        name_details=() if basis_epoch == at.epoch else (f"basis{basis_epoch:02d}",),
    )


def load_or_compute_projection(
    model: nn.Module,
    split: Split,
    at: runs.Point,
    basis: Projection | None = None,
    progress: Callable[[float, str], None] | None = None,
    words: Naming = MNIST_WORDS,
) -> Projection:
    """The kept map of a split's fc1 beside a checkpoint, or a fresh one (then kept).

    ``model`` holds the weights of saved point ``at.epoch``; ``split`` is the one ``at`` names.
    Without ``basis`` its own PCA is fitted; with one (from another epoch, e.g. the last) the
    digits are put through that basis, so every epoch shares its axes. A run labelled with the
    model key, epoch, split, data fingerprint, method and the basis's epoch; a kept map whose
    basis is not exactly ``basis`` is computed again. ``progress(fraction, text)`` after each batch of a computation,
    the images called by ``words``.
    """
    if basis is not None and basis.epoch is None:
        raise ValueError("the basis must be labelled with the epoch it was fitted on (its epoch is None)")
    method = PCA if basis is None else basis.method
    epoch = at.epoch
    basis_epoch = epoch if basis is None else basis.epoch
    width = last_linear(model).in_features

    def compute() -> Projection:
        # Convert the uint8 digits batch by batch: the train split as float32 at once is 188 MB.
        batches = (to_tensor(split.images[i : i + FEATURE_BATCH]) for i in range(0, len(split), FEATURE_BATCH))
        features = _features(model, batches, len(split), progress, words)
        return fit_pca(features, epoch) if basis is None else _through(features, basis)

    def decode(tensors: dict[str, torch.Tensor]) -> Projection | None:
        found = _from_tensors(tensors, len(split), width, method, basis_epoch)
        return found if found is not None and (basis is None or _same_basis(found, basis)) else None

    run = projection_run(at, method, basis_epoch)
    return run.get(compute, _to_tensors, decode)


_FIELDS = ("points", "mean", "components", "explained")


def _to_tensors(projection: Projection) -> dict[str, torch.Tensor]:
    return {field: torch.from_numpy(getattr(projection, field).copy()) for field in _FIELDS}  # writable copies


def _from_tensors(
    tensors: dict[str, torch.Tensor], digits: int, width: int, method: str, epoch: int
) -> Projection | None:
    """The projection in a cached file, or None when its arrays are not exactly the expected ones."""
    expected = {
        "points": ((digits, AXES), torch.float32),
        "mean": ((width,), torch.float64),
        "components": ((AXES, width), torch.float64),
        "explained": ((AXES,), torch.float64),
    }
    if not runs.same_shapes(tensors, expected):
        return None
    arrays = {name: tensors[name].numpy() for name in _FIELDS}
    if not all(np.isfinite(array).all() for array in arrays.values()):
        return None
    components = arrays["components"]
    if np.abs(components @ components.T - np.eye(AXES)).max() > ORTHONORMAL_TOLERANCE:
        return None
    return Projection(**arrays, method=method, epoch=epoch)


def _same_basis(found: Projection, basis: Projection) -> bool:
    return np.array_equal(found.mean, basis.mean) and np.array_equal(found.components, basis.components)
