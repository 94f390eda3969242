"""core.projection: the fc1 map, checked against PCA done other ways (an SVD of the centred
data; the eigen-equation of a covariance summed digit by digit), against the fc1 tap, and
through its cache."""

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save as save_safetensors

from core.activations import layer_outputs
from core.data import Split, load_mnist, to_tensor
from core.model import MnistCNN
from core.projection import (
    Projection,
    fc1_features,
    fit_pca,
    load_or_compute_projection,
    project,
    projection_run,
)
from core.runs import Point
from tests.test_activations import _forbid_hooks
from tests.test_units import _assert_unchanged, _state

KEY = "0123456789abcdef"
FINGERPRINT = load_mnist().fingerprint
LABELS = {"key": KEY, "epoch": "2", "split": "test", "data": FINGERPRINT, "method": "pca", "basis_epoch": "2"}
FIELDS = ("points", "mean", "components", "explained")

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # as the dashboard runs (conftest.py)


def _seeded(seed: int) -> MnistCNN:
    torch.manual_seed(seed)
    return MnistCNN().eval()


@pytest.fixture(scope="module")
def net() -> MnistCNN:
    """Plays the last epoch ("epoch 2") in the cache tests."""
    return _seeded(0)


@pytest.fixture(scope="module")
def earlier() -> MnistCNN:
    """Other weights: plays an earlier epoch ("epoch 1")."""
    return _seeded(1)


@pytest.fixture(scope="module")
def small_split() -> Split:
    test = load_mnist().test
    return Split(test.images[:300], test.labels[:300])


@pytest.fixture(scope="module")
def images(small_split) -> torch.Tensor:
    return to_tensor(small_split.images)


@pytest.fixture(scope="module")
def expected(net, images) -> Projection:
    """What the cache must hold for ``net`` as epoch 2 on ``small_split``."""
    return fit_pca(fc1_features(net, images), epoch=2)


@pytest.fixture(scope="module")
def other(earlier, images) -> Projection:
    """Numbers that must never be served for ``net``."""
    return fit_pca(fc1_features(earlier, images), epoch=2)


@pytest.fixture(scope="module")
def random_features() -> np.ndarray:
    """float32 (500, 20), ReLU'd like fc1: rotated Gaussian data with well separated variances."""
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    scales = 2.0 ** -np.arange(20)  # std 1, 1/2, 1/4, ...: distinct eigenvalues, unique axes
    return np.maximum(rng.normal(size=(500, 20)) * scales @ rotation + 0.3, 0).astype(np.float32)


# --- PCA, checked another way -------------------------------------------------------------


