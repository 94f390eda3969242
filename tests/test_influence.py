"""TracIn from the bank (core.influence) against Captum's TracInCPFast and against autograd."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch
from captum.influence import TracInCPFast
from torch.utils.data import TensorDataset

from core import checkpoints, influence
from core.config import recipe
from core.data import load_mnist, to_tensor
from core.model import MnistCNN
from core.runs import Point
from core.train import load_or_train, training_labels
from tests.conftest import tiny_config

SUBSET = 400  # training digits compared with Captum (its pass reruns them through each checkpoint)


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    """A tiny model with two saved epochs, its data and its banks (its own cache folder)."""
    root = tmp_path_factory.mktemp("influence")
    trained = load_or_train(tiny_config(epochs=2), root=root)
    data = load_mnist()
    return trained, data, influence.load_or_compute_banks(trained.info, data)


def test_banks_cover_every_epoch_and_the_trained_digits(two_epochs):
    trained, data, banks = two_epochs
    assert [b.epoch for b in banks["train"]] == [1, 2] and [b.epoch for b in banks["test"]] == [1, 2]
    assert len(banks["train"][0]) == 2000 and len(banks["test"][0]) == len(data.test)
    # Each bank row is that epoch's model run on the digit.
    for epoch in (1, 2):
        model = checkpoints.load_checkpoint(trained.info.folder, epoch)
        with torch.inference_mode():
            taps = model.taps(to_tensor(data.test.images[:5]))
        np.testing.assert_allclose(banks["test"][epoch - 1].inputs[:5], taps["fc1"].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(banks["test"][epoch - 1].logits[:5], taps["fc2"].numpy(), rtol=1e-5, atol=1e-5)


def test_bank_cache_is_verified(two_epochs, tmp_path):
    trained, data, banks = two_epochs
    folder = trained.info.folder
    path = influence.bank_run(Point(folder, 1, "test", data.fingerprint), len(data.test)).path
    again = influence.load_or_compute_banks(trained.info, data)
    np.testing.assert_array_equal(again["test"][0].logits, banks["test"][0].logits)
    good = path.read_bytes()
    try:
        path.write_bytes(good[: len(good) // 2])  # a half-written file is recomputed, not trusted
        model = checkpoints.load_checkpoint(folder, 1)
        fresh = influence.load_or_compute_bank(model, data.test, Point(folder, 1, "test", data.fingerprint))
        np.testing.assert_allclose(fresh.logits, banks["test"][0].logits, rtol=1e-6)
        assert path.read_bytes() != good[: len(good) // 2]
    finally:
        path.write_bytes(good)


def _fc2_weight_gradient(model: MnistCNN, image: torch.Tensor, label: int) -> torch.Tensor:
    model.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(image[None]), torch.tensor([label]), reduction="sum")
    loss.backward()
    return model.fc2.weight.grad.detach().clone().flatten()


def test_scores_equal_the_gradient_dot_products_autograd_computes(two_epochs):
    trained, data, banks = two_epochs
    labels = training_labels(trained.info.config, data).numpy()
    weights = np.array([0.3, 0.7])  # any weights: each checkpoint's term is checked
    training = influence.TrainingSide.of(banks["train"], labels, weights)
    test_index, target, train_rows = 7, 3, [0, 1, 2, 11]
    inputs = np.stack([b.inputs[test_index] for b in banks["test"]])
    logits = np.stack([b.logits[test_index] for b in banks["test"]])
    scores = influence.tracin_scores(training, inputs, logits, target)
    test_image = to_tensor(data.test.images[test_index : test_index + 1])[0]
    for row in train_rows:
        train_image = to_tensor(data.train.images[row : row + 1])[0]
        expected = 0.0
        for epoch, weight in zip((1, 2), weights, strict=True):
            model = checkpoints.load_checkpoint(trained.info.folder, epoch).double().float()
            grad_test = _fc2_weight_gradient(model, test_image, target)
            grad_train = _fc2_weight_gradient(model, train_image, int(labels[row]))
            expected += weight * float(grad_test @ grad_train)
        assert scores[row] == pytest.approx(expected, rel=1e-4, abs=1e-7)


def test_fast_path_matches_captums_tracin(two_epochs):
    """Captum's TracInCPFast over the same two checkpoints and SUBSET training digits."""
    trained, data, banks = two_epochs
    config = trained.info.config
    labels = training_labels(config, data)[:SUBSET]
    weights = influence.checkpoint_weights(config, 2000)
    assert np.allclose(weights, config.lr)  # the reference recipe's constant rate

    def load(model: torch.nn.Module, path: str) -> float:  # the project's verified loader, that epoch's rate
        epoch = int(path.rsplit("_", 1)[1].split(".")[0])
        model.load_state_dict(checkpoints.load_checkpoint(trained.info.folder, epoch).state_dict())
        return float(weights[epoch - 1])

    paths = [str(trained.info.folder / checkpoints.epoch_file(e)) for e in (1, 2)]
    dataset = TensorDataset(to_tensor(data.train.images[:SUBSET]), labels)
    tracin = TracInCPFast(
        copy.deepcopy(trained.model),
        "fc2",
        dataset,
        checkpoints=paths,
        checkpoints_load_func=load,
        loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"),
        batch_size=SUBSET,
    )
    test = [3, 8, 19]
    targets = [int(banks["test"][-1].logits[i].argmax()) for i in test]
    theirs = tracin.influence((to_tensor(data.test.images[test]), torch.tensor(targets))).numpy()  # (3, SUBSET)

    subset = [influence.Bank(b.inputs[:SUBSET], b.logits[:SUBSET], b.epoch) for b in banks["train"]]
    training = influence.TrainingSide.of(subset, labels.numpy(), weights)
    for row, (i, target) in enumerate(zip(test, targets, strict=True)):
        inputs = np.stack([b.inputs[i] for b in banks["test"]])
        logits = np.stack([b.logits[i] for b in banks["test"]])
        ours = influence.tracin_scores(training, inputs, logits, target)
        scale = np.abs(theirs[row]).max()
        np.testing.assert_allclose(ours, theirs[row], rtol=1e-3, atol=1e-4 * scale)
        # the same eight strongest proponents
        assert set(np.argsort(-ours)[:8]) == set(np.argsort(-theirs[row])[:8])


