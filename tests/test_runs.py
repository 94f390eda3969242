"""core.runs: one way to name, label, verify, compute and keep a run over a data set.

The fixture ``fixtures/runs_7fe3ad6`` holds every kind of run as commit 7fe3ad6 (before
core.runs) wrote them, for a seeded untrained reference CNN over the first 32 test digits:
each still opens without recomputing and gives the numbers a fresh computation gives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from core import evaluate, influence, probes, projection, runs, scorecard, units
from core.data import Split, load_mnist
from core.model import MnistCNN
from core.network import Network, network_of
from core.runs import Point

FIXTURE = Path(__file__).parent / "fixtures" / "runs_7fe3ad6"
KEY = "0123456789abcdef"
FP = "f" * 64


def _network(model) -> Network:
    return network_of(model, 10, torch.rand(2, 1, 28, 28), "the reference")


def _idle_network() -> Network:
    """The reference's layers as a network, but reading any of them fails."""
    idle = _network(MnistCNN().eval())
    idle.outputs = idle.nodes = MustNotRun.forward  # raises if anything runs
    return idle


class MustNotRun(MnistCNN):
    """The real layers, but any forward pass fails: proves a kept run was read."""

    def forward(self, x):
        raise AssertionError("recomputed instead of reading the kept run")

    def taps(self, x):
        raise AssertionError("recomputed instead of reading the kept run")


@pytest.fixture
def old(tmp_path):
    folder = tmp_path / KEY
    shutil.copytree(FIXTURE / KEY, folder)
    test = load_mnist().test
    split = Split(images=test.images[:32], labels=test.labels[:32])
    models = {}
    for epoch, name in ((2, "weights.safetensors"), (1, "weights_epoch1.safetensors")):
        model = MnistCNN().eval()
        model.load_state_dict(load_file(folder / name))
        models[epoch] = model
    return folder, split, models


def _fresh(tmp_path: Path) -> Path:
    return tmp_path / "fresh" / KEY


def test_every_run_written_before_core_runs_still_opens_without_recomputing(old, tmp_path):
    folder, split, models = old
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    idle = MustNotRun().eval()
    fresh = _fresh(tmp_path)

    kept = evaluate.load_or_evaluate(idle, split, Point(folder, 2, "test", FP))
    new = evaluate.load_or_evaluate(models[2], split, Point(fresh, 2, "test", FP))
    np.testing.assert_array_equal(kept.logits, new.logits)

    kept = units.load_or_compute_index(_idle_network(), split, Point(folder, 2, "test", FP))
    new = units.load_or_compute_index(_network(models[2]), split, Point(fresh, 2, "test", FP))
    for field in ("maximum", "mean", "position"):
        for layer, values in getattr(new, field).items():
            np.testing.assert_array_equal(getattr(kept, field)[layer], values)

    basis = projection.load_or_compute_projection(idle, split, Point(folder, 2, "test", FP))
    new_basis = projection.load_or_compute_projection(models[2], split, Point(fresh, 2, "test", FP))
    np.testing.assert_array_equal(basis.points, new_basis.points)
    np.testing.assert_array_equal(basis.components, new_basis.components)
    earlier = projection.load_or_compute_projection(idle, split, Point(folder, 1, "test", FP), basis=basis)
    new_earlier = projection.load_or_compute_projection(models[1], split, Point(fresh, 1, "test", FP), basis=new_basis)
    np.testing.assert_array_equal(earlier.points, new_earlier.points)

    kept = influence.load_or_compute_bank(idle, split, Point(folder, 2, "test", FP))
    new = influence.load_or_compute_bank(models[2], split, Point(fresh, 2, "test", FP))
    np.testing.assert_array_equal(kept.inputs, new.inputs)
    np.testing.assert_array_equal(kept.logits, new.logits)

    kept = probes.load_or_compute_flip_summary(idle, split, Point(folder, 2, "test", FP))
    new = probes.load_or_compute_flip_summary(models[2], split, Point(fresh, 2, "test", FP))
    np.testing.assert_array_equal(kept.rotation_flips, new.rotation_flips)
    np.testing.assert_array_equal(kept.shift_flips, new.shift_flips)
    assert kept.angles == new.angles and kept.shifts == new.shifts

    card = scorecard.scorecard_run(folder, 2, FP, 32).read(scorecard.Scorecard.from_json)
    assert card is not None and card.model == f"{KEY}@2" and card.digits == 32
    written = json.loads((FIXTURE / KEY / "scorecard_epoch02_32_ffffffffffffffff.json").read_text())
    assert card.to_json() == scorecard.Scorecard.from_json(written).to_json()

    # Every file was read, none rewritten, and the new version names them exactly as the old one did.
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert {p.name for p in fresh.iterdir()} == set(before) - {
        "weights.safetensors",
        "weights_epoch1.safetensors",
        "scorecard_epoch02_32_ffffffffffffffff.json",
    }


def test_a_run_labelled_for_other_weights_or_damaged_is_computed_again(tmp_path):
    run = runs.Run(Point(tmp_path / KEY, 2, "test", FP), "evaluation")
    calls = []

    def compute():
        calls.append(1)
        return torch.arange(4.0)

    def encode(t):
        return {"x": t}

    def decode(tensors):
        return tensors["x"] if runs.same_shapes(tensors, {"x": ((4,), torch.float32)}) else None

    assert torch.equal(run.get(compute, encode, decode), torch.arange(4.0)) and len(calls) == 1
    assert torch.equal(run.get(compute, encode, decode), torch.arange(4.0)) and len(calls) == 1  # read back
    assert runs.tensor_labels(run.path.read_bytes()) == {"key": KEY, "epoch": "2", "split": "test", "data": FP}

    # The same file name in another model's folder (copied by hand): labelled for other weights.
    other = runs.Run(Point(tmp_path / "fedcba9876543210", 2, "test", FP), "evaluation")
    other.point.folder.mkdir()
    shutil.copy(run.path, other.path)
    assert other.read(decode) is None

    run.path.write_bytes(run.path.read_bytes()[:40])  # half-written
    assert run.read(decode) is None
    run.get(compute, encode, decode)
    assert len(calls) == 2 and run.read(decode) is not None

    # Arrays of another shape (another version's layout): decode refuses them.
    run.keep({"x": torch.zeros(5)})
    assert run.read(decode) is None


def test_json_runs_are_labelled_and_checked(tmp_path):
    run = runs.Run(Point(tmp_path / KEY, 3, None, FP), "scorecard", (("digits", "20"),), ("20",), runs.JSON)
    assert run.name == "scorecard_epoch03_20_ffffffffffffffff.json"
    run.keep({"a": 1})
    assert json.loads(run.path.read_text())["labels"] == {"key": KEY, "epoch": "3", "data": FP, "digits": "20"}
    assert run.read(dict) == {"a": 1}
    relabelled = runs.Run(Point(tmp_path / KEY, 3, None, FP), "scorecard", (("digits", "50"),), ("20",), runs.JSON)
    assert relabelled.read(dict) is None


@pytest.mark.parametrize(
    ("kind", "split", "details", "message"),
    [
        ("evaluation", "validation", (), "unknown split"),
        ("../evaluation", "test", (), "lowercase ASCII"),
        ("evaluation", "test", ("../x",), "lowercase ASCII"),
        ("Evaluation", "test", (), "lowercase ASCII"),
    ],
)
def test_a_run_name_cannot_leave_its_folder(tmp_path, kind, split, details, message):
    with pytest.raises(ValueError, match=message):
        runs.Run(Point(tmp_path, 1, split, FP), kind, name_details=details)
