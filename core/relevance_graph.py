"""Which channels carry the evidence (concept relevance propagation) on any network's graph.

``core.relevance`` runs CRP on the reference CNN's own modules. A user's network needs a copy
zennit can read, made here from its torch.fx graph (``Network.graph``), private to each call:

- the graph ends at the **logits**: a log-softmax or softmax after the last linear layer is
  cut off (relevance starts from a class score, as on the reference);
- each **BatchNorm** that follows a convolution or linear layer is **folded into it in graph
  order** (zennit's ``SequentialMergeBatchNorm`` pairs by registration order, which is wrong
  for a class that registers its norms elsewhere); any other norm turns the view off;
- each **activation call site** gets a module of its own (``F.relu`` → ``nn.ReLU``,
  ``torch.sigmoid`` → ``nn.Sigmoid``…; a module called twice is copied), so zennit's
  ``Pass`` rule reaches every one of them;
- each **residual addition** becomes zennit's ``Sum`` over its stacked inputs, whose ``Norm``
  rule splits relevance between the paths in proportion to what each contributed;
- an ``nn.Identity`` **tap** after each unit layer, where CRP conditions and records.

Rules (one per call site, by name): Flat on the first convolution or linear layer in graph
order, z+ on the other convolutions, Epsilon on linear layers, Pass on activations, Norm on
sums and average pools; the composite is zennit's ``EpsilonPlusFlat`` spelled out by name.
An operation whose relevance would not be conserved under these rules (a norm that follows
nothing it can fold into, an activation or addition in a form not converted here) turns the
view off with a sentence naming it, never a wrong ranking.

Heatmaps are per raw pixel: relevance reaches the pixels through the contract's normalisation
``(x - mean) / std`` as a gradient, which divides it by ``std``; it is multiplied back.
"""

from __future__ import annotations

import copy
import operator

import numpy as np
import torch
import torch.nn.functional as F
from crp.attribution import CondAttribution
from torch import fx, nn
from zennit.composites import NameMapComposite
from zennit.layer import Sum
from zennit.rules import Epsilon, Flat, Norm, Pass, ZPlus
from zennit.types import Activation

from core.data import IMAGE_SIZE
from core.network import ACTIVATION, ADD, CONV, DROPOUT, LINEAR, NORM, OUTPUT, POOL, Network
from core.relevance import ChannelRelevance
from core.units import unit_layers

