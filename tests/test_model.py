import importlib.util
import sys
from pathlib import Path

import torch
from torch import nn

from core import model as model_module
from core.model import (
    MNIST_MEAN,
    MNIST_STD,
    MnistCNN,
    architecture_signature,
    class_source,
    format_layer_table,
    layer_table,
    new_model,
)


def test_parameter_counts_match_the_seed():
    rows = {row.name: row for row in layer_table()}
    assert [rows[n].parameters for n in ("conv1", "conv2", "conv3", "conv4", "fc1", "fc2")] == [
        40,
        296,
        1168,
        4640,
        10260,
        210,
    ]
    assert sum(p.numel() for p in MnistCNN().parameters()) == 16614


def test_output_shapes():
    rows = {row.name: row.output_shape for row in layer_table()}
    assert rows == {
        "conv1": (4, 26, 26),
        "conv2": (8, 24, 24),
        "pool1": (8, 12, 12),
        "conv3": (16, 10, 10),
        "conv4": (32, 8, 8),
        "pool2": (32, 4, 4),
        "fc1": (20,),
        "fc2": (10,),
    }
    logits = MnistCNN()(torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 10)


def test_returns_raw_logits_not_probabilities():
    torch.manual_seed(0)
    logits = MnistCNN()(torch.rand(4, 1, 28, 28))
    assert not torch.allclose(logits.sum(1), torch.ones(4))


def test_table_text_has_the_total():
    assert "16,614" in format_layer_table(layer_table())


# ---- architecture_signature ----------------------------------------------------------------


class SameLayersOtherForward(MnistCNN):
    """Identical layers and parameters; only what forward computes differs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.taps(x)["fc2"] * 2


class SameLayersOtherTaps(MnistCNN):
    """Identical layers and parameters; taps skips the input normalisation."""

    def taps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return super().taps(x * MNIST_STD + MNIST_MEAN)


class WiderConv1(MnistCNN):
    """Other parameter shapes: conv1 has 6 channels (conv2 follows)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=3)
        self.conv2 = nn.Conv2d(6, 8, kernel_size=3)


VARIANT_SOURCE = """
import torch
from core.model import MnistCNN


class Variant(MnistCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return {body}
"""


def _import_variant(tmp_path: Path, monkeypatch, module: str, body: str) -> type[MnistCNN]:
    """A class named ``Variant`` from its own file, so two variants differ only in ``forward``'s body."""
    path = tmp_path / f"{module}.py"
    path.write_text(VARIANT_SOURCE.format(body=body))
    spec = importlib.util.spec_from_file_location(module, path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, module, mod)  # inspect.getsource finds the file through it
    spec.loader.exec_module(mod)
    return mod.Variant


def test_signature_is_stable_for_the_same_class():
    a = architecture_signature()
    assert a == architecture_signature(MnistCNN) == architecture_signature()
    assert len(a) == 64 and int(a, 16) >= 0
    assert architecture_signature(SameLayersOtherForward) == architecture_signature(SameLayersOtherForward)


def test_signature_changes_with_forward_or_taps_even_with_the_same_layers():
    for cls in (SameLayersOtherForward, SameLayersOtherTaps):
        layers = repr(cls()).split("\n", 1)[1]  # the layer lines, without the class name
        assert layers == repr(MnistCNN()).split("\n", 1)[1]  # the layers alone cannot tell them apart
        assert {k: v.shape for k, v in cls().state_dict().items()} == {
            k: v.shape for k, v in MnistCNN().state_dict().items()
        }
    signatures = {architecture_signature(c) for c in (MnistCNN, SameLayersOtherForward, SameLayersOtherTaps)}
    assert len(signatures) == 3


