import copy
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save as save_safetensors

from core.activations import layer_outputs
from core.data import Split, load_mnist, to_tensor
from core.model import CONV_LAYERS, LAYER_NAMES, MNIST_MEAN, MNIST_STD, MnistCNN
from core.network import Network, network_of
from core.runs import Point
from core.unit_steps import ConvStep, LinearStep, PoolStep, one_value
from core.units import (
    NORMALISED_INPUT,
    ActivationIndex,
    ablation_accuracy,
    activation_index,
    feature_visualisation,
    index_run,
    load_or_compute_index,
    unit_layers,
)
from tests.test_activations import _forbid_hooks

UNIT_LAYERS = ("conv1", "conv2", "conv3", "conv4", "fc1")  # the reference's layers with unit cards
POOL_LAYERS = ("pool1", "pool2")
GRIDS = {"conv1": (26, 26), "conv2": (24, 24), "pool1": (12, 12), "conv3": (10, 10), "conv4": (8, 8), "pool2": (4, 4)}
SPATIAL = ("conv1", "conv2", "pool1", "conv3", "conv4", "pool2")
KEY = "0123456789abcdef"
FINGERPRINT = load_mnist().fingerprint


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # as the dashboard runs (conftest.py)


@pytest.fixture(scope="module")
def net() -> Network:
    torch.manual_seed(0)
    return _network(MnistCNN().eval())


def _network(model: torch.nn.Module) -> Network:
    """The contract's view of a reference model, as the dashboard holds it."""
    return network_of(model, 10, torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(9)), "test")


@pytest.fixture(scope="module")
def ref_net(reference_model) -> Network:
    return _network(reference_model.model)


@pytest.fixture(scope="module")
def mnist_test() -> Split:
    return load_mnist().test


@pytest.fixture(scope="module")
def small_split(mnist_test) -> Split:
    return Split(mnist_test.images[:300], mnist_test.labels[:300])


def _state(model: torch.nn.Module) -> dict:
    """Everything about a model that must not change: weights, gradient flags, mode."""
    return {
        "weights": {k: v.clone() for k, v in model.state_dict().items()},
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "training": [m.training for m in model.modules()],
    }


def _assert_unchanged(model: torch.nn.Module, before: dict) -> None:
    after = _state(model)
    assert after["requires_grad"] == before["requires_grad"] and after["training"] == before["training"]
    assert all(torch.equal(after["weights"][k], v) for k, v in before["weights"].items())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


# --- Layers ---------------------------------------------------------------------------


def test_the_reference_has_its_five_unit_layers(net):
    layers = unit_layers(net)
    assert list(layers) == list(UNIT_LAYERS)
    assert [layers[name].units for name in UNIT_LAYERS] == [4, 8, 16, 32, 20]
    assert [layers[name].grid for name in CONV_LAYERS] == [GRIDS[name] for name in CONV_LAYERS]
    assert layers["fc1"].grid is None and all(layer.nonnegative for layer in layers.values())
    assert layers["conv2"].unit_word == "channel" and layers["fc1"].unit_word == "unit"


# --- Activation index -----------------------------------------------------------------


