"""A host's own network (--net FILE.py:CLASS --weights FILE) in the model cache and on every page.

core.host_networks keeps it as a model folder; the numbers are checked another way: the cached
model's logits against the host's module run by hand (normalised, its output turned into
logits), the kept evaluation against a fresh pass, the randomisation order against the order
hooks on a private copy see the parameterised modules called in. Every page then renders
through AppTest on four architectures (LeNet-5, an MLP, pytorch/examples' Net, a residual
network with BatchNorm) with no exception, and says in one sentence what it does not draw.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from core import checkpoints
from core.checkpoints import CheckpointError
from core.config import NETS_ENV, NetSpec, server_settings
from core.data import load_mnist, to_tensor
from core.evaluate import evaluate, load_or_evaluate
from core.explanation_checks import cascade_of, randomized
from core.host_networks import open_into_cache
from core.model import MNIST_MEAN, MNIST_STD
from core.network import LOG_PROBS, Network
from core.network_files import import_class
from core.probes import sweep
from core.runs import Point
from core.train import load_cached
from tests.apptest import HOME, PAGES, finish_background, server_env, texts

__all__ = ["server_env"]  # a fixture: imported for pytest to find

NETS = Path(__file__).parent / "nets"


def _weights(folder: Path, spec: str, seed: int = 0) -> tuple[nn.Module, Path]:
    cls = import_class(str(NETS / spec))[0]
    torch.manual_seed(seed)
    module = cls().eval()
    path = folder / f"{spec.partition('.py')[0]}-{seed}.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, path)
    return module, path


@pytest.fixture(scope="module")
def data():
    return load_mnist()


# ---- the settings ------------------------------------------------------------------------


def test_nets_from_the_command_line_the_environment_and_the_settings_file(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(NETS_ENV, raising=False)
    config = tmp_path / "config.toml"
    config.write_text(
        '[mnist_dashboard]\nnets = [{net = "a.py:A", weights = "a.safetensors", mean = 0.5, std = 0.25}]\n'
    )
    monkeypatch.setenv(NETS_ENV, "b.py:B=b.pt")
    argv = ["--net", "c.py:C", "--weights", "/w/c.pt", "--mean", "0.1307", "--std", "0.3081", "--output", "logits"]
    nets = server_settings(argv, config).nets
    assert [n.name for n in nets] == ["A", "B", "C"]
    assert nets[0] == NetSpec(f"{tmp_path / 'a.py'}:A", str(tmp_path / "a.safetensors"), 0.5, 0.25)
    assert nets[1].weights == str(tmp_path / "b.pt") and nets[1].output == "detect"
    assert nets[2] == NetSpec(f"{tmp_path / 'c.py'}:C", "/w/c.pt", 0.1307, 0.3081, "logits")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--net", "lenet.py:LeNet5"], "follow it with --weights FILE"),
        (["--net", "lenet.py", "--weights", "w.pt"], "name a network as FILE.py:CLASS"),
        (["--std", "0.3"], "put it after --net"),
        (["--net", "a.py:A", "--weights", "w", "--output", "scores"], "use one of logits"),
        (["--net", "a.py:A", "--weights", "w", "--std", "0"], "std must be positive"),
    ],
)
def test_a_wrong_net_setting_is_one_sentence(monkeypatch, argv, message):
    monkeypatch.delenv(NETS_ENV, raising=False)
    with pytest.raises(ValueError, match=message):
        server_settings(argv)


# ---- the model folder --------------------------------------------------------------------


def test_a_host_network_is_kept_as_a_model_and_loads_as_the_pages_use_one(tmp_path, data):
    """pytorch/examples' Net (normalised input, log-probabilities out): the cached model takes
    [0, 1] pixels and returns logits equal to the module's own output on normalised pixels."""
    module, weights = _weights(tmp_path, "examples_net.py:Net")
    spec = NetSpec(str(NETS / "examples_net.py") + ":Net", str(weights), MNIST_MEAN, MNIST_STD)
    info = open_into_cache(spec, data, tmp_path / "cache")
    assert info.host and info.network.output == LOG_PROBS and info.epochs_done == 1
    assert info.label.startswith("Net (the host's, examples_net-0.safetensors)")
    trained = load_cached(info.key, root=tmp_path / "cache")
    x = to_tensor(data.test.images[:32])
    with torch.no_grad():
        by_hand = module((x - MNIST_MEAN) / MNIST_STD)  # log-probabilities are logits already
        torch.testing.assert_close(trained.model(x), by_hand, rtol=1e-5, atol=1e-5)
    assert sum(p.numel() for p in trained.model.parameters()) == 1_199_882
    # The test evaluation kept beside it is the one a fresh pass gives (and it is read, not recomputed).
    fresh = evaluate(trained.model, data.test)
    assert info.test_accuracy == pytest.approx(fresh.accuracy)
    broken = copy.deepcopy(trained.model)
    broken.forward = lambda _: (_ for _ in ()).throw(AssertionError("recomputed"))
    kept = load_or_evaluate(broken, data.test, Point(info.folder, 1, "test", data.fingerprint))
    np.testing.assert_allclose(kept.logits, fresh.logits, rtol=1e-5, atol=1e-5)
    # Opened again (a restart): the same key, and the folder is reused as it is.
    meta = info.folder / checkpoints.META
    written = meta.stat().st_mtime_ns
    assert open_into_cache(spec, data, tmp_path / "cache").key == info.key
    assert meta.stat().st_mtime_ns == written


