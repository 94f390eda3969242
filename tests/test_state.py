"""The model and digit a session resolves (``dashboard.state``), headless with AppTest: links,
damaged or deleted caches, the first start, and what a server without training says."""

from __future__ import annotations

import json
import shutil

from streamlit.testing.v1 import AppTest

from core.train import load_or_train
from dashboard.view import Sample
from tests.apptest import HOME, PAGES, finish_training, open_app, progress_texts, server_env, texts
from tests.conftest import tiny_config
from tests.test_data import write_folder

__all__ = ["server_env"]  # a fixture: imported for pytest to find


def test_url_selection_is_read_and_checked(reference_model):
    at = open_app("app_pages/feature_maps.py", split="test", index="42")
    assert "**test #42**" in texts(at)
    bad = open_app(split="test", index="999999")
    assert "out of range" in texts(bad)
    worse = open_app(split="validation", index="x")
    assert "only 'test' and 'train' exist" in texts(worse)


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


def test_switched_off_with_an_empty_cache_is_a_clear_message(tmp_path, monkeypatch, server_env, reference_model):
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    server_env(MNIST_CNN_TRAINING="off")
    at = open_app()
    assert any("training is switched off" in e.value and "python -m core.train" in e.value for e in at.error)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())  # nothing trained


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


def test_link_warnings_are_drawn_at_the_top_of_the_page(reference_model):
    at = open_app(split="test", index="999999")
    first = at.main[0]
    assert first.type == "warning" and "out of range" in first.value, first
    order = [element.type for element in at.main.children.values()]
    assert order.index("title") > 0, order  # the page's title comes after the warning


def test_switching_models_checks_the_selection_against_the_new_data(tmp_path, monkeypatch, reference_model):
    """The digit stays selected when the other model reads the same data; a model trained on
    a smaller data set that lacks it gets test #0 and a warning saying why."""
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    first = load_or_train(tiny_config(seed=61), root=tmp_path)
    same_data = load_or_train(tiny_config(seed=62), root=tmp_path)
    small = tmp_path / "small_mnist"
    small.mkdir()
    write_folder(small, n_train=50, n_test=20)
    other_data = load_or_train(tiny_config(seed=63, data_source=str(small)), root=tmp_path)
    at = open_app(model=first.info.key, split="test", index="9999")
    assert at.session_state["view_sample"] == Sample("test", 9999)
    at.selectbox(key="sidebar_model").set_value(same_data.info.key)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "seed 62" in texts(at) and not at.warning
    assert at.session_state["view_sample"] == Sample("test", 9999)
    assert at.query_params["index"] == "9999"
    at.selectbox(key="sidebar_model").set_value(other_data.info.key)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "seed 63" in texts(at)
    assert "Index 9,999 is out of range: the test split has 0 to 19" in at.main[0].value
    assert at.session_state["view_sample"] == Sample("test", 0)
    assert at.query_params["index"] == "0" and at.query_params["model"] == other_data.info.key


def test_a_selection_out_of_range_is_checked_on_the_next_run(reference_model):
    at = open_app(split="test", index="5")
    at.session_state["view_sample"] = Sample("test", 10**6)
    at.run()
    assert not at.exception
    assert "Index 1,000,000 is out of range" in at.main[0].value
    assert at.session_state["view_sample"] == Sample("test", 0)
    at.run()  # said once: the selection is valid again
    assert not at.warning