@pytest.mark.slow
def test_index_is_a_per_digit_maximum_mean_and_place(reference_model, small_split):
    images = to_tensor(small_split.images)
    index = activation_index(_network(reference_model.model), images, batch_size=128)  # 3 batches, the last short
    outputs = layer_outputs(reference_model.model, images)
    assert len(index) == 300
    for layer in UNIT_LAYERS:
        flat = outputs[layer].reshape(300, outputs[layer].shape[1], -1)  # (N, C, h*w); fc1 (N, C, 1)
        assert index.maximum[layer].dtype == index.mean[layer].dtype == np.float32
        assert index.position[layer].dtype == np.int16 and index.maximum[layer].shape == flat.shape[:2]
        assert np.array_equal(index.maximum[layer], flat.max(axis=2))
        assert np.array_equal(index.position[layer], flat.argmax(axis=2))  # first place on ties, as argmax
        # Only the order of the additions differs (torch's mean, numpy's pairwise sum).
        np.testing.assert_allclose(index.mean[layer], flat.mean(axis=2), rtol=1e-6, atol=1e-5)
        for unit in (0, flat.shape[1] - 1):
            best = flat[:, unit].max(axis=1)
            assert index.top_digits(layer, unit, k=10).tolist() == np.lexsort((np.arange(300), -best))[:10].tolist()
            assert index.firing_share(layer, unit) == pytest.approx((best > 0).mean())
            per_class = [flat[small_split.labels == d, unit].mean() for d in range(10)]
            np.testing.assert_allclose(index.mean_per_class(layer, unit, small_split.labels), per_class, rtol=1e-5)
    assert not index.position["fc1"].any()
    digit, unit = 7, 3
    row, col = index.peak("conv3", unit, digit)
    assert outputs["conv3"][digit, unit, row, col] == pytest.approx(float(index.maximum["conv3"][digit, unit]))


def test_index_questions_by_hand():
    """Ties go to the lower index; a class without digits has no mean; fc1 has no place."""
    maximum = {layer: np.zeros((5, 2), dtype=np.float32) for layer in UNIT_LAYERS}
    maximum["conv4"][:, 1] = [0.5, 2.0, 0.5, 0.0, 2.0]
    mean = {layer: np.zeros((5, 2), dtype=np.float32) for layer in UNIT_LAYERS}
    mean["conv4"][:, 1] = [1.0, 2.0, 3.0, 4.0, 6.0]
    position = {layer: np.zeros((5, 2), dtype=np.int16) for layer in UNIT_LAYERS}
    position["conv4"][1, 1] = 8 * 3 + 5  # row 3, col 5 of the 8x8 grid
    grids = {layer: GRIDS.get(layer, (1, 1)) for layer in UNIT_LAYERS}
    index = ActivationIndex(maximum=maximum, mean=mean, position=position, grids=grids)
    assert index.top_digits("conv4", 1, k=4).tolist() == [1, 4, 0, 2]
    assert index.top_digits("conv4", 1).dtype == np.int64 and len(index.top_digits("conv4", 1)) == 5
    assert index.firing_share("conv4", 1) == 0.8
    assert index.firing_share("conv4", 0) == 0.0  # a dead unit
    per_class = index.mean_per_class("conv4", 1, np.array([0, 0, 1, 1, 9]))
    assert per_class[:2].tolist() == [1.5, 3.5] and per_class[9] == 6.0 and np.isnan(per_class[2:9]).all()
    assert index.peak("conv4", 1, 1) == (3, 5)
    with pytest.raises(ValueError, match="unknown layer"):
        index.top_digits("pool2", 0)


def test_progress_is_reported_per_batch(net, small_split):
    seen = []
    images = to_tensor(small_split.images)
    activation_index(net, images, batch_size=100, progress=lambda f, t: seen.append((f, t)))
    assert [f for f, _ in seen] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert seen[-1][1].endswith("300 of 300 digits")


class MustNotRun(Network):
    """The real network, but reading its layers fails: proves a cache hit."""

    def __init__(self) -> None:
        self.__dict__.update(_network(MnistCNN().eval()).__dict__)

    def outputs(self, images, names=None):
        raise AssertionError("recomputed instead of reading the cached index")


def _read(path):
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118 (safe_open is not a dict)


def _assert_same_index(a: ActivationIndex, b: ActivationIndex) -> None:
    for field in ("maximum", "mean", "position"):
        for layer in UNIT_LAYERS:
            assert np.array_equal(getattr(a, field)[layer], getattr(b, field)[layer]), (field, layer)


LABELS = {"key": KEY, "epoch": "2", "split": "test", "data": FINGERPRINT}