def test_new_weights_or_a_new_class_file_make_a_new_key_and_a_changed_file_is_refused(tmp_path, data):
    net = tmp_path / "lenet.py"
    net.write_text((NETS / "lenet.py").read_text())
    _, first = _weights(tmp_path, "lenet.py:LeNet5", seed=0)
    _, second = _weights(tmp_path, "lenet.py:LeNet5", seed=1)
    root = tmp_path / "cache"
    a = open_into_cache(NetSpec(f"{net}:LeNet5", str(first)), data, root)
    b = open_into_cache(NetSpec(f"{net}:LeNet5", str(second)), data, root)
    assert a.key != b.key
    net.write_text(net.read_text() + "\n# edited\n")
    with pytest.raises(CheckpointError, match=r"changed after model .* was opened from it: restart the server"):
        load_cached(a.key, root=root)
    c = open_into_cache(NetSpec(f"{net}:LeNet5", str(first)), data, root)
    assert c.key not in (a.key, b.key)
    assert load_cached(c.key, root=root).info.host


def test_eviction_spares_the_hosts_networks(tmp_path, data):
    _, weights = _weights(tmp_path, "mlp.py:MLP")
    root = tmp_path / "cache"
    info = open_into_cache(NetSpec(str(NETS / "mlp.py") + ":MLP", str(weights)), data, root)
    assert checkpoints.evict(0, set(), root) == []
    assert info.folder.is_dir()
    # A host's class trained here is a trained model like any other: evicted in its turn.
    from core.config import recipe
    from core.train import load_or_train

    trained = load_or_train(recipe("reference", train_limit=200, arch=f"{NETS / 'mlp.py'}:MLP"), root=root)
    assert checkpoints.evict(0, set(), root) == [trained.info.key]
    assert info.folder.is_dir()


def test_randomisation_walks_a_host_network_top_down_in_call_order(tmp_path, data):
    """The cascade's order is the parameterised modules' first calls, reversed, as hooks on a
    private copy see them; only the named layers change, and the original stays as it was."""
    module, weights = _weights(tmp_path, "lenet.py:LeNet5")
    info = open_into_cache(NetSpec(str(NETS / "lenet.py") + ":LeNet5", str(weights)), data, tmp_path / "cache")
    model = load_cached(info.key, root=tmp_path / "cache").model
    order: list[str] = []
    private = copy.deepcopy(module)
    for name, sub in private.named_modules():
        if name and any(True for _ in sub.parameters(recurse=False)):
            sub.register_forward_pre_hook(lambda *_, name=name: order.append(name) if name not in order else None)
    private(torch.zeros(1, 1, 28, 28))
    assert cascade_of(model) == tuple(f"graph.{name}" for name in reversed(order))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    top = cascade_of(model)[:2]
    drawn = randomized(model, top, seed=3)
    for name, value in drawn.state_dict().items():
        changed = not torch.equal(value, before[name])
        assert changed == (name.rpartition(".")[0] in top), name
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_bend_sweep_on_a_host_network_reads_its_own_layers(data):
    """The sweep's probabilities equal the network's logits on the bent digits, softmaxed; one
    similarity curve per shown layer but the logits."""
    network = Network(import_class(str(NETS / "lenet.py:LeNet5"))[0]().eval(), 10, to_tensor(data.test.images[:8]))
    found = sweep(network, to_tensor(data.test.images[:1])[0, 0], "rotation", points=7)
    with torch.no_grad():
        expected = torch.softmax(network.logits(torch.as_tensor(found.images)[:, None]).double(), 1).float()
    np.testing.assert_allclose(found.probs, expected.numpy(), atol=1e-5)
    assert list(found.similarity) == list(network.shown)[:-1]


