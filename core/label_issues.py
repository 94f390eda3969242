"""Suspicious labels: the digits whose given label the model most doubts, by confident
learning (Northcutt, Jiang & Chuang 2021, "Confident learning: estimating uncertainty in
dataset labels", JAIR 70), as implemented by cleanlab.

Confident learning estimates, per pair of classes, how many digits labelled i truly belong
to j, from the model's probabilities and per-class confidence thresholds; it flags that many
digits (those the model most confidently places elsewhere) and ranks them by
self-confidence, the probability the model gives the given label (low: suspicious).

The probabilities should come from a model that did not train on those labels. For the test
split they do. For the training split they are the model's own (in-sample): a network that
memorised a wrong label hides it. Measured here: a 16,614-parameter network does not
memorise 1% of flipped labels in three epochs, and in-sample probabilities found them (the
docs/data-tools.md, ``bench/label_noise.py``).

cleanlab keeps per-class arrays in module globals while it works, so calls are serialised
by a lock: safe to call from many threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np

REFERENCE = (
    "confident learning (Northcutt, Jiang & Chuang 2021, Journal of AI Research 70), ranked by self-confidence, "
    "as implemented by cleanlab"
)
_CLEANLAB = threading.Lock()


@dataclass(frozen=True)
class LabelIssues:
    """One split's suspicious labels.

    ``flagged`` int64 (K,): the digits confident learning flags, most doubted first.
    ``quality`` float32 (N,): each digit's self-confidence, the probability the model gives
    its given label (the lower, the more suspicious). ``suggested`` int64 (N,): the class the
    model gives the most probability. ``labels`` int64 (N,): the given labels.
    ``ranking`` int64 (N,): every digit once, the flagged ones first (in their order), then the
    rest by self-confidence, lowest first (ties by index).
    """

    flagged: np.ndarray
    quality: np.ndarray
    suggested: np.ndarray
    labels: np.ndarray
    ranking: np.ndarray

    def rows(self, given: int | None = None, suggested: int | None = None) -> tuple[np.ndarray, int]:
        """The whole ranking filtered by given and by suggested class, and how many of its first
        rows are flagged (they come first; the rest are not)."""
        keep = np.ones(len(self.ranking), dtype=bool)
        if given is not None:
            keep &= self.labels[self.ranking] == given
        if suggested is not None:
            keep &= self.suggested[self.ranking] == suggested
        return self.ranking[keep], int(keep[: len(self.flagged)].sum())

    def rank(self, index: int) -> int:
        """The 0-based place of digit ``index`` in the whole ranking."""
        return int(self._places[index])

    @cached_property
    def _places(self) -> np.ndarray:
        places = np.empty(len(self.ranking), dtype=np.int64)
        places[self.ranking] = np.arange(len(self.ranking))
        return places


def find(labels: np.ndarray, probs: np.ndarray) -> LabelIssues:
    """Confident learning over ``labels`` int (N,) in 0..K-1 and the model's ``probs`` float (N, K)."""
    from cleanlab.filter import find_label_issues  # 1.5 s to import: only when first needed

    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(labels) or probs.shape[1] < 2:
        raise ValueError(f"expected probabilities shaped ({len(labels)}, classes), got {probs.shape}")
    classes = probs.shape[1]
    if len(labels) and not (labels.min() >= 0 and labels.max() < classes):
        raise ValueError(f"labels must be classes 0..{classes - 1}")
    if not np.isfinite(probs).all():
        raise ValueError("probabilities contain NaN or infinite values")
    missing = sorted(set(range(classes)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"confident learning needs every class among the labels; missing: {missing}")
    with _CLEANLAB:
        flagged = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence", n_jobs=1)
    flagged = np.asarray(flagged, dtype=np.int64)
    quality = probs[np.arange(len(labels)), labels].astype(np.float32)
    rest = np.ones(len(labels), dtype=bool)
    rest[flagged] = False
    rest = np.flatnonzero(rest)
    return LabelIssues(
        flagged=flagged,
        quality=quality,
        suggested=probs.argmax(axis=1).astype(np.int64),
        labels=labels,
        ranking=np.concatenate([flagged, rest[np.argsort(quality[rest], kind="stable")]]),
    )


def found_within(ranking: np.ndarray, truly_wrong: np.ndarray, depth: int) -> float:
    """The share of the truly wrong labels among the first ``depth`` rows of a ranking."""
    truth = np.asarray(truly_wrong)
    if not len(truth):
        raise ValueError("no wrong labels to find")
    return float(np.isin(truth, np.asarray(ranking)[:depth]).mean())


def precision_recall(flagged_order: np.ndarray, truly_wrong: np.ndarray) -> tuple[float, float]:
    """Precision and recall of the first K of a ranking, K = the number of truly wrong labels:
    the share of the top K that are wrong (equal to the share of the wrong ones found, at K)."""
    truth = set(np.asarray(truly_wrong).tolist())
    if not truth:
        raise ValueError("no wrong labels to find")
    top = np.asarray(flagged_order)[: len(truth)]
    hits = len(truth.intersection(top.tolist()))
    return hits / max(len(top), 1), hits / len(truth)