def test_behind_takes_the_strongest_of_each_sign():
    scores = np.array([0.5, -2.0, 3.0, 0.0, -0.1, 1.0])
    found = influence.behind(scores, target=4, shown=2)
    assert found.proponents.tolist() == [2, 5] and found.proponent_scores.tolist() == [3.0, 1.0]
    assert found.opponents.tolist() == [1, 4] and found.opponent_scores.tolist() == [-2.0, -0.1]
    few = influence.behind(np.array([1.0, 2.0]), target=0, shown=8)
    assert few.proponents.tolist() == [1, 0] and len(few.opponents) == 0  # no negative score: no opponent


def _one_cycle(t: int, total: int, peak: float) -> float:
    """OneCycleLR's cosine schedule written out (torch's defaults: 30% up, div 25, final div 1e4)."""
    start, end, up = peak / 25, peak / 25 / 1e4, 0.3 * total - 1
    if t <= up:
        return start + (peak - start) * (1 - math.cos(math.pi * t / up)) / 2
    return peak + (end - peak) * (1 - math.cos(math.pi * (t - up) / (total - 1 - up))) / 2


def test_checkpoint_weights_are_each_epochs_mean_rate():
    config = recipe("default", epochs=3, batch_size=100, saves_per_epoch=1)  # one point an epoch, then four
    weights = influence.checkpoint_weights(config, 1000)  # 10 steps an epoch
    expected = [np.mean([_one_cycle(t, 30, config.lr) for t in range(e * 10, e * 10 + 10)]) for e in range(3)]
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    assert weights[1] > weights[0] > weights[2]  # warm up, peak, anneal
    assert influence.checkpoint_weights(recipe("reference"), 1000).tolist() == [1e-3]
    # Saved four times an epoch: each point weighs the steps since the one before (3, 2, 3, 2 of 10).
    quarters = influence.checkpoint_weights(config.replace(saves_per_epoch=4), 1000)
    bounds = [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28, 30]
    rates = [_one_cycle(t, 30, config.lr) for t in range(30)]
    expected = [np.mean(rates[a:b]) for a, b in itertools.pairwise(bounds)]
    np.testing.assert_allclose(quarters, expected, rtol=1e-6)
    assert influence.checkpoint_weights(recipe("reference", saves_per_epoch=2), 1000).tolist() == [1e-3, 1e-3]


def test_mismatched_inputs_are_refused(two_epochs):
    trained, data, banks = two_epochs
    labels = training_labels(trained.info.config, data).numpy()
    with pytest.raises(ValueError, match="banks for"):
        influence.TrainingSide.of(banks["train"], labels, np.ones(3))
    training = influence.TrainingSide.of(banks["train"], labels, np.ones(2))
    with pytest.raises(ValueError, match="inputs"):
        influence.tracin_scores(training, np.zeros((1, 20)), np.zeros((1, 10)), 0)