# ---- every page ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def host_servers(tmp_path_factory):
    """Weights for three architectures (seeded, untrained: the pages must not care)."""
    folder = tmp_path_factory.mktemp("host_weights")
    specs = ("lenet.py:LeNet5", "mlp.py:MLP", "examples_net.py:Net", "resnet.py:SmallResNet")
    return {spec: _weights(folder, spec)[1] for spec in specs}


def _open(page: str | None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(HOME, default_timeout=180)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


@pytest.mark.parametrize("spec", ["lenet.py:LeNet5", "mlp.py:MLP", "examples_net.py:Net", "resnet.py:SmallResNet"])
def test_every_page_opens_on_a_host_network(spec, host_servers, server_env, tmp_path, monkeypatch):
    """The app opens on the host's network (the first it names); a network that cannot be
    served is named in the sidebar with its sentence, and the others serve on."""
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path / "cache"))
    broken = f"{NETS / 'broken.py'}:WrongWidth={host_servers[spec]}"
    server_env(MNIST_CNN_NETS=f"{NETS / spec}={host_servers[spec]};{broken}", MNIST_CNN_TRAINING="off")
    name = spec.rpartition(":")[2]
    for page in [None, *PAGES[1:]]:
        at = _open(page)
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])
        shown = texts(at)
        assert f"{name}, the host's network" in shown, page
        assert "WrongWidth** is not served" in shown and "do not fit" in shown, page
        if page == "app_pages/units.py":  # the network's own first unit, its card once the index is kept
            finish_background("units:", timeout_s=170)
            at.run()
            assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
            layers = at.selectbox(key="units_layer").options
            assert layers, page
            assert f"{layers[0]} · " in " ".join(h.value for h in at.subheader), [h.value for h in at.subheader]
            assert "That is **" in texts(at) or "The steps stop here" in texts(at)
    overview = _open(None)
    steps = overview.dataframe[0].value
    assert sum(steps["parameters"]) == sum(p.numel() for p in import_class(str(NETS / spec))[0]().parameters())


def test_a_whole_cell_is_explained_on_a_host_network(host_servers, server_env, tmp_path, monkeypatch):
    """The Errors page's explanation of a whole cell reads the host's own layers: the sentence
    names its last layer with positions, and its channel buttons open that layer's cards."""
    from streamlit.testing.v1 import AppTest

    from core import confusion
    from core.checkpoints import ModelRef
    from dashboard import cache

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path / "cache"))
    spec = "resnet.py:SmallResNet"
    server_env(MNIST_CNN_NETS=f"{NETS / spec}={host_servers[spec]}", MNIST_CNN_TRAINING="off")
    at = AppTest.from_file(HOME, default_timeout=180)
    at.run()
    key = next(info.key for info in cache.cached_models() if info.network is not None)
    matrix = cache.evaluation(ModelRef(key)).confusion.copy()
    right = matrix.diagonal().copy()
    np.fill_diagonal(matrix, -1)
    matrix[right == 0] = -1  # a class with digits read right, to compare the channels with
    a, b = divmod(int(matrix.argmax()), len(matrix))
    at.session_state["view_cell"] = (a, b)  # as a click on the cell chooses it (dashboard.state)
    at.switch_page("app_pages/errors.py")
    at.session_state["errors_why_open"] = True
    at.run()
    finish_background("units:", timeout_s=170)
    at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    layer = confusion.explained_layer(cache.unit_layers(ModelRef(key)))
    assert layer == "block2.shortcut.0"
    assert f"{layer} channels " in texts(at), texts(at)
    assert any(button.key.startswith(f"errors_why_{layer}_") for button in at.button)
    assert "the features the last linear layer reads" in texts(at)


