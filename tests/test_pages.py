"""Every dashboard page, headless with AppTest, on the session's real reference model.

The model and digit a session resolves (links, damaged caches, first start) are in
test_state.py; the sidebar (switching, stepping epochs, training) in test_sidebar.py.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from core.checkpoints import ModelRef
from core.data import load_mnist
from core.evaluate import evaluate
from core.runs import Point
from core.train import load_or_train
from tests.apptest import (
    PAGES,
    array,
    chart_specs,
    finish_background,
    open_app,
    progress_texts,
    server_env,
    texts,
)
from tests.conftest import tiny_config

__all__ = ["server_env"]  # a fixture: imported for pytest to find


@pytest.fixture(scope="module")
def test_eval(reference_model):
    return evaluate(reference_model.model, load_mnist().test)


def tile_indices(spec: dict) -> list[int]:
    """The dataset indices of a digit grid's clickable tiles."""
    tiles = next(trace for trace in spec["data"] if trace.get("name") == "tiles")
    return array(tiles["customdata"]).reshape(-1).astype(int).tolist()


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(reference_model, page):
    at = open_app(page)
    # They wait for a drawing, a click, or the unit index's background computation.
    waits = ("your_digit", "trust", "units", "data_map", "labels", "influence")
    if page.removeprefix("app_pages/").removesuffix(".py") not in waits:
        assert at.get("plotly_chart"), f"{page} drew no chart"
    assert "reference recipe" in texts(at)  # the sidebar names the loaded model


def test_overview_model_card(reference_model, test_eval):
    at = open_app()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{test_eval.accuracy:.2%}"
    assert metrics["Parameters"] == "16,614"
    table = at.dataframe[0].value
    assert list(table["parameters"]) == [40, 296, 0, 1168, 4640, 0, 10260, 210, 16614]
    # Every step of the graph, as the network contract finds it: hooks on a copy give the same shapes.
    import copy

    import torch

    graph = at.dataframe[1].value
    private, shapes = copy.deepcopy(reference_model.model), {}

    def keep_shape(_, __, out, name):
        shapes[name] = tuple(out.shape[1:])  # returns None: the output is left as it is

    for name, module in private.named_children():
        module.register_forward_hook(lambda m, i, out, name=name: keep_shape(m, i, out, name))
    private(torch.zeros(1, 1, 28, 28))
    rows = {row["step"]: row for row in graph.to_dict("records")}
    for name, shape in shapes.items():
        assert rows[name]["output shape"] == " × ".join(map(str, shape))
    assert rows["relu1"]["pages show"] == "conv1" and rows["pool1"]["pages show"] == "pool1"
    assert rows["fc2"]["pages show"] == "fc2" and rows["conv1"]["pages show"] == ""
    assert sum(graph["parameters"]) == 16_614


def test_browse_filters_change_what_is_shown(reference_model, test_eval):
    at = open_app("app_pages/browse.py")
    assert tile_indices(chart_specs(at)[0]) == list(range(100))
    at.selectbox(key="browse_true").set_value(3)
    at.selectbox(key="browse_verdict").set_value("wrong")
    at.run()
    wrong_threes = np.flatnonzero((test_eval.labels == 3) & (test_eval.preds != 3))
    assert f"{len(wrong_threes):,} digits match" in texts(at)
    assert sorted(tile_indices(chart_specs(at)[0])) == wrong_threes[:100].tolist()


def test_browse_sorts_by_confidence(reference_model, test_eval):
    at = open_app("app_pages/browse.py")
    at.selectbox(key="browse_sort").set_value("confidence, lowest first")
    at.run()
    shown = tile_indices(chart_specs(at)[0])
    assert shown == np.argsort(test_eval.confidence, kind="stable")[:100].tolist()


def test_browse_filter_matching_nothing_says_so(reference_model):
    at = open_app("app_pages/browse.py")
    at.selectbox(key="browse_true").set_value(1)
    at.selectbox(key="browse_pred").set_value(1)
    at.selectbox(key="browse_verdict").set_value("wrong")
    at.run()
    assert not at.exception
    assert "No digit matches these filters" in texts(at)


def test_browse_paging_reaches_the_last_train_digit(reference_model):
    at = open_app("app_pages/browse.py")
    at.session_state["browse_split"] = "train"
    at.run()
    at.number_input(key="browse_page").set_value(600)
    at.run()
    assert tile_indices(chart_specs(at)[0])[-1] == 59999


def test_confusion_cell_shows_exactly_its_digits(reference_model, test_eval):
    at = open_app("app_pages/errors.py")
    at.selectbox(key="errors_true").set_value(4)
    at.selectbox(key="errors_pred").set_value(9)
    at.run()
    expected = test_eval.cell(4, 9)
    assert f"**{len(expected)}** mistakes: true **4**, predicted **9**" in texts(at)
    grid = chart_specs(at)[1]
    assert tile_indices(grid) == expected[:100].tolist()
    confidences = test_eval.confidence[tile_indices(grid)]
    assert np.all(np.diff(confidences) <= 0)  # most confident first


def test_a_link_opens_its_confusion_cell_and_a_click_writes_it(reference_model, test_eval):
    at = open_app("app_pages/errors.py", cell="3,5", model=reference_model.info.key)
    assert f"**{len(test_eval.cell(3, 5))}** mistakes: true **3**, predicted **5**" in texts(at)
    assert at.query_params["cell"] == "3,5"
    at.selectbox(key="errors_true").set_value(7)
    at.run()
    assert at.query_params["cell"] == "7,5"
    bad = open_app(cell="3;x")
    assert any("not TRUE,PREDICTED" in w.value for w in bad.warning)


def test_confusion_matrix_counts(reference_model, test_eval):
    at = open_app("app_pages/errors.py")
    heatmap = chart_specs(at)[0]["data"][0]
    z = array(heatmap["z"]).astype(float)
    expected = test_eval.confusion.astype(float)
    np.fill_diagonal(expected, np.nan)  # hidden by default
    assert np.array_equal(np.nan_to_num(z, nan=-1), np.nan_to_num(expected, nan=-1))