_MODULE_OF = {  # functional activations and the module that does the same
    F.relu: nn.ReLU,
    torch.relu: nn.ReLU,
    F.gelu: nn.GELU,
    torch.sigmoid: nn.Sigmoid,
    F.sigmoid: nn.Sigmoid,
    torch.tanh: nn.Tanh,
    F.tanh: nn.Tanh,
    F.silu: nn.SiLU,
    F.elu: nn.ELU,
    F.softplus: nn.Softplus,
}
_METHOD_OF = {"relu": nn.ReLU, "relu_": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class RelevanceOff(ValueError):  # noqa: N818 (a sentence for the page, not a failure)
    """CRP is off for this network; the message says why in one sentence."""


class _Relevant(nn.Module):
    """[0, 1] images in, logits out, through the converted graph."""

    def __init__(self, graph: fx.GraphModule, mean: float, std: float) -> None:
        super().__init__()
        self.graph, self.mean, self.std = graph, mean, std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.graph((images - self.mean) / self.std)


def relevance_copy(network: Network) -> tuple[_Relevant, dict[str, str], NameMapComposite]:
    """The converted private copy, {unit layer: its tap's module name}, and the rules by name."""
    graph = copy.deepcopy(network.graph)
    kinds = {entry.node: entry.kind for entry in network.layers}
    modules = dict(graph.named_modules())
    nodes = {node.name: node for node in graph.graph.nodes}
    ends = {name: network.shown[name] for name in unit_layers(network)}
    _cut_at_logits(graph, network, kinds, nodes)
    count = 0

    def fresh(prefix: str) -> str:
        nonlocal count
        count += 1
        return f"{prefix}_{count}"

    taps = {}  # first, on the traced nodes: a conversion below that replaces a layer's end feeds its tap
    for layer, end in ends.items():
        tap = fresh("tap")
        graph.add_submodule(tap, nn.Identity())
        with graph.graph.inserting_after(nodes[end]):
            tapped = graph.graph.call_module(tap, args=(nodes[end],))
        nodes[end].replace_all_uses_with(tapped, delete_user_cb=lambda user, tapped=tapped: user is not tapped)
        taps[layer] = f"graph.{tap}"
    seen_modules: set[str] = set()
    for node in list(graph.graph.nodes):  # first, before any fold changes a module: one per call site
        if node.op == "call_module" and node.target in seen_modules:  # a module at a second call site
            name = fresh("site")
            graph.add_submodule(name, copy.deepcopy(modules[node.target]))
            node.target = name
        if node.op == "call_module":
            seen_modules.add(node.target)
        if kinds.get(node.name) in (CONV, LINEAR) and node.op != "call_module":
            raise RelevanceOff(
                f"{node.name} is a convolution or linear layer written as a function: no rule reaches it"
            )
    for node in list(graph.graph.nodes):
        kind = kinds.get(node.name)
        if kind == NORM:
            _fold(graph, node, network)
        elif kind == ACTIVATION and node.op != "call_module":
            _activation_module(graph, node, fresh("act"), network)
        elif kind == ADD:
            _sum(graph, node, fresh("sum"), network)
        elif kind == DROPOUT and node.op != "call_module":
            node.replace_all_uses_with(node.args[0])
            graph.graph.erase_node(node)
        elif kind == POOL and node.op == "call_function" and node.target not in (F.max_pool2d, torch.max_pool2d):
            raise RelevanceOff(f"{node.name} is a pooling written as a function: relevance through it is not ruled")
    graph.graph.lint()
    graph.recompile()
    model = _Relevant(graph, network.contract.mean, network.contract.std).eval()
    return model, taps, _rules(model)


def _cut_at_logits(graph: fx.GraphModule, network: Network, kinds: dict, nodes: dict) -> None:
    output = next(n for n in graph.graph.nodes if n.op == "output")
    last = output.args[0]
    while isinstance(last, fx.Node) and kinds.get(last.name) == OUTPUT:  # (log-)softmax after the scores
        last = last.args[0]
    if not isinstance(last, fx.Node):
        raise RelevanceOff(f"{network.where} does not return one tensor of scores")
    output.args = (last,)
    graph.graph.eliminate_dead_code()


def _fold(graph: fx.GraphModule, node: fx.Node, network: Network) -> None:
    """Fold a BatchNorm into the convolution or linear layer right before it (in graph order)."""
    norm = graph.get_submodule(node.target) if node.op == "call_module" else None
    source = node.args[0] if node.args else None
    layer = graph.get_submodule(source.target) if isinstance(source, fx.Node) and source.op == "call_module" else None
    foldable = isinstance(norm, nn.BatchNorm1d | nn.BatchNorm2d) and norm.track_running_stats
    if not (foldable and isinstance(layer, nn.Conv2d | nn.Linear) and len(source.users) == 1):
        raise RelevanceOff(
            f"{node.name} is a norm that does not directly follow a convolution or linear layer it can be folded into"
        )
    with torch.no_grad():
        scale = (norm.weight if norm.affine else 1.0) / torch.sqrt(norm.running_var + norm.eps)
        shift = (norm.bias if norm.affine else 0.0) - norm.running_mean * scale
        shape = (-1,) + (1,) * (layer.weight.dim() - 1)
        layer.weight.mul_(scale.reshape(shape))
        bias = layer.bias if layer.bias is not None else torch.zeros_like(shift)
        layer.bias = nn.Parameter(bias * scale + shift)
    node.replace_all_uses_with(source)
    graph.graph.erase_node(node)


def _activation_module(graph: fx.GraphModule, node: fx.Node, name: str, network: Network) -> None:
    maker = _MODULE_OF.get(node.target) if node.op == "call_function" else _METHOD_OF.get(node.target)
    extra = [a for a in node.args[1:]] + [v for k, v in node.kwargs.items() if k != "inplace"]
    if maker is None or extra:
        raise RelevanceOff(f"{node.name} is an activation written in a form not converted here ({node.target})")
    graph.add_submodule(name, maker())
    with graph.graph.inserting_after(node):
        replacement = graph.graph.call_module(name, args=(node.args[0],))
    node.replace_all_uses_with(replacement)
    graph.graph.erase_node(node)


def _sum(graph: fx.GraphModule, node: fx.Node, name: str, network: Network) -> None:
    tensors = [a for a in node.args if isinstance(a, fx.Node)]
    if len(tensors) == 1 and node.target in (operator.add, operator.iadd, torch.add):
        return  # a constant added: relevance treats it as a bias
    if node.target not in (operator.add, operator.iadd, torch.add) or len(tensors) != 2 or node.kwargs:
        raise RelevanceOff(f"{node.name} is an addition in a form not converted here")
    graph.add_submodule(name, Sum())
    with graph.graph.inserting_before(node):
        stacked = graph.graph.call_function(torch.stack, args=(tensors,), kwargs={"dim": -1})
        summed = graph.graph.call_module(name, args=(stacked,))
    node.replace_all_uses_with(summed)
    graph.graph.erase_node(node)


def _rules(model: _Relevant) -> NameMapComposite:
    """EpsilonPlusFlat, spelled out per module name in graph order (the first layer is the first called)."""
    modules = dict(model.graph.named_modules())
    called = [n.target for n in model.graph.graph.nodes if n.op == "call_module"]
    weighted = [t for t in called if isinstance(modules[t], nn.Conv2d | nn.Linear)]
    if not weighted:
        raise RelevanceOff("the network has no convolution or linear layer")
    first, convs = weighted[0], [t for t in weighted[1:] if isinstance(modules[t], nn.Conv2d)]
    linears = [t for t in weighted[1:] if isinstance(modules[t], nn.Linear)]
    passing = [t for t in called if isinstance(modules[t], Activation | nn.Dropout)]  # zennit's own list
    norming = [t for t in called if isinstance(modules[t], Sum | nn.AvgPool2d | nn.AdaptiveAvgPool2d)]
    named = lambda targets: tuple(f"graph.{t}" for t in targets)  # noqa: E731
    return NameMapComposite(
        [
            (named([first]), Flat()),
            (named(convs), ZPlus()),
            (named(linears), Epsilon()),
            (named(passing), Pass()),
            (named(norming), Norm()),
        ]
    )


def channel_relevance(network: Network, image: torch.Tensor, layer: str, target: int) -> ChannelRelevance:
    """Per-channel relevance of unit layer ``layer`` for class ``target`` on one float32 image
    (1, 1, 28, 28) in [0, 1], with every channel's conditional input heatmap, from one batched
    CRP pass on a converted private copy. ``RelevanceOff`` says why when the network cannot be
    converted. Meanings: :class:`core.relevance.ChannelRelevance`."""
    layers = unit_layers(network)
    if layer not in layers:
        raise ValueError(f"{layer!r} has no unit cards: choose one of {', '.join(layers)}")
    if not 0 <= int(target) < network.classes:
        raise ValueError(f"the target class must be 0..{network.classes - 1}, not {target!r}")
    if tuple(image.shape) != (1, 1, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"expected one image shaped (1, 1, 28, 28), got {tuple(image.shape)}")
    channels = layers[layer].units
    with torch.inference_mode(False), torch.enable_grad():
        model, taps, rules = relevance_copy(network)
        residual = any(isinstance(m, Sum) for m in model.modules())
        attribution = CondAttribution(model)
        tap = taps[layer]
        # The layer's relevance from one unconditional pass: exclude_parallel=False is one plain
        # backward (True records the relevance at the layer twice: exactly double, measured).
        whole = attribution(_pixels(image), [{"y": [int(target)]}], rules, record_layer=[tap], exclude_parallel=False)
        # Each channel's own input heatmap: with a residual addition, relevance that reaches the
        # input along the other path must not count for the channel (exclude_parallel=True);
        # without one, one plain pass gives the same maps.
        conditions = [{tap: [c], "y": [int(target)]} for c in range(channels)]
        result = attribution(_pixels(image), conditions, rules, exclude_parallel=residual)
    maps = whole.relevances[tap].detach()[0].float().cpu()  # (C, h, w), or (C,) for a linear layer
    if maps.dim() == 1:
        maps = maps[:, None, None]
    heatmaps = (result.heatmap.detach() * network.contract.std).float().cpu()
    relevance = maps.double().sum(dim=(1, 2)).numpy()
    magnitude = np.abs(relevance).sum()
    return ChannelRelevance(
        layer=layer,
        target=int(target),
        logit=float(whole.prediction.detach()[0, int(target)]),
        relevance=relevance,
        total=float(relevance.sum()),
        ranking=np.argsort(-relevance, kind="stable").astype(np.int64),
        share=relevance / magnitude if magnitude > 0 else np.zeros_like(relevance),
        heatmaps=heatmaps.numpy(),
        maps=maps.numpy(),
    )


def _pixels(image: torch.Tensor) -> torch.Tensor:
    return image.detach().float().clone().requires_grad_(True)
