"""The sidebar, headless with AppTest: switching models, stepping through epochs, training a
new model in the background, and what a server's host switched off or pinned."""

from __future__ import annotations

import pytest

from core import checkpoints
from core.data import load_mnist
from core.evaluate import evaluate
from core.train import load_or_train
from tests.apptest import PAGES, finish_training, open_app, server_env, texts
from tests.conftest import tiny_config

__all__ = ["server_env"]  # a fixture: imported for pytest to find
TYPED = "a source I type"  # the Data list's last option: a folder or hf:NAME typed in


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


def test_teachers_switch_hides_training_and_says_why(tmp_path, monkeypatch, server_env, reference_model):
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    first = load_or_train(tiny_config(seed=81), root=tmp_path)
    server_env(MNIST_CNN_TRAINING="off")
    at = open_app(model=first.info.key)
    assert not any(b.label == "Train" for b in at.button)
    assert "Training is switched off on this server" in texts(at)


def test_pinned_models_are_the_only_ones_offered(tmp_path, monkeypatch, server_env, reference_model):
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    keys = [load_or_train(tiny_config(seed=90 + i), root=tmp_path).info.key for i in range(3)]
    server_env(MNIST_CNN_MODELS=f"{keys[2]},{keys[0]}")
    at = open_app(model=keys[1])  # a link to a model this server does not offer
    assert "not in this machine's cache" in texts(at)
    assert at.selectbox(key="sidebar_model").options == [
        f"{info.label}" for info in [checkpoints.read_info(tmp_path / "models" / k) for k in (keys[2], keys[0])]
    ]


def test_a_new_model_trains_on_a_folder_the_sidebar_names(tmp_path, monkeypatch, reference_model, named_folder):
    """The data set is chosen where a model is trained: a folder of IDX files with classes.txt is
    read with every check the command line makes, trained on, then named in the model list."""
    from tests.conftest import FASHION

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    first = load_or_train(tiny_config(seed=51), root=tmp_path)
    at = open_app(model=first.info.key)
    at.selectbox(key="train_data").set_value(TYPED)
    at.run()
    assert "any, since this server listens on this machine alone" in texts(at)  # .streamlit: 127.0.0.1
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "train-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03")  # a header cut short
    for typed, message in (
        ("", "Type a folder or hf:NAME"),
        (str(tmp_path / "nowhere"), "does not exist"),
        (str(broken), "train-images-idx3-ubyte: truncated"),
    ):
        at.text_input(key="train_data_other").set_value(typed)
        at.selectbox(key="train_recipe").set_value("reference")
        next(b for b in at.button if b.label == "Train").click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert message in " ".join(e.value for e in at.error), (typed, [e.value for e in at.error])
    assert len(checkpoints.list_checkpoints(tmp_path)) == 1  # nothing queued, nothing lost
    at.text_input(key="train_data_other").set_value(str(named_folder))
    at.number_input(key="train_seed").set_value(52)
    next(b for b in at.button if b.label == "Train").click()
    at.run()
    finish_training(tmp_path)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "seed 52" in texts(at)
    trained = [i for i in checkpoints.list_checkpoints(tmp_path) if i.config.seed == 52]
    assert [i.data_source for i in trained] == [str(named_folder)]
    assert f"reference · {named_folder.name} ·" in trained[0].label  # the model list names its data
    assert any(all(name in s.proto.spec for name in FASHION[1:]) for s in at.get("plotly_chart"))  # per class


def test_the_train_form_refuses_more_saved_points_than_it_keeps(tmp_path, monkeypatch, reference_model):
    """4 epochs saved 10 times each: a sentence, nothing queued, nothing lost."""
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    first = load_or_train(tiny_config(seed=61), root=tmp_path)
    at = open_app(model=first.info.key)
    at.number_input(key="train_epochs").set_value(4)
    at.number_input(key="train_saves").set_value(10)
    next(b for b in at.button if b.label == "Train").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "make 40 saved points; at most 30" in " ".join(e.value for e in at.error)
    assert len(checkpoints.list_checkpoints(tmp_path)) == 1 and "sidebar_job" not in at.session_state


def test_a_host_can_hide_typed_data_sources(tmp_path, monkeypatch, server_env, reference_model):
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    first = load_or_train(tiny_config(seed=71), root=tmp_path)
    at = open_app(model=first.info.key)
    assert TYPED in at.selectbox(key="train_data").options
    server_env(MNIST_CNN_TYPED_DATA="off")
    at = open_app(model=first.info.key)
    assert TYPED not in at.selectbox(key="train_data").options
    assert not at.text_input  # nowhere to type a path
    assert "Typed data sources are off on this server" in texts(at)


@pytest.fixture
def listening_on():
    """Run the app as a server listening on another address (Streamlit's server.address)."""
    from streamlit import config

    before = config.get_option("server.address")
    yield lambda address: config.set_option("server.address", address)
    config.set_option("server.address", before)


def test_a_server_open_to_the_room_offers_no_typed_source_without_a_root(tmp_path, monkeypatch, listening_on):
    """On 0.0.0.0 with no data root: no typed folder, no hf:NAME, and the sidebar says why."""
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    first = load_or_train(tiny_config(seed=72), root=tmp_path)
    listening_on("0.0.0.0")
    at = open_app(model=first.info.key)
    assert TYPED not in at.selectbox(key="train_data").options and not at.text_input
    assert "Typed folders and Hugging Face data sets are off: this server is reachable from other machines" in texts(at)


def test_inside_the_host_s_root_a_visitor_trains_and_every_escape_reads_alike(
    tmp_path, monkeypatch, server_env, listening_on, named_folder
):
    """A room's server with a data root: a folder inside it is trained on; traversal, an
    absolute path elsewhere, a link out of the root and a missing folder all get one sentence,
    and nothing is queued; hf:NAME is refused; the host's own data still opens."""
    import shutil

    from core.data_access import REFUSED

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path / "cache"))
    first = load_or_train(tiny_config(seed=73), root=tmp_path / "cache")
    root = tmp_path / "root"
    shutil.copytree(named_folder, root / "clothes")
    (root / "out").symlink_to(named_folder.parent, target_is_directory=True)
    server_env(MNIST_CNN_DATA_ROOT=str(root))
    listening_on("0.0.0.0")
    at = open_app(model=first.info.key)
    at.selectbox(key="train_data").set_value(TYPED)
    at.run()
    assert "inside the server's data folder" in texts(at)
    for typed in ("../", str(named_folder), "out/clothes", "nowhere", "clothes/../../root/../.."):
        at.text_input(key="train_data_other").set_value(typed)
        next(b for b in at.button if b.label == "Train").click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert [e.value for e in at.error] == [REFUSED], typed
    at.text_input(key="train_data_other").set_value("hf:fashion_mnist")
    next(b for b in at.button if b.label == "Train").click()
    at.run()
    assert [e.value for e in at.error] == ["This server does not download Hugging Face data sets typed here."]
    assert "sidebar_job" not in at.session_state and len(checkpoints.list_checkpoints(tmp_path / "cache")) == 1
    at.text_input(key="train_data_other").set_value("clothes")
    at.selectbox(key="train_recipe").set_value("reference")
    at.number_input(key="train_seed").set_value(74)
    next(b for b in at.button if b.label == "Train").click()
    at.run()
    assert not at.error, [e.value for e in at.error]
    finish_training(tmp_path / "cache")
    trained = [i for i in checkpoints.list_checkpoints(tmp_path / "cache") if i.config.seed == 74]
    assert [i.data_source for i in trained] == [str((root / "clothes").resolve())]
