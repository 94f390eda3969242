"""core.network and core.network_files: any classifier of 28×28 images through one contract.

Four architectures (tests/nets/): the reference CNN; pytorch/examples' Net (functional ReLU
and max-pool, Dropout, log_softmax out); LeNet-5 as in d2l (numeric names, Sigmoid, AvgPool,
padding); a three-layer MLP. Each is checked another way: layer outputs against a plain
forward with hooks on a private copy, logits against the raw output, the randomisation order
against the modules' call order recorded by hooks; and each bad input gets its sentence.
"""

from __future__ import annotations

import copy
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from core.data import load_mnist, to_tensor
from core.model import LAYER_NAMES, MNIST_MEAN, MNIST_STD, MnistCNN
from core.network import LOG_PROBS, LOGITS, PROBS, Contract, Network, NetworkError, detect_output, to_logits
from core.network_files import build, import_class, network_key, read_weights
from tests.test_activations import _forbid_hooks

NETS = Path(__file__).parent / "nets"
MNIST = Contract(mean=MNIST_MEAN, std=MNIST_STD)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return to_tensor(load_mnist().test.images[:16])


def _seeded(cls: type[nn.Module], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return cls().eval()


def _net(spec: str) -> type[nn.Module]:
    return import_class(str(NETS / spec))[0]


def _hooked(module: nn.Module, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], list[str], torch.Tensor]:
    """Every submodule's output and the order modules with parameters are first called in, from
    forward hooks on a private copy: the way the contract is checked, not the way it works."""
    private = copy.deepcopy(module)
    outputs: dict[str, torch.Tensor] = {}
    order: list[str] = []
    for name, sub in private.named_modules():
        if not name:
            continue

        def hook(_, __, out, name=name):
            outputs.setdefault(name, out.detach().clone())

        def pre(_, __, name=name, sub=sub):
            if any(True for _ in sub.parameters(recurse=False)) and name not in order:
                order.append(name)

        sub.register_forward_hook(hook)
        sub.register_forward_pre_hook(pre)
    with torch.no_grad():
        out = private(images)
    return outputs, order, out


def test_the_reference_cnn_is_one_network_through_the_contract(digits):
    model = _seeded(MnistCNN)
    network = Network(model, 10, digits)
    assert network.output == LOGITS
    assert list(network.shown) == list(LAYER_NAMES)  # conv1..fc2, today's names and meanings
    outputs = network.outputs(digits)
    taps = model.taps(digits)
    for name in LAYER_NAMES:
        torch.testing.assert_close(outputs[name], taps[name], rtol=0, atol=0)
    torch.testing.assert_close(network.logits(digits), model(digits))
    assert network.parameterised() == ["conv1", "conv2", "conv3", "conv4", "fc1", "fc2"]
    rows = {layer.name: layer for layer in network.layers}
    assert rows["conv1"].kind == "conv" and rows["conv1"].shape == (4, 26, 26) and rows["conv1"].parameters == 40
    assert rows["relu1"].kind == "activation" and rows["pool2"].kind == "pool" and rows["flatten"].kind == "flatten"
    assert sum(layer.parameters for layer in network.layers) == 16_614


def test_pytorch_examples_net(digits):
    model = _seeded(_net("examples_net.py:Net"))
    network = Network(model, 10, digits, MNIST)
    assert network.output == LOG_PROBS  # detected: it returns log_softmax
    assert list(network.shown) == ["conv1", "conv2", "max_pool2d", "fc1", "fc2"]
    hooked, order, out = _hooked(model, (digits - MNIST_MEAN) / MNIST_STD)
    outputs = network.outputs(digits)
    torch.testing.assert_close(outputs["conv1"], F.relu(hooked["conv1"]))  # after its functional ReLU
    torch.testing.assert_close(outputs["conv2"], F.relu(hooked["conv2"]))
    torch.testing.assert_close(outputs["max_pool2d"], hooked["dropout1"])  # the pool, Dropout read in eval
    torch.testing.assert_close(outputs["fc1"], hooked["dropout2"])
    torch.testing.assert_close(outputs["fc2"], hooked["fc2"])  # the last linear layer, before log_softmax
    logits = network.logits(digits)
    torch.testing.assert_close(logits, out)  # log-probabilities are logits already ...
    torch.testing.assert_close(logits.softmax(1), out.exp())  # ... with the network's own probabilities
    assert network.parameterised() == order == ["conv1", "conv2", "fc1", "fc2"]
    assert sum(layer.parameters for layer in network.layers) == 1_199_882


