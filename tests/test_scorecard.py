"""The scorecard: a fixed sample, means with 95% intervals by hand, a ranking and words that
follow the numbers, a disk cache beside the checkpoint, and the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core import scorecard
from core.checkpoints import ModelRef
from core.evaluate import Evaluation
from core.scorecard import COLUMNS, Cell, Scorecard, _cell, sample_indices
from core.train import load_or_train
from tests.conftest import tiny_config


def evaluation_with(labels: np.ndarray, wrong: np.ndarray) -> Evaluation:
    logits = np.zeros((len(labels), 10), np.float32)
    preds = np.where(wrong, (labels + 1) % 10, labels)
    logits[np.arange(len(labels)), preds] = 5.0
    return Evaluation(logits=logits, labels=labels)


def test_sample_has_every_mistake_then_is_stratified_by_class():
    labels = np.repeat(np.arange(10), 50)
    wrong = np.zeros(500, bool)
    wrong[[3, 77, 401]] = True
    chosen = sample_indices(evaluation_with(labels, wrong), 103, seed=1)
    assert len(chosen) == len(set(chosen.tolist())) == 103
    assert {3, 77, 401} <= set(chosen.tolist())
    counts = np.bincount(labels[chosen[3:]], minlength=10)
    assert counts.max() - counts.min() <= 1  # the rest drawn per class in turn
    assert np.array_equal(chosen, sample_indices(evaluation_with(labels, wrong), 103, seed=1))  # fixed


def test_cell_mean_and_95_interval_by_hand():
    values = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    cell = _cell(values)
    half = 1.96 * math.sqrt(((1.5**2 + 0.5**2) * 2) / 3) / 2  # sample std of 1..4, over sqrt(4)
    assert cell.mean == 2.5 and cell.n == 4
    assert cell.low == pytest.approx(2.5 - half) and cell.high == pytest.approx(2.5 + half)
    assert math.isnan(_cell(np.array([np.nan])).mean)


def card_with(values: dict[str, dict[str, float]]) -> Scorecard:
    rows = {
        method: {key: Cell(row.get(key, 0.0), 0.0, 0.0, 10) for key, *_ in COLUMNS} for method, row in values.items()
    }
    return Scorecard("0123456789abcdef", 10, 2, 1.0, rows, "Not scored: the network did not fit.")


def test_best_ranking_and_words_follow_the_numbers():
    good = {"passes": 1.0, "deletion_passes": 0.9, "deletion_gain": 0.3, "deletion_vs_random_net": 0.3}
    good |= {"shape_flags": 0.1, "deletion_vs_ink": 0.2}
    edges = {"passes": 0.2, "deletion_passes": 0.7, "deletion_gain": 0.2, "deletion_vs_random_net": 0.05}
    edges |= {"shape_flags": 0.8, "deletion_vs_ink": 0.1}
    card = card_with({"A": good, "B": edges, "C": {**good, "deletion_vs_random_net": 0.2, "sensitivity": -1}})
    assert card.best("deletion_vs_random_net") == "A"
    assert card.best("sensitivity") == "C"  # lower is better there
    assert card.ranking() == ["A", "C", "B"]
    assert card.checks_passed("B") == 2
    words = card.summary()
    assert "B fails the randomisation check" in words
    assert "For B, on most digits a map taken from a fully random network deletes" in words
    assert Scorecard.from_json(card.to_json()) == card
    assert "*" in scorecard.format_table(card)


@pytest.mark.slow
def test_cli_computes_once_then_reads_the_cache(tmp_path, monkeypatch, capsys):
    """On a fresh model every column has a number, data randomisation included. Its own cache:
    a model added to the shared one would become the newest, which page tests open by default."""
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    model_cache = tmp_path
    trained = load_or_train(tiny_config(seed=61), root=model_cache)
    assert scorecard.main(["--model", trained.info.key, "--digits", "12"]) == 0
    out = capsys.readouterr().out
    assert "Over 12 test digits" in out and "Guided Backprop" in out
    path = next((model_cache / "models" / trained.info.key).glob("scorecard_epoch01_12_*.json"))
    monkeypatch.setattr(scorecard, "compute", lambda *a, **k: pytest.fail("recomputed instead of read"))
    card = scorecard.load_or_compute(ModelRef(trained.info.key), 12, root=model_cache)
    assert card.digits == 12 and path.is_file()
    assert all(row["data_randomisation"].n > 0 for row in card.rows.values() if row["uninformative"].mean < 1)
    assert "memorised" in card.shuffled


def test_summary_says_why_data_randomisation_is_not_scored():
    card = card_with({"A": {"data_randomisation": math.nan}})
    card = Scorecard(
        card.model,
        10,
        2,
        1.0,
        {"A": {**card.rows["A"], "data_randomisation": Cell(math.nan, math.nan, math.nan, 0)}},
        card.shuffled,
    )
    assert "The data-randomisation check is not scored. Not scored: the network did not fit." in card.summary()


def test_cli_names_a_missing_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    assert scorecard.main(["--model", "0123456789abcdef"]) == 1
    assert "Train it first" in capsys.readouterr().err