def test_a_first_start_serves_the_first_epoch_then_the_final_model(tmp_path, monkeypatch, reference_model):
    """While the default model trains, every page draws with the weights saved after epoch 1
    (a notice says so; the link names epoch 1); when training ends the same session switches
    to the final weights. Training is held after its first epoch until the test lets it go."""
    import threading

    import core.train
    from core import checkpoints, config
    from core.data import load_mnist
    from core.evaluate import evaluate

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    monkeypatch.setitem(config.RECIPES, "default", tiny_config(recipe="default", seed=23, epochs=2))
    saved, go_on = threading.Event(), threading.Event()
    real_train = core.train.train

    def held(config, data, device, progress=None, on_epoch=None, adaptive_threads=True):
        def hold(epoch, model, record, test_logits):
            on_epoch(epoch, model, record, test_logits)
            if epoch == 1:
                saved.set()
                go_on.wait(120)

        return real_train(config, data, device, progress, hold, adaptive_threads)

    monkeypatch.setattr(core.train, "train", held)
    try:
        at = open_app()  # a first visit asks for the default model
        assert saved.wait(120), "the first epoch was never saved"
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        key = checkpoints.model_key(config.RECIPES["default"], load_mnist().fingerprint)
        first = evaluate(checkpoints.load_provisional_checkpoint(tmp_path / "models" / key, 1), load_mnist().test)
        metrics = {m.label: m.value for m in at.metric}
        assert metrics["Test accuracy"] == f"{first.accuracy:.2%}"  # the epoch-1 weights, not a progress bar
        assert "Provisional weights" in texts(at) and "after epoch 1 of 2" in texts(at)
        assert at.query_params["model"] == f"{key}@1"  # a link copied now names what it shows
        for page in PAGES[1:]:  # every page draws with them, none fails
            at.switch_page(page)
            at.run()
            assert not at.exception, (page, [e.value for e in at.exception])
        at.switch_page("app_pages/feature_maps.py")
        at.run()
        assert "Provisional weights" in texts(at) and at.get("plotly_chart")
    finally:
        go_on.set()
    finish_training(tmp_path)
    at.switch_page(PAGES[0])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    final = load_or_train(config.RECIPES["default"], root=tmp_path)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{final.info.test_accuracy:.2%}"
    assert "Provisional weights" not in texts(at)
    assert at.query_params["model"] == key  # the final model: no epoch in the link
    assert not (tmp_path / "models" / key / checkpoints.PROVISIONAL).exists()
    later = open_app(model=f"{key}@1")  # the link copied during training still opens epoch 1
    assert not later.warning and later.select_slider(key="sidebar_epoch").value == 1


def test_a_wrong_server_setting_is_one_sentence_not_a_traceback(server_env, reference_model, caplog):
    server_env(MNIST_CNN_MAX_MODELS="lots")
    at = AppTest.from_file(HOME, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "setting it does not understand" in texts(at) and "MNIST_CNN_MAX_MODELS must be a whole number" in texts(at)
    assert not at.get("plotly_chart")  # nothing else is drawn
    assert "wrong server setting: MNIST_CNN_MAX_MODELS" in caplog.text  # and the host reads it in the log


def test_a_damaged_data_folder_given_to_the_server_is_named_on_the_page(server_env, tmp_path, monkeypatch):
    """``-- --data FOLDER`` (here through the environment) naming a folder whose files are cut
    short: one sentence naming the file, no traceback, nothing trained."""
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "clothes"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03\0\0")
    server_env(MNIST_CNN_DATA=str(folder))
    at = AppTest.from_file(HOME, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "The data set could not be loaded" in texts(at) and "train-images-idx3-ubyte: truncated" in texts(at)
    assert not (tmp_path / "cache" / "models").exists() or not any((tmp_path / "cache" / "models").iterdir())


def test_a_link_to_a_model_whose_data_folder_is_gone_falls_back_to_the_default(
    tmp_path, monkeypatch, reference_model, named_folder
):
    """A link naming a model trained on a folder that has since moved: a warning naming the
    model and the folder, then the server's default model, not a dead page."""
    import shutil

    from core.train import load_or_train
    from tests.conftest import tiny_config

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path / "cache"))
    moved = shutil.copytree(named_folder, tmp_path / "moved")
    trained = load_or_train(tiny_config(data_source=str(moved)), root=tmp_path / "cache")
    load_or_train(tiny_config(seed=7), root=tmp_path / "cache")  # bundled data
    shutil.rmtree(moved)
    from core import data
    from dashboard import cache

    data._folders.clear()  # as after a restart: the folder is read again, and is gone
    cache.dataset.clear()
    at = open_app(model=trained.info.key)
    assert f"The model {trained.info.key} was trained on data this server cannot read now" in texts(at)
    assert str(moved) in texts(at) and "showing the default model instead" in texts(at)
    assert at.query_params["model"] != trained.info.key


def test_the_only_model_with_its_data_gone_is_not_picked_again(tmp_path, monkeypatch, server_env, named_folder):
    """The cache holds one model, whose data folder has moved: the fallback leaves it out
    rather than failing on it again; with training switched off that is a clear sentence."""
    import shutil

    from core import data
    from core.train import load_or_train
    from dashboard import cache
    from tests.conftest import tiny_config

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path / "cache"))
    moved = shutil.copytree(named_folder, tmp_path / "moved")
    trained = load_or_train(tiny_config(data_source=str(moved)), root=tmp_path / "cache")
    shutil.rmtree(moved)
    data._folders.clear()
    cache.dataset.clear()
    server_env(MNIST_CNN_TRAINING="off")
    at = AppTest.from_file(HOME, default_timeout=60)
    at.query_params["model"] = trained.info.key
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "No trained model is cached, and training is switched off" in texts(at)