def test_feature_maps_follow_the_selected_sample(reference_model, test_eval):
    at = open_app("app_pages/feature_maps.py")
    at.number_input(key="fm_index").set_value(8)
    at.run()
    assert f"**test #8**: the network reads **{test_eval.preds[8]}**" in texts(at)
    mosaics = [s for s in chart_specs(at) if s["data"][0].get("type") == "heatmap"]
    assert len(mosaics) == 2  # the flow and the open tab's layer (conv1): closed tabs send nothing
    for layer in ("conv2", "pool1", "conv3", "conv4", "pool2"):
        at.session_state["fm_layer"] = layer
        at.session_state[f"fm_kernels_open_{layer}"] = True  # kernels too, where the layer has any
        at.run()
        assert not at.exception
        hovers = [s["data"][0].get("hovertemplate", "") for s in chart_specs(at)]
        assert any(h.startswith(f"{layer} channel") for h in hovers), (layer, hovers)
        assert any(h.startswith(f"{layer} out") for h in hovers) == layer.startswith("conv"), layer


def test_mistake_picker_selects_a_misclassified_digit(reference_model, test_eval):
    at = open_app("app_pages/attributions.py")
    first = int(test_eval.misclassified[0])
    at.selectbox(key="at_mistake").set_value(first)
    at.run()
    assert f"test #{first:,}" in texts(at) and "**wrong**" in texts(at)
    at.session_state["at_tab"] = "Compare targets"
    at.run()
    assert "A mistake" in texts(at)  # the compare-targets tab explains true, predicted and contrast


def test_attribution_options_out_of_range_give_a_message(reference_model):
    at = open_app("app_pages/attributions.py")
    at.number_input(key="at_opt_window").set_value(2)
    at.number_input(key="at_opt_stride").set_value(5)
    at.run()
    assert not at.exception
    assert any("stride (5) larger than the window (2)" in e.value for e in at.error)


def test_raw_layer_resolution_draws_every_layer(reference_model):
    """Compare layers at the layers' own resolution: four finite maps, each on its own grid."""
    at = open_app("app_pages/attributions.py")
    at.session_state["at_tab"] = "Compare layers"
    at.run()
    for method in ("Grad-CAM", "Layer Integrated Gradients", "Layer Activation × Gradient"):
        at.selectbox(key="at_layer_method").set_value(method)
        at.toggle(key="at_layer_raw").set_value(True)
        at.run()
        assert not at.exception
        spec = next(s for s in chart_specs(at) if any(t.get("xaxis") == "x4" for t in s["data"]))
        heatmaps = [t for t in spec["data"] if t["type"] == "heatmap"]
        shapes = [array(t["z"]).reshape(-1).size for t in heatmaps]
        assert shapes == [26 * 26, 24 * 24, 10 * 10, 8 * 8], (method, shapes)
        assert all(np.isfinite(array(t["z"]).astype(float)).all() for t in heatmaps), method


def test_every_map_has_a_trust_badge_with_its_detail(reference_model, test_eval):
    """Under each compared map, a badge whose words are core's verdict for that map; a click
    opens the cascade strip and the deletion/insertion curves."""
    import torch

    from core import explanation_checks
    from core.attributions import AttributionRequest, explainer

    at = open_app("app_pages/attributions.py")
    badges = [p.proto.popover for p in at.get("popover")]
    assert len(badges) == 5  # the five default methods
    image = load_mnist().test.images[0]
    x = torch.from_numpy(image[None, None].astype(np.float32) / 255)
    target = torch.tensor([int(test_eval.preds[0])])
    request = AttributionRequest.of("Guided Backprop", {}, target="predicted", upsample=True)
    verdict = explanation_checks.verdicts(
        explainer(request), reference_model.model, x, target, explanation_checks.digit_seed(x[0])
    )[0]
    from dashboard import panels

    assert badges[3].label == panels.badge_label(verdict)  # one word and three marks
    assert badges[3].label.split("**")[1] == verdict.word and len(badges[3].label) < 60
    assert verdict.text in badges[3].help and "lower is better" in badges[3].help
    assert badges[3].icon == panels.BADGE_ICONS[verdict.word]
    assert panels.BADGE_LEGEND in texts(at)
    at.session_state["at_methods_row_trust_3"] = True  # open Guided Backprop's detail
    at.run()
    assert not at.exception
    specs = chart_specs(at)
    strip = next(s for s in specs if any("random" in str(t.get("text", "")) for t in s["data"]))
    assert "+conv1 random" in str(strip)  # the whole cascade, down to conv1
    curves = next(s for s in specs if any("deletion: this map" in t.get("name", "") for t in s["data"]))
    assert len(curves["data"]) == 8  # deletion and insertion, four orders each
    assert "**Data randomisation" in texts(at)  # its network is queued for training, or shown ("...:**")


def test_gradcam_on_fc1_is_explained_not_a_traceback(reference_model):
    at = open_app("app_pages/attributions.py")
    at.session_state["at_tab"] = "Compare layers"
    at.run()
    at.selectbox(key="at_layer_method").set_value("Grad-CAM")
    at.run()
    assert not at.exception
    assert "no position" in texts(at)


def digit_png(index: int) -> bytes:
    """Test digit ``index`` as a photo would have it: dark ink on white, 5x larger, off centre."""
    digit = 255 - load_mnist().test.images[index]
    page = np.full((220, 260), 255, np.uint8)
    page[30:170, 90:230] = np.asarray(Image.fromarray(digit).resize((140, 140)))
    buffer = io.BytesIO()
    Image.fromarray(page).save(buffer, format="PNG")
    return buffer.getvalue()


def test_upload_a_digit_and_look_inside_it(reference_model, test_eval):
    at = open_app("app_pages/your_digit.py")
    at.get("file_uploader")[0].upload("my_seven.png", digit_png(0), "image/png")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert f"**your digit**: the network reads **{test_eval.preds[0]}**" in texts(at)
    at.switch_page("app_pages/feature_maps.py")
    at.run()
    assert not at.exception
    assert "**your digit**" in texts(at)
    at.switch_page("app_pages/attributions.py")
    at.run()
    assert not at.exception
    assert "**your digit**" in texts(at)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.png", b"just some text", "not an image"),
        ("blank.png", None, "all one shade"),
    ],
)
def test_bad_upload_gets_a_message(reference_model, name, content, message):
    if content is None:
        buffer = io.BytesIO()
        Image.new("L", (64, 64), 255).save(buffer, format="PNG")
        content = buffer.getvalue()
    at = open_app("app_pages/your_digit.py")
    at.get("file_uploader")[0].upload(name, content, "image/png")
    at.run()
    assert not at.exception
    assert any(message in e.value and name in e.value for e in at.error), [e.value for e in at.error]