def test_a_network_without_units_says_so_on_every_view(tmp_path, data, server_env, monkeypatch):
    """Logistic regression (one linear layer: the logits) has no unit layer: the Units page says
    so, a whole cell is explained by its map alone, and Compare layers has no channel buttons."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path / "cache"))
    _, weights = _weights(tmp_path, "logistic.py:Logistic")
    server_env(MNIST_CNN_NETS=f"{NETS / 'logistic.py:Logistic'}={weights}", MNIST_CNN_TRAINING="off")
    at = AppTest.from_file(HOME, default_timeout=180)
    at.run()
    at.switch_page("app_pages/units.py")
    at.run()
    assert "no conv layer and no hidden linear layer" in texts(at)
    at.switch_page("app_pages/errors.py")
    at.session_state["errors_why_open"] = True
    at.run()
    finish_background("units:", timeout_s=170)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    sentence = next(m.value for m in at.markdown if "Integrated Gradients evidence for" in m.value)
    assert sentence.endswith("positive mass).") or sentence.endswith("half of it.") or "no pixel" in sentence
    assert "channel" not in sentence and "training digits nearest" in texts(at)
    at.session_state["at_tab"] = "Compare layers"
    at.switch_page("app_pages/attributions.py")
    at.run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    assert not any(button.key.startswith("at_units_") for button in at.button)


def test_the_data_tools_read_the_layer_before_the_scores(tmp_path, data):
    """The data map's features and TracIn's bank on a host's network are the last linear
    layer's input and output, as a forward hook on a private copy sees them."""
    from core import influence, projection

    module, weights = _weights(tmp_path, "examples_net.py:Net")
    spec = NetSpec(str(NETS / "examples_net.py") + ":Net", str(weights), MNIST_MEAN, MNIST_STD)
    info = open_into_cache(spec, data, tmp_path / "cache")
    model = load_cached(info.key, root=tmp_path / "cache").model
    private, seen = copy.deepcopy(module), {}
    private.fc2.register_forward_hook(lambda _, i, o: seen.update(inputs=i[0].detach(), outputs=o.detach()))
    x = to_tensor(data.test.images[:40])
    with torch.no_grad():
        private((x - MNIST_MEAN) / MNIST_STD)
    np.testing.assert_allclose(projection.fc1_features(model, x), seen["inputs"].numpy(), atol=1e-5)
    bank = influence.compute_bank(model, data.test.images[:40], epoch=1)
    np.testing.assert_allclose(bank.inputs, seen["inputs"].numpy(), atol=1e-5)
    np.testing.assert_allclose(bank.logits, seen["outputs"].numpy(), atol=1e-5)
    assert influence.point_weights(info, 40).tolist() == [1.0]


def test_the_data_tools_refuse_a_network_whose_last_linear_layer_is_not_its_scores():
    from core.network import Contract, NetworkError, scored

    class Halved(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(784, 10)

        def forward(self, x):
            return self.fc(torch.flatten(x, 1)) * 0.5  # the scores are not the layer's output

    model = scored(Halved().eval(), Contract(output="logits"))
    with pytest.raises(NetworkError, match=r"the output of the last linear layer \(fc\) is not the network's scores"):
        model.head(torch.rand(2, 1, 28, 28))


def test_the_data_pages_work_on_a_host_network(host_servers, server_env, tmp_path, monkeypatch):
    """The data map, the label ranking and the training digits behind an answer, computed in
    the background for an MLP the host named."""
    from tests.apptest import array, chart_specs, finish_background

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path / "cache"))
    server_env(MNIST_CNN_NETS=f"{NETS / 'mlp.py:MLP'}={host_servers['mlp.py:MLP']}", MNIST_CNN_TRAINING="off")
    at = _open("app_pages/data_map.py")
    finish_background("map:", timeout_s=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    spec = next(s for s in chart_specs(at) if any(t["type"] == "scattergl" for t in s["data"]))
    assert sum(len(array(t["customdata"]).reshape(-1, 3)) for t in spec["data"] if t.get("name") == "digits") == 10_000
    assert "the numbers its last linear layer" in texts(at)
    for page in ("app_pages/labels.py", "app_pages/influence.py"):
        at = _open(page)
        finish_background("banks:", timeout_s=180)
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])
    assert "Trained elsewhere: one saved point, weighing 1" in texts(at)


