"""Every dashboard page, headless with AppTest, on the session's real reference model."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core import checkpoints
from core.data import load_mnist
from core.evaluate import evaluate
from core.train import load_or_train
from tests.conftest import tiny_config

HOME = str(Path(__file__).resolve().parents[1] / "dashboard" / "Home.py")
PAGES = [
    "app_pages/overview.py",
    "app_pages/browse.py",
    "app_pages/errors.py",
    "app_pages/feature_maps.py",
    "app_pages/attributions.py",
    "app_pages/trust.py",
    "app_pages/your_digit.py",
]


@pytest.fixture(scope="module")
def test_eval(reference_model):
    return evaluate(reference_model.model, load_mnist().test)


def open_app(page: str | None = None, **query: str) -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=120)
    for name, value in query.items():
        at.query_params[name] = value
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def finish_training(root: Path) -> None:
    """Wait for every background training job of the app's trainer for ``root``."""
    from dashboard import cache

    jobs = cache._training_jobs(str(root))
    for status in jobs.all():
        assert jobs.wait(status.key, timeout=120).state == "done", status


def progress_texts(at: AppTest) -> list[str]:
    """The text of every progress bar on the page."""
    return [p.proto.text for p in at.get("progress")]


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def texts(at: AppTest) -> str:
    return "\n".join(
        [m.value for m in at.markdown]
        + [c.value for c in at.caption]
        + [i.value for i in at.info]
        + [w.value for w in at.warning]
        + [e.value for e in at.error]
    )


def array(value) -> np.ndarray:
    """A Plotly figure array from JSON: a plain list, or Plotly's typed-array form {dtype, bdata, shape}."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return flat.reshape([int(d) for d in str(shape).split(",")]) if shape else flat
    return np.array(value, dtype=float)


def tile_indices(spec: dict) -> list[int]:
    """The dataset indices of a digit grid's clickable tiles."""
    tiles = next(trace for trace in spec["data"] if trace.get("name") == "tiles")
    return array(tiles["customdata"]).reshape(-1).astype(int).tolist()


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(reference_model, page):
    at = open_app(page)
    if page not in ("app_pages/your_digit.py", "app_pages/trust.py"):  # they wait for a drawing or a click
        assert at.get("plotly_chart"), f"{page} drew no chart"
    assert "reference recipe" in texts(at)  # the sidebar names the loaded model


def test_overview_model_card(reference_model, test_eval):
    at = open_app()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{test_eval.accuracy:.2%}"
    assert metrics["Parameters"] == "16,614"
    table = at.dataframe[0].value
    assert list(table["parameters"]) == [40, 296, 0, 1168, 4640, 0, 10260, 210, 16614]


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


def test_confusion_matrix_counts(reference_model, test_eval):
    at = open_app("app_pages/errors.py")
    heatmap = chart_specs(at)[0]["data"][0]
    z = array(heatmap["z"]).astype(float)
    expected = test_eval.confusion.astype(float)
    np.fill_diagonal(expected, np.nan)  # hidden by default
    assert np.array_equal(np.nan_to_num(z, nan=-1), np.nan_to_num(expected, nan=-1))


def test_url_selection_is_read_and_checked(reference_model):
    at = open_app("app_pages/feature_maps.py", split="test", index="42")
    assert "**test #42**" in texts(at)
    bad = open_app(split="test", index="999999")
    assert "out of range" in texts(bad)
    worse = open_app(split="validation", index="x")
    assert "only 'test' and 'train' exist" in texts(worse)


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
    assert badges[3].label == verdict.text
    assert "lower is better" in badges[3].help
    at.session_state["at_methods_row_trust_3"] = True  # open Guided Backprop's detail
    at.run()
    assert not at.exception
    specs = chart_specs(at)
    strip = next(s for s in specs if any("random" in str(t.get("text", "")) for t in s["data"]))
    assert "+conv1 random" in str(strip)  # the whole cascade, down to conv1
    curves = next(s for s in specs if any("deletion: this map" in t.get("name", "") for t in s["data"]))
    assert len(curves["data"]) == 8  # deletion and insertion, four orders each