def test_scorecard_page_computes_in_the_background_then_shows_the_table(tmp_path, monkeypatch, reference_model):
    """Its own cache: a model added to the shared one would become the newest, which the other
    page tests would then open by default."""
    from core import scorecard
    from dashboard import cache

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    monkeypatch.setattr(scorecard, "DIGITS", 20)
    trained = load_or_train(tiny_config(seed=51), root=tmp_path)
    at = open_app("app_pages/trust.py", model=trained.info.key)
    assert "No scorecard for these weights yet" in texts(at)
    next(b for b in at.button if b.label == "Compute the scorecard").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    key = f"scorecard:{trained.info.key}@1"
    for _ in range(1800):  # the background task (the shuffled-label network's 15 s included), at most 3 min
        status = cache.heavy_work().status(key)
        if status.state in ("done", "failed"):
            break
        import time

        time.sleep(0.1)
    assert status.state == "done", status
    at.run()
    table = at.dataframe[0].value
    assert sorted(table["method"]) == sorted(scorecard.ROWS)
    assert "Over 20 test digits" in texts(at)
    assert list((tmp_path / "models" / trained.info.key).glob("scorecard_epoch01_20_*.json"))


# ---- units --------------------------------------------------------------------------------


def open_units(**query: str):
    """The Units page once the test split's unit index exists and the unit is zeroed (both
    computed in the background)."""
    at = open_app("app_pages/units.py", **query)
    finish_background("units:")
    at.run()
    finish_background("ablation:")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_unit_card_from_a_link_shows_its_numbers(reference_model):
    """A link names the layer, unit and position; the card's numbers are core's, and the
    step-by-step value is the feature map's value at that position."""
    import torch

    from core import units
    from core.data import to_tensor
    from core.network import network_of
    from core.unit_steps import one_value

    at = open_units(layer="conv3", unit="7", at="2,3", index="5", model=reference_model.info.key)
    assert "conv3 · channel 7" in [h.value for h in at.subheader]
    assert at.query_params["layer"] == "conv3" and at.query_params["unit"] == "7"
    assert at.query_params["at"] == "2,3"
    test = load_mnist().test
    network = network_of(reference_model.model, 10, to_tensor(test.images[:16]), "the reference")
    index = units.activation_index(network, to_tensor(test.images))
    spec = next(s for s in chart_specs(at) if any(t.get("mode") == "markers" for t in s["data"]))
    shown = array(next(t for t in spec["data"] if t.get("mode") == "markers")["customdata"]).reshape(-1).astype(int)
    assert shown.tolist() == index.top_digits("conv3", 7, len(shown)).tolist()
    boxes = [(s["y0"] + 0.5, s["x0"] + 0.5) for s in spec["layout"]["shapes"]]
    assert len(boxes) == len(shown)  # one receptive field boxed per digit
    found = one_value(network, to_tensor(test.images[5:6]), "conv3", 7, 2, 3)
    with torch.no_grad():
        value = reference_model.model.taps(to_tensor(test.images[5:6]))["conv3"][0, 7, 2, 3].item()
    assert found.value == pytest.approx(value, abs=1e-5)
    assert f"That is **{value:.3f}**" in texts(at)
    before, after = units.ablation_accuracy(network, to_tensor(test.images), test.labels, "conv3", 7)
    assert f"from {np.nanmean(before):.2%} to {np.nanmean(after):.2%}" in texts(at)
    # Which conv3 channels carry the evidence for the predicted class: core's CRP ranking.
    from core.relevance import channel_relevance

    predicted = int(reference_model.model(to_tensor(test.images[5:6])).argmax())
    found = channel_relevance(reference_model.model, to_tensor(test.images[5:6]), "conv3", predicted)
    evidence = next(s for s in chart_specs(at) if "relevance" in str(s["data"][0].get("colorbar", "")))
    ranked = array(next(t for t in evidence["data"] if t.get("mode") == "markers")["customdata"]).reshape(-1)
    assert ranked.astype(int).tolist() == found.ranking[:6].tolist()
    assert f"add up to {found.total:.2f}" in texts(at)


def test_a_dead_unit_says_so(reference_model):
    from core import units
    from core.data import to_tensor
    from core.network import network_of

    test = load_mnist().test
    network = network_of(reference_model.model, 10, to_tensor(test.images[:16]), "the reference")
    index = units.activation_index(network, to_tensor(test.images))
    dead = [u for u in range(20) if index.firing_share("fc1", u) == 0]
    if not dead:
        pytest.skip("every fc1 unit of this model fires")
    at = open_units(layer="fc1", unit=str(dead[0]), model=reference_model.info.key)
    assert "never rises above 0 on the 10,000 test digits (a dead ReLU)" in texts(at)


def test_every_unit_of_a_layer_in_one_sorted_table(reference_model):
    """The layer's units sorted by how often they are above 0: the index's own numbers."""
    from core import units
    from core.data import to_tensor
    from core.network import network_of

    at = open_units(layer="conv4", unit="3", model=reference_model.info.key)
    at.session_state["units_all"] = True
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    test = load_mnist().test
    network = network_of(reference_model.model, 10, to_tensor(test.images[:16]), "the reference")
    index = units.activation_index(network, to_tensor(test.images))
    shares = [index.firing_share("conv4", int(c)) for c in table["channel"]]
    assert len(table) == 32 and shares == sorted(shares, reverse=True)
    assert table["above 0 on (share of test digits)"].tolist() == pytest.approx(shares)


