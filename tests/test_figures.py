"""Figures: the numbers each figure carries are the numbers it was given, and nothing drawn is NaN
where a value should be."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dashboard import figures


@pytest.fixture
def layer_maps():
    rng = np.random.default_rng(0)
    return [rng.normal(size=(s, s)).astype(np.float32) for s in (26, 24, 10, 8)]


def test_raw_layer_maps_each_on_its_own_grid_and_finite(layer_maps):
    """Each layer's map keeps its own resolution on its own axes; every value is finite and
    scaled to its own maximum, so a small conv4 map is not blanked by NaN padding."""
    layer_maps[3][:] = 0.0  # a blank map (Grad-CAM at conv4 often is) must draw white, not NaN
    fig = figures.layer_maps(layer_maps, ["conv1", "conv2", "conv3", "conv4"])
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert [np.asarray(h.z).shape for h in heatmaps] == [(26, 26), (24, 24), (10, 10), (8, 8)]
    assert len({(h.xaxis, h.yaxis) for h in heatmaps}) == 4  # four separate grids
    for h, m in zip(heatmaps, layer_maps, strict=True):
        z = np.asarray(h.z, dtype=float)
        assert np.isfinite(z).all()
        np.testing.assert_allclose(np.asarray(h.customdata), m)  # hover shows the raw values
        if np.any(m):
            assert np.abs(z).max() == pytest.approx(1.0)
    domains = [fig.layout[f"xaxis{'' if i == 0 else i + 1}"].domain for i in range(4)]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(domains))  # side by side, no overlap


def test_attribution_row_scales_each_map_to_its_own_maximum():
    maps = [np.full((28, 28), 2.0, np.float32), np.zeros((28, 28), np.float32)]
    maps[0][0, 0] = -4.0
    fig = figures.attribution_row(maps, ["a", "b"], np.zeros((28, 28), np.uint8))
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z[0, 0] == -1.0 and z[1, 1] == 0.5
    assert np.isnan(z[:, 28:31]).all()  # the gap between maps
    assert np.all(z[:, 31:59] == 0)  # the blank map is 0 (white), not NaN


def test_confusion_counts_and_hidden_diagonal():
    matrix = np.arange(100).reshape(10, 10)
    fig = figures.confusion(matrix, show_diagonal=False, normalise=False, classes=tuple("0123456789"))
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.isnan(np.diag(z)).all()
    off = ~np.eye(10, dtype=bool)
    assert np.array_equal(z[off], matrix[off])
    cells = np.asarray(fig.data[1].customdata)
    assert cells.shape == (100, 4) and cells[49].tolist()[:3] == [4, 9, 49]


def test_digit_grid_tiles_carry_their_indices():
    images = np.zeros((12, 28, 28), np.uint8)
    indices = np.arange(100, 112)
    fig = figures.digit_grid(images, indices, ["x"] * 12, np.zeros(12, bool), ["h"] * 12, columns=5, selected=3)
    tiles = next(t for t in fig.data if t.name == "tiles")
    assert np.asarray(tiles.customdata).reshape(-1).tolist() == indices.tolist()
    assert len(fig.layout.shapes) == 1  # the selected tile is outlined


def test_feature_maps_shared_and_per_channel_scales():
    maps = np.stack([np.full((4, 4), 1.0), np.full((4, 4), 4.0)]).astype(np.float32)
    shared = np.asarray(figures.feature_maps(maps, "conv1", shared_scale=True).data[0].z, dtype=float)
    own = np.asarray(figures.feature_maps(maps, "conv1", shared_scale=False).data[0].z, dtype=float)
    assert np.nanmax(shared) == 1.0 and np.nanmin(shared) == 0.25
    assert np.nanmin(own) == 1.0  # every channel scaled to its own maximum


def test_the_data_map_and_confusion_hovers_name_the_classes():
    """Digits keep the small numeric hover; another data set's points and cells name their classes."""
    from dashboard.data_figures import data_map
    from tests.conftest import FASHION

    points = np.zeros((4, 2), np.float32)
    labels, preds = np.array([0, 4, 9, 4]), np.array([0, 9, 9, 4])
    digits = data_map(points, labels, preds, tuple("0123456789"), "true class", None, np.ones(2))
    assert all(t.hovertext is None for t in digits.data if t.name == "digits")
    named = data_map(points, labels, preds, FASHION, "true class", None, np.ones(2))
    texts = [h for t in named.data if t.name == "digits" for h in t.hovertext]
    expected = [
        "test #0: true T-shirt/top, read as T-shirt/top",
        "test #1: true Coat, read as Ankle boot",
        "test #2: true Ankle boot, read as Ankle boot",
        "test #3: true Coat, read as Coat",
    ]
    assert sorted(texts) == expected
    matrix = np.zeros((10, 10), int)
    matrix[4, 9] = 3
    cells = next(t for t in figures.confusion(matrix, False, False, FASHION).data if t.name == "cells")
    assert "true Coat → predicted Ankle boot<br>3 images, 100.0% of class Coat" in cells.hovertext