def test_lenet5_from_d2l(digits):
    model = _seeded(_net("lenet.py:LeNet5"))
    network = Network(model, 10, digits)
    assert network.output == LOGITS
    assert list(network.shown) == ["0", "2", "3", "5", "7", "9", "11"]
    hooked, order, out = _hooked(model, digits)
    outputs = network.outputs(digits)
    for shown, module in (("0", "1"), ("2", "2"), ("3", "4"), ("5", "5"), ("7", "8"), ("9", "10"), ("11", "11")):
        torch.testing.assert_close(outputs[shown], hooked[module])  # conv "0" is read after its Sigmoid "1"
    rows = {layer.name: layer for layer in network.layers}
    assert rows["0"].shape == (6, 28, 28) and rows["1"].kind == "activation" and rows["2"].kind == "pool"
    torch.testing.assert_close(network.logits(digits), out)
    assert network.parameterised() == order == ["0", "3", "7", "9", "11"]
    assert sum(layer.parameters for layer in network.layers) == 61_706


def test_an_mlp_has_no_feature_maps(digits):
    model = _seeded(_net("mlp.py:MLP"))
    network = Network(model, 10, digits)
    names = ["linear_relu_stack.0", "linear_relu_stack.2", "linear_relu_stack.4"]
    assert list(network.shown) == names
    hooked, order, out = _hooked(model, digits)
    outputs = network.outputs(digits)
    torch.testing.assert_close(outputs[names[0]], hooked["linear_relu_stack.1"])
    torch.testing.assert_close(outputs[names[1]], hooked["linear_relu_stack.3"])
    torch.testing.assert_close(outputs[names[2]], out)
    assert all(len(network.outputs(digits[:1])[n].shape) == 2 for n in names)  # every output is (B, units)
    assert network.parameterised() == order == names


def test_probabilities_are_detected_and_turned_into_logits(digits):
    class Probs(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(784, 3)

        def forward(self, x):
            return torch.softmax(self.fc(torch.flatten(x, 1)), dim=1)

    model = _seeded(Probs)
    network = Network(model, 3, digits)
    assert network.output == PROBS
    probs = model(digits)
    torch.testing.assert_close(network.logits(digits).softmax(1), probs)
    declared = Network(model, 3, digits, Contract(output=LOGITS))  # the host's word wins over detection
    torch.testing.assert_close(declared.logits(digits), probs)
    assert detect_output(torch.tensor([[2.0, -1.0, 0.5]])) == LOGITS
    assert detect_output(torch.log_softmax(torch.tensor([[2.0, -1.0, 0.5]]), 1)) == LOG_PROBS
    assert torch.isfinite(to_logits(torch.tensor([[1.0, 0.0]]), PROBS)).all()  # log(0) clamped


def test_more_layers_can_be_shown_by_name(digits):
    network = Network(
        _seeded(_net("examples_net.py:Net")), 10, digits, Contract(MNIST_MEAN, MNIST_STD, layers=("relu",))
    )
    assert "relu" in network.shown
    with pytest.raises(NetworkError, match="has no layer 'nope'"):
        Network(_seeded(_net("examples_net.py:Net")), 10, digits, Contract(MNIST_MEAN, MNIST_STD, layers=("nope",)))


def test_reading_layers_hooks_nothing_and_threads_get_their_own_tensors(monkeypatch, digits):
    network = Network(_seeded(_net("examples_net.py:Net")), 10, digits, MNIST)
    alone = [network.outputs(digits[i : i + 1]) for i in range(8)]
    _forbid_hooks(monkeypatch)
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda i: network.outputs(digits[i : i + 1]), [*range(8)] * 3))
    for i, got in enumerate(together):
        for name, value in got.items():
            torch.testing.assert_close(value, alone[i % 8][name], rtol=0, atol=0)