def test_changing_the_unit_updates_the_link_and_a_bad_link_warns(reference_model):
    first = open_app(layer="conv2", unit="99")  # the warning is drawn on the link's first run
    warned = [w.value for w in first.warning]
    assert any("conv2 has channels 0 to 7, not 99: showing conv2 · channel 0" in w for w in warned), warned
    at = open_units(layer="conv2", unit="99")
    assert "conv2 · channel 0" in [h.value for h in at.subheader]
    at.selectbox(key="units_layer").set_value("conv4")
    at.run()
    at.number_input(key="units_unit").set_value(5)
    at.run()
    assert not at.exception
    assert at.query_params["layer"] == "conv4" and at.query_params["unit"] == "5"
    assert "conv4 · channel 5" in [h.value for h in at.subheader]


def test_feature_maps_open_a_unit_card(reference_model):
    """Each conv tile carries its channel for a click; the layer's button opens the card of
    the layer's strongest channel on the digit (or the chosen one), with the unit in the URL."""
    from core.activations import layer_outputs
    from core.data import to_tensor

    at = open_app("app_pages/feature_maps.py", index="3", model=reference_model.info.key)
    at.session_state["fm_layer"] = "conv2"
    at.run()
    flow, spec = [s for s in chart_specs(at) if any(t.get("name") == "tiles" for t in s["data"])][:2]
    tiles = next(t for t in spec["data"] if t.get("name") == "tiles")
    assert array(tiles["customdata"]).reshape(-1).astype(int).tolist() == list(range(8))
    conv2 = layer_outputs(reference_model.model, to_tensor(load_mnist().test.images[3:4]))["conv2"][0]
    strongest = int(conv2.reshape(8, -1).max(axis=1).argmax())
    # The flow view: every tile carries (stage, channel).
    pairs = array(next(t for t in flow["data"] if t.get("name") == "tiles")["customdata"]).reshape(-1, 2)
    assert len(pairs) == 6 * 4 and sorted(set(pairs[:, 0].astype(int).tolist())) == list(range(6))
    at.button(key="fm_card_conv2").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["layer"] == "conv2" and at.query_params["unit"] == str(strongest)
    assert at.query_params["index"] == "3"


def test_layer_attributions_open_the_strongest_channels_unit_card(reference_model):
    from core.data import to_tensor
    from core.relevance import channel_relevance

    at = open_app("app_pages/attributions.py", index="7", model=reference_model.info.key)
    at.session_state["at_tab"] = "Compare layers"
    at.run()
    at.button(key="at_units_conv4").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    x = to_tensor(load_mnist().test.images[7:8])
    found = channel_relevance(reference_model.model, x, "conv4", int(reference_model.model(x).argmax()))
    assert at.query_params["layer"] == "conv4" and at.query_params["unit"] == str(int(found.ranking[0]))


# ---- the data map -------------------------------------------------------------------------