def test_gradcam_on_fc1_is_explained_not_a_traceback(reference_model):
    at = open_app("app_pages/attributions.py")
    at.session_state["at_tab"] = "Compare layers"
    at.run()
    at.selectbox(key="at_layer_method").set_value("Grad-CAM")
    at.run()
    assert not at.exception
    assert "no position" in texts(at)


def test_deleted_cache_folder_while_running(tmp_path, monkeypatch, reference_model):
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    trained = load_or_train(tiny_config(seed=7), root=tmp_path)
    at = open_app(model=trained.info.key)
    assert "seed 7" in texts(at)
    shutil.rmtree(tmp_path / "models")
    at.switch_page("app_pages/errors.py")
    at.run()
    assert not at.exception
    assert "deleted from the cache folder" in texts(at)


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


def test_damaged_checkpoint_is_retrained_with_a_message(tmp_path, monkeypatch, reference_model):
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    trained = load_or_train(tiny_config(seed=11), root=tmp_path)
    weights = trained.info.folder / "epoch_01.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    at = open_app(model=trained.info.key)
    assert "could not be loaded" in texts(at) and "checksum mismatch" in texts(at)
    finish_training(tmp_path)
    at.run()
    assert not at.exception
    assert "seed 11" in texts(at)  # the same settings were trained again
    assert len(weights.read_bytes()) > 500


def test_unverifiable_checkpoint_is_retrained_with_a_message(tmp_path, monkeypatch, reference_model):
    """A checkpoint whose checksum entry is missing from meta.json is not trusted."""
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    trained = load_or_train(tiny_config(seed=12), root=tmp_path)
    meta_path = trained.info.folder / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["sha256"]["epoch_01.safetensors"]
    meta_path.write_text(json.dumps(meta))
    at = open_app(model=trained.info.key)
    assert "no checksum is recorded" in texts(at)
    finish_training(tmp_path)
    at.run()
    assert "seed 12" in texts(at)
    assert "epoch_01.safetensors" in json.loads(meta_path.read_text())["sha256"]


def test_first_start_shows_content_and_progress_then_the_model(tmp_path, monkeypatch, reference_model):
    """An empty cache: the architecture and the data show at once beside the training job's
    progress bar; when the job ends the page fills in with the trained default model."""
    from core import config

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    monkeypatch.setitem(config.RECIPES, "default", tiny_config(recipe="default", seed=21, epochs=2))
    at = open_app()
    assert list(at.dataframe[0].value["parameters"]) == [40, 296, 0, 1168, 4640, 0, 10260, 210, 16614]
    assert "10,000 test digits" in texts(at)
    bars = progress_texts(at)
    assert bars and any(t.startswith(("Queued", "Preparing", "Training: epoch")) for t in bars), bars
    for page in PAGES[1:]:  # every page draws something useful or the progress, never an error
        at.switch_page(page)
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert progress_texts(at), page
    finish_training(tmp_path)
    at.switch_page(PAGES[0])
    at.run()
    assert not progress_texts(at)
    assert "default recipe" in texts(at) and "seed 21" in texts(at)
    assert len([f for f in (tmp_path / "models").iterdir() if f.is_dir()]) == 1  # one training run
    again = open_app()  # a later start loads it instead of training
    assert not progress_texts(again) and "seed 21" in texts(again)


def test_sidebar_trains_a_new_model_and_switches_to_it(tmp_path, monkeypatch, reference_model):
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    first = load_or_train(tiny_config(seed=31), root=tmp_path)
    at = open_app(model=first.info.key)
    at.selectbox(key="train_recipe").set_value("reference")
    at.number_input(key="train_seed").set_value(32)
    next(b for b in at.button if b.label == "Train").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "seed 31" in texts(at)  # the current model stays in use while the new one trains
    finish_training(tmp_path)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "seed 32" in texts(at)
    labels = at.selectbox(key="sidebar_model").options
    assert len(labels) == 2