# ---- arriving from files ------------------------------------------------------------------


def test_a_class_file_and_weights_round_trip(tmp_path, digits):
    cls, source = import_class(f"{NETS / 'lenet.py'}:LeNet5")
    model = _seeded(cls, 4)
    save_file(model.state_dict(), tmp_path / "lenet.safetensors")
    torch.save(model.state_dict(), tmp_path / "lenet.pt")
    for name in ("lenet.safetensors", "lenet.pt"):
        state, digest = read_weights(tmp_path / name)
        built = build(cls, state, "lenet.py:LeNet5", tmp_path / name)
        torch.testing.assert_close(built(digits), model(digits))
        assert len(digest) == 64
    key = network_key(source, digest, "f" * 64, {"mean": 0.0})
    assert len(key) == 16
    assert network_key(source + "# changed", digest, "f" * 64, {"mean": 0.0}) != key
    assert network_key(source, "0" * 64, "f" * 64, {"mean": 0.0}) != key
    assert network_key(source, digest, "e" * 64, {"mean": 0.0}) != key


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("lenet.py", "name a network as FILE.py:CLASS"),
        ("missing.py:Net", "there is no file"),
        ("does_not_import.py:Net", "could not be imported \\(ImportError: this file cannot be imported\\)"),
        ("lenet.py:LeNet7", "has no class LeNet7 \\(it defines LeNet5\\)"),
        ("broken.py:NotAModule", "NotAModule is not a torch.nn.Module subclass"),
    ],
)
def test_a_class_that_cannot_be_used_is_named(spec, message):
    with pytest.raises(NetworkError, match=message):
        import_class(str(NETS / spec) if ":" in spec or spec.endswith(".py") else spec)


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        ("WrongWidth", "gives 7 scores per digit, but the data set has 10 classes"),
        ("Branchy", "cannot be followed as a graph"),
        ("Fails", "fails on a batch of 16 digits of 1×28×28"),
        ("Nan", "returns NaN or infinite scores on real digits"),
    ],
)
def test_a_network_that_breaks_the_contract_is_named(cls, message, digits):
    with pytest.raises(NetworkError, match=message) as err:
        Network(_seeded(_net(f"broken.py:{cls}")), 10, digits, where=f"broken.py:{cls}")
    assert str(err.value).startswith(f"broken.py:{cls}")


def test_weights_that_do_not_fit_are_listed(tmp_path):
    cls, _ = import_class(f"{NETS / 'lenet.py'}:LeNet5")
    state = _seeded(cls).state_dict()
    state.pop("0.bias")
    state["extra.weight"] = torch.zeros(2)
    state["3.weight"] = torch.zeros(16, 6, 3, 3)
    save_file(state, tmp_path / "w.safetensors")
    loaded, _ = read_weights(tmp_path / "w.safetensors")
    with pytest.raises(NetworkError) as err:
        build(cls, loaded, "lenet.py:LeNet5", tmp_path / "w.safetensors")
    text = str(err.value)
    assert "do not fit lenet.py:LeNet5" in text and "missing: 0.bias" in text and "unexpected: extra.weight" in text
    assert "mis-shaped: 3.weight (file 16×6×3×3, class 16×6×5×5)" in text


def test_weights_are_never_unpickled(tmp_path):
    torch.save(_seeded(MnistCNN), tmp_path / "whole_model.pt")  # a pickled module, not a state dict
    with pytest.raises(NetworkError, match="without unpickling code"):
        read_weights(tmp_path / "whole_model.pt")
    torch.save({"epoch": 3, "state": "x"}, tmp_path / "checkpoint.pt")
    with pytest.raises(NetworkError, match="not a state dict of tensors"):
        read_weights(tmp_path / "checkpoint.pt")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(NetworkError, match="not a valid safetensors file"):
        read_weights(tmp_path / "bad.safetensors")
    with pytest.raises(NetworkError, match="cannot be read"):
        read_weights(tmp_path / "gone.safetensors")


