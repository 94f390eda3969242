"""Links: every view the app can produce round-trips through the query string, and a bad
link gives a warning that names what was wrong."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from core.checkpoints import CheckpointInfo, ModelRef
from core.config import TrainConfig
from core.model import MnistCNN
from core.network import network_of
from core.units import unit_layers
from dashboard.view import (
    DRAWN,
    FIRST_UNIT,
    PROBE_KINDS,
    PROBE_TOOLS,
    LabelFilter,
    Probe,
    Sample,
    Unit,
    cell_from_query,
    cell_to_query,
    check_epoch,
    check_sample,
    check_unit,
    from_query,
    label_filter_from_query,
    label_filter_to_query,
    probe_from_query,
    probe_to_query,
    to_query,
    unit_from_query,
    unit_to_query,
)

KEY = "0123456789abcdef"
OTHER = "fedcba9876543210"


def info(key: str, epochs: int) -> CheckpointInfo:
    return CheckpointInfo(
        key=key,
        folder=None,
        config=TrainConfig(epochs=epochs),
        epochs_done=epochs,
        test_accuracy=0.99,
        train_seconds=1.0,
        device="cpu",
        created="2026-01-01T00:00:00+00:00",
        data_source="bundled",
        data_fingerprint="f" * 64,
    )


MODELS = {KEY: info(KEY, 3), OTHER: info(OTHER, 1)}
REFS = [ModelRef(KEY), ModelRef(KEY, 1), ModelRef(KEY, 2), ModelRef(OTHER), None]
SAMPLES = [Sample("test", 0), Sample("test", 9999), Sample("train", 59999), Sample("train", 123)]


@pytest.mark.parametrize("ref", REFS, ids=str)
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.title)
def test_every_view_round_trips(ref, sample):
    assert from_query(to_query(ref, sample), MODELS) == (ref, sample, [])


def test_the_users_own_digit_is_not_written_to_links():
    assert to_query(ModelRef(KEY), Sample(DRAWN, 0)) == {"model": KEY}


def test_a_link_to_the_last_epoch_is_the_model_itself():
    """A 3-epoch model's link may name its last epoch: that is no warning, and the same view."""
    ref, sample, warnings = from_query({"model": f"{KEY}@3", "split": "test", "index": "5"}, MODELS)
    assert (ref, sample, warnings) == (ModelRef(KEY), Sample("test", 5), [])


@pytest.mark.parametrize(
    ("params", "expected_ref", "message"),
    [
        ({"model": f"{KEY}@9"}, ModelRef(KEY), "saved epochs 1 to 3"),
        ({"model": f"{KEY}@0"}, None, "not a positive whole number"),
        ({"model": f"{KEY}@x"}, None, "must be a whole number"),
        ({"model": "nonsense"}, None, "is not a model key"),
        ({"model": "aaaaaaaaaaaaaaaa"}, None, "not in this machine's cache"),
    ],
)
def test_bad_models_in_links_are_named(params, expected_ref, message):
    ref, _, warnings = from_query(params, MODELS)
    assert ref == expected_ref
    assert len(warnings) == 1 and message in warnings[0], warnings


@pytest.mark.parametrize(
    ("params", "expected", "message"),
    [
        ({"split": "validation", "index": "4"}, Sample("test", 0), "only 'test' and 'train' exist"),
        ({"split": "train", "index": "x"}, Sample("train", 0), "is not a number"),
    ],
)
def test_bad_samples_in_links_are_named(params, expected, message):
    _, sample, warnings = from_query(params, MODELS)
    assert sample == expected and message in warnings[0]


def test_sample_is_checked_against_the_data(reference_model):
    from core.data import load_mnist

    data = load_mnist()
    assert check_sample(Sample("test", 9999), data, False) == (Sample("test", 9999), [])
    sample, warnings = check_sample(Sample("test", 10000), data, False)
    assert sample == Sample("test", 0) and "out of range" in warnings[0] and "0 to 9,999" in warnings[0]
    # a smaller data set (another model's data) makes a valid index invalid
    small = dataclasses.replace(data, test=dataclasses.replace(data.test, labels=data.test.labels[:100]))
    assert check_sample(Sample("test", 500), small, False)[0] == Sample("test", 0)
    assert check_sample(Sample(DRAWN, 0), data, False) == (Sample("test", 0), [])  # nothing drawn here
    assert check_sample(Sample(DRAWN, 0), data, True) == (Sample(DRAWN, 0), [])


def test_check_epoch():
    assert check_epoch(ModelRef(KEY, 2), MODELS[KEY]) == (ModelRef(KEY, 2), [])
    assert check_epoch(ModelRef(KEY, 3), MODELS[KEY]) == (ModelRef(KEY), [])
    assert check_epoch(ModelRef(KEY, 4), MODELS[KEY])[0] == ModelRef(KEY)


REFERENCE = unit_layers(network_of(MnistCNN().eval(), 10, torch.rand(2, 1, 28, 28), "the reference"))


