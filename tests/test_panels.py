"""The pure parts of dashboard.panels: tile captions, progress texts, prediction texts and
what a chart click hands back. (The panels themselves are drawn in test_pages.py.)"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from core.config import TrainConfig
from core.evaluate import Evaluation
from core.jobs import QUEUED, RUNNING, WAITING, JobStatus
from core.train import Progress
from dashboard import panels
from dashboard.view import DRAWN, Sample


def probs_row(pred: int, confidence: float, runner_up: int) -> np.ndarray:
    """Probabilities with ``confidence`` on ``pred``, the rest mostly on ``runner_up``."""
    row = np.linspace(0.01, 0.02, 10) * (1 - confidence)  # distinct: the top three are well defined
    row[pred] = confidence
    row[runner_up] = 0
    row[runner_up] = 1 - row.sum()
    return row


@pytest.fixture
def evaluation() -> Evaluation:
    """Three digits: a right 3 (90%), a 5 read as 8 (75%), a right 0 (99.5%)."""
    probs = np.stack([probs_row(3, 0.90, 8), probs_row(8, 0.75, 5), probs_row(0, 0.995, 6)])
    return Evaluation(logits=np.log(probs).astype(np.float32), labels=np.array([3, 5, 0]))


def test_tile_captions_say_true_predicted_and_confidence(evaluation):
    captions, wrong, hover = panels.tile_captions(evaluation, np.array([0, 1, 2]))
    assert captions == ["3 90%", "5→8 75%", "0 100%"]
    assert wrong.tolist() == [False, True, False]  # the figure draws these captions red
    assert hover[1].startswith("#1 · true 5 · predicted 8<br>8: 75.0% · 5: ")
    assert hover[0].count("%") == 3  # the three likeliest classes


def test_tile_captions_short_form_and_a_subset(evaluation):
    captions, wrong, hover = panels.tile_captions(evaluation, np.array([1, 0]), short=True)
    assert captions == ["75%", "90%"]
    assert wrong.tolist() == [True, False]
    assert hover[0].startswith("#1 · true 5 · predicted 8")


def status(state: str, **fields) -> JobStatus:
    defaults = dict(progress=None, position=0, estimate_s=None, message="", result=None)
    return JobStatus(key="k" * 16, config=TrainConfig(), state=state, **{**defaults, **fields})


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (status(QUEUED, position=2, estimate_s=42.4), (0.0, "Queued: place 2 in line · about 42 s left")),
        (status(QUEUED, position=1), (0.0, "Queued: place 1 in line")),
        (
            status(WAITING, message="Another process is training this model; waiting for it."),
            (0.0, "Another process is training this model; waiting for it."),
        ),
        (status(RUNNING), (0.0, "Preparing to train…")),
        (
            status(RUNNING, progress=Progress(1, 2, 5, 20, 0.61234, None), estimate_s=30.0),
            (0.125, "Training: epoch 1/2 · loss 0.612 · about 30 s left"),
        ),
        (
            status(RUNNING, progress=Progress(2, 3, 10, 20, 0.1234, 0.95123)),
            (0.5, "Training: epoch 2/3 · loss 0.123 · test accuracy so far 95.12%"),
        ),
    ],
    ids=["queued", "queued-no-estimate", "waiting", "preparing", "first-epoch", "later-epoch"],
)
def test_job_progress(job, expected):
    fraction, text = panels.job_progress(job)
    assert text == expected[1]
    assert fraction == pytest.approx(expected[0])


def test_prediction_text_correct_wrong_and_without_label():
    probs = np.full(10, 0.008 / 9, dtype=np.float32)
    probs[5] = 0.992
    right = panels.prediction_text(Sample("test", 8), 5, probs)
    assert right == "**test #8**: the network reads **5** (99.2%) — correct"
    assert (
        panels.prediction_text(Sample("train", 12345), 3, probs)
        == "**train #12,345**: the network reads **5** (99.2%) — **wrong**, it is a 3"
    )
    assert panels.prediction_text(Sample(DRAWN, 0), None, probs) == "**your digit**: the network reads **5** (99.2%)"


def fake_click(monkeypatch, points: list[dict]) -> None:
    """What Streamlit keeps under a chart's key after a click: ``.selection.points``."""
    chart = SimpleNamespace(selection=SimpleNamespace(points=points))
    monkeypatch.setattr(panels.st, "session_state", {"chart": chart})


@pytest.mark.parametrize(
    ("customdata", "expected"),
    [
        ({"1": 9, "0": 4}, [4, 9]),  # how the browser sends an array: an object keyed "0", "1", …
        ({"10": "k", "2": "c", "0": "a", "1": "b"}, ["a", "b", "c", "k"]),  # in numeric order, not text order
        ([4, 9, 17, 0.2], [4, 9, 17, 0.2]),
        ((4, 9), [4, 9]),
        (1234, [1234]),
    ],
    ids=["object", "object-numeric-order", "list", "tuple", "scalar"],
)
def test_clicked_gives_the_customdata_as_a_list(monkeypatch, customdata, expected):
    fake_click(monkeypatch, [{"customdata": customdata, "x": 1, "y": 2}, {"customdata": [0]}])
    assert panels.clicked("chart") == expected  # the first point clicked


def test_clicked_nothing_is_none(monkeypatch):
    fake_click(monkeypatch, [])
    assert panels.clicked("chart") is None