def test_a_run_the_cache_cannot_keep_is_still_shown(tmp_path, monkeypatch):
    """A read-only cache (a teacher's prepared share): the data map is computed in the
    background, kept nowhere, and drawn from what the pool computed, not waited for forever."""
    from core import checkpoints

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    trained = load_or_train(tiny_config(seed=53), root=tmp_path)

    def refuse(path, data):
        raise PermissionError(13, "Read-only file system", str(path))

    monkeypatch.setattr(checkpoints, "atomic_write", refuse)
    at = open_app("app_pages/data_map.py", model=trained.info.key)
    finish_background("map:")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    spec = next(s for s in chart_specs(at) if any(t["type"] == "scattergl" for t in s["data"]))
    drawn = sum(len(array(t["customdata"]).reshape(-1, 3)) for t in spec["data"] if t.get("name") == "digits")
    assert drawn == 10_000
    assert not list(trained.info.folder.glob("projection_*"))
    # The label ranking reads the banks from the pool too, not only the page's check of them
    # (it raised "banks not computed yet" when the check found the pool's and the read did not).
    at = open_app("app_pages/labels.py", model=trained.info.key)
    finish_background("banks:", timeout_s=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not list(trained.info.folder.glob("influence_bank*"))


def test_data_map_draws_every_test_digit_where_core_puts_it(reference_model, test_eval):
    """10,000 points, each the digit's fc1 PCA coordinates (computed again here with core), the
    selected digit ringed; the map is computed in the background and kept beside the checkpoint."""

    from core import projection
    from core.data import to_tensor

    at = open_app("app_pages/data_map.py", index="17", model=reference_model.info.key)
    finish_background("map:")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    spec = next(s for s in chart_specs(at) if any(t["type"] == "scattergl" for t in s["data"]))
    right, wrong = (t for t in spec["data"] if t.get("name") == "digits")  # mistakes drawn on top, as crosses
    rows = [array(t["customdata"]).reshape(-1, 3).astype(int) for t in (right, wrong)]
    ids = np.concatenate([r[:, 0] for r in rows])
    assert sorted(ids.tolist()) == list(range(10_000))
    assert sorted(rows[1][:, 0].tolist()) == np.flatnonzero(test_eval.labels != test_eval.preds).tolist()
    test = load_mnist().test
    expected = projection.fit_pca(projection.fc1_features(reference_model.model, to_tensor(test.images))).points
    for trace, r in zip((right, wrong), rows, strict=True):
        np.testing.assert_allclose(array(trace["x"]), expected[r[:, 0], 0], atol=1e-4)
        np.testing.assert_allclose(array(trace["y"]), expected[r[:, 0], 1], atol=1e-4)
        assert (r[:, 1] == test_eval.labels[r[:, 0]]).all() and (r[:, 2] == test_eval.preds[r[:, 0]]).all()
    ring = spec["data"][-1]
    assert ring["name"] == "selected: #17" and ring["x"][0] == pytest.approx(float(expected[17, 0]), abs=1e-4)
    assert list(reference_model.info.folder.glob("projection_pca_epoch01_test_*.safetensors"))
    assert "test #17" in texts(at)
    links = [link.proto.page for link in at.get("page_link")]
    assert not any("data_map" in page for page in links)  # no link from the map to itself
    browse = open_app("app_pages/browse.py", index="17")
    assert any("data_map" in link.proto.page for link in browse.get("page_link"))


def test_why_a_confusion_cell_fails(reference_model, test_eval):
    """The cell as a whole: core's sentence, the two mean maps, the channel buttons and the
    nearest training digits, for the 4s read as 9 (from a link)."""
    from core import confusion, projection
    from core.data import to_tensor
    from dashboard import cache

    at = open_app("app_pages/errors.py", cell="4,9", model=reference_model.info.key)
    at.session_state["errors_why_open"] = True
    at.run()
    finish_background("units:")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    cell = confusion.cell_digits(test_eval, 4, 9)
    assert confusion.explain_cell(
        confusion.contrast_maps(
            reference_model.model,
            to_tensor(load_mnist().test.images[cell]),
            to_tensor(load_mnist().test.images[confusion.correct_digits(test_eval, 4)]),
            4,
            9,
        ),
        confusion.channel_differences(
            cache.result("units", ModelRef(reference_model.info.key)),
            cell,
            confusion.correct_digits(test_eval, 4),
        ),
    ) in texts(at)
    maps = next(s for s in chart_specs(at) if "4s read as 9" in str(s))
    assert "4s read right" in str(maps)
    assert any(b.key.startswith("errors_why_conv4_") for b in at.button)
    data = load_mnist()
    model = reference_model.model
    shown = cell[: cache.CELL_DIGITS_SHOWN]
    nearest = confusion.nearest_training_digits(
        projection.fc1_features(model, to_tensor(data.test.images[shown])),
        projection.fc1_features(model, to_tensor(data.train.images)),
        data.train.labels,
        4,
        9,
    )
    grids = [s for s in chart_specs(at) if any(t.get("name") == "tiles" for t in s["data"])]
    assert len(grids) == 2  # the cell's digits, then their nearest training digits
    expected = np.concatenate([nearest.a_indices, nearest.b_indices], axis=1).reshape(-1).tolist()
    assert tile_indices(grids[1]) == expected


# ---- suspicious labels and the training digits behind an answer ---------------------------


def test_suspicious_labels_are_confident_learnings_ranking(reference_model):
    """The grid is cleanlab's flagged digits from the model's probabilities (computed again here
    from a plain evaluation), filtered by label and by the network's answer."""
    from core import label_issues
    from core.evaluate import evaluate

    at = open_app("app_pages/labels.py", model=reference_model.info.key)
    finish_background("banks:", timeout_s=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    train = load_mnist().train
    probs = evaluate(reference_model.model, train).probs
    expected = label_issues.find(train.labels, probs)
    flagged = expected.flagged.tolist()
    assert len(flagged) % 40, "the test wants a page that holds flagged and unflagged digits"
    assert _grids(at) == [flagged[:40]] if len(flagged) > 40 else [flagged]
    assert f"**{len(expected.flagged):,}** of 60,000 labels flagged" in texts(at)
    assert list(reference_model.info.folder.glob("influence_bank_epoch01_train_*.safetensors"))
    # Past the flagged digits, the rest by the probability of the label, recomputed here one by one,
    # below a divider on the page where the flagged ones end.
    quality = {i: probs[i, train.labels[i]] for i in range(len(train))}
    rest = sorted(set(quality) - set(flagged), key=lambda i: (quality[i], i))
    ranking = flagged + rest
    boundary = len(flagged) // 40 + 1
    at.number_input(key="labels_page").set_value(boundary)
    at.run()
    assert at.query_params["page"] == str(boundary)
    start = (boundary - 1) * 40
    assert _grids(at) == [flagged[start:], rest[: start + 40 - len(flagged)]]
    assert "Not flagged: the rest of the ranking" in texts(at)
    # Paging goes on through the unflagged part, into the URL; a link reopens that page.
    at.number_input(key="labels_page").set_value(boundary + 2)
    at.run()
    assert at.query_params["page"] == str(boundary + 2)
    after = start + 80
    assert _grids(at) == [ranking[after : after + 40]]
    assert f"Ranks {after + 1:,}–{after + 40:,} of 60,000 ({len(flagged)} flagged above)." in texts(at)
    linked = open_app("app_pages/labels.py", model=reference_model.info.key, labels="train", page=str(boundary + 2))
    assert _grids(linked)[0] == ranking[after : after + 40]
    # A link past the end gets the last page and a notice naming both numbers.
    linked = open_app("app_pages/labels.py", model=reference_model.info.key, labels="train", page="99999")
    assert "page 99,999 of the ranking; these filters give 1,500 pages" in texts(linked)
    assert _grids(linked)[0] == ranking[-40:]
    # Filters cut both parts alike and start again at the first page.
    at.selectbox(key="labels_given").set_value(7)
    at.selectbox(key="labels_suggested").set_value(1)
    at.run()
    assert (at.query_params["labels"], at.query_params["given"], at.query_params["says"]) == ("train", "7", "1")
    assert "page" not in at.query_params
    kept = [i for i in ranking if train.labels[i] == 7 and probs[i].argmax() == 1]
    assert _shown(at) == kept[:40]
    at.session_state["labels_split"] = "test"
    at.selectbox(key="labels_given").set_value("any")
    at.selectbox(key="labels_suggested").set_value("any")
    at.run()
    test = load_mnist().test
    on_test = label_issues.find(test.labels, evaluate(reference_model.model, test).probs)
    assert _shown(at) == on_test.ranking[:40].tolist()
    assert "never trained on" in texts(at)
    # A link reopens the same ranking and filters.
    given = int(on_test.labels[on_test.flagged[0]])
    linked = open_app("app_pages/labels.py", model=reference_model.info.key, labels="test", given=str(given))
    shown = _shown(linked)
    assert shown == on_test.rows(given=given)[0][:40].tolist()


def _grids(at) -> list[list[int]]:
    """The indices of each digit grid's tiles on the page, top to bottom."""
    return [tile_indices(s) for s in chart_specs(at) if any(t.get("name") == "tiles" for t in s["data"])]


def _shown(at) -> list[int]:
    """Every tile of every digit grid on the page, in order."""
    return [i for grid in _grids(at) for i in grid]


def test_training_digits_behind_an_answer_are_tracins(reference_model):
    """The proponents and opponents drawn are TracIn's, recomputed here from fresh forward passes
    (fc2's input and logits of every training digit and of the test digit)."""
    import torch

    from core import influence
    from core.data import to_tensor

    at = open_app("app_pages/influence.py", index="17", model=reference_model.info.key)
    finish_background("banks:", timeout_s=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    data = load_mnist()
    with torch.inference_mode():
        images = data.train.images
        train = [reference_model.model.taps(to_tensor(images[i : i + 10_000])) for i in range(0, 60_000, 10_000)]
        digit = reference_model.model.taps(to_tensor(data.test.images[17:18]))
    bank = influence.Bank(
        np.concatenate([t["fc1"].numpy() for t in train]), np.concatenate([t["fc2"].numpy() for t in train]), 1
    )
    training = influence.TrainingSide.of([bank], data.train.labels, np.array([1e-3]))
    target = int(digit["fc2"].argmax())
    scores = influence.tracin_scores(training, digit["fc1"].numpy(), digit["fc2"].numpy(), target)
    expected = influence.behind(scores, target)
    grids = [s for s in chart_specs(at) if any(t.get("name") == "tiles" for t in s["data"])]
    assert tile_indices(grids[0]) == expected.proponents.tolist()
    assert tile_indices(grids[1]) == expected.opponents.tolist()
    same = int((data.train.labels[expected.proponents] == target).sum())
    assert f"{same} of 8 are labelled {target}." in texts(at)
    assert "Only one saved point" in texts(at)  # the reference recipe saves one epoch
    from dashboard import state
    from dashboard.view import DRAWN, Sample

    at.session_state[state._DRAWN] = data.test.images[0]
    at.session_state[state._SAMPLE] = Sample(DRAWN, 0)
    at.run()
    assert "your own digit is not among them" in texts(at)


def test_labels_flipped_on_purpose_are_marked_and_scored(tmp_path, monkeypatch):
    """A model trained with 3% of its 3,000 labels flipped: the page says how many of them the
    ranking flags, and the numbers match a count made here."""
    import torch

    from core import label_issues
    from core.config import recipe
    from core.evaluate import evaluate
    from core.train import flipped, load_or_train, training_labels

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    config = recipe("default", train_limit=3000, flip_labels=0.03)
    trained = load_or_train(config, root=tmp_path)
    at = open_app("app_pages/labels.py", model=trained.info.key)
    finish_background("banks:", timeout_s=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    data = load_mnist()
    labels = training_labels(config, data).numpy()
    train = data.train
    probs = evaluate(trained.model, type(train)(train.images[:3000], labels)).probs
    found = label_issues.find(labels, probs)
    purpose = flipped(config, torch.from_numpy(train.labels[:3000]))[0].numpy()
    hits = int(np.isin(found.flagged, purpose).sum())
    assert f"flipped 90 training labels on purpose (marked *). {hits:,} of them are flagged" in texts(at)
    captions = next(t for t in chart_specs(at)[0]["data"] if t.get("mode") == "text")["text"]
    assert sum(c.endswith("*") for c in captions) == int(np.isin(found.flagged[:40], purpose).sum()) > 0


# ---- probing the model ----------------------------------------------------------------------


def test_probe_edit_starts_from_the_selected_digit(reference_model, test_eval):
    """No stroke yet: the edited digit is the digit itself, read as the evaluation reads it."""
    at = open_app("app_pages/probe.py", index="8", model=reference_model.info.key)
    pred = int(test_eval.preds[8])
    assert f"The network still reads {pred} ({test_eval.probs[8, pred]:.1%})" in texts(at)
    images = next(s for s in chart_specs(at) if s["data"][0].get("type") == "heatmap")
    z = array(images["data"][0]["z"])
    digit = load_mnist().test.images[8]
    np.testing.assert_array_equal(z[:28, :28], digit)  # before ...
    np.testing.assert_array_equal(z[:28, 31:59], digit)  # ... and after, with no change
    assert at.query_params["probe"] == "edit"


def test_probe_bend_is_cores_sweep_and_the_test_set_summary(reference_model):
    from core import probes

    at = open_app("app_pages/probe.py", index="8", model=reference_model.info.key, probe="bend", bend="shift_x")
    finish_background("flips:", timeout_s=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    digit = load_mnist().test.images[8]
    expected = probes.sweep(reference_model.model, digit, "shift_x")
    lines = next(s for s in chart_specs(at) if s["data"][0].get("mode") == "lines" and "class" in str(s["data"][0]))
    for line in lines["data"]:
        k = int(line["name"])
        np.testing.assert_allclose(array(line["y"]), expected.probs[:, k], atol=1e-5)
    assert len(lines["data"]) == int((expected.probs.max(axis=0) >= 0.02).sum())
    found = probes.load_or_compute_flip_summary(
        reference_model.model,
        load_mnist().test,
        Point(reference_model.info.folder, 1, "test", load_mnist().fingerprint),
    )  # read back from beside the checkpoint
    shares = next(s for s in chart_specs(at) if s["data"][0].get("type") == "bar")
    np.testing.assert_allclose(array(shares["data"][0]["y"]), found.rotation_share)
    np.testing.assert_allclose(array(shares["data"][1]["y"]), found.shift_share)
    assert f"{found.shift_flips.mean():.1%} of all 10,000" in texts(at)
    assert at.query_params["bend"] == "shift_x"


def test_probe_smallest_change_is_checked_by_rerunning_the_model(reference_model, test_eval):
    import torch

    from core.data import to_tensor
    from core.evaluate import softmax

    at = open_app("app_pages/probe.py", index="4", model=reference_model.info.key, probe="change", toward="9")
    assert not chart_specs(at)  # nothing searched before the button
    at.button(key="probe_search").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    images = next(s for s in chart_specs(at) if s["data"][0].get("type") == "heatmap")
    edited = array(images["data"][0]["z"])[:28, 31:59].astype(np.uint8)
    with torch.inference_mode():
        probs = softmax(reference_model.model(to_tensor(edited[None])).numpy())[0]
    message = (at.success or at.warning)[0].value
    assert f"{probs[9]:.1%}" in message  # the page reports the network run again on the edited digit
    assert ("Read as 9 with" in message) == (probs[9] >= 0.9)
    assert at.query_params["toward"] == "9"


def test_probe_through_training_needs_several_epochs(reference_model, tmp_path, monkeypatch):
    at = open_app("app_pages/probe.py", model=reference_model.info.key, probe="training")
    assert "saved its weights once" in texts(at)
    assert "No other model trained on these digits is cached" in texts(at)
    from core.train import load_or_train

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    trained = load_or_train(tiny_config(epochs=2), root=tmp_path)
    other = load_or_train(tiny_config(seed=5), root=tmp_path)
    at = open_app("app_pages/probe.py", model=trained.info.key, probe="training", index="3")
    assert not at.exception, [e.value for e in at.exception]
    assert "test #3 after each saved point" in texts(at)
    maps = next(s for s in chart_specs(at) if "epoch 1:" in str(s))
    assert "epoch 2:" in str(maps)
    # The other model (seed 5) beside this one: its answer and map, computed here with core.
    import torch

    from core.attributions import AttributionRequest, explain
    from core.data import to_tensor

    pair = next(s for s in chart_specs(at) if "this model:" in str(s))
    x = to_tensor(load_mnist().test.images[3:4])
    with torch.inference_mode():
        other_pred = int(other.model(x).argmax())
    assert f"reference model: {other_pred} (" in str(pair)
    request = AttributionRequest.of("Integrated Gradients", {}, target="predicted", upsample=True)
    expected = explain(request, other.model, x, torch.tensor([other_pred]), None)[0]
    shown = array(pair["data"][0]["customdata"])[:28, 31:59]  # the second map's raw values
    np.testing.assert_allclose(shown, expected, rtol=1e-4, atol=1e-6)
    at.select_slider(key=f"probe_epoch_{trained.info.key}").set_value(1)
    at.run()
    assert at.query_params["model"] == f"{trained.info.key}@1"  # every page now shows epoch 1
    # The last point's strongest conv4 channel opens its unit card.
    from core.activations import layer_outputs, strongest_channels

    last = layer_outputs(trained.model, x)["conv4"][0]
    at.button(key="probe_epoch_card").click()
    at.run()
    assert at.query_params["layer"] == "conv4" and at.query_params["unit"] == str(strongest_channels(last, 1)[0])


def test_probe_through_training_saved_inside_an_epoch(tmp_path, monkeypatch):
    """One epoch saved four times: the strip names each point's epoch (0.25 ... 1), its answers
    are the checkpoints' own, and the slider's choice is a link naming the point."""
    import torch

    from core import checkpoints
    from core.data import to_tensor
    from core.train import load_or_train

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    trained = load_or_train(tiny_config(saves_per_epoch=4), root=tmp_path)
    at = open_app("app_pages/probe.py", model=trained.info.key, probe="training", index="3")
    assert not at.exception, [e.value for e in at.exception]
    maps = next(s for s in chart_specs(at) if "epoch 0.25:" in str(s))
    x = to_tensor(load_mnist().test.images[3:4])
    for point, name in zip(range(1, 5), ("0.25", "0.5", "0.75", "1"), strict=True):
        with torch.inference_mode():
            probs = checkpoints.load_checkpoint(trained.info.folder, point)(x).softmax(1)[0]
        answer = int(probs.argmax())
        assert f"epoch {name}: {answer} ({probs[answer]:.0%})" in str(maps)
    at.select_slider(key=f"probe_epoch_{trained.info.key}").set_value(2)
    at.run()
    assert at.query_params["model"] == f"{trained.info.key}@2"
    at = open_app("app_pages/overview.py", model=f"{trained.info.key}@2")
    assert "Showing the weights after epoch 0.5 of 1" in texts(at)


def test_the_strip_draws_at_most_eight_points_with_the_current_one():
    from dashboard.probe_figures import strip_points

    assert strip_points(3, 2) == [1, 2, 3]
    assert strip_points(30, 30) == [1, 5, 9, 13, 18, 22, 26, 30]
    chosen = strip_points(30, 7)
    assert len(chosen) == 8 and 7 in chosen and chosen[0] == 1 and chosen[-1] == 30


def test_another_data_set_names_its_classes_on_every_page(named_folder, tmp_path, monkeypatch, server_env):
    """A model of another 28x28 data set (here MNIST's pictures named as Fashion-MNIST's classes):
    every page opens, and where a class is named it is by its name, never its number."""
    import torch

    from core.data import load_mnist, to_tensor
    from core.train import load_or_train
    from tests.conftest import FASHION

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    server_env(MNIST_CNN_DATA=str(named_folder))
    trained = load_or_train(tiny_config(data_source=str(named_folder)), root=tmp_path)
    data = load_mnist(named_folder)
    with torch.inference_mode():
        pred = int(trained.model(to_tensor(data.test.images[8:9])).argmax())
    label = int(data.test.labels[8])
    for page in PAGES:
        at = open_app(page, index="8")  # no model in the link: the server's data set's
        assert at.query_params["model"] == trained.info.key, page
        if page in ("app_pages/feature_maps.py", "app_pages/attributions.py"):
            assert f"the network reads **{FASHION[pred]}**" in texts(at), page
            if pred != label:
                assert f"it is labelled {FASHION[label]}" in texts(at)
    overview = open_app()
    assert f"This network reads **clothes**, whose ten classes are {', '.join(FASHION)}" in texts(overview)
    per_class = next(s for s in chart_specs(overview) if s["data"][0].get("x") == list(FASHION))
    assert per_class["data"][0]["type"] == "bar"
    errors = open_app("app_pages/errors.py", cell="4,9")
    confusion = next(s for s in chart_specs(errors) if "ticktext" in str(s))
    assert confusion["layout"]["xaxis"]["ticktext"] == list(FASHION)
    assert f"true **{FASHION[4]}**, predicted **{FASHION[9]}**" in texts(errors)
    assert errors.selectbox(key="errors_true").value == 4  # the URL stays numeric
    drawn = open_app("app_pages/your_digit.py")
    assert f"This model was trained on clothes, whose classes are {', '.join(FASHION)}, not digits" in texts(drawn)


DIGIT_WORD = re.compile(r"\bdigits?\b", re.IGNORECASE)
NOT_DIGITS = re.compile(r"This model was trained on .*?, not digits\.")  # Your own image's notice: meant so


def _flat(value) -> list[str]:
    """Every string in a Plotly value: a string, or (nested) lists of them; typed arrays hold numbers."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _flat(v)]
    return []


def _chart_words(spec: dict) -> list[str]:
    """What a Plotly figure shows in words: its title, axis and legend titles, annotations (subplot
    titles), the legend's trace names, and each trace's text and hover text."""

    def title(t) -> str:
        return t.get("text", "") if isinstance(t, dict) else t if isinstance(t, str) else ""

    layout = spec.get("layout", {})
    words = [title(layout.get("title")), title(layout.get("legend", {}).get("title"))]
    words += [
        title(v.get("title")) for k, v in layout.items() if k.startswith(("xaxis", "yaxis")) and isinstance(v, dict)
    ]
    words += [a.get("text", "") for a in layout.get("annotations", [])]
    for trace in spec.get("data", []):
        words += [s for key in ("text", "hovertext", "hovertemplate") for s in _flat(trace.get(key))]
        words += [title(trace.get("colorbar", {}).get("title"))]
        if trace.get("showlegend") is not False:
            words.append(trace.get("name") or "")
    return words


def visible_words(at) -> list[str]:
    """Every text a page shows that AppTest exposes: titles, headers, Markdown, captions, alerts,
    progress texts, the labels, help and options of widgets, tabs, expanders and page links, and
    the words of every Plotly chart."""
    found = [
        e.value
        for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success")
        for e in getattr(at, kind)
    ]
    found += progress_texts(at) + [b.label for b in at.tabs] + [b.label for b in at.expander]
    found += [link.value for link in at.get("page_link")]
    widgets = (
        "button",
        "download_button",
        "selectbox",
        "radio",
        "number_input",
        "toggle",
        "multiselect",
        "button_group",
        "slider",
        "select_slider",
        "text_input",
        "metric",
    )
    for kind in widgets:
        for w in at.get(kind):
            found += [getattr(w.proto, "label", ""), getattr(w.proto, "help", ""), *getattr(w, "options", [])]
    found += [s for spec in chart_specs(at) for s in _chart_words(spec)]
    return [NOT_DIGITS.sub("", str(s)) for s in found if s]


def test_a_data_sets_noun_replaces_digit_everywhere(tmp_path, monkeypatch, server_env):
    """A folder whose classes.txt says '# noun: item' and '# name: Fashion-MNIST' (MNIST's pictures
    under Fashion-MNIST's class names): no page says digit, not while it waits for work in the
    background nor once that work is done; the pages say items and name the data set."""
    from tests.conftest import FASHION, write_idx_folder

    data = load_mnist()
    folder = write_idx_folder(
        tmp_path / "fashion",
        data.train.images[:3000],
        data.train.labels[:3000],
        data.test.images[:1000],
        data.test.labels[:1000],
        FASHION,
    )
    classes = folder / "classes.txt"
    classes.write_text("# noun: item\n# name: Fashion-MNIST\n" + classes.read_text())
    assert load_mnist(folder).words.plural == "items"
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    server_env(MNIST_CNN_DATA=str(folder))
    trained = load_or_train(tiny_config(data_source=str(folder)), root=tmp_path)

    def said(page: str | None = None, **query: str) -> list[str]:
        at = open_app(page, **query)
        assert at.query_params["model"] == trained.info.key, page
        words = visible_words(at)
        assert not [w for w in words if DIGIT_WORD.search(w)], (page, query, [w for w in words if DIGIT_WORD.search(w)])
        return words

    waiting = ("app_pages/data_map.py", "app_pages/labels.py", "app_pages/influence.py", "app_pages/units.py")
    for page in PAGES:  # the pages that wait for background work show their waiting message here
        said(page, index="8")
    errors = "\n".join(said("app_pages/errors.py", cell="4,9"))
    assert "of 1,000 test items are misread" in errors
    assert "Fashion-MNIST" in "\n".join(said())
    for tool in ("bend", "change", "training"):
        said("app_pages/probe.py", probe=tool)
    for prefix in ("units:", "map:", "banks:", "flips:"):
        finish_background(prefix, timeout_s=120)
    for page in waiting:  # and once that work is done, what they show with it
        said(page, index="8")
    said("app_pages/probe.py", probe="bend")


BAD_LINKS = {  # every parameter the View reads (dashboard.state.LINK_PARAMETERS), with a value it cannot honour
    "model": ("\x00\xff", "cannot be read"),
    "split": ("valid", "only 'test' and 'train' exist"),
    "index": ("999999", "out of range"),
    "layer": ("conv9", "no layer 'conv9'"),
    "unit": ("99", "not 99"),
    "at": ("1;2", "not a ROW,COL"),
    "cell": ("10,1", "not TRUE,PREDICTED"),
    "probe": ("fly", "unknown probe 'fly'"),
    "bend": ("melt", "unknown bend 'melt'"),
    "toward": ("12", "class 12 is not 0 to 9"),
    "labels": ("valid", "split 'valid'"),
    "given": ("-3", "class -3 is not 0 to 9"),
    "says": ("x", "label filter cannot be shown"),
    "page": ("0", "page 0 is not 1 or more"),
}


@pytest.mark.parametrize("name", list(BAD_LINKS))
def test_every_bad_link_parameter_is_named_and_stays_named(reference_model, name):
    """Each parameter a link can carry, given a value the app cannot honour, gets a notice at the
    top; the notice stays while the session is on that page (the Units and Probe pages rerun at
    once, which wiped it before anyone could read it), and goes once the user moves on."""
    from dashboard.state import LINK_PARAMETERS

    assert set(BAD_LINKS) == set(LINK_PARAMETERS)
    value, said = BAD_LINKS[name]
    query = {"model": reference_model.info.key, name: value}
    if name in ("unit", "at"):
        query["layer"] = "conv2"
    if name == "toward":
        query["probe"] = "change"
    at = open_app(**query)
    assert any(said in w.value for w in at.warning), (name, [w.value for w in at.warning])
    at.run()  # the page reruns: the notice is still there
    assert any(said in w.value for w in at.warning), (name, [w.value for w in at.warning])
    at.switch_page("app_pages/browse.py")
    at.run()
    assert not any(said in w.value for w in at.warning), name