def test_a_contract_with_a_bad_setting_is_refused(digits):
    with pytest.raises(NetworkError, match="the std must be a positive number"):
        Contract(std=0.0)
    with pytest.raises(NetworkError, match="is not one of"):
        Contract(output="scores")
    with pytest.raises(NetworkError, match="at least 2 classes"):
        Network(_seeded(MnistCNN), 1, digits)


def test_a_host_checks_a_network_from_the_command_line(tmp_path, capsys):
    from core.network_files import main

    cls, _ = import_class(f"{NETS / 'lenet.py'}:LeNet5")
    model = _seeded(cls, 2)
    save_file(model.state_dict(), tmp_path / "lenet.safetensors")
    assert main(["--net", f"{NETS / 'lenet.py'}:LeNet5", "--weights", str(tmp_path / "lenet.safetensors")]) == 0
    out = capsys.readouterr().out
    test = load_mnist().test
    with torch.inference_mode():
        preds = model(to_tensor(test.images)).argmax(1).numpy()
    assert f"Test accuracy on 10,000 digits: {(preds == test.labels).mean():.2%}" in out  # the model run directly
    assert "returns logits" in out and "61,706" in out
    assert "* 0 " in out and "(read after 1)" in out  # conv "0" is shown, read after its Sigmoid "1"
    assert main(["--net", f"{NETS / 'mlp.py'}:MLP", "--weights", str(tmp_path / "lenet.safetensors")]) == 1
    assert "do not fit" in capsys.readouterr().err


