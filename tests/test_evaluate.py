import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save as save_safetensors

from core import checkpoints
from core.data import MnistDataset, Split, load_mnist
from core.evaluate import (
    Evaluation,
    confusion_matrix,
    evaluate,
    evaluate_accuracy,
    evaluation_run,
    load_or_evaluate,
)
from core.model import MnistCNN
from core.runs import Point


def test_confusion_matrix_by_hand():
    labels = np.array([0, 0, 1, 2, 2, 2])
    preds = np.array([0, 1, 1, 2, 0, 2])
    expected = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert np.array_equal(confusion_matrix(labels, preds, num_classes=3), expected)


def test_evaluation_derivatives():
    logits = np.array([[5.0, 0, 0], [0, 1.0, 0], [3.0, 0, 0], [0, 0, 2.0]], dtype=np.float32)
    labels = np.array([0, 2, 1, 2])
    ev = Evaluation(logits=logits, labels=labels)
    assert ev.preds.tolist() == [0, 1, 0, 2]
    assert ev.accuracy == 0.5
    # Two mistakes: index 2 (p=0.91) is more confident than index 1 (p=0.58).
    assert ev.misclassified.tolist() == [2, 1]
    assert np.allclose(ev.probs.sum(1), 1.0)
    assert ev.cell(1, 0).tolist() == [2]
    assert ev.loss[0] < ev.loss[2]


@pytest.mark.slow
def test_evaluate_on_trained_model(reference_model):
    split = load_mnist().test
    ev = evaluate(reference_model.model, split)
    assert ev.logits.shape == (10000, 10) and ev.logits.dtype == np.float32
    assert abs(ev.accuracy - reference_model.info.test_accuracy) < 1e-6
    assert ev.confusion.sum() == 10000
    assert np.trace(ev.confusion) == round(ev.accuracy * 10000)
    assert len(ev.misclassified) == 10000 - np.trace(ev.confusion)
    loader = torch.utils.data.DataLoader(MnistDataset(Split(split.images[:500], split.labels[:500])), batch_size=64)
    assert abs(evaluate_accuracy(reference_model.model, loader) - (ev.preds[:500] == split.labels[:500]).mean()) < 1e-9


KEY = "0123456789abcdef"
FINGERPRINT = load_mnist().fingerprint


class MustNotRun(torch.nn.Module):
    """A model that fails if it is ever asked to evaluate: proves a cache hit."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        raise AssertionError("recomputed instead of reading the cached evaluation")


@pytest.fixture(scope="module")
def small_split() -> Split:
    test = load_mnist().test
    return Split(test.images[:300], test.labels[:300])


@pytest.fixture(scope="module")
def net() -> MnistCNN:
    torch.manual_seed(0)
    return MnistCNN().eval()


def _read(path):
    """The cached logits and the labels in the file's header."""
    with safe_open(path, "pt") as f:
        return f.get_tensor("logits").numpy(), f.metadata()


def test_evaluation_is_cached_beside_the_checkpoint(tmp_path, net, small_split):
    folder = tmp_path / KEY
    first = load_or_evaluate(net, small_split, Point(folder, 2, "test", FINGERPRINT))
    path = evaluation_run(Point(folder, 2, "test", FINGERPRINT)).path
    assert [p.name for p in folder.iterdir()] == [path.name]
    logits, metadata = _read(path)
    assert metadata == {"key": KEY, "epoch": "2", "split": "test", "data": FINGERPRINT}
    assert np.array_equal(logits, first.logits)
    assert first.logits.shape == (300, 10) and np.array_equal(first.labels, small_split.labels)
    assert np.array_equal(first.logits, evaluate(net, small_split).logits)

    second = load_or_evaluate(MustNotRun(), small_split, Point(folder, 2, "test", FINGERPRINT))
    assert np.array_equal(first.logits, second.logits)
    assert np.array_equal(second.labels, small_split.labels)


def test_epoch_split_and_data_each_get_their_own_file(tmp_path, net, small_split):
    folder = tmp_path / KEY
    other_fp = "f" * 64
    variants = [("test", 1, FINGERPRINT), ("test", 2, FINGERPRINT), ("train", 1, FINGERPRINT), ("test", 1, other_fp)]
    for split_name, epoch, fp in variants:
        load_or_evaluate(net, small_split, Point(folder, epoch, split_name, fp))
    names = {evaluation_run(Point(folder, epoch, split_name, fp)).name for split_name, epoch, fp in variants}
    assert len(names) == 4 and {p.name for p in folder.iterdir()} == names
    for split_name, epoch, fp in variants:
        _, metadata = _read(evaluation_run(Point(folder, epoch, split_name, fp)).path)
        assert metadata == {"key": KEY, "epoch": str(epoch), "split": split_name, "data": fp}
        # ... and each is now a cache hit.
        load_or_evaluate(MustNotRun(), small_split, Point(folder, epoch, split_name, fp))