def test_layer_methods_on_a_host_network_equal_its_own_gradients(data):
    """Captum's layer methods on a host's network (a tap put after the shown layer's node of a
    private copy) against the contract's hookless gradients: Grad-CAM, and activation × gradient
    summed over channels; a layer without positions is refused for Grad-CAM with a sentence."""
    from core.attributions import AttributionError, attribute
    from core.network import Contract, scored

    module = import_class(str(NETS / "examples_net.py:Net"))[0]()
    torch.manual_seed(0)
    module = module.eval()
    model = scored(module, Contract(MNIST_MEAN, MNIST_STD, LOG_PROBS))
    x, target = to_tensor(data.test.images[:3]), torch.tensor([1, 2, 3])
    network = Network(module, 10, x, Contract(MNIST_MEAN, MNIST_STD))
    assert list(model.shown) == list(network.shown) == ["conv1", "conv2", "max_pool2d", "fc1", "fc2"]
    for layer in ("conv1", "conv2", "max_pool2d"):
        np.testing.assert_allclose(
            attribute("Grad-CAM", model, x, target, layer), network.grad_cam(x, layer, target).numpy(), atol=1e-6
        )
        out, grad = network.gradients(x, [layer], target)[layer]
        np.testing.assert_allclose(
            attribute("Layer Activation × Gradient", model, x, target, layer), (out * grad).sum(1).numpy(), atol=1e-6
        )
    out, grad = network.gradients(x, ["fc1"], target)["fc1"]
    np.testing.assert_allclose(
        attribute("Layer Activation × Gradient", model, x, target, "fc1"), (out * grad).numpy(), atol=1e-6
    )
    with pytest.raises(AttributionError, match="Grad-CAM applies to conv1, conv2, max_pool2d in this network"):
        attribute("Grad-CAM", model, x, target, "fc1")


def test_compare_layers_on_a_host_network(host_servers, server_env, tmp_path, monkeypatch):
    """LeNet-5's two convolutions and two pools as maps at their own resolution, its last
    hidden layer (84 units) as bars."""
    from tests.apptest import array, chart_specs

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path / "cache"))
    server_env(MNIST_CNN_NETS=f"{NETS / 'lenet.py:LeNet5'}={host_servers['lenet.py:LeNet5']}")
    at = _open("app_pages/attributions.py")
    at.session_state["at_tab"] = "Compare layers"
    at.run()
    at.selectbox(key="at_layer_method").set_value("Layer Activation × Gradient")
    at.toggle(key="at_layer_raw").set_value(True)
    at.run()
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    spec = next(s for s in chart_specs(at) if any(t.get("xaxis") == "x4" for t in s["data"]))
    shapes = [array(t["z"]).reshape(-1).size for t in spec["data"] if t["type"] == "heatmap"]
    assert shapes == [28 * 28, 14 * 14, 10 * 10, 5 * 5]
    assert "9 has no position: its 84 units' attributions instead" in texts(at)


