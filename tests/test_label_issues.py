"""Suspicious labels (core.label_issues): hand-made probabilities, then purpose-made noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import influence, label_issues
from core.config import recipe
from core.data import load_mnist
from core.evaluate import softmax
from core.train import flipped, load_or_train, training_labels


def _confident(labels: np.ndarray, believed: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    probs = np.full((len(labels), 10), 0.0)
    probs[np.arange(len(labels)), believed] = confidence
    rest = (1 - confidence) / 9
    probs += rest[:, None] * (probs == 0)
    return probs


def test_the_doubted_labels_are_flagged_worst_first():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    believed = labels.copy()
    confidence = rng.uniform(0.85, 0.99, len(labels))
    wrong = {5: (7, 0.995), 40: (2, 0.999), 100: (9, 0.99)}  # digit: (class the model believes, confidence)
    for i, (cls, conf) in wrong.items():
        believed[i], confidence[i] = cls, conf
    probs = _confident(labels, believed, confidence)
    found = label_issues.find(labels, probs)
    assert set(found.flagged.tolist()) == set(wrong)
    # Ranked by self-confidence: the probability of the given label, lowest first.
    assert found.flagged.tolist() == sorted(wrong, key=lambda i: probs[i, labels[i]])
    np.testing.assert_allclose(found.quality, probs[np.arange(len(labels)), labels], rtol=1e-6)
    assert found.suggested[5] == 7 and found.suggested[40] == 2
    # The whole ranking: the flagged three, then every other digit by the probability of its label.
    quality = probs[np.arange(len(labels)), labels]
    rest = sorted(set(range(len(labels))) - set(wrong), key=lambda i: (quality[i], i))
    assert found.ranking.tolist() == found.flagged.tolist() + rest
    assert [found.rank(i) for i in found.ranking] == list(range(len(labels)))
    # Filters cut the whole ranking; the flagged ones among the kept stay first, and are counted.
    rows, flagged = found.rows(given=0)
    assert rows.tolist() == [5] + [i for i in rest if labels[i] == 0] and flagged == 1
    rows, flagged = found.rows(suggested=9)
    assert rows.tolist() == [100] + [i for i in rest if believed[i] == 9] and flagged == 1
    rows, flagged = found.rows(given=1, suggested=2)
    assert rows.tolist() == [40] and flagged == 1
    rows, flagged = found.rows(given=4)
    assert rows.tolist() == [i for i in rest if labels[i] == 4] and flagged == 0
    rows, flagged = found.rows(given=4, suggested=0)
    assert len(rows) == 0 and flagged == 0


def test_bad_input_is_named():
    labels = np.repeat(np.arange(10), 3)
    with pytest.raises(ValueError, match="shaped"):
        label_issues.find(labels, np.ones(len(labels)))
    with pytest.raises(ValueError, match=r"labels must be classes 0\.\.8"):  # a label past the network's classes
        label_issues.find(labels, np.ones((len(labels), 9)))
    with pytest.raises(ValueError, match="missing: \\[9\\]"):
        label_issues.find(labels[labels < 9], np.full((27, 10), 0.1))
    with pytest.raises(ValueError, match="NaN"):
        label_issues.find(labels, np.full((30, 10), np.nan))
    with pytest.raises(ValueError, match="no wrong labels"):
        label_issues.precision_recall(np.arange(3), np.array([], dtype=int))
    assert label_issues.precision_recall(np.array([4, 1, 7, 2]), np.array([1, 2])) == (0.5, 0.5)
    assert label_issues.found_within(np.array([4, 1, 7, 2]), np.array([1, 2]), 2) == 0.5
    assert label_issues.found_within(np.array([4, 1, 7, 2]), np.array([1, 2]), 4) == 1.0
    with pytest.raises(ValueError, match="no wrong labels"):
        label_issues.found_within(np.arange(3), np.array([], dtype=int), 2)


def test_flipped_labels_change_class_and_are_seeded():
    data = load_mnist()
    config = recipe("default", train_limit=3000, flip_labels=0.03)
    given = torch.from_numpy(data.train.labels[:3000])
    where, to = flipped(config, given)
    assert len(where) == 90 and (to != given[where]).all() and ((to >= 0) & (to < 10)).all()
    labels = training_labels(config, data)
    assert (labels != given).sum() == 90 and (labels[where] == to).all()
    assert torch.equal(flipped(config, given)[0], where)  # the same seed flips the same digits
    assert not torch.equal(flipped(config.replace(seed=1), given)[0], where)


@pytest.mark.slow
def test_purpose_made_noise_is_found(tmp_path):
    """3% of 3,000 training labels flipped; a 3-epoch model; its in-sample probabilities.
    Measured: 0.76 precision and recall at the flip count (chance: 0.03)."""
    data = load_mnist()
    config = recipe("default", train_limit=3000, flip_labels=0.03)
    trained = load_or_train(config, root=tmp_path)
    labels = training_labels(config, data).numpy()
    wrong, _ = flipped(config, torch.from_numpy(data.train.labels[:3000]))
    banks = influence.load_or_compute_banks(trained.info, data)
    found = label_issues.find(labels, softmax(banks["train"][-1].logits))
    precision, recall = label_issues.precision_recall(found.flagged, wrong.numpy())
    assert precision >= 0.5 and recall >= 0.5, (precision, recall)
