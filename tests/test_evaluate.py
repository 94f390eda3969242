import numpy as np
import torch

from core.data import MnistDataset, Split
from core.evaluate import Evaluation, confusion_matrix, evaluate, evaluate_accuracy, load_or_evaluate


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


def test_evaluate_on_trained_model(reference_model):
    from core.data import load_mnist

    split = load_mnist().test
    ev = evaluate(reference_model.model, split)
    assert ev.logits.shape == (10000, 10) and ev.logits.dtype == np.float32
    assert abs(ev.accuracy - reference_model.info.test_accuracy) < 1e-6
    assert ev.confusion.sum() == 10000
    assert np.trace(ev.confusion) == round(ev.accuracy * 10000)
    assert len(ev.misclassified) == 10000 - np.trace(ev.confusion)
    loader = torch.utils.data.DataLoader(MnistDataset(Split(split.images[:500], split.labels[:500])), batch_size=64)
    assert abs(evaluate_accuracy(reference_model.model, loader) - (ev.preds[:500] == split.labels[:500]).mean()) < 1e-9


def test_evaluation_is_cached_beside_the_checkpoint(tmp_path, reference_model):
    from core.data import load_mnist

    split = load_mnist().test
    first = load_or_evaluate(reference_model.model, split, tmp_path)
    assert (tmp_path / "evaluation_test.safetensors").is_file()
    second = load_or_evaluate(torch.nn.Identity(), split, tmp_path)  # would fail if it recomputed
    assert np.array_equal(first.logits, second.logits)
    (tmp_path / "evaluation_test.safetensors").write_bytes(b"junk")
    third = load_or_evaluate(reference_model.model, split, tmp_path)
    assert np.array_equal(first.logits, third.logits)