def test_the_scorecard_of_a_host_network(tmp_path, data, monkeypatch):
    """LeNet-5's layer methods are scored at its last layer with positions; an MLP has none, so
    only the input methods are rows. The data-randomisation column is not scored (no shuffled-label
    twin of an architecture trained elsewhere), and says why. A cell is the mean of the badges'
    own numbers for the same digits and seed."""
    from core import explanation_checks as checks
    from core import scorecard
    from core.attributions import explainer
    from core.checkpoints import ModelRef

    root = tmp_path / "cache"
    _, lenet_weights = _weights(tmp_path, "lenet.py:LeNet5")
    lenet = open_into_cache(NetSpec(str(NETS / "lenet.py") + ":LeNet5", str(lenet_weights)), data, root)
    model = load_cached(lenet.key, root=root).model
    assert scorecard.scored_layer(model) == "5"
    assert list(scorecard.rows_at("5"))[-3:] == [f"{m} @ 5" for m in scorecard.LAYER_METHODS]
    x, t = to_tensor(data.test.images[:6]), torch.arange(6) % 10
    rows = scorecard.compute(model, x, t, methods=("Saliency", "Grad-CAM @ 5"))
    for method, request in (("Saliency", "Saliency"), ("Grad-CAM @ 5", "Grad-CAM @ 5")):
        run = explainer(scorecard.rows_at("5")[request])
        verdicts = checks.verdicts(run, model, x, t, scorecard.SEED, original=run(model, x, t))
        gain = np.mean([v.deletion_random - v.deletion for v in verdicts])
        assert rows[method]["deletion_gain"].mean == pytest.approx(gain, abs=1e-6), method
        assert np.isnan(rows[method]["data_randomisation"].mean)

    monkeypatch.setattr(scorecard, "DIGITS", 4)
    _, mlp_weights = _weights(tmp_path, "mlp.py:MLP")
    mlp = open_into_cache(NetSpec(str(NETS / "mlp.py") + ":MLP", str(mlp_weights)), data, root)
    card = scorecard.load_or_compute(ModelRef(mlp.key), root=root)
    assert sorted(card.rows) == sorted(scorecard.INPUT_METHODS)
    assert card.shuffled == scorecard.HOST_SHUFFLED and "not scored" in card.summary()


# ---- a host's class trained here (core.train --arch) ------------------------------------------


def test_a_host_class_trains_here_with_a_recipe_and_opens_like_any_model(tmp_path, capsys):
    """``python -m core.train --arch FILE.py:CLASS``: LeNet-5 trained through the pages' wrapper
    (the class's own parameters change), cached under a key of its own that changes with its
    file, and loaded back with the same outputs; the reference's key is unchanged."""
    from core import train
    from core.checkpoints import model_key
    from core.config import RECIPES, recipe

    net = tmp_path / "lenet.py"
    net.write_text((NETS / "lenet.py").read_text())
    root = tmp_path / "cache"
    config = recipe("reference", train_limit=500, arch=f"{net}:LeNet5")
    trained = train.load_or_train(config, root=root, adaptive_threads=False)
    assert trained.info.host and trained.info.network is None and "LeNet5" in trained.info.label
    model = trained.model
    assert all(a is b for a, b in zip(model.parameters(), model.source.parameters(), strict=True))  # one network
    untrained = import_class(f"{net}:LeNet5")[0]()
    assert not torch.equal(model.source.state_dict()["0.weight"], untrained.state_dict()["0.weight"])
    loaded = load_cached(trained.info.key, root=root).model
    x = to_tensor(load_mnist().test.images[:16])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
        by_hand = model.source((x - MNIST_MEAN) / MNIST_STD)  # logits: LeNet-5 ends in a linear layer
        torch.testing.assert_close(loaded(x), by_hand)
    again = train.load_or_train(config, root=root, adaptive_threads=False)
    assert not again.trained_now  # cached
    data = load_mnist()
    reference_key = model_key(RECIPES["reference"], data.fingerprint)
    assert model_key(RECIPES["reference"].replace(arch=""), data.fingerprint) == reference_key
    net.write_text(net.read_text() + "\n# edited\n")
    assert model_key(config, data.fingerprint) != trained.info.key
    with pytest.raises(CheckpointError, match=r"changed after model .* was trained with it: train it again"):
        load_cached(trained.info.key, root=root)


