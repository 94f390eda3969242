"""The training digits behind an answer: TracIn (Pruthi et al. 2020, "Estimating training
data influence by tracing gradient descent", NeurIPS) on the last layer, over the saved epochs.

TracIn scores a training digit z for a test digit t by how much the training steps on z
lowered t's loss: the sum over checkpoints e of the learning rate times the dot product of
the two loss gradients. Restricted to fc2's weights (what Captum's ``TracInCPFast`` does),
the gradient of the cross-entropy for one digit is the outer product of ``g = softmax -
onehot(label)`` (10) and fc2's input ``a`` (fc1 after its ReLU, 20), so the dot product
factors: ``(g_z . g_t) * (a_z . a_t)``. Each checkpoint's ``a`` and logits for every
training and test digit are kept in a *bank* beside the checkpoint (one forward pass per
epoch, once per model); a query is then a few matrix-vector products over the bank
(milliseconds), where Captum reruns the 60,000 training digits through every checkpoint on
each call (about 30 s). ``tests/test_influence.py`` checks the bank's scores against Captum's
``TracInCPFast`` on a small subset.

The test digit's loss is taken at its *predicted* class: a positive score marks a training
digit whose steps raised the probability of the answer the network gives (a proponent), a
negative one a digit whose steps lowered it (an opponent).

TracIn's learning-rate-weighted sum is derived for plain SGD. The project trains with Adam
(and OneCycle's changing rate), so each checkpoint is weighted by the mean rate of the epoch
that led to it (:func:`checkpoint_weights`): a heuristic, said on the page. With a single
saved epoch TracIn reduces to gradient similarity at the end of training.

Nothing here changes the model it is given (no hooks, weights or mode): thread-safe.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core import checkpoints, runs
from core.config import TrainConfig
from core.data import Mnist, Split, to_tensor
from core.model import head, last_linear
from core.runs import Point

LAYER = "fc2"  # the layer whose weight gradients are compared (TracInCPFast's final_fc_layer)
BANK_BATCH = 2000  # digits per forward pass
SHOWN = 8  # proponents and opponents listed for a digit


@dataclass(frozen=True, eq=False)
class Bank:
    """A split's digits through one checkpoint: ``inputs`` float32 (N, 20), fc2's input (fc1
    after its ReLU), and ``logits`` float32 (N, 10). Read-only private copies."""

    inputs: np.ndarray
    logits: np.ndarray
    epoch: int

    def __post_init__(self) -> None:
        for name in ("inputs", "logits"):
            array = np.array(getattr(self, name), dtype=np.float32)
            array.flags.writeable = False
            object.__setattr__(self, name, array)
        if self.inputs.ndim != 2 or self.logits.ndim != 2 or len(self.logits) != len(self.inputs):
            raise ValueError(f"inconsistent bank shapes: inputs {self.inputs.shape}, logits {self.logits.shape}")

    def __len__(self) -> int:
        return len(self.inputs)


def compute_bank(
    model: nn.Module,
    images: np.ndarray,
    epoch: int,
    progress: Callable[[int], None] | None = None,
) -> Bank:
    """fc2's input and the logits of uint8 digits (N, 28, 28) through ``model`` (epoch ``epoch``'s
    weights), in batches under inference mode; ``progress(digits done)`` after each batch."""
    device = next(model.parameters()).device
    inputs = np.empty((len(images), last_linear(model).in_features), dtype=np.float32)
    logits = np.empty((len(images), last_linear(model).out_features), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(images), BANK_BATCH):
            features, scores = head(model, to_tensor(images[start : start + BANK_BATCH]).to(device))
            inputs[start : start + BANK_BATCH] = features.float().cpu().numpy()
            logits[start : start + BANK_BATCH] = scores.float().cpu().numpy()
            if progress is not None:
                progress(min(start + BANK_BATCH, len(images)))
    return Bank(inputs=inputs, logits=logits, epoch=epoch)


def bank_run(at: runs.Point, digits: int) -> runs.Run:
    """Where a split's first ``digits`` banked under one saved point's weights are kept."""
    return runs.Run(at, "influence_bank", details=(("digits", str(digits)), ("layer", LAYER)))


def load_or_compute_bank(
    model: nn.Module,
    split: Split,
    at: runs.Point,
    digits: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Bank:
    """The kept bank of the first ``digits`` (default: all) of ``split`` (the one ``at`` names)
    beside a checkpoint, or a fresh one (then kept): a run labelled with the model key, epoch,
    split, data fingerprint, digit count and layer."""
    digits = len(split) if digits is None else digits
    width = last_linear(model).in_features

    def decode(tensors: dict[str, torch.Tensor]) -> Bank | None:
        classes = last_linear(model).out_features
        expected = {"inputs": ((digits, width), torch.float32), "logits": ((digits, classes), torch.float32)}
        if not runs.same_shapes(tensors, expected) or not all(bool(torch.isfinite(t).all()) for t in tensors.values()):
            return None
        return Bank(inputs=tensors["inputs"].numpy(), logits=tensors["logits"].numpy(), epoch=at.epoch)

    def encode(bank: Bank) -> dict[str, torch.Tensor]:
        return {"inputs": torch.from_numpy(bank.inputs.copy()), "logits": torch.from_numpy(bank.logits.copy())}

    return bank_run(at, digits).get(
        lambda: compute_bank(model, split.images[:digits], at.epoch, progress), encode, decode
    )


# --- Scores -----------------------------------------------------------------------------


def loss_gradient(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """d(cross-entropy)/d(logits) of each digit, float64 (N, 10): softmax minus the one-hot label."""
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(p)), np.asarray(labels)] -= 1.0
    return p


def point_weights(info: checkpoints.CheckpointInfo, digits: int) -> np.ndarray:
    """float64 (points,): each saved point's weight in the TracIn sum. A host's network was
    trained elsewhere, on a schedule not known here: its one point weighs 1 (the scores are then
    plain gradient similarities; the ranking is the same whatever the rate was)."""
    return np.ones(info.epochs_done) if info.network is not None else checkpoint_weights(info.config, digits)


def checkpoint_weights(config: TrainConfig, digits: int) -> np.ndarray:
    """float64 (points,): the mean learning rate of the steps leading to each saved point (each
    epoch, or each share of one when ``config.saves_per_epoch`` > 1), from the recipe's schedule
    (OneCycle replayed step by step, or the constant rate), for ``digits`` training digits."""
    steps = math.ceil(digits / config.batch_size)
    if config.schedule == "constant":
        return np.full(config.points, config.lr)
    if config.schedule != "onecycle":
        raise ValueError(f"unknown schedule {config.schedule!r}")
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.epochs * steps)
    rates = np.empty(config.epochs * steps)
    for step in range(len(rates)):
        rates[step] = optimizer.param_groups[0]["lr"]  # the rate this step trains with
        optimizer.step()
        scheduler.step()
    ends = [0] + [epoch * steps + batch for epoch in range(config.epochs) for batch in config.save_batches(steps)]
    return np.array([rates[start:end].mean() for start, end in itertools.pairwise(ends)])


@dataclass(frozen=True)
class TrainingSide:
    """What a query needs of the training digits, per saved epoch: fc2's inputs float32
    (E, N, 20), the loss gradients at the given labels float32 (E, N, 10), the checkpoint
    weights float64 (E,) and the given (trained-on) labels int64 (N,)."""

    inputs: np.ndarray
    gradients: np.ndarray
    weights: np.ndarray
    labels: np.ndarray

    @classmethod
    def of(cls, banks: Sequence[Bank], labels: np.ndarray, weights: np.ndarray) -> TrainingSide:
        if len(banks) != len(weights) or not banks:
            raise ValueError(f"{len(banks)} banks for {len(weights)} checkpoint weights")
        labels = np.asarray(labels, dtype=np.int64)
        if any(len(bank) != len(labels) for bank in banks):
            raise ValueError("every bank must hold the training digits the labels name")
        inputs = np.stack([bank.inputs for bank in banks])
        gradients = np.stack([loss_gradient(bank.logits, labels).astype(np.float32) for bank in banks])
        for array in (inputs, gradients):
            array.flags.writeable = False
        return cls(inputs=inputs, gradients=gradients, weights=np.asarray(weights, dtype=np.float64), labels=labels)


def tracin_scores(training: TrainingSide, inputs: np.ndarray, logits: np.ndarray, target: int) -> np.ndarray:
    """TracIn of every training digit for one test digit, float64 (N,).

    ``inputs`` (E, 20) and ``logits`` (E, 10): the test digit at each saved epoch (the banks'
    rows); its loss is taken at class ``target``. Score = sum over epochs of weight x
    (g_train . g_test) x (a_train . a_test); positive: training on that digit lowered the test
    digit's loss at ``target`` (raised that class's probability)."""
    inputs = np.asarray(inputs, dtype=np.float32)
    if inputs.shape != training.inputs[:, 0].shape or len(logits) != len(training.weights):
        raise ValueError(f"the test digit has {inputs.shape} inputs for {training.inputs.shape} training inputs")
    g = loss_gradient(logits, np.full(len(logits), target)).astype(np.float32)  # (E, 10)
    scores = np.zeros(training.inputs.shape[1])
    for e, weight in enumerate(training.weights):
        scores += weight * (
            (training.gradients[e] @ g[e]).astype(np.float64) * (training.inputs[e] @ inputs[e]).astype(np.float64)
        )
    return scores


@dataclass(frozen=True)
class Behind:
    """The training digits behind one answer: the ``SHOWN`` strongest proponents (positive
    scores, largest first) and opponents (negative, most negative first), as training indices
    int64 and their scores float64; fewer where fewer digits have a score of that sign."""

    target: int
    proponents: np.ndarray
    proponent_scores: np.ndarray
    opponents: np.ndarray
    opponent_scores: np.ndarray


def behind(scores: np.ndarray, target: int, shown: int = SHOWN) -> Behind:
    """The strongest proponents and opponents among TracIn ``scores`` (N,) for class ``target``."""
    order = np.argsort(-scores, kind="stable")
    up = order[:shown][scores[order[:shown]] > 0]
    down = order[::-1][:shown]
    down = down[scores[down] < 0]
    return Behind(
        target=int(target),
        proponents=up.astype(np.int64),
        proponent_scores=scores[up],
        opponents=down.astype(np.int64),
        opponent_scores=scores[down],
    )


# --- Every saved epoch of a model ---------------------------------------------------------

SPLITS = ("train", "test")


def load_or_compute_banks(
    info: checkpoints.CheckpointInfo, data: Mnist, progress: Callable[[float, str], None] | None = None
) -> dict[str, list[Bank]]:
    """Both splits' banks at every saved epoch of a model, read from beside its checkpoints or
    computed (about 1.5 s per epoch and 10,000 digits on two cores): {"train": [epoch 1, ...],
    "test": [...]}. The training split holds the digits the model trained on (its
    ``train_limit``). ``progress(fraction, text)`` after each batch."""
    sizes = _bank_sizes(info, data)
    total = info.epochs_done * sum(sizes.values())
    done = 0
    banks: dict[str, list[Bank]] = {split: [] for split in SPLITS}
    for epoch in range(1, info.epochs_done + 1):
        model = checkpoints.load_checkpoint(info.folder, epoch)
        for split in SPLITS:

            def step(count: int, before: int = done, split: str = split, epoch: int = epoch) -> None:
                if progress is not None:
                    progress(
                        (before + count) / total,
                        f"Saved point {epoch} of {info.epochs_done} ({info.config.point_name(epoch)}): "
                        f"{count:,} of {sizes[split]:,} {split} {data.words.plural}",
                    )

            banks[split].append(
                load_or_compute_bank(
                    model, data.split(split), Point(info.folder, epoch, split, data.fingerprint), sizes[split], step
                )
            )
            done += sizes[split]
    return banks


def _bank_sizes(info: checkpoints.CheckpointInfo, data: Mnist) -> dict[str, int]:
    """Digits banked per split: the training digits the model trained on, every test digit."""
    return {"train": info.config.train_limit or len(data.train), "test": len(data.test)}


def bank_runs(info: checkpoints.CheckpointInfo, data: Mnist) -> list[runs.Run]:
    """Every run :func:`load_or_compute_banks` keeps: both splits at every saved point."""
    sizes = _bank_sizes(info, data)
    return [
        bank_run(Point(info.folder, epoch, split, data.fingerprint), sizes[split])
        for epoch in range(1, info.epochs_done + 1)
        for split in SPLITS
    ]