def test_index_is_cached_beside_the_checkpoint(tmp_path, net, small_split):
    folder = tmp_path / KEY
    seen = []
    first = load_or_compute_index(
        net, small_split, Point(folder, 2, "test", FINGERPRINT), progress=lambda f, t: seen.append(f)
    )
    path = index_run(Point(folder, 2, "test", FINGERPRINT)).path
    assert path.name == f"activation_index_epoch02_test_{FINGERPRINT[:16]}.safetensors"
    assert [p.name for p in folder.iterdir()] == [path.name] and seen[-1] == 1.0
    tensors, metadata = _read(path)
    assert metadata == LABELS
    assert set(tensors) == {f"{layer}.{field}" for layer in UNIT_LAYERS for field in ("maximum", "mean", "position")}
    _assert_same_index(first, activation_index(net, to_tensor(small_split.images)))

    again = load_or_compute_index(MustNotRun(), small_split, Point(folder, 2, "test", FINGERPRINT))
    _assert_same_index(first, again)
    with pytest.raises(ValueError, match="unknown split"):
        load_or_compute_index(net, small_split, Point(folder, 2, "validation", FINGERPRINT))


def _tensors(model, split) -> dict[str, torch.Tensor]:
    """An index as the cache file stores it."""
    index = activation_index(model, to_tensor(split.images))
    return {
        f"{layer}.{field}": torch.from_numpy(getattr(index, field)[layer])
        for layer in UNIT_LAYERS
        for field in ("maximum", "mean", "position")
    }


@pytest.mark.parametrize(
    "wrong",
    [{"key": "fedcba9876543210"}, {"epoch": "1"}, {"split": "train"}, {"data": "f" * 64}, {"extra": "x"}, None],
    ids=["key", "epoch", "split", "data", "extra", "no-labels"],
)
def test_an_index_with_other_labels_is_recomputed(tmp_path, net, small_split, wrong):
    folder = tmp_path / KEY
    folder.mkdir()
    path = index_run(Point(folder, 2, "test", FINGERPRINT)).path
    other_model = _tensors(_network(MnistCNN()), small_split)  # numbers that must not be served
    path.write_bytes(save_safetensors(other_model, metadata=None if wrong is None else {**LABELS, **wrong}))
    index = load_or_compute_index(net, small_split, Point(folder, 2, "test", FINGERPRINT))
    expected = activation_index(net, to_tensor(small_split.images))
    _assert_same_index(index, expected)
    _, written = _read(path)  # overwritten with the right index and labels
    assert written == LABELS
    _assert_same_index(
        load_or_compute_index(MustNotRun(), small_split, Point(folder, 2, "test", FINGERPRINT)), expected
    )