@pytest.mark.parametrize(
    "wrong",
    [
        {"key": "fedcba9876543210"},  # copied from another model's folder
        {"epoch": "1"},
        {"split": "train"},
        {"data": "f" * 64},
        {"extra": "label"},
        "no metadata",
    ],
)
def test_a_file_with_wrong_labels_is_recomputed(tmp_path, net, small_split, wrong):
    folder = tmp_path / KEY
    folder.mkdir()
    path = evaluation_run(Point(folder, 2, "test", FINGERPRINT)).path
    labels = {"key": KEY, "epoch": "2", "split": "test", "data": FINGERPRINT}
    metadata = None if wrong == "no metadata" else {**labels, **wrong}
    path.write_bytes(save_safetensors({"logits": torch.zeros(300, 10)}, metadata=metadata))

    result = load_or_evaluate(net, small_split, Point(folder, 2, "test", FINGERPRINT))
    expected = evaluate(net, small_split).logits
    assert np.array_equal(result.logits, expected)
    logits, written = _read(path)  # overwritten with the right evaluation and labels
    assert written == labels and np.array_equal(logits, expected)


@pytest.mark.parametrize(
    "content",
    [
        {"logits": torch.zeros(299, 10)},  # saved with the right labels
        {"logits": torch.zeros(300, 9)},
        {"other": torch.zeros(300, 10)},
        b"junk",
        b"",
    ],
    ids=["rows", "columns", "no-logits", "junk", "empty"],
)
def test_a_file_with_the_wrong_shape_or_damaged_is_recomputed(tmp_path, net, small_split, content):
    folder = tmp_path / KEY
    folder.mkdir()
    path = evaluation_run(Point(folder, 2, "test", FINGERPRINT)).path
    labels = {"key": KEY, "epoch": "2", "split": "test", "data": FINGERPRINT}
    path.write_bytes(content if isinstance(content, bytes) else save_safetensors(content, metadata=labels))
    result = load_or_evaluate(net, small_split, Point(folder, 2, "test", FINGERPRINT))
    logits, written = _read(path)
    assert np.array_equal(result.logits, evaluate(net, small_split).logits)
    assert written == labels and np.array_equal(logits, result.logits)


def test_unknown_split_name_is_refused(tmp_path, net, small_split):
    with pytest.raises(ValueError, match="unknown split"):
        load_or_evaluate(net, small_split, Point(tmp_path / KEY, 1, "validation", FINGERPRINT))


def test_a_cache_that_cannot_be_written_still_serves_results(monkeypatch, tmp_path, caplog):
    """A read-only cache (a teacher's prepared share) or a full disk: the evaluation is computed
    and returned, only not kept, with one log line per folder, never an exception."""
    torch.manual_seed(0)
    net = MnistCNN().eval()
    split = Split(images=load_mnist().test.images[:50], labels=load_mnist().test.labels[:50])

    def refuse(path, data):
        raise PermissionError(13, "Read-only file system", str(path))

    monkeypatch.setattr(checkpoints, "atomic_write", refuse)
    first = load_or_evaluate(net, split, Point(tmp_path, 1, "test", FINGERPRINT))
    again = load_or_evaluate(net, split, Point(tmp_path, 2, "test", FINGERPRINT))
    np.testing.assert_array_equal(first.logits, evaluate(net, split).logits)
    np.testing.assert_array_equal(again.logits, first.logits)
    assert not list(tmp_path.iterdir())
    assert caplog.text.count("not caching in") == 1 and "Read-only file system" in caplog.text


def test_any_number_of_classes_is_the_networks_own():
    """Three classes: the matrix, the per-class figures and the cells follow the logits' width."""
    from core import confusion
    from core.evaluate import per_class_mean

    logits = np.array([[3.0, 0, 0], [0, 3, 0], [0, 3, 0], [0, 0, 3], [3, 0, 0]], dtype=np.float32)
    labels = np.array([0, 1, 2, 2, 2])
    ev = Evaluation(logits=logits, labels=labels)
    assert ev.classes == 3
    assert ev.confusion.tolist() == [[1, 0, 0], [0, 1, 0], [1, 1, 1]]
    np.testing.assert_allclose(ev.per_class_accuracy(), [1.0, 1.0, 1 / 3])
    assert confusion.cell_digits(ev, 2, 0).tolist() == [4]
    with pytest.raises(ValueError, match=r"classes must be 0\.\.2"):
        confusion.cell_digits(ev, 3, 0)
    values = np.array([1.0, 2.0, 4.0, 6.0, 8.0])
    np.testing.assert_allclose(per_class_mean(values, labels), [1.0, 2.0, 6.0])  # brute force: (4+6+8)/3
    means = per_class_mean(values, labels, classes=5)  # two classes with no digits
    assert means.shape == (5,) and np.isnan(means[3:]).all()
