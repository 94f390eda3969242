from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numpy as np
import pytest
import torch

import core.attributions
from core import confusion
from core.attributions import AttributionRequest, explainer
from core.confusion import (
    THIRDS,
    ChannelDifference,
    ContrastMaps,
    cell_digits,
    channel_differences,
    contrast_maps,
    correct_digits,
    evidence_region,
    explain_cell,
    explained_layer,
    nearest_training_digits,
)
from core.data import load_mnist, to_tensor
from core.evaluate import Evaluation, evaluate
from core.model import MnistCNN
from core.network import network_of
from core.projection import fc1_features
from core.units import ActivationIndex, activation_index
from tests.test_units import _assert_unchanged, _state

UNIT_LAYERS = ("conv1", "conv2", "conv3", "conv4", "fc1")

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # as the dashboard runs (conftest.py)

CHANNELS = {"conv1": 4, "conv2": 8, "conv3": 16, "conv4": 32, "fc1": 20}
FAST_IG = {"steps": 4}  # exactness does not need many steps: the expected maps use the same ones


@pytest.fixture(scope="module")
def net() -> MnistCNN:
    torch.manual_seed(0)
    return MnistCNN().eval()


def _evaluation(labels: list[int], preds: list[int], confidence: list[float] | None = None) -> Evaluation:
    """An evaluation whose predictions (and their order by confidence) are set by hand."""
    logits = np.zeros((len(labels), 10), dtype=np.float32)
    for row, (pred, margin) in enumerate(zip(preds, confidence or [1.0] * len(preds), strict=True)):
        logits[row, pred] = margin
    return Evaluation(logits=logits, labels=np.array(labels, dtype=np.int64))


def _index(digits: int, seed: int = 0) -> ActivationIndex:
    rng = np.random.default_rng(seed)
    mean = {layer: rng.random((digits, c), dtype=np.float32) * 3 for layer, c in CHANNELS.items()}
    zeros = {layer: np.zeros((digits, c), dtype=np.float32) for layer, c in CHANNELS.items()}
    positions = {layer: np.zeros((digits, c), dtype=np.int16) for layer, c in CHANNELS.items()}
    grids = dict.fromkeys(CHANNELS, (1, 1))
    return ActivationIndex(maximum=zeros, mean=mean, position=positions, grids=grids)


# --- Which digits ---------------------------------------------------------------------


def test_cell_digits_are_the_cell_most_confident_first():
    evaluation = _evaluation(
        labels=[4, 4, 4, 9, 4, 4, 7],
        preds=[9, 4, 9, 9, 9, 1, 9],
        confidence=[1.0, 1.0, 3.0, 1.0, 2.0, 1.0, 1.0],
    )
    cell = cell_digits(evaluation, 4, 9)
    assert cell.dtype == np.int64 and cell.tolist() == [2, 4, 0]  # 4s read as 9, most confident first
    assert cell_digits(evaluation, 9, 4).tolist() == [] and cell_digits(evaluation, 9, 4).dtype == np.int64
    with pytest.raises(ValueError, match="correct digits"):
        cell_digits(evaluation, 4, 4)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        cell_digits(evaluation, 4, 10)


def test_correct_digits_are_a_seeded_sample():
    labels = [3] * 50 + [5] * 5
    preds = [3] * 40 + [8] * 10 + [5] * 5
    evaluation = _evaluation(labels, preds)
    everyone = np.arange(40)
    assert correct_digits(evaluation, 3, limit=40).tolist() == everyone.tolist()  # under the cap: all of them
    state = np.random.get_state()
    sample = correct_digits(evaluation, 3, limit=10, seed=1)
    assert sample.dtype == np.int64 and len(sample) == 10 and len(set(sample.tolist())) == 10
    assert set(sample.tolist()) <= set(everyone.tolist()) and (np.diff(sample) > 0).all()
    assert np.array_equal(sample, correct_digits(evaluation, 3, limit=10, seed=1))
    assert not np.array_equal(sample, correct_digits(evaluation, 3, limit=10, seed=2))
    assert np.array_equal(np.random.get_state()[1], state[1])  # a private generator
    assert correct_digits(evaluation, 5).tolist() == [50, 51, 52, 53, 54]
    assert correct_digits(evaluation, 7).tolist() == []