def _svd_pca(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA without a covariance: an SVD of the centred data in float64.
    Components (2, D) with the SVD's own signs, points (N, 2), variance shares (2,)."""
    x = features.astype(np.float64)
    u, s, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    return vt[:2], u[:, :2] * s[:2], s[:2] ** 2 / (s**2).sum()


def _covariance_by_hand(features: np.ndarray) -> np.ndarray:
    """The sample covariance, one digit's outer product at a time."""
    x = features.astype(np.float64)
    mean = sum(x) / len(x)
    total = np.zeros((x.shape[1], x.shape[1]))
    for row in x:
        total += np.outer(row - mean, row - mean)
    return total / (len(x) - 1)


def _assert_is_pca(fit: Projection, features: np.ndarray) -> None:
    components, points, shares = _svd_pca(features)
    signs = np.sign((fit.components * components).sum(axis=1))  # (2,): the SVD's sign is arbitrary
    np.testing.assert_allclose(fit.components, components * signs[:, None], atol=1e-9)
    np.testing.assert_allclose(fit.points, points * signs, rtol=1e-6, atol=1e-6 * np.abs(points).max())
    np.testing.assert_allclose(fit.explained, shares, rtol=1e-9)
    np.testing.assert_allclose(fit.mean, features.astype(np.float64).mean(axis=0), rtol=1e-12, atol=1e-12)
    # The eigen-equation of the covariance summed by hand: C c = (share x trace C) c, orthonormal c.
    covariance = _covariance_by_hand(features)
    eigenvalues = fit.explained * np.trace(covariance)
    np.testing.assert_allclose(covariance @ fit.components.T, fit.components.T * eigenvalues, atol=1e-9)
    np.testing.assert_allclose(fit.components @ fit.components.T, np.eye(2), atol=1e-12)
    assert fit.explained[0] >= fit.explained[1] >= 0 and fit.explained.sum() <= 1
    # The sign convention: each axis's largest-magnitude loading is positive.
    assert (fit.components[np.arange(2), np.abs(fit.components).argmax(axis=1)] > 0).all()
    assert fit.points.dtype == np.float32 and fit.points.shape == (len(features), 2)


def test_pca_by_hand():
    """Four digits, three features: most spread along (2, -1, 0), some along (0, 0, 1).
    Centred covariance [[8, -4, 0], [-4, 2, 0], [0, 0, 2]] / 3: eigenvalues 10/3, 2/3 and 0."""
    centred = np.array([[-2, 1, 0], [2, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float32)
    fit = fit_pca(centred + np.float32([5, 3, 1]), epoch=4)
    root5 = np.sqrt(5)
    np.testing.assert_allclose(fit.mean, [5, 3, 1], atol=1e-12)
    np.testing.assert_allclose(fit.components, [[2 / root5, -1 / root5, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(fit.points, [[-root5, 0], [root5, 0], [0, 1], [0, -1]], atol=1e-6)
    np.testing.assert_allclose(fit.explained, [10 / 12, 2 / 12], rtol=1e-12)
    assert fit.method == "pca" and fit.epoch == 4 and len(fit) == 4
    assert (fit.points.dtype, fit.mean.dtype, fit.components.dtype, fit.explained.dtype) == (
        np.float32,
        np.float64,
        np.float64,
        np.float64,
    )
    # Mirrored digits give a mirrored map on the same axes, not mirrored axes.
    mirrored = fit_pca(-centred)
    np.testing.assert_allclose(mirrored.components, fit.components, atol=1e-12)
    np.testing.assert_allclose(mirrored.points, -fit.points, atol=1e-6)


def test_pca_matches_an_svd_on_random_data(random_features):
    fit = fit_pca(random_features)
    _assert_is_pca(fit, random_features)
    assert fit.epoch is None
    # Another order of the same digits: the same axes with the same signs, the same points permuted.
    order = np.random.default_rng(1).permutation(len(random_features))
    shuffled = fit_pca(random_features[order])
    np.testing.assert_allclose(shuffled.components, fit.components, atol=1e-12)
    np.testing.assert_allclose(shuffled.points, fit.points[order], rtol=1e-6, atol=1e-6)


def test_the_sign_does_not_depend_on_the_eigensolver(random_features, monkeypatch):
    """Whatever signs eigh hands back (they vary with the LAPACK build), the axes come out the same."""
    honest = fit_pca(random_features)
    eigh = np.linalg.eigh
    for flips in (-np.ones(20), np.where(np.arange(20) % 2, -1.0, 1.0)):
        monkeypatch.setattr(np.linalg, "eigh", lambda a, flips=flips: (eigh(a)[0], eigh(a)[1] * flips))
        flipped = fit_pca(random_features)
        assert np.array_equal(flipped.components, honest.components)
        assert np.array_equal(flipped.points, honest.points)


def test_project_puts_other_features_on_the_same_axes(random_features):
    basis = fit_pca(random_features, epoch=3)
    assert np.array_equal(project(random_features, basis), basis.points)  # the fitting features: its points
    other = random_features[:100] * np.float32(1.5) + np.float32(0.2)
    by_hand = (other.astype(np.float64) - basis.mean) @ basis.components.T
    projected = project(other, basis)
    assert projected.dtype == np.float32 and projected.shape == (100, 2)
    np.testing.assert_allclose(projected, by_hand, rtol=1e-6, atol=1e-6 * np.abs(by_hand).max())
    with pytest.raises(ValueError, match="19 columns, the basis 20"):
        project(other[:, :19], basis)


def test_bad_input_and_degenerate_data(random_features):
    with pytest.raises(ValueError, match="at least 2 digits"):
        fit_pca(random_features[:1])
    with pytest.raises(ValueError, match="at least 2 digits and 2 features"):
        fit_pca(random_features[:, :1])
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        fit_pca(random_features[:, :, None])
    broken = random_features.copy()
    broken[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_pca(broken)
    dead = fit_pca(np.zeros((5, 20), dtype=np.float32))  # a network whose fc1 never fires
    assert not dead.points.any() and not dead.explained.any()
    with pytest.raises(ValueError, match="inconsistent shapes"):
        Projection(points=np.zeros((4, 3)), mean=np.zeros(20), components=np.zeros((2, 20)), explained=np.zeros(2))
    with pytest.raises(ValueError, match="inconsistent shapes"):
        Projection(points=np.zeros((4, 2)), mean=np.zeros(20), components=np.zeros((2, 19)), explained=np.zeros(2))
    with pytest.raises(ValueError, match="positive whole number"):
        Projection(points=np.zeros((4, 2)), mean=np.zeros(3), components=np.eye(2, 3), explained=np.zeros(2), epoch=0)
    fit = fit_pca(random_features)
    with pytest.raises(ValueError, match="read-only"):
        fit.points[0, 0] = 1.0
    assert random_features.flags.writeable  # the caller's array is not frozen along with it


# --- The fc1 features ---------------------------------------------------------------------


def test_features_are_the_fc1_tap(net, images):
    seen = []
    features = fc1_features(net, images, batch_size=128, progress=lambda f, t: seen.append((f, t)))  # 3 batches
    assert features.dtype == np.float32 and features.shape == (300, 20)
    assert np.array_equal(features, layer_outputs(net, images)["fc1"])
    assert (features >= 0).all() and features.any()  # after the ReLU, and not dead
    assert [f for f, _ in seen] == pytest.approx([128 / 300, 256 / 300, 1.0])
    assert seen[-1][1].endswith("300 of 300 digits")


@pytest.fixture(scope="module")
def reference_features(reference_model, images) -> np.ndarray:
    return fc1_features(reference_model.model, images)


@pytest.mark.slow
def test_the_reference_models_features_and_their_pca(reference_model, images, reference_features):
    assert np.array_equal(reference_features, layer_outputs(reference_model.model, images)["fc1"])
    _assert_is_pca(fit_pca(reference_features), reference_features)


# --- Cached beside the checkpoint ---------------------------------------------------------


class MustNotRun(MnistCNN):
    """The real layers, but a forward pass fails: proves a cache hit."""

    def taps(self, x):
        raise AssertionError("recomputed instead of reading the cached projection")


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118 (safe_open is not a dict)


def _tensors(projection: Projection) -> dict[str, torch.Tensor]:
    """A projection as the cache file stores it."""
    return {field: torch.tensor(getattr(projection, field)) for field in FIELDS}


def _assert_same(a: Projection, b: Projection) -> None:
    for field in FIELDS:
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert (a.method, a.epoch) == (b.method, b.epoch)


def _path(folder: Path, epoch: int = 2, basis: int | None = None) -> Path:
    return projection_run(Point(folder, epoch, "test", FINGERPRINT), "pca", basis).path


def test_projection_is_cached_beside_the_checkpoint(tmp_path, net, small_split, expected):
    folder = tmp_path / KEY
    seen = []
    first = load_or_compute_projection(
        net, small_split, Point(folder, 2, "test", FINGERPRINT), progress=lambda f, t: seen.append(f)
    )
    path = _path(folder)
    assert path.name == f"projection_pca_epoch02_test_{FINGERPRINT[:16]}.safetensors"
    assert [p.name for p in folder.iterdir()] == [path.name] and seen == [1.0]
    tensors, metadata = _read(path)
    assert metadata == LABELS
    assert {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()} == {
        "points": ((300, 2), torch.float32),
        "mean": ((20,), torch.float64),
        "components": ((2, 20), torch.float64),
        "explained": ((2,), torch.float64),
    }
    _assert_same(first, expected)
    _assert_same(load_or_compute_projection(MustNotRun(), small_split, Point(folder, 2, "test", FINGERPRINT)), expected)
    with pytest.raises(ValueError, match="unknown split"):
        load_or_compute_projection(net, small_split, Point(folder, 2, "validation", FINGERPRINT))
    with pytest.raises(ValueError, match="lowercase ASCII"):
        projection_run(Point(Path("k"), 2, "test", FINGERPRINT), "../pca")


def test_earlier_epochs_share_the_last_epochs_axes(tmp_path, net, earlier, small_split, images):
    folder = tmp_path / KEY
    basis = load_or_compute_projection(net, small_split, Point(folder, 2, "test", FINGERPRINT))
    seen = []
    first = load_or_compute_projection(
        earlier, small_split, Point(folder, 1, "test", FINGERPRINT), basis=basis, progress=lambda f, t: seen.append(f)
    )
    features = fc1_features(earlier, images)
    assert np.array_equal(first.points, project(features, basis)) and seen == [1.0]
    assert np.array_equal(first.mean, basis.mean) and np.array_equal(first.components, basis.components)
    assert (first.method, first.epoch) == ("pca", 2)  # the basis's epoch
    # Its shares: epoch 1's own variance along epoch 2's axes, by hand; PCA's own axes hold at least as much.
    x = features.astype(np.float64)
    along = np.array([np.var(x @ axis) for axis in basis.components])
    np.testing.assert_allclose(first.explained, along / np.var(x, axis=0).sum(), rtol=1e-9)
    assert first.explained.sum() <= fit_pca(features).explained.sum() + 1e-12
    assert _path(folder, 1, 2).name == f"projection_pca_epoch01_basis02_test_{FINGERPRINT[:16]}.safetensors"
    _, metadata = _read(_path(folder, 1, 2))
    assert metadata == {**LABELS, "epoch": "1", "basis_epoch": "2"}
    again = load_or_compute_projection(MustNotRun(), small_split, Point(folder, 1, "test", FINGERPRINT), basis=basis)
    _assert_same(again, first)

    # A basis with the same epoch label but other axes (fitted on other digits) gets fresh points.
    other_digits = to_tensor(load_mnist().test.images[300:600])
    other_basis = fit_pca(fc1_features(net, other_digits), epoch=2)
    redone = load_or_compute_projection(earlier, small_split, Point(folder, 1, "test", FINGERPRINT), basis=other_basis)
    assert np.array_equal(redone.points, project(features, other_basis))
    assert np.array_equal(redone.components, other_basis.components)
    # Without a basis: epoch 1's own PCA, in a file of its own beside the one on epoch 2's axes.
    own = load_or_compute_projection(earlier, small_split, Point(folder, 1, "test", FINGERPRINT))
    _assert_same(own, fit_pca(features, epoch=1))
    assert _read(_path(folder, 1))[1]["basis_epoch"] == "1"
    assert _read(_path(folder, 1, 2))[1]["basis_epoch"] == "2"  # both kept: neither overwrote the other
    with pytest.raises(ValueError, match="labelled with the epoch"):
        load_or_compute_projection(earlier, small_split, Point(folder, 1, "test", FINGERPRINT), basis=fit_pca(features))


@pytest.mark.parametrize(
    "wrong",
    [
        {"key": "fedcba9876543210"},
        {"epoch": "1"},
        {"split": "train"},
        {"data": "f" * 64},
        {"method": "umap"},
        {"basis_epoch": "3"},
        {"extra": "x"},
        None,
    ],
    ids=["key", "epoch", "split", "data", "method", "basis-epoch", "extra", "no-labels"],
)
def test_a_projection_with_other_labels_is_recomputed(tmp_path, net, small_split, expected, other, wrong):
    folder = tmp_path / KEY
    folder.mkdir()
    path = _path(folder)
    path.write_bytes(save_safetensors(_tensors(other), metadata=None if wrong is None else {**LABELS, **wrong}))
    _assert_same(load_or_compute_projection(net, small_split, Point(folder, 2, "test", FINGERPRINT)), expected)
    _, written = _read(path)  # overwritten with the right numbers and labels
    assert written == LABELS
    _assert_same(load_or_compute_projection(MustNotRun(), small_split, Point(folder, 2, "test", FINGERPRINT)), expected)


@pytest.mark.parametrize(
    "damage",
    ["rows", "width", "dtype", "missing", "extra", "nan", "not-orthonormal", "truncated", "junk", "empty"],
    ids=str,
)
def test_a_damaged_or_misshapen_projection_is_recomputed(tmp_path, net, small_split, expected, other, damage):
    """Each file carries the right labels but another model's numbers, so serving it would show."""
    folder = tmp_path / KEY
    folder.mkdir()
    path = _path(folder)
    tensors = _tensors(other)
    if damage == "rows":
        tensors["points"] = tensors["points"][:299]
    elif damage == "width":
        tensors["mean"] = tensors["mean"][:19]
        tensors["components"] = tensors["components"][:, :19].contiguous()
    elif damage == "dtype":
        tensors["points"] = tensors["points"].double()
    elif damage == "missing":
        del tensors["explained"]
    elif damage == "extra":
        tensors["labels"] = torch.zeros(300, dtype=torch.int64)
    elif damage == "nan":
        tensors["points"][7, 1] = float("nan")
    elif damage == "not-orthonormal":
        tensors["components"][1] = tensors["components"][0]
    data = save_safetensors(tensors, metadata=LABELS)
    path.write_bytes({"truncated": data[: len(data) // 2], "junk": b"junk", "empty": b""}.get(damage, data))
    _assert_same(load_or_compute_projection(net, small_split, Point(folder, 2, "test", FINGERPRINT)), expected)
    written, metadata = _read(path)
    assert metadata == LABELS and set(written) == set(FIELDS)
    _assert_same(load_or_compute_projection(MustNotRun(), small_split, Point(folder, 2, "test", FINGERPRINT)), expected)


# --- Sharing one model --------------------------------------------------------------------


def test_many_threads_share_one_model(tmp_path, net, earlier, small_split, images, monkeypatch):
    """Every function only reads the shared models: no hooks, and each caller gets the same answer."""
    basis = fit_pca(fc1_features(net, images), epoch=2)

    def cached(model: MnistCNN, epoch: int, basis: Projection | None = None) -> np.ndarray:
        folder = Path(tempfile.mkdtemp(dir=tmp_path)) / KEY  # a cold cache every call
        found = load_or_compute_projection(model, small_split, Point(folder, epoch, "test", FINGERPRINT), basis=basis)
        return np.concatenate([found.points.ravel(), found.mean, found.components.ravel(), found.explained])

    jobs = [
        lambda: fc1_features(net, images, batch_size=64),
        lambda: fit_pca(fc1_features(earlier, images)).points,
        lambda: project(fc1_features(earlier, images[:100]), basis),
        lambda: cached(net, 2),
        lambda: cached(earlier, 1, basis),
    ]
    expected = [job() for job in jobs]
    before = [_state(net), _state(earlier)]
    _forbid_hooks(monkeypatch)
    # Workers with the main thread's torch thread count (see tests/test_threads.py): exact equality.
    threads = torch.get_num_threads()
    with ThreadPoolExecutor(max_workers=4, initializer=torch.set_num_threads, initargs=(threads,)) as pool:
        results = list(pool.map(lambda job: job(), jobs * 4))  # each job four times, running together
    for got, want in zip(results, expected * 4, strict=True):
        assert np.array_equal(got, want)
    _assert_unchanged(net, before[0])
    _assert_unchanged(earlier, before[1])


# --- The whole test split -----------------------------------------------------------------


@pytest.mark.slow
def test_the_whole_test_split(reference_model, tmp_path):
    """All 10,000 test digits: the cached map equals features + PCA done directly, and both
    are PCA by the SVD. Prints the times (run with -s to see them)."""
    model, test = reference_model.model, load_mnist().test
    start = time.perf_counter()
    features = fc1_features(model, to_tensor(test.images))
    featured = time.perf_counter()
    fitted = fit_pca(features, epoch=1)
    fitted_at = time.perf_counter()
    cached = load_or_compute_projection(model, test, Point(tmp_path / KEY, 1, "test", FINGERPRINT))
    cached_at = time.perf_counter()
    again = load_or_compute_projection(MustNotRun(), test, Point(tmp_path / KEY, 1, "test", FINGERPRINT))
    read_at = time.perf_counter()
    _assert_same(cached, fitted)
    _assert_same(again, fitted)
    _assert_is_pca(fitted, features)
    print(
        f"\n10,000 test digits, {torch.get_num_threads()} torch thread(s): fc1 features {featured - start:.2f} s,"
        f" PCA {1000 * (fitted_at - featured):.1f} ms; load_or_compute_projection cold {cached_at - fitted_at:.2f} s,"
        f" cached {1000 * (read_at - cached_at):.1f} ms; explained {fitted.explained.round(3).tolist()}"
    )