class SharedRelu(nn.Module):
    """One ReLU module called at two sites, and a functional one: what trips Captum."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.conv2 = nn.Conv2d(4, 4, 3)
        self.relu = nn.ReLU(inplace=True)
        self.fc1 = nn.Linear(4 * 24 * 24, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


def test_the_attribution_copy_gives_each_relu_its_own_module(digits):
    from captum.attr import DeepLift, GuidedBackprop, Saliency

    network = Network(_seeded(SharedRelu), 10, digits)
    private = network.attribution_copy()
    torch.testing.assert_close(private(digits), network.logits(digits))
    relus = [m for m in private.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 3 and not any(m.inplace for m in relus)  # one per call site, none in place
    assert not any(isinstance(m, nn.ReLU) and m is not network.module.relu for m in network.module.modules())
    assert network.module.relu.inplace  # the original is untouched
    x, target = digits[:4], network.logits(digits[:4]).argmax(1)
    maps, delta = DeepLift(private).attribute(x, target=target, return_convergence_delta=True)
    # DeepLift's maps add up to the logit's change from a black image (Captum's own DeepLift
    # misses this by up to 0.01 where two ReLUs follow each other, hand-written modules or not)
    assert delta.abs().max() < 1e-5
    with torch.no_grad():  # the same, computed here by running the copy on the digit and on black
        change = (private(x) - private(torch.zeros_like(x))).gather(1, target[:, None])[:, 0]
    torch.testing.assert_close(maps.sum(dim=(1, 2, 3)), change, rtol=1e-4, atol=1e-4)
    guided = GuidedBackprop(private).attribute(x, target=target)
    plain = Saliency(private).attribute(x, target=target, abs=False)
    assert not torch.allclose(guided, plain)  # the guided rule reaches every ReLU

    net = Network(_seeded(_net("examples_net.py:Net")), 10, digits, MNIST)
    torch.testing.assert_close(net.attribution_copy()(digits), net.logits(digits))
    assert sum(isinstance(m, nn.ReLU) for m in net.attribution_copy().modules()) == 3  # three F.relu sites


class BatchNormed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 26 * 26, 10)

    def forward(self, x):
        return self.fc(torch.flatten(F.relu(self.bn(self.conv(x))), 1))


def test_randomisation_goes_top_down_over_the_layers_with_weights(digits):
    model = _seeded(BatchNormed)
    with torch.no_grad():
        model.bn.running_mean.fill_(0.3)
        model.bn.running_var.fill_(2.0)
        model.bn.weight.fill_(1.5)
    network = Network(model, 10, digits)
    assert network.parameterised() == ["conv", "bn", "fc"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    top = network.randomised(1, seed=7).graph
    assert not torch.equal(top.fc.weight, model.fc.weight)
    assert torch.equal(top.bn.weight, model.bn.weight) and torch.equal(top.conv.weight, model.conv.weight)
    two = network.randomised(2, seed=7).graph
    assert torch.equal(two.fc.weight, top.fc.weight)  # the same seed draws the same weights
    assert (two.bn.running_mean == 0).all() and (two.bn.running_var == 1).all() and (two.bn.weight == 1).all()
    assert torch.equal(two.conv.weight, model.conv.weight)
    every = network.randomised(3, seed=7).graph
    assert not torch.equal(every.conv.weight, model.conv.weight)
    bound = 1 / math.sqrt(9)  # PyTorch's initialisation: |w| <= sqrt(6 / ((1 + 5) * fan_in)) = 1 / sqrt(fan_in)
    assert every.conv.weight.abs().max() <= bound and every.conv.bias.abs().max() <= bound
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the network is untouched
    with pytest.raises(NetworkError, match="has 3 layers with weights, not 4"):
        network.randomised(4, seed=0)


def test_randomising_draws_nothing_from_the_shared_generator(digits):
    network = Network(_seeded(_net("lenet.py:LeNet5")), 10, digits)
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    network.randomised(5, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_grad_cam_from_the_graph_equals_captums_with_hooks_on_a_copy(digits, monkeypatch):
    from captum.attr import LayerGradCam

    model = _seeded(MnistCNN)
    network = Network(model, 10, digits)
    target = network.logits(digits[:6]).argmax(1)
    private = copy.deepcopy(model)
    for layer, module in (("conv2", private.relu2), ("conv4", private.relu4)):  # Captum hooks the ReLU after
        expected = LayerGradCam(private, module).attribute(digits[:6], target=target, relu_attributions=True)[:, 0]
        mine = network.grad_cam(digits[:6], layer, target)
        torch.testing.assert_close(mine, expected.detach(), rtol=1e-4, atol=1e-6)
    out, grad = network.gradients(digits[:2], ["fc1"], target[:2])["fc1"]
    torch.testing.assert_close(out, model.taps(digits[:2])["fc1"])
    torch.testing.assert_close(grad, model.fc2.weight[target[:2]].detach())  # d logit_t / d fc1 = row t of fc2
    with pytest.raises(NetworkError, match="has no positions"):
        network.grad_cam(digits[:1], "fc1", target[:1])
    _forbid_hooks(monkeypatch)
    net = Network(_seeded(_net("examples_net.py:Net")), 10, digits, MNIST)
    cam = net.grad_cam(digits[:3], "conv2", net.logits(digits[:3]).argmax(1))
    assert cam.shape == (3, 24, 24) and (cam >= 0).all()


def test_opening_a_shared_model_in_eval_mode_changes_nothing_on_it(digits, monkeypatch):
    model = _seeded(MnistCNN)  # eval already, as the server's cached models are

    def refuse(self, mode=True):
        raise AssertionError("the shared model was switched")

    monkeypatch.setattr(nn.Module, "train", refuse)
    Network(model, 10, digits)


def test_tracing_leaves_other_threads_models_alone():
    """fx patches ``nn.Module.__call__`` for the whole process while it traces; a trainer's
    forward in another thread meanwhile must run as usual (it failed with "module is not
    installed as a submodule", ending a first start's training when a page traced a model)."""
    import threading

    from core.network import trace

    busy, stop, failures = MnistCNN().eval(), threading.Event(), []

    def run_forever() -> None:
        x = torch.rand(2, 1, 28, 28)
        while not stop.is_set():
            try:
                with torch.no_grad():
                    busy(x)
            except Exception as err:  # what the old symbolic_trace made of it
                failures.append(repr(err))
                return

    worker = threading.Thread(target=run_forever)
    worker.start()
    try:
        for _ in range(40):
            traced = trace(MnistCNN().eval())
    finally:
        stop.set()
        worker.join()
    assert not failures, failures[0]
    x = torch.rand(3, 1, 28, 28)
    assert [n.target for n in traced.graph.nodes if n.op == "call_module"][:2] == ["conv1", "relu1"]
    assert traced(x).shape == (3, 10)