def every_unit():
    for layer, found in REFERENCE.items():
        rows, cols = found.grid or (1, 1)
        for unit in range(found.units):
            yield Unit(layer, unit)
            if found.grid is not None:
                yield Unit(layer, unit, (unit % rows, (unit * 7) % cols))
                yield Unit(layer, unit, (rows - 1, cols - 1))


def test_every_unit_round_trips():
    units = list(every_unit())
    assert len(units) == 4 * 3 + 8 * 3 + 16 * 3 + 32 * 3 + 20
    for unit in units:
        assert unit_from_query(unit_to_query(unit)) == (unit, [])
        assert check_unit(unit, REFERENCE) == (unit, [])


def test_unit_counts_come_from_the_model():
    assert {name: found.units for name, found in REFERENCE.items()} == {
        "conv1": 4,
        "conv2": 8,
        "conv3": 16,
        "conv4": 32,
        "fc1": 20,
    }


@pytest.mark.parametrize(
    ("params", "expected", "message"),
    [
        ({}, FIRST_UNIT, None),
        ({"layer": "pool1", "unit": "0"}, FIRST_UNIT, "no layer 'pool1' with unit cards"),
        ({"layer": "conv2", "unit": "8"}, Unit("conv2", 0), "conv2 has channels 0 to 7, not 8"),
        ({"layer": "conv2", "unit": "x"}, FIRST_UNIT, "cannot be shown"),
        ({"layer": "conv2", "unit": "-1"}, FIRST_UNIT, "cannot be shown"),
        ({"layer": "conv2", "unit": "3", "at": "24,0"}, Unit("conv2", 3), "not a position of conv2's 24×24 grid"),
        ({"layer": "conv2", "unit": "3", "at": "1;2"}, Unit("conv2", 3), "not a ROW,COL"),
        ({"layer": "fc1", "unit": "3", "at": "0,0"}, Unit("fc1", 3), "not a position of fc1"),
    ],
)
def test_bad_units_in_links_are_named(params, expected, message):
    unit, warnings = unit_from_query(params)
    unit, more = check_unit(unit, REFERENCE)
    warnings += more
    assert unit == expected
    assert (not warnings) if message is None else message in warnings[0]


def test_a_unit_of_another_network_falls_back_to_its_first():
    """A link to conv3 opened on a network without it: its own first unit, and a sentence."""
    lenet = {"0": REFERENCE["conv1"], "3": REFERENCE["conv2"]}
    unit, warnings = check_unit(Unit("conv3", 5), lenet)
    assert unit == Unit("0", 0) and "no layer 'conv3'" in warnings[0] and "0, 3" in warnings[0]


def test_every_confusion_cell_round_trips_and_bad_ones_are_named():
    for true in range(10):
        for pred in range(10):
            assert cell_from_query(cell_to_query((true, pred))) == ((true, pred), [])
    assert cell_from_query({}) == (None, [])
    for bad in ("10,1", "1", "a,b", "1,2,3", "-1,2"):
        cell, warnings = cell_from_query({"cell": bad})
        assert cell is None and "not TRUE,PREDICTED" in warnings[0]


def test_every_probe_round_trips_and_bad_ones_are_named():
    for tool in PROBE_TOOLS:
        for kind in PROBE_KINDS:
            for target in (None, 0, 9):
                probe = Probe(tool, kind, target)
                assert probe_from_query(probe_to_query(probe)) == (probe, [])
    assert probe_from_query({}) == (None, [])
    assert probe_from_query({"probe": "bend"}) == (Probe("bend"), [])
    for bad in ({"probe": "smash"}, {"bend": "twist"}, {"toward": "ten"}, {"toward": "12"}):
        probe, warnings = probe_from_query(bad)
        assert probe is None and len(warnings) == 1 and "showing the first tool" in warnings[0], bad


def test_probe_kinds_are_cores():
    from core import probes

    assert tuple(probes.KINDS) == PROBE_KINDS


def test_every_label_filter_round_trips_and_bad_ones_are_named():
    for split in ("train", "test"):
        for given in (None, 0, 9):
            for says in (None, 3):
                for page in (1, 2, 1500):
                    chosen = LabelFilter(split, given, says, page)
                    assert label_filter_from_query(label_filter_to_query(chosen)) == (chosen, [])
    assert "page" not in label_filter_to_query(LabelFilter())
    assert label_filter_from_query({}) == (None, [])
    assert label_filter_from_query({"given": "4"}) == (LabelFilter("train", 4), [])
    assert label_filter_from_query({"page": "3"}) == (LabelFilter(page=3), [])
    for bad in ({"labels": "validation"}, {"given": "four"}, {"says": "10"}, {"page": "0"}, {"page": "2.5"}):
        chosen, warnings = label_filter_from_query(bad)
        assert chosen is None and len(warnings) == 1 and "every training label" in warnings[0], bad