def test_damaged_data_is_a_message_not_a_traceback(monkeypatch, reference_model):
    from core import data

    def broken(source="bundled"):
        raise data.DataError("core/mnist_files/t10k-images-idx3-ubyte.gz: checksum mismatch")

    monkeypatch.setattr("dashboard.cache.load_mnist", broken)
    from dashboard import cache

    cache.dataset.clear()
    try:
        at = AppTest.from_file(HOME, default_timeout=60)
        at.run()
        assert not at.exception
        assert any("checksum mismatch" in e.value for e in at.error)
    finally:
        cache.dataset.clear()


def test_stepping_through_epochs(tmp_path, monkeypatch, reference_model):
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    trained = load_or_train(tiny_config(epochs=2, seed=41), root=tmp_path)
    at = open_app(model=trained.info.key)
    assert at.select_slider(key="sidebar_epoch").value == 2
    at.select_slider(key="sidebar_epoch").set_value(1)
    at.run()
    assert not at.exception
    assert at.query_params["model"] == f"{trained.info.key}@1"  # the link reopens this epoch
    first = evaluate(checkpoints.load_checkpoint(trained.info.folder, epoch=1), load_mnist().test)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{first.accuracy:.2%}"
    assert "weights after epoch 1 of 2" in texts(at)
    for page in PAGES[1:]:
        at.switch_page(page)
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
    linked = open_app(model=f"{trained.info.key}@1")
    assert linked.select_slider(key="sidebar_epoch").value == 1
    last = open_app(model=f"{trained.info.key}@2")  # the last epoch, as a copied link may name it
    assert not last.warning and last.select_slider(key="sidebar_epoch").value == 2
    bad = open_app(model=f"{trained.info.key}@9")
    assert "saved epochs 1 to 2" in texts(bad)


def test_scorecard_page_computes_in_the_background_then_shows_the_table(tmp_path, monkeypatch, reference_model):
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
    key = f"scorecard:{trained.info.key}"
    for _ in range(600):  # the background task, at most a minute
        status = cache.heavy_work().status(key)
        if status.state in ("done", "failed"):
            break
        import time

        time.sleep(0.1)
    assert status.state == "done", status
    at.run()
    table = at.dataframe[0].value
    assert sorted(table["method"]) == sorted(scorecard.INPUT_METHODS)
    assert "Over 20 test digits" in texts(at)
    assert list((tmp_path / "models" / trained.info.key).glob("scorecard_epoch01_20_*.json"))


@pytest.fixture
def server_env(monkeypatch):
    """Set the server's settings through its environment for one test (they are read once per server)."""
    from dashboard import cache

    def apply(**env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        cache.settings.clear()

    yield apply
    cache.settings.clear()


def test_teachers_switch_hides_training_and_says_why(tmp_path, monkeypatch, server_env, reference_model):
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    first = load_or_train(tiny_config(seed=81), root=tmp_path)
    server_env(MNIST_CNN_TRAINING="off")
    at = open_app(model=first.info.key)
    assert not any(b.label == "Train" for b in at.button)
    assert "Training is switched off on this server" in texts(at)


def test_switched_off_with_an_empty_cache_is_a_clear_message(tmp_path, monkeypatch, server_env, reference_model):
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    server_env(MNIST_CNN_TRAINING="off")
    at = open_app()
    assert any("training is switched off" in e.value and "python -m core.train" in e.value for e in at.error)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())  # nothing trained


def test_pinned_models_are_the_only_ones_offered(tmp_path, monkeypatch, server_env, reference_model):
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    keys = [load_or_train(tiny_config(seed=90 + i), root=tmp_path).info.key for i in range(3)]
    server_env(MNIST_CNN_MODELS=f"{keys[2]},{keys[0]}")
    at = open_app(model=keys[1])  # a link to a model this server does not offer
    assert "not in this machine's cache" in texts(at)
    assert at.selectbox(key="sidebar_model").options == [
        f"{info.label}" for info in [checkpoints.read_info(tmp_path / "models" / k) for k in (keys[2], keys[0])]
    ]
