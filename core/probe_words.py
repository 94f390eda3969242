"""What the probes found, in plain sentences (as ``core.confusion.explain_cell``): where a bend
changes the answer, what the smallest change reached, how an answer moved between two points
of training or two versions of a digit. Numbers in, words out; nothing is computed here that
a page could compute differently."""

from __future__ import annotations

import numpy as np

from core.data import DIGIT_NAMES, Naming
from core.probes import Bend, Counterfactual, Sweep

SETTLED = 0.005  # a class whose probability moved less than half a point did not move


def flip_sentence(sweep: Sweep, bend: Bend, names: tuple[str, ...]) -> str:
    """Where along the sweep the answer first changes, on each side of the digit as it is."""
    was = names[sweep.original_pred]
    low, high = sweep.flips
    if low is None and high is None:
        return f"Across the whole range the network keeps reading {was}."
    parts = []
    for flip in (low, high):
        if flip is not None:
            at = int(np.flatnonzero(sweep.values == flip)[0])
            parts.append(f"at {flip:.3g} {bend.unit} it reads {names[sweep.preds[at]]}")
    return f"It reads {was} as it is; " + " and ".join(parts) + "."


def edit_sentence(before: np.ndarray, after: np.ndarray, names: tuple[str, ...], title: str) -> str:
    """The answer on an edited digit beside the answer on it as it was (probabilities (K,) each)."""
    was, now = int(before.argmax()), int(after.argmax())
    change = "still reads" if was == now else "now reads"
    return f"The network {change} {names[now]} ({after[now]:.1%}); {title} as it was: {names[was]} ({before[was]:.1%})."


def counterfactual_sentence(found: Counterfactual, names: tuple[str, ...], words: Naming | None = None) -> str:
    """What the search for the smallest change reached, from the model re-run on its result
    (``words``: what one image is called; by default as ``Naming.of(names)``)."""
    target, now = found.target, int(found.probs.argmax())
    noun = (words or Naming.of(names, "")).noun
    into = f"a {names[target]}" if names == DIGIT_NAMES else f"read as {names[target]}"
    if found.reached:
        return (
            f"Read as {names[target]} with {found.probs[target]:.1%} after {found.steps} steps, changing "
            f"{found.ink_changed:.1f} pixels' worth of ink."
        )
    return (
        f"Within its budget of {found.steps} steps the search reached only {found.probs[target]:.1%} for "
        f"{names[target]} (the network now reads {names[now]}): no small change of ink makes this {noun} "
        f"{into} at {found.confidence:.0%}. Try a lower probability or another class."
    )


def moved_sentence(before: np.ndarray, after: np.ndarray, names: tuple[str, ...], a: str, b: str) -> str:
    """Which class's probability rose and which fell most from ``a`` to ``b`` (probabilities (K,) each)."""
    change = after - before
    up, down = int(change.argmax()), int(change.argmin())
    if np.abs(change).max() < SETTLED:
        return f"From {a} to {b} no class's probability moved by half a point: the answer was settled."
    return (
        f"From {a} to {b} the probability of {names[up]} rose most ({change[up]:+.1%}) and that of "
        f"{names[down]} fell most ({change[down]:+.1%})."
    )