# --- Where the evidence differs -------------------------------------------------------


@pytest.mark.parametrize(("method", "options"), [("Integrated Gradients", FAST_IG), ("Saliency", {})])
def test_contrast_maps_average_the_per_digit_difference(net, method, options):
    """Each digit's map for b minus its map for a, computed one digit at a time, then averaged."""
    images = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    a, b = 4, 9
    run = explainer(AttributionRequest.of(method, options))
    per_digit = [
        run(net, image[None], torch.tensor([b]))[0] - run(net, image[None], torch.tensor([a]))[0] for image in images
    ]
    maps = contrast_maps(net, images[:3], images[3:], a, b, method, options)
    assert maps.cell.shape == maps.correct.shape == (28, 28)
    assert maps.cell.dtype == maps.correct.dtype == np.float32
    assert (maps.a, maps.b, maps.method, maps.cell_count, maps.correct_count) == (a, b, method, 3, 2)
    np.testing.assert_allclose(maps.cell, np.mean(per_digit[:3], axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(maps.correct, np.mean(per_digit[3:], axis=0), rtol=1e-5, atol=1e-7)
    flipped = contrast_maps(net, images[:3], images[3:], b, a, method, options)  # the sign is b minus a
    np.testing.assert_allclose(flipped.cell, -maps.cell, rtol=1e-5, atol=1e-7)


def test_contrast_maps_of_no_digits_are_zero_without_attributing(net, monkeypatch):
    images = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    empty = images[:0]
    one_sided = contrast_maps(net, empty, images, 4, 9, "Integrated Gradients", FAST_IG)
    assert one_sided.cell_count == 0 and not one_sided.cell.any() and one_sided.cell.dtype == np.float32
    assert one_sided.correct_count == 2 and one_sided.correct.any()

    def refuse(*args, **kwargs):
        raise AssertionError("nothing to attribute")

    monkeypatch.setattr(core.attributions, "attribute", refuse)
    nothing = contrast_maps(net, empty, empty, 4, 9)
    assert (nothing.cell_count, nothing.correct_count) == (0, 0)
    assert not nothing.cell.any() and not nothing.correct.any() and nothing.cell.shape == (28, 28)


# --- Which channels differ ------------------------------------------------------------


def test_channel_differences_on_hand_set_means():
    index = _index(4)
    index.mean["conv1"][:] = [[3.0, 0.0, 1.0, 1.0], [1.0, 0.0, 1.0, 0.0], [1.0, 3.0, 0.5, 1.5], [1.0, 3.0, 0.5, 1.5]]
    # cell (digits 0, 1) means 2, 0, 1, 0.5; correct (2, 3) means 1, 3, 0.5, 1.5: differences +1, -3, +0.5, -1
    found = channel_differences(index, np.array([0, 1]), np.array([2, 3]), k=3)["conv1"]
    assert found == [
        ChannelDifference(1, 0.0, 3.0, -3.0),
        ChannelDifference(0, 2.0, 1.0, 1.0),  # ties with channel 3 on |difference|: the lower channel first
        ChannelDifference(3, 0.5, 1.5, -1.0),
    ]
    everything = channel_differences(index, np.array([0, 1]), np.array([2, 3]), k=99)
    assert [len(everything[layer]) for layer in UNIT_LAYERS] == [CHANNELS[layer] for layer in UNIT_LAYERS]


def test_channel_differences_equal_brute_force():
    index = _index(40, seed=3)
    cell, correct = np.array([5, 17, 2]), np.array([0, 1, 3, 8, 9, 11, 30, 39])
    found = channel_differences(index, cell, correct, k=5)
    assert list(found) == list(UNIT_LAYERS)
    for layer, channels in CHANNELS.items():
        rows = []
        for c in range(channels):
            in_cell = sum(float(index.mean[layer][i, c]) for i in cell) / len(cell)
            in_correct = sum(float(index.mean[layer][i, c]) for i in correct) / len(correct)
            rows.append((-abs(in_cell - in_correct), c, in_cell, in_correct))
        expected = sorted(rows)[:5]
        assert [d.channel for d in found[layer]] == [c for _, c, _, _ in expected]
        for got, (_, _, in_cell, in_correct) in zip(found[layer], expected, strict=True):
            assert got.cell_mean == pytest.approx(in_cell, abs=1e-12)
            assert got.correct_mean == pytest.approx(in_correct, abs=1e-12)
            assert got.difference == pytest.approx(in_cell - in_correct, abs=1e-12)


def test_channel_differences_of_an_empty_group_are_empty():
    index = _index(5)
    empty = np.array([], dtype=np.int64)
    assert channel_differences(index, empty, np.arange(5)) == {layer: [] for layer in UNIT_LAYERS}
    assert channel_differences(index, np.arange(2), empty) == {layer: [] for layer in UNIT_LAYERS}
    one = channel_differences(index, np.array([4]), np.arange(4), k=1)["fc1"]
    assert len(one) == 1 and one[0].cell_mean == pytest.approx(float(index.mean["fc1"][4, one[0].channel]))


# --- Which training digits look alike -------------------------------------------------


def _brute_nearest(query, train, labels, cls, k):
    pairs = sorted(
        (float(np.sqrt(sum((float(q) - float(t)) ** 2 for q, t in zip(query, train[i], strict=True)))), i)
        for i in range(len(train))
        if labels[i] == cls
    )
    return [i for _, i in pairs[:k]], [d for d, _ in pairs[:k]]


@pytest.mark.parametrize("chunk", [confusion.DISTANCE_CHUNK, 50], ids=["one-block", "many-blocks"])
def test_nearest_training_digits_equal_brute_force(monkeypatch, chunk):
    monkeypatch.setattr(confusion, "DISTANCE_CHUNK", chunk)
    rng = np.random.default_rng(0)
    train = rng.random((300, 20), dtype=np.float32)
    labels = rng.integers(0, 10, 300)
    labels[:2] = 7  # class 7 has exactly two training digits: fewer than k
    labels[2:][labels[2:] == 7] = 1
    fours = np.flatnonzero(labels == 4)
    train[fours[1]] = train[fours[0]]  # a tie: two identical training 4s
    cell = rng.random((6, 20), dtype=np.float32)
    cell[0] = train[fours[0]] + 0.01  # so the tie is among the nearest
    found = nearest_training_digits(cell, train, labels, 4, 9, k=3)
    assert found.a_indices.shape == found.b_indices.shape == (6, 3) and found.a_indices.dtype == np.int64
    assert found.a_distances.dtype == found.b_distances.dtype == np.float32
    for row, query in enumerate(cell):
        for cls, indices, distances in (
            (4, found.a_indices, found.a_distances),
            (9, found.b_indices, found.b_distances),
        ):
            want_indices, want_distances = _brute_nearest(query, train, labels, cls, 3)
            assert indices[row].tolist() == want_indices
            np.testing.assert_allclose(distances[row], want_distances, rtol=1e-6)
    assert found.a_indices[0, :2].tolist() == [fours[0], fours[1]]  # the tie, by index
    few = nearest_training_digits(cell, train, labels, 7, 4, k=3)
    assert few.a_indices.shape == (6, 2) and set(few.a_indices[0].tolist()) == {0, 1}
    none = nearest_training_digits(cell[:0], train, labels, 4, 9)
    assert none.a_indices.shape == none.b_distances.shape == (0, 3)


# --- In one sentence ------------------------------------------------------------------

TOP, MIDDLE, BOTTOM = (slice(lo, hi) for lo, hi in pairwise(THIRDS))
EVERY = slice(None)


def _painted(*blocks: tuple[slice, slice, float]) -> np.ndarray:
    heatmap = np.zeros((28, 28), dtype=np.float32)
    for rows, columns, value in blocks:
        heatmap[rows, columns] += value
    return heatmap


@pytest.mark.parametrize(
    ("heatmap", "name", "share"),
    [
        (_painted((TOP, EVERY, 1.0)), "the top third", 1.0),
        (_painted((BOTTOM, EVERY, 1.0)), "the bottom third", 1.0),
        (_painted((EVERY, TOP, 1.0)), "the left third", 1.0),  # columns cut as rows are
        (_painted((EVERY, BOTTOM, 1.0)), "the right third", 1.0),
        (_painted((MIDDLE, MIDDLE, 1.0)), "the centre", 1.0),
        (_painted((TOP, TOP, 1.0)), "the top-left corner", 1.0),
        (_painted((TOP, MIDDLE, 1.0)), "the top centre", 1.0),
        (_painted((MIDDLE, EVERY, 1.0)), "a band across the middle", 1.0),
        (_painted((EVERY, EVERY, 1.0)), "no one region", 1.0),
        (_painted((EVERY, EVERY, -1.0)), "nowhere", 0.0),
        # Negative values do not count: only the pixels that favour b.
        (_painted((TOP, EVERY, 1.0), (BOTTOM, EVERY, -5.0)), "the top third", 1.0),
        # 252 in the top third, 50 in one bottom-centre pixel: the top holds 252 / 302 of it,
        # and no column band reaches half (the middle one holds 140 / 302).
        (_painted((TOP, EVERY, 1.0), (slice(20, 21), slice(13, 14), 50.0)), "the top third", 252 / 302),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_evidence_region_on_hand_made_maps(heatmap, name, share):
    assert evidence_region(heatmap) == (name, pytest.approx(share, abs=1e-12))


def _maps(count: int, heatmap: np.ndarray) -> ContrastMaps:
    zeros = np.zeros((28, 28), dtype=np.float32)
    return ContrastMaps(
        a=4, b=9, method="Integrated Gradients", cell=heatmap, correct=zeros, cell_count=count, correct_count=200
    )


def test_explain_cell_names_the_region_and_channels():
    heatmap = _painted((TOP, MIDDLE, 3.0), (BOTTOM, EVERY, 0.1))  # 270 of 295.2 in the top centre
    channels = {
        "conv3": [ChannelDifference(0, 9.0, 0.0, 9.0)],  # not the layer the sentence names
        "conv4": [
            ChannelDifference(17, 0.5, 1.5, -1.0),
            ChannelDifference(3, 2.0, 1.25, 0.75),
            ChannelDifference(8, 1.0, 0.5, 0.5),
        ],
    }
    assert explain_cell(_maps(12, heatmap), channels) == (
        "12 test 4s are read as 9: the Integrated Gradients evidence for 9 over 4 lies mostly in the top"
        " centre of the image (91% of its positive mass), and conv4 channels 17 (lower: 0.50 against 1.50)"
        " and 3 (higher: 2.00 against 1.25) differ most from correctly read 4s."
    )
    one = explain_cell(_maps(1, heatmap), {"conv4": channels["conv4"][:1]})
    assert one.startswith("1 test 4 is read as 9: ") and "conv4 channel 17 (lower" in one and "differs most" in one
    nothing = explain_cell(_maps(1, -heatmap), {layer: [] for layer in UNIT_LAYERS})
    assert "no pixel's Integrated Gradients evidence favours 9 over 4" in nothing
    assert "no correctly read 4s to compare conv4's channels with" in nothing


def test_explain_cell_of_an_empty_cell_says_so():
    zeros = np.zeros((28, 28), dtype=np.float32)
    assert explain_cell(_maps(0, zeros), {}) == "No test 4 is read as 9, so there is nothing to explain in this cell."


def test_explain_cell_calls_classes_by_their_names():
    from tests.conftest import FASHION

    heatmap = _painted((TOP, MIDDLE, 3.0), (BOTTOM, EVERY, 0.1))
    named = explain_cell(_maps(12, heatmap), {"conv4": [ChannelDifference(3, 2.0, 1.25, 0.75)]}, FASHION)
    assert named.startswith("12 test images of Coat are read as Ankle boot: the Integrated Gradients evidence for ")
    assert "for Ankle boot over Coat lies" in named and named.endswith(
        "differs most from correctly read images of Coat."
    )
    assert explain_cell(_maps(1, heatmap), {}, FASHION).startswith("1 test image of Coat is read as Ankle boot: ")
    assert explain_cell(_maps(0, heatmap), {}, FASHION).startswith("No test image of Coat is read as Ankle boot,")


# --- Sharing one model ----------------------------------------------------------------


def test_many_threads_share_one_model(net):
    images = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    before = _state(net)
    train_labels = np.arange(6) % 3
    jobs = [
        lambda: contrast_maps(net, images[:2], images[2:], 4, 9, "Integrated Gradients", FAST_IG).cell,
        lambda: contrast_maps(net, images[:1], images[1:4], 7, 1, "Saliency").correct,
        lambda: (
            nearest_training_digits(
                fc1_features(net, images[:2]), fc1_features(net, images), train_labels, 1, 2
            ).a_distances
        ),
    ]
    expected = [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=3) as pool:
        for _ in range(2):
            for got, want in zip(pool.map(lambda job: job(), jobs), expected, strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    _assert_unchanged(net, before)


# --- On the reference model -----------------------------------------------------------


@pytest.fixture(scope="module")
def reference_setup(reference_model):
    """The reference model's test evaluation, its activation index over the test set, and fc1
    features of the first 10,000 training digits (enough neighbours, a fraction of the time)."""
    data = load_mnist()
    model = reference_model.model
    images = to_tensor(data.test.images)
    train = data.train.images[:10_000], data.train.labels[:10_000]
    return {
        "model": model,
        "images": images,
        "evaluation": evaluate(model, data.test),
        "index": activation_index(network_of(model, 10, images[:16], "the reference"), images),
        "train_features": fc1_features(model, to_tensor(train[0])),
        "train_labels": train[1],
    }


def _why(setup, a, b, limit=confusion.CORRECT_SAMPLE):
    """The whole pipeline for one cell, as a page would run it."""
    model, images, evaluation = setup["model"], setup["images"], setup["evaluation"]
    cell, correct = cell_digits(evaluation, a, b), correct_digits(evaluation, a, limit)
    maps = contrast_maps(model, images[cell], images[correct], a, b)
    channels = channel_differences(setup["index"], cell, correct)
    nearest = nearest_training_digits(
        fc1_features(model, images[cell]), setup["train_features"], setup["train_labels"], a, b
    )
    return cell, correct, maps, channels, nearest, explain_cell(maps, channels)


def _cells_with(evaluation, count):
    matrix = evaluation.confusion
    return [(a, b) for a in range(10) for b in range(10) if a != b and matrix[a, b] == count]


@pytest.mark.slow
def test_a_real_cell_on_the_reference_model(reference_setup):
    evaluation = reference_setup["evaluation"]
    matrix = evaluation.confusion.copy()
    np.fill_diagonal(matrix, 0)
    a, b = (4, 9) if matrix[4, 9] > 1 else divmod(int(matrix.argmax()), 10)
    model = reference_setup["model"]
    before = _state(model)
    cell, correct, maps, channels, nearest, sentence = _why(reference_setup, a, b)
    _assert_unchanged(model, before)
    n = len(cell)
    assert n == matrix[a, b] > 1 and len(correct) == confusion.CORRECT_SAMPLE
    assert (evaluation.labels[cell] == a).all() and (evaluation.preds[cell] == b).all()
    assert (evaluation.labels[correct] == a).all() and (evaluation.preds[correct] == a).all()
    assert (maps.cell_count, maps.correct_count) == (n, len(correct))
    assert np.isfinite(maps.cell).all() and np.isfinite(maps.correct).all()
    # Integrated Gradients is complete: a map adds up to the target's logit at the digit minus at
    # the black baseline, so a mean b-minus-a map adds up to the mean change in the b - a gap. The
    # page's 32 steps leave an error of up to ~0.1 on a ReLU network's kinks (seen in CI on one
    # model), so the sums are checked on maps of 256 steps, through the same pipeline.
    images = reference_setup["images"]
    exact = contrast_maps(model, images[cell], images[correct], a, b, options={"steps": 256})
    assert np.allclose(exact.cell, maps.cell, atol=0.05)  # the page's maps are close to these
    with torch.inference_mode():
        for group, contrast in ((cell, exact.cell), (correct, exact.correct)):
            logits = model(reference_setup["images"][group])
            black = model(torch.zeros(1, 1, 28, 28))
            gap = (logits[:, b] - logits[:, a]).mean() - (black[0, b] - black[0, a])
            assert float(contrast.sum()) == pytest.approx(float(gap), rel=0.05, abs=0.05)
    assert maps.cell.sum() > maps.correct.sum()  # the black baseline cancels: the cell leans further to b
    conv4 = channels["conv4"]
    assert len(conv4) == confusion.CHANNELS_SHOWN
    assert abs(conv4[0].difference) >= abs(conv4[-1].difference)
    assert nearest.a_indices.shape == nearest.b_indices.shape == (n, confusion.NEIGHBOURS)
    assert (reference_setup["train_labels"][nearest.a_indices] == a).all()
    assert (reference_setup["train_labels"][nearest.b_indices] == b).all()
    assert (np.diff(nearest.a_distances, axis=1) >= 0).all() and (np.diff(nearest.b_distances, axis=1) >= 0).all()
    region, _ = evidence_region(maps.cell)
    assert sentence.startswith(f"{n} test {a}s are read as {b}: ") and region in sentence
    assert f"conv4 channels {conv4[0].channel} (" in sentence and f" and {conv4[1].channel} (" in sentence


@pytest.mark.slow
def test_an_empty_and_a_one_digit_cell_on_the_reference_model(reference_setup):
    evaluation = reference_setup["evaluation"]
    empty, single = _cells_with(evaluation, 0), _cells_with(evaluation, 1)
    assert empty and single  # a 97% model leaves both kinds in a 10x10 matrix
    a, b = empty[0]  # a small sample of correct digits below: the cells are the point
    cell, correct, maps, channels, nearest, sentence = _why(reference_setup, a, b, limit=20)
    assert len(cell) == 0 and maps.cell_count == 0 and not maps.cell.any() and maps.correct_count == len(correct)
    assert channels == {layer: [] for layer in UNIT_LAYERS} and nearest.a_indices.shape == (0, 3)
    assert sentence == f"No test {a} is read as {b}, so there is nothing to explain in this cell."
    a, b = single[0]
    cell, correct, maps, channels, nearest, sentence = _why(reference_setup, a, b, limit=20)
    assert len(cell) == maps.cell_count == 1 and nearest.a_indices.shape == nearest.b_indices.shape == (1, 3)
    assert np.isfinite(maps.cell).all() and maps.cell.any()
    top = channels["conv4"][0]
    assert top.cell_mean == pytest.approx(float(reference_setup["index"].mean["conv4"][cell[0], top.channel]))
    assert sentence.startswith(f"1 test {a} is read as {b}: ") and "conv4 channels" in sentence


def test_top_confusions_against_brute_force():
    rng = np.random.default_rng(3)
    for size in (2, 3, 10):
        matrix = rng.integers(0, 4, (size, size))
        cells = [(int(matrix[t, p]), t, p) for t in range(size) for p in range(size) if t != p and matrix[t, p]]
        expected = [(t, p, c) for c, t, p in sorted(cells, key=lambda x: (-x[0], x[1], x[2]))]
        for k in (1, 3, size * size):
            assert confusion.top_confusions(matrix, k) == expected[:k]
    assert confusion.top_confusions(np.diag([5, 7]), 3) == []  # no mistakes, no confusions


def test_the_explained_layer_is_the_last_with_positions():
    from core.units import UnitLayer

    conv = UnitLayer("conv", "conv", 4, (8, 8), True)
    dense = UnitLayer("fc", "linear", 20, None, True)
    assert explained_layer({"a": conv, "b": conv, "fc": dense}) == "b"
    assert explained_layer({"fc": dense, "fc2": dense}) == "fc2"  # an MLP: its last hidden layer
    channels = {"b": [ChannelDifference(3, 2.0, 1.25, 0.75)]}
    heatmap = np.zeros((28, 28), dtype=np.float32)
    heatmap[:9] = 1.0
    assert "b channel 3 (higher: 2.00 against 1.25)" in explain_cell(_maps(4, heatmap), channels, layer="b")
    assert "fc2 unit 3 (higher" in explain_cell(
        _maps(4, heatmap), {"fc2": channels["b"]}, layer="fc2", unit_word="unit"
    )
    assert explained_layer({}) is None  # a network without unit layers: the sentence names the map alone
    alone = explain_cell(_maps(4, heatmap), {}, layer=None)
    assert alone.endswith("of the image (100% of its positive mass).") and "channel" not in alone