@pytest.mark.parametrize(
    "damage", ["rows", "units", "dtype", "missing", "extra", "truncated", "junk", "empty"], ids=str
)
def test_a_damaged_or_misshapen_index_is_recomputed(tmp_path, net, small_split, damage):
    folder = tmp_path / KEY
    folder.mkdir()
    path = index_run(Point(folder, 2, "test", FINGERPRINT)).path
    tensors = _tensors(net, small_split)
    if damage == "rows":
        tensors["conv2.maximum"] = tensors["conv2.maximum"][:299]
    elif damage == "units":
        tensors["fc1.mean"] = tensors["fc1.mean"][:, :19].contiguous()
    elif damage == "dtype":
        tensors["conv4.position"] = tensors["conv4.position"].long()
    elif damage == "missing":
        del tensors["conv1.mean"]
    elif damage == "extra":
        tensors["conv5.maximum"] = torch.zeros(300, 4)
    data = save_safetensors(tensors, metadata=LABELS)
    content = {"truncated": data[: len(data) // 2], "junk": b"junk", "empty": b""}.get(damage, data)
    path.write_bytes(content)
    index = load_or_compute_index(net, small_split, Point(folder, 2, "test", FINGERPRINT))
    _assert_same_index(index, activation_index(net, to_tensor(small_split.images)))
    written, metadata = _read(path)
    assert metadata == LABELS and set(written) == set(_tensors(net, small_split))


# --- One value, step by step (every architecture: tests/test_unit_steps.py) --------------


def test_conv_step_by_hand():
    """A hand-set conv1: the window is the normalised pixels, products are not flipped."""
    model = MnistCNN().eval()
    with torch.no_grad():
        model.conv1.weight.zero_()
        model.conv1.weight[2, 0] = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
        model.conv1.bias[2] = -0.5
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 6, 9] = 1.0  # right of the centre of the window at (5, 7)
    found = one_value(_network(model), image, "conv1", 2, 5, 7)
    step, relu = found.steps
    black, white = -MNIST_MEAN / MNIST_STD, (1 - MNIST_MEAN) / MNIST_STD
    expected_patch = np.full((1, 3, 3), black, dtype=np.float32)
    expected_patch[0, 1, 2] = white
    np.testing.assert_allclose(step.patch, expected_patch, rtol=1e-6)
    assert isinstance(step, ConvStep) and step.source == NORMALISED_INPUT and (step.top, step.left) == (5, 7)
    assert step.kernel.shape == (1, 3, 3) and step.bias == pytest.approx(-0.5)
    assert step.channel_sums.tolist() == pytest.approx([2 * white])
    assert step.value == pytest.approx(2 * white - 0.5, rel=1e-6)
    assert relu.what == "ReLU" and relu.value == pytest.approx(2 * white - 0.5, rel=1e-6)
    shifted = one_value(_network(model), image, "conv1", 2, 5, 8)  # the white pixel now under a zero weight
    assert shifted.steps[0].value == pytest.approx(2 * black - 0.5, rel=1e-6) and shifted.value == 0.0


def test_linear_step_by_hand():
    """A hand-set fc1 unit over a hand-set pool2: the weighted sum, the bias, the ReLU."""
    model = MnistCNN().eval()
    image = torch.zeros(1, 1, 28, 28)
    pool2 = model.taps(image)["pool2"].detach().reshape(-1)  # (512,)
    with torch.no_grad():
        model.fc1.weight.zero_()
        model.fc1.weight[3, 7] = 2.0
        model.fc1.weight[3, 100] = -1.0
        model.fc1.bias[3] = 0.25
    step, relu = one_value(_network(model), image, "fc1", 3).steps
    expected = 2.0 * float(pool2[7]) - float(pool2[100])
    assert isinstance(step, LinearStep) and step.source == "pool2"
    assert step.inputs.shape == step.weights.shape == (512,)
    np.testing.assert_array_equal(step.inputs, pool2.numpy())
    assert step.weighted_sum == pytest.approx(expected, abs=1e-6)
    assert step.value == pytest.approx(expected + 0.25, abs=1e-6)
    assert relu.value == pytest.approx(max(expected + 0.25, 0.0), abs=1e-6)
    with torch.no_grad():
        model.fc1.bias[3] = -(abs(expected) + 1)  # below zero: the ReLU keeps nothing
    assert one_value(_network(model), image, "fc1", 3).value == 0.0
    with pytest.raises(ValueError):
        one_value(_network(model), image, "pool1", 0)


@pytest.mark.slow
@pytest.mark.parametrize("layer", CONV_LAYERS)
def test_conv_step_adds_up_to_the_taps(reference_model, ref_net, mnist_test, layer):
    model = reference_model.model
    rng = np.random.default_rng(0)
    rows, cols = GRIDS[layer]
    channels = getattr(model, layer).out_channels
    for digit in range(3):
        image = to_tensor(mnist_test.images[digit : digit + 1])
        taps = layer_outputs(model, image)
        for _ in range(20):
            channel, row, col = (int(v) for v in (rng.integers(channels), rng.integers(rows), rng.integers(cols)))
            found = one_value(ref_net, image, layer, channel, row, col)
            step, relu = found.steps[:2]
            assert relu.value == pytest.approx(float(taps[layer][0, channel, row, col]), abs=1e-5)
            np.testing.assert_allclose(step.products, step.patch * step.kernel, rtol=1e-6)
            np.testing.assert_allclose(step.channel_sums, step.products.sum(axis=(1, 2)), rtol=1e-5, atol=1e-6)
            assert step.kernel.shape == step.patch.shape == (getattr(model, layer).in_channels, 3, 3)
    expected_source = {"conv1": NORMALISED_INPUT, "conv2": "conv1", "conv3": "pool1", "conv4": "conv3"}[layer]
    assert step.source == expected_source
    if layer == "conv3":  # its window is pool1's output, not conv2's
        window = taps["pool1"][0, :, row : row + 3, col : col + 3]
        np.testing.assert_array_equal(step.patch, window)


@pytest.mark.slow
@pytest.mark.parametrize("layer", POOL_LAYERS)
def test_pool_step_is_the_block_maximum(reference_model, ref_net, mnist_test, layer):
    model = reference_model.model
    source = {"pool1": "conv2", "pool2": "conv4"}[layer]
    rng = np.random.default_rng(1)
    rows, cols = GRIDS[source]
    for digit in range(3):
        image = to_tensor(mnist_test.images[digit : digit + 1])
        outputs = layer_outputs(model, image)
        for _ in range(20):
            channel, row, col = (
                int(v) for v in (rng.integers(outputs[layer].shape[1]), rng.integers(rows), rng.integers(cols))
            )
            step = one_value(ref_net, image, source, channel, row, col).steps[-1]
            assert isinstance(step, PoolStep) and step.name == layer and step.kind == "max"
            assert (step.row, step.col) == (row // 2, col // 2)
            assert step.value == pytest.approx(float(outputs[layer][0, channel, row // 2, col // 2]), abs=1e-5)
            block = outputs[source][0, channel, 2 * step.row : 2 * step.row + 2, 2 * step.col : 2 * step.col + 2]
            np.testing.assert_array_equal(step.block, block)
            assert step.block[step.winner] == step.value


def test_steps_refuse_what_they_cannot_show(net):
    image = torch.zeros(1, 1, 28, 28)
    with pytest.raises(ValueError, match="no unit cards"):
        one_value(net, image, "pool1", 0, 0, 0)
    with pytest.raises(ValueError, match=r"units 0\.\.3"):
        one_value(net, image, "conv1", 4, 0, 0)
    with pytest.raises(ValueError, match="outside conv4"):
        one_value(net, image, "conv4", 0, 8, 0)
    with pytest.raises(ValueError, match="one image"):
        one_value(net, torch.zeros(2, 1, 28, 28), "conv1", 0, 0, 0)


# --- Ablation -------------------------------------------------------------------------


def test_zeroing_a_silent_unit_changes_nothing(net):
    """The edited pass is the forward pass: a unit that is 0 everywhere, zeroed, gives the same logits."""
    model = MnistCNN().eval()
    model.load_state_dict(net.module.state_dict())
    with torch.no_grad():
        model.conv3.weight[5] = 0.0
        model.conv3.bias[5] = -1.0  # below zero before its ReLU: 0 after it, everywhere
    silent = _network(model)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(silent.ablated_logits(x, "conv3", 5), silent.logits(x))
        assert not torch.equal(silent.ablated_logits(x, "conv3", 4), silent.logits(x))


def _per_class_accuracy(model, images, labels):
    with torch.no_grad():
        preds = model(images).argmax(dim=1).numpy()
    return np.array([(preds[labels == d] == d).mean() for d in range(10)])


@pytest.mark.slow
@pytest.mark.parametrize(("layer", "unit"), [("conv1", 2), ("conv2", 5), ("conv3", 1), ("conv4", 3), ("fc1", 17)])
def test_ablation_equals_a_zeroed_copy(reference_model, ref_net, mnist_test, layer, unit):
    model = reference_model.model
    images, labels = to_tensor(mnist_test.images[:400]), mnist_test.labels[:400]
    before_state = _state(model)
    before, after = ablation_accuracy(ref_net, images, labels, layer, unit, batch_size=150)
    _assert_unchanged(model, before_state)

    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        getattr(zeroed, layer).weight[unit] = 0.0
        getattr(zeroed, layer).bias[unit] = 0.0
    assert np.array_equal(before, _per_class_accuracy(model, images, labels))
    assert np.array_equal(after, _per_class_accuracy(zeroed, images, labels))
    assert before.dtype == after.dtype == np.float64 and before.shape == (10,)


@pytest.mark.slow
def test_ablation_can_hurt(ref_net, mnist_test):
    """The test above has teeth: removing fc1's most used unit costs accuracy somewhere."""
    images, labels = to_tensor(mnist_test.images[:400]), mnist_test.labels[:400]
    index = activation_index(ref_net, images)
    busiest = int(index.mean["fc1"].mean(axis=0).argmax())
    before, after = ablation_accuracy(ref_net, images, labels, "fc1", busiest)
    assert (after < before).any()


def test_ablation_of_an_absent_class_is_nan(net):
    images = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    before, after = ablation_accuracy(net, images, torch.tensor([0, 0, 1, 1, 2, 2]), "conv2", 0)
    assert np.isnan(before[3:]).all() and np.isnan(after[3:]).all() and not np.isnan(before[:3]).any()


# --- Feature visualisation ------------------------------------------------------------


def test_feature_visualisation_is_seeded_and_leaves_the_model_alone(net):
    before_state = _state(net.module)
    global_rng = torch.get_rng_state()
    first = feature_visualisation(net, "conv4", steps=15, seed=3)
    assert first.images.shape == (32, 28, 28) and first.images.dtype == np.float32
    assert first.activation.shape == (32,) and first.activation.dtype == np.float32
    assert first.images.min() >= 0.0 and first.images.max() <= 1.0
    assert "\n" not in first.how and "conv4" in first.how and "seed 3" in first.how and "up to 2 px" in first.how
    assert np.array_equal(first.images, feature_visualisation(net, "conv4", steps=15, seed=3).images)
    assert not np.array_equal(first.images, feature_visualisation(net, "conv4", steps=15, seed=4).images)
    assert torch.equal(torch.get_rng_state(), global_rng)  # a private generator
    _assert_unchanged(net.module, before_state)
    assert all(p.grad is None for p in net.module.parameters())  # the shared weights collect no gradient
    assert feature_visualisation(net, "fc1", steps=2).images.shape == (20, 28, 28)


def test_feature_visualisation_works_inside_inference_mode(net):
    """A caller (a cached page function) may hold inference mode; the optimisation still runs."""
    with torch.inference_mode():
        inside = feature_visualisation(net, "conv1", steps=5)
    assert np.array_equal(inside.images, feature_visualisation(net, "conv1", steps=5).images)


def _centre_pre_relu(model, layer, images):
    """(B, C) pre-ReLU values at the grid's centre (fc1: the units), from the modules by hand."""
    with torch.no_grad():
        taps = model.taps(images)
        source = (
            (images - MNIST_MEAN) / MNIST_STD if layer == "conv1" else taps[LAYER_NAMES[LAYER_NAMES.index(layer) - 1]]
        )
        pre = getattr(model, layer)(torch.flatten(source, 1) if layer == "fc1" else source)
    return (pre if pre.dim() == 2 else pre[:, :, pre.shape[2] // 2, pre.shape[3] // 2]).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("layer", UNIT_LAYERS)
def test_each_image_excites_its_own_unit(reference_model, ref_net, mnist_test, layer):
    model = reference_model.model
    made = feature_visualisation(ref_net, layer)
    on_images = _centre_pre_relu(model, layer, torch.from_numpy(made.images)[:, None])  # (image, unit)
    own = np.diag(on_images)
    np.testing.assert_allclose(made.activation, own, rtol=1e-5, atol=1e-5)
    on_digits = _centre_pre_relu(model, layer, to_tensor(mnist_test.images[:1000]))
    assert (own > on_digits.mean(axis=0)).all()  # every unit, above the average test digit
    others = np.where(np.eye(len(own), dtype=bool), -np.inf, on_images).max(axis=0)  # best other image per unit
    assert (own > others).mean() > 0.5  # for most units, its own image beats every other unit's


# --- Sharing one model ----------------------------------------------------------------


def test_many_threads_share_one_model(net, small_split, monkeypatch):
    """Every function only reads the shared model: no hooks, and each caller gets its own answer."""
    images, labels = to_tensor(small_split.images[:64]), small_split.labels[:64]
    before_state = _state(net.module)
    jobs = [
        lambda: activation_index(net, images).maximum["conv3"],
        lambda: one_value(net, images[5:6], "conv3", 4, 2, 7).steps[0].products,
        lambda: one_value(net, images[6:7], "conv4", 9, 3, 6).steps[-1].block,
        lambda: np.stack(ablation_accuracy(net, images, labels, "conv4", 7)),
        lambda: feature_visualisation(net, "conv2", steps=10, seed=1).images,
    ]
    expected = [job() for job in jobs]
    _forbid_hooks(monkeypatch)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            results = list(pool.map(lambda job: job(), jobs))
            for got, want in zip(results, expected, strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True)
    _assert_unchanged(net.module, before_state)


@pytest.mark.slow
def test_ablation_shortcuts_give_the_same_accuracies(reference_model, ref_net):
    """The cached predictions and the active digits (the index) are exact shortcuts."""
    from core.evaluate import predict_logits

    test = load_mnist().test
    images, labels = to_tensor(test.images[:600]), test.labels[:600]
    model = ref_net
    preds = predict_logits(reference_model.model, images).argmax(1).numpy()
    index = activation_index(model, images)
    for layer, unit in [("conv1", 1), ("conv3", 4), ("conv4", 9), ("fc1", 2)]:
        full = ablation_accuracy(model, images, labels, layer, unit)
        active = index.maximum[layer][:, unit] > 0
        fast = ablation_accuracy(model, images, labels, layer, unit, before=preds, active=active)
        np.testing.assert_array_equal(full[0], fast[0])
        np.testing.assert_array_equal(full[1], fast[1])
    with pytest.raises(ValueError, match="before"):
        ablation_accuracy(model, images, labels, "conv1", 0, active=np.ones(600, dtype=bool))


def test_a_layer_summary_is_every_unit_s_own_numbers(net, small_split):
    index = activation_index(net, to_tensor(small_split.images))
    labels = small_split.labels
    for layer in ("conv2", "fc1"):
        summary = index.layer_summary(layer, labels, 10)
        units = index.maximum[layer].shape[1]
        assert summary["share"].tolist() == pytest.approx([index.firing_share(layer, u) for u in range(units)])
        np.testing.assert_allclose(summary["mean"], index.mean[layer].mean(axis=0, dtype=np.float64), rtol=1e-12)
        for u in range(units):
            per_class = index.mean_per_class(layer, u, labels, 10)
            expected = -1 if np.nanmax(per_class) == np.nanmin(per_class) else int(np.nanargmax(per_class))
            assert summary["favourite"][u] == expected, (layer, u)


def test_a_layer_s_kernels_are_its_weights(net):
    from core.units import kernels

    assert np.array_equal(kernels(net, "conv3"), net.module.conv3.weight.detach().numpy())
    assert kernels(net, "conv3").shape == (16, 8, 3, 3)
