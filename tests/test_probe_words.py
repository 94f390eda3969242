"""core.probe_words: the sentences name the classes and numbers they are given, and pick the
right case (a flip on one side, both, none; reached or not; moved or settled)."""

import numpy as np

from core import probe_words
from core.probes import KINDS, Counterfactual, Sweep

NAMES = tuple(str(k) for k in range(10))


def _sweep(preds, flips):
    values = np.array([-10.0, -5.0, 0.0, 5.0, 10.0])
    probs = np.eye(10, dtype=np.float32)[preds]
    return Sweep("rotation", values, np.zeros((5, 28, 28)), probs, np.array(preds), 3, flips, {})


def test_flip_sentence_names_where_the_answer_changes():
    bend = KINDS["rotation"]
    assert probe_words.flip_sentence(_sweep([3, 3, 3, 3, 3], (None, None)), bend, NAMES) == (
        "Across the whole range the network keeps reading 3."
    )
    both = probe_words.flip_sentence(_sweep([5, 3, 3, 3, 8], (-10.0, 10.0)), bend, NAMES)
    assert both == f"It reads 3 as it is; at -10 {bend.unit} it reads 5 and at 10 {bend.unit} it reads 8."
    one = probe_words.flip_sentence(_sweep([3, 3, 3, 7, 7], (None, 5.0)), bend, NAMES)
    assert one == f"It reads 3 as it is; at 5 {bend.unit} it reads 7."


def test_edit_and_moved_sentences():
    before = np.array([0.1, 0.8, 0.1] + [0.0] * 7)
    after = np.array([0.7, 0.2, 0.1] + [0.0] * 7)
    assert probe_words.edit_sentence(before, after, NAMES, "test #4") == (
        "The network now reads 0 (70.0%); test #4 as it was: 1 (80.0%)."
    )
    assert probe_words.edit_sentence(before, before, NAMES, "x").startswith("The network still reads 1 (80.0%)")
    assert probe_words.moved_sentence(before, after, NAMES, "epoch 1", "epoch 3") == (
        "From epoch 1 to epoch 3 the probability of 0 rose most (+60.0%) and that of 1 fell most (-60.0%)."
    )
    assert "the answer was settled" in probe_words.moved_sentence(before, before + 0.004, NAMES, "a", "b")


def test_counterfactual_sentence_reports_the_rerun_probability():
    probs = np.full(10, 0.01, dtype=np.float32)
    probs[9] = 0.91
    image = np.zeros((28, 28), np.float32)
    reached = Counterfactual(image, image, image, probs, True, 42, 3.25, 9, 0.9)
    assert probe_words.counterfactual_sentence(reached, NAMES) == (
        "Read as 9 with 91.0% after 42 steps, changing 3.2 pixels' worth of ink."
    )
    short = Counterfactual(image, image, image, probs, False, 300, 9.0, 9, 0.95)
    text = probe_words.counterfactual_sentence(short, NAMES)
    assert "reached only 91.0% for 9" in text and "the network now reads 9" in text and "at 95%" in text