def test_signature_changes_with_the_body_of_forward_alone(tmp_path, monkeypatch):
    """Same class name, same layers, same module layout: only one expression in forward differs."""
    first = _import_variant(tmp_path, monkeypatch, "variant_first", 'self.taps(x)["fc2"]')
    copy = _import_variant(tmp_path, monkeypatch, "variant_copy", 'self.taps(x)["fc2"]')
    changed = _import_variant(tmp_path, monkeypatch, "variant_changed", '-self.taps(x)["fc2"]')
    assert architecture_signature(first) == architecture_signature(copy)
    assert architecture_signature(first) != architecture_signature(changed)


def test_signature_changes_with_parameter_shapes():
    assert architecture_signature(WiderConv1) != architecture_signature(MnistCNN)
    assert WiderConv1()(torch.rand(1, 1, 28, 28)).shape == (1, 10)  # a working model, just another one


def test_signature_changes_with_the_meaning_of_a_layer_name(monkeypatch):
    base = architecture_signature()
    monkeypatch.setitem(model_module.TAPS, "conv1", "conv1")  # conv1 read before its ReLU
    assert architecture_signature() != base


def test_signature_changes_with_the_input_normalisation(monkeypatch):
    torch.manual_seed(0)
    model, x = MnistCNN(), torch.rand(2, 1, 28, 28)
    base, before = architecture_signature(), model(x)
    monkeypatch.setattr(model_module, "MNIST_MEAN", 0.5)
    assert not torch.allclose(model(x), before)  # the same weights now compute something else
    assert architecture_signature() != base


def test_multiply_adds_by_hand():
    from core.model import multiply_adds, training_flops

    counts = multiply_adds()
    assert counts == {
        "conv1": 26 * 26 * 4 * 1 * 9,
        "conv2": 24 * 24 * 8 * 4 * 9,
        "conv3": 10 * 10 * 16 * 8 * 9,
        "conv4": 8 * 8 * 32 * 16 * 9,
        "fc1": 512 * 20,
        "fc2": 20 * 10,
    }
    assert sum(counts.values()) == 610_776
    assert training_flops(images=60_000) == 6 * 610_776 * 60_000  # about 220 GFLOP an epoch


def test_class_source_is_inspects_without_parsing_the_module(monkeypatch):
    """Python 3.11's ast.parse can fail while another thread parses (a page compiling while the
    trainer keys a model): the signature reads the class's source without it, to the same text."""
    import ast
    import inspect

    expected = {cls: inspect.getsource(cls) for cls in (MnistCNN, SameLayersOtherForward, WiderConv1)}

    def no_parse(*args, **kwargs):
        raise AssertionError("ast.parse was called")

    monkeypatch.setattr(ast, "parse", no_parse)
    for cls, source in expected.items():
        assert class_source(cls) == source


def test_new_model_initialises_as_pytorch_does_without_the_global_generator():
    before = torch.get_rng_state()
    seeded = new_model(seed=5)
    assert torch.equal(torch.get_rng_state(), before)  # other threads' draws are left alone
    torch.manual_seed(5)
    reference = MnistCNN()
    for (name, a), b in zip(seeded.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not torch.equal(new_model(seed=6).conv1.weight, seeded.conv1.weight)
    before = torch.get_rng_state()
    blank = new_model()
    assert torch.equal(torch.get_rng_state(), before)
    assert all(not p.any() for p in blank.parameters()) and not blank.conv1.weight.is_meta


DECORATED_SOURCE = """
import dataclasses


@dataclasses.dataclass
class Decorated:
    x: int = 1


def outer():
    class Nested:
        y = 2

    return Nested
"""


def test_class_source_keeps_decorators_and_finds_nested_classes(tmp_path, monkeypatch):
    import inspect

    path = tmp_path / "decorated_module.py"
    path.write_text(DECORATED_SOURCE)
    spec = importlib.util.spec_from_file_location("decorated_module", path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "decorated_module", mod)
    spec.loader.exec_module(mod)
    assert class_source(mod.Decorated) == inspect.getsource(mod.Decorated)
    assert class_source(mod.Decorated).startswith("@dataclasses.dataclass")
    assert class_source(mod.outer()) == inspect.getsource(mod.outer())