def test_the_command_line_trains_a_host_class_and_refuses_a_broken_one(tmp_path, monkeypatch, capsys):
    from core import train

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path))
    assert train.main(["--arch", str(NETS / "mlp.py:MLP"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "linear_relu_stack.0" in printed and "arch=" in printed and "test accuracy" in printed
    with pytest.raises(SystemExit):
        train.main(["--arch", str(NETS / "broken.py:WrongWidth"), "--dry-run"])
    assert "gives 7 scores per digit, but the data set has 10 classes" in capsys.readouterr().err


def test_the_training_form_offers_the_hosts_architectures(host_servers, server_env, tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path / "cache"))
    server_env(MNIST_CNN_NETS=f"{NETS / 'lenet.py:LeNet5'}={host_servers['lenet.py:LeNet5']}")
    at = _open(None)
    box = at.selectbox(key="train_arch")
    assert box.options == ["the reference CNN", "LeNet5 (the host's)"]


def test_every_page_opens_on_a_host_class_trained_here(server_env, tmp_path, monkeypatch):
    from core import train
    from core.config import recipe

    monkeypatch.setenv("MNIST_CNN_CACHE", str(tmp_path / "cache"))
    server_env(MNIST_CNN_TRAINING="off")
    config = recipe("reference", train_limit=300, epochs=2, arch=f"{NETS / 'lenet.py'}:LeNet5")
    trained = train.load_or_train(config, root=tmp_path / "cache", adaptive_threads=False)
    for page in [None, *PAGES[1:]]:
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file(HOME, default_timeout=180)
        at.query_params["model"] = trained.info.key
        at.run()
        if page:
            at.switch_page(page)
            at.run()
        assert not at.exception and not at.error, (page, [e.value for e in (*at.exception, *at.error)])
        assert "reference recipe · LeNet5" in texts(at), page
    assert "trained here with the reference recipe" in texts(_open(None))
    # Through training: its strongest channel of its last layer with positions, at each saved point.
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(HOME, default_timeout=180)
    at.query_params["model"], at.query_params["probe"] = trained.info.key, "training"
    at.run()
    at.switch_page("app_pages/probe.py")
    at.run()
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    assert "Its strongest 5 channel" in texts(at)


def test_reports_of_a_host_network(tmp_path, data):
    """The model report of pytorch/examples' Net: its layers from its graph (parameters as
    the module counts them), where it came from, no curves; the digit report's probabilities
    are the module's own (normalised input, log-probabilities out) and its feature maps are
    its conv and pool outputs, as hooks on a private copy see them."""
    from dashboard.report import digit_report, model_report
    from tests.test_report import array, by_axis_title, plots, sections, table_rows

    module, weights = _weights(tmp_path, "examples_net.py:Net")
    spec = NetSpec(str(NETS / "examples_net.py") + ":Net", str(weights), MNIST_MEAN, MNIST_STD)
    info = open_into_cache(spec, data, tmp_path / "cache")
    trained = load_cached(info.key, root=tmp_path / "cache")
    page = model_report(trained, data, examples=1, root=tmp_path / "cache")
    parts = sections(page)
    rows = table_rows(parts["Architecture"])
    assert rows[-1] == ["total", "", "", f"{sum(p.numel() for p in module.parameters()):,}"]
    assert ["conv1", "conv", "32 × 26 × 26", "320"] in rows
    assert ["normalisation", f"mean {MNIST_MEAN}, std {MNIST_STD}"] in table_rows(parts["Where it came from"])
    assert "Trained elsewhere: no curves." in parts["Training"]

    image = data.test.images[3]
    digit = digit_report(trained, data, image, "test #3", int(data.test.labels[3]))
    x = to_tensor(image[None])
    private, seen = copy.deepcopy(module), {}
    private.conv2.register_forward_hook(lambda _, __, out: seen.update(conv2=torch.relu(out)))
    with torch.no_grad():
        probs = private((x - MNIST_MEAN) / MNIST_STD).exp()[0].double().numpy()
    (bars,) = by_axis_title(plots(digit), "yaxis", "probability")[0]["data"]
    np.testing.assert_allclose(array(bars["y"]), probs, atol=1e-6)
    maps = plots(sections(digit)["Feature maps"])
    assert len(maps) == 3  # conv1, conv2 (after their ReLUs) and the max-pool
    raw = array(maps[1]["data"][0]["customdata"])[..., 0]
    np.testing.assert_allclose(np.sort(raw[~np.isnan(raw)]), np.sort(seen["conv2"].numpy().ravel()), atol=1e-5)
