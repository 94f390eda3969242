"""Evaluation on the test set: one batched pass gives everything the dashboard shows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from core import runs
from core.data import Split, to_tensor

EVAL_BATCH = 2000  # big batches: inference needs no gradients, so memory is no concern


@dataclass(frozen=True)
class Evaluation:
    """Results on a split; derived arrays are computed once, on first use.

    logits and probs float32 (N, K) for K classes (the network's output width); preds and
    labels int64 (N,).
    """

    logits: np.ndarray
    labels: np.ndarray

    @property
    def classes(self) -> int:
        """K: how many classes the network scores."""
        return self.logits.shape[1]

    @cached_property
    def probs(self) -> np.ndarray:
        return softmax(self.logits)

    @cached_property
    def preds(self) -> np.ndarray:
        return self.logits.argmax(axis=1).astype(np.int64)

    @cached_property
    def confidence(self) -> np.ndarray:
        """Probability of the predicted class, float32 (N,)."""
        return self.probs.max(axis=1)

    @cached_property
    def loss(self) -> np.ndarray:
        """Per-image cross-entropy, float32 (N,)."""
        return torch.nn.functional.cross_entropy(
            torch.from_numpy(self.logits), torch.from_numpy(self.labels), reduction="none"
        ).numpy()

    @cached_property
    def accuracy(self) -> float:
        return float((self.preds == self.labels).mean()) if len(self.labels) else 0.0

    @cached_property
    def confusion(self) -> np.ndarray:
        """int64 (K, K): row = true class, column = predicted class."""
        return confusion_matrix(self.labels, self.preds, self.classes)

    @cached_property
    def misclassified(self) -> np.ndarray:
        """Indices of wrong predictions, most confident mistakes first, int64 (M,)."""
        wrong = np.flatnonzero(self.preds != self.labels)
        return wrong[np.argsort(-self.confidence[wrong], kind="stable")]

    def per_class_accuracy(self) -> np.ndarray:
        """float64 (K,): the diagonal of the confusion matrix over its row sums."""
        matrix = self.confusion
        return np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)

    def cell(self, true: int, pred: int) -> np.ndarray:
        """Indices with this true and predicted class, most confident first."""
        idx = np.flatnonzero((self.labels == true) & (self.preds == pred))
        return idx[np.argsort(-self.confidence[idx], kind="stable")]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities float32 (..., K) from logits (..., K), along the last axis."""
    # np.array copies, so read-only arrays (cached banks) convert without a warning
    return torch.softmax(torch.from_numpy(np.array(logits, dtype=np.float32)), dim=-1).numpy()


def per_class_mean(values: np.ndarray, labels: np.ndarray, classes: int | None = None) -> np.ndarray:
    """float64 (classes,): the mean of ``values`` (N,) over the digits of each true class
    (``labels`` int64 (N,)); NaN for a class with no digits. ``classes`` defaults to the
    largest label plus one."""
    labels = np.asarray(labels)
    classes = classes if classes is not None else (int(labels.max()) + 1 if len(labels) else 0)
    counts = np.bincount(labels, minlength=classes)[:classes]
    sums = np.bincount(labels, weights=np.asarray(values, dtype=np.float64), minlength=classes)[:classes]
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 (C, C) counts, rows true, columns predicted."""
    flat = np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def predict_logits(model: torch.nn.Module, images: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Logits float32 (N, 10) for float32 images (N, 1, 28, 28), on the model's device.

    The model is only read, never switched between train and eval mode (it has no dropout
    or batch norm, so the mode changes nothing here), so threads may share it.
    """
    device = next(model.parameters()).device
    with torch.inference_mode():
        return torch.cat(
            [model(images[i : i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
        )


def evaluate(model: torch.nn.Module, split: Split) -> Evaluation:
    """One batched pass over a split."""
    logits = predict_logits(model, to_tensor(split.images))
    return Evaluation(logits=logits.numpy(), labels=split.labels)


def evaluate_accuracy(model: torch.nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Accuracy over any iterable of (images (B, 1, 28, 28), labels (B,)) batches, e.g. a DataLoader."""
    device = next(model.parameters()).device
    correct = total = 0
    with torch.inference_mode():
        for images, labels in loader:
            preds = model(images.to(device)).argmax(dim=1).cpu()
            correct += int((preds == labels).sum())
            total += len(labels)
    return correct / max(total, 1)


def evaluation_run(at: runs.Point) -> runs.Run:
    """Where a split's logits under one saved point's weights are kept."""
    return runs.Run(at, "evaluation")


def load_or_evaluate(model: torch.nn.Module, split: Split, at: runs.Point) -> Evaluation:
    """The kept evaluation of ``split`` (the one ``at`` names) beside a checkpoint, or a fresh
    one (then kept): a run labelled with the model key, epoch, split and the data's fingerprint."""

    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    classes = linears[-1].out_features if linears else None

    def decode(tensors: dict[str, torch.Tensor]) -> Evaluation | None:
        logits = tensors["logits"].numpy()
        # one row per digit, as wide as the model's last linear layer (any width >= 2 for a model without one)
        width = logits.shape[1] if logits.ndim == 2 else 0
        fits = logits.ndim == 2 and len(logits) == len(split) and width >= 2 and width == (classes or width)
        return Evaluation(logits=logits, labels=split.labels) if fits else None

    return evaluation_run(at).get(
        lambda: evaluate(model, split), lambda found: _encode(torch.from_numpy(found.logits)), decode
    )


def save_evaluation(at: runs.Point, logits: torch.Tensor) -> None:
    """Keep a split's logits beside a checkpoint, as :func:`load_or_evaluate` reads them. The
    trainer writes the test split's at each saved point from the pass that measured its
    accuracy, so no page has to run it again (1-2 s of a core, while training)."""
    evaluation_run(at).keep(_encode(logits))


def _encode(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"logits": logits.float().contiguous()}


SORT_ORDERS = ("index", "confidence, lowest first", "confidence, highest first", "loss, highest first")


def filter_indices(
    evaluation: Evaluation,
    true: int | None = None,
    pred: int | None = None,
    correct: bool | None = None,
    sort: str = "index",
) -> np.ndarray:
    """Indices int64 (M,) matching every given filter (None = any), in the chosen order."""
    keep = np.ones(len(evaluation.labels), dtype=bool)
    if true is not None:
        keep &= evaluation.labels == true
    if pred is not None:
        keep &= evaluation.preds == pred
    if correct is not None:
        keep &= (evaluation.preds == evaluation.labels) == correct
    idx = np.flatnonzero(keep)
    if sort == "index":
        return idx
    if sort == "confidence, lowest first":
        return idx[np.argsort(evaluation.confidence[idx], kind="stable")]
    if sort == "confidence, highest first":
        return idx[np.argsort(-evaluation.confidence[idx], kind="stable")]
    if sort == "loss, highest first":
        return idx[np.argsort(-evaluation.loss[idx], kind="stable")]
    raise ValueError(f"unknown sort order {sort!r}: use one of {', '.join(SORT_ORDERS)}")
