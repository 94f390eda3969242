"""The network contract: what every view needs from any classifier of 28×28 images.

- **Input**: float32 (B, 1, 28, 28) in [0, 1]. The normalisation a network expects (e.g.
  MNIST's mean 0.1307 and std 0.3081) is declared in its :class:`Contract` and applied here,
  never by a page.
- **Output**: logits, log-probabilities or probabilities, declared or detected on real digits,
  and always turned into logits one way (:meth:`Network.logits`): log-probabilities are logits
  already (softmax gives the same probabilities), probabilities become their logarithm.
- **Classes**: the data set's, any number ≥ 2; the output's width must match.
- **Layers**: every node of the network's graph (torch.fx) in forward order, each with its
  kind, output shape and parameter count. Outputs are read by an ``fx.Interpreter`` that
  records node outputs during one call: no hook on any shared object, so one network serves
  many threads. The layers shown by default are each conv/linear block's output after its
  norm and nonlinearity (the reference CNN's conv1..fc1), the pools, and the last linear
  layer (the logits), named after the conv, linear or pool that starts them.

A network the graph cannot follow (a branch on the pixels), a network that fails or returns
NaN on real digits, or one whose output is not one score per class is refused with one
sentence that names the file and what to do (:class:`NetworkError`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import operator
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from core.data import IMAGE_SIZE

LOGITS, LOG_PROBS, PROBS, DETECT = "logits", "log-probabilities", "probabilities", "detect"
OUTPUTS = (LOGITS, LOG_PROBS, PROBS)
SUM_TOLERANCE = 1e-3  # rows of probabilities sum to 1 within this (float32 softmax of 10-1000 classes)
TINY = 1e-12  # the smallest probability turned into a logit: log(0) is -inf

CONV, LINEAR, POOL, ACTIVATION, NORM, DROPOUT, FLATTEN, ADD, ARITHMETIC, OUTPUT, OTHER = (
    "conv",
    "linear",
    "pool",
    "activation",
    "norm",
    "dropout",
    "flatten",
    "add",
    "arithmetic",  # x - mean, x / std, a scale: element-wise with a constant
    "output",
    "other",
)
# Element-wise steps that belong to the block before them: "conv1" is conv1's output after these.
_BLOCK_TAIL = (ACTIVATION, NORM, DROPOUT)

_MODULE_KINDS: tuple[tuple[tuple[type, ...], str], ...] = (
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d), CONV),
    ((nn.Linear, nn.Bilinear), LINEAR),
    (
        (
            nn.MaxPool1d,
            nn.MaxPool2d,
            nn.AvgPool1d,
            nn.AvgPool2d,
            nn.AdaptiveAvgPool2d,
            nn.AdaptiveMaxPool2d,
            nn.LPPool2d,
        ),
        POOL,
    ),
    (
        (
            nn.ReLU,
            nn.ReLU6,
            nn.LeakyReLU,
            nn.PReLU,
            nn.ELU,
            nn.SELU,
            nn.CELU,
            nn.GELU,
            nn.SiLU,
            nn.Mish,
            nn.Sigmoid,
            nn.Tanh,
            nn.Softplus,
            nn.Hardtanh,
            nn.Hardswish,
            nn.Hardsigmoid,
        ),
        ACTIVATION,
    ),
    ((nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d, nn.LocalResponseNorm), NORM),
    ((nn.Dropout, nn.Dropout2d, nn.AlphaDropout), DROPOUT),
    ((nn.Flatten, nn.Unflatten), FLATTEN),
    ((nn.Softmax, nn.LogSoftmax), OUTPUT),
    ((nn.Identity,), OTHER),
)
_FUNCTION_KINDS = {
    **dict.fromkeys((F.relu, torch.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.gelu, F.silu, F.mish), ACTIVATION),
    **dict.fromkeys((torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.softplus, F.hardtanh), ACTIVATION),
    **dict.fromkeys((F.max_pool1d, F.max_pool2d, F.avg_pool1d, F.avg_pool2d), POOL),
    **dict.fromkeys((F.adaptive_avg_pool2d, F.adaptive_max_pool2d), POOL),
    **dict.fromkeys((F.batch_norm, F.layer_norm, F.group_norm), NORM),
    **dict.fromkeys((F.dropout, F.dropout2d), DROPOUT),
    **dict.fromkeys((torch.flatten, torch.reshape), FLATTEN),
    **dict.fromkeys((operator.add, torch.add, operator.iadd), ADD),
    **dict.fromkeys((operator.sub, operator.truediv, operator.mul, torch.sub, torch.mul, torch.div), ARITHMETIC),
    **dict.fromkeys((F.log_softmax, F.softmax, torch.log_softmax, torch.softmax), OUTPUT),
    **dict.fromkeys((F.linear,), LINEAR),
    **dict.fromkeys((F.conv2d,), CONV),
}
_METHOD_KINDS = {
    **dict.fromkeys(("relu", "sigmoid", "tanh"), ACTIVATION),
    **dict.fromkeys(("view", "reshape", "flatten"), FLATTEN),
    **dict.fromkeys(("add", "add_"), ADD),
    **dict.fromkeys(("log_softmax", "softmax"), OUTPUT),
}


class NetworkError(ValueError):
    """A network that does not meet the contract; the message names what is wrong and what to do."""


@dataclass(frozen=True)
class Contract:
    """What a network declares about itself (the host's settings for it).

    ``mean``/``std``: the normalisation it expects, applied to [0, 1] pixels before it (0 and 1:
    none). ``output``: one of ``OUTPUTS``, or ``DETECT`` to tell from its answers on real digits.
    ``layers``: more layer names to show beside the default ones.
    """

    mean: float = 0.0
    std: float = 1.0
    output: str = DETECT
    layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.output not in (*OUTPUTS, DETECT):
            raise NetworkError(f"output {self.output!r} is not one of {', '.join((*OUTPUTS, DETECT))}")
        if not (math.isfinite(self.std) and self.std > 0 and math.isfinite(self.mean)):
            raise NetworkError(f"normalisation mean {self.mean} and std {self.std}: the std must be a positive number")


@dataclass(frozen=True)
class Layer:
    """One node of the graph whose output is a tensor: its name (the module's path for a module,
    fx's node name for a function), kind, output shape per image, and the parameters of the
    module it calls (0 for a function)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    parameters: int
    node: str  # the fx node's own name (what the interpreter records)


def _kind(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        module = modules[node.target]
        return next((kind for types, kind in _MODULE_KINDS if isinstance(module, types)), OTHER)
    if node.op == "call_function":
        return _FUNCTION_KINDS.get(node.target, OTHER)
    if node.op == "call_method":
        return _METHOD_KINDS.get(node.target, OTHER)
    return OTHER


class _Recorder(fx.Interpreter):
    """Runs the graph once and keeps the outputs of the nodes asked for (a copy: an in-place
    step after a node would overwrite what was kept; or, for gradients, the tensors themselves).
    One per call: thread-safe."""

    def __init__(self, graph: fx.GraphModule, wanted: Iterable[str], keep_graph: bool = False) -> None:
        super().__init__(graph, garbage_collect_values=True)
        self.wanted = set(wanted)
        self.keep_graph = keep_graph  # keep the tensors themselves, to take gradients with respect to them
        self.kept: dict[str, torch.Tensor] = {}

    def run_node(self, node: fx.Node):
        result = super().run_node(node)
        if node.name in self.wanted and isinstance(result, torch.Tensor):
            self.kept[node.name] = result if self.keep_graph else result.clone()
        return result

    def run_until_kept(self, *args) -> dict[str, torch.Tensor]:
        """Run only as far as the last node asked for, and return what was kept. (A loop of its
        own: stopping ``run`` with an exception costs fx's traceback summary, ~1 s the first time.)"""
        self.args_iter = iter(args)
        self.env = {}
        left = set(self.wanted)
        for node in self.graph.nodes:
            if not left or node.op == "output":
                break
            self.env[node] = self.run_node(node)
            left.discard(node.name)
            for done in self.user_to_last_uses.get(node, []):  # as fx's own run frees what no later node reads
                del self.env[done]
        return self.kept


class _Editor(_Recorder):
    """Runs the graph with the output of one node replaced by ``edit(output)`` (a copy), every
    later node reading the edited value: ablation without a hook. One per call: thread-safe."""

    def __init__(self, graph: fx.GraphModule, node: str, edit) -> None:
        super().__init__(graph, ())
        self.node, self.edit = node, edit

    def run_node(self, node: fx.Node):
        result = super().run_node(node)
        return self.edit(result.clone()) if node.name == self.node else result


class _OneThreadTracer(fx.Tracer):
    """torch.fx's tracer, safe in a server whose other threads run models meanwhile.

    ``fx.symbolic_trace`` patches ``nn.Module.__call__`` and ``__getattr__`` for the whole
    process while it traces: a trainer thread's forward during that time went into the tracer
    and failed ("module is not installed as a submodule"), which ended a first start's training
    when a page opened the provisional model's graph. Here a call from any other thread passes
    straight through to the module, and traces take turns (each restores what it patched).
    """

    def trace(self, root, concrete_args=None):
        with _TRACING:
            self._tracing_thread = threading.get_ident()
            return super().trace(root, concrete_args)

    def call_module(self, m, forward, args, kwargs):
        if threading.get_ident() != self._tracing_thread:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        if threading.get_ident() != self._tracing_thread:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)


_TRACING = threading.Lock()


def trace(module: nn.Module, where: str = "the network") -> fx.GraphModule:
    """The network's graph (torch.fx); a forward the graph cannot follow is refused with a sentence."""
    try:
        tracer = _OneThreadTracer()
        graph = tracer.trace(module)
        return fx.GraphModule(tracer.root, graph, module.__class__.__name__)
    except Exception as err:  # fx raises TraceError, TypeError, NotImplementedError...
        raise NetworkError(
            f"{where}: its forward cannot be followed as a graph ({type(err).__name__}: {str(err).splitlines()[0]}). "
            "A branch or loop that depends on the pixels is the usual cause: write it with tensor operations "
            "(torch.where), or export the network with torch.export."
        ) from err


class Network:
    """A classifier opened through the contract. Thread-safe: it is put in eval mode once and
    then only read; every call runs its own interpreter over the traced graph.

    ``module``: the user's ``nn.Module`` (not changed apart from ``eval()``); ``classes``: how
    many the data set has; ``digits``: real digits, uint8 or float (N, 1, 28, 28) in [0, 1],
    to check the network on and to detect its output; ``where``: what to call it in messages
    (its file and class).
    """

    def __init__(
        self,
        module: nn.Module,
        classes: int,
        digits: torch.Tensor,
        contract: Contract | None = None,
        where: str = "the network",
    ) -> None:
        if classes < 2:
            raise NetworkError(f"a classifier needs at least 2 classes, not {classes}")
        # eval() once for a module of its own; a shared one (a server's cached model) is only read
        self.module = module.eval() if any(m.training for m in module.modules()) else module
        self.contract = contract or Contract()
        self.classes = classes
        self.where = where
        self.graph = trace(self.module, where)
        self._output_node = next(n for n in self.graph.graph.nodes if n.op == "output").args[0]
        raw = self._check(digits)
        self.output = self.contract.output if self.contract.output != DETECT else detect_output(raw)
        layers, shown = graph_layers(self.graph, self.contract)
        self.layers: tuple[Layer, ...] = layers
        self.shown: dict[str, str] = shown
        for extra in self.contract.layers:
            found = next((layer for layer in self.layers if layer.name == extra), None)
            if found is None:
                raise NetworkError(
                    f"{where} has no layer {extra!r}: its layers are {', '.join(layer.name for layer in self.layers)}"
                )
            self.shown.setdefault(extra, found.node)

    # ---- reading it ---------------------------------------------------------------------

    def _normalised(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.contract.mean) / self.contract.std

    def raw(self, images: torch.Tensor) -> torch.Tensor:
        """The network's own output for float32 images (B, 1, 28, 28) in [0, 1]."""
        return self.module(self._normalised(images))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """float32 (B, classes) logits: the one way every view turns the output into scores."""
        return to_logits(self.raw(images), self.output)

    def outputs(self, images: torch.Tensor, names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """The shown layers' outputs (or ``names``, any of :attr:`layers`) for float32 images
        (B, 1, 28, 28) in [0, 1], in forward order, from one pass with no hook."""
        by_name = {layer.name: layer.node for layer in self.layers} | self.shown
        names = list(self.shown) if names is None else list(names)
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise NetworkError(f"{self.where} has no layer {', '.join(map(repr, unknown))}")
        recorder = _Recorder(self.graph, [by_name[n] for n in names])
        recorder.run(self._normalised(images))
        return {n: recorder.kept[by_name[n]] for n in names}

    def nodes(self, images: torch.Tensor, nodes: Iterable[str], keep_graph: bool = False) -> dict[str, torch.Tensor]:
        """The outputs of graph nodes (fx names) for float32 images (B, 1, 28, 28) in [0, 1],
        running the graph only as far as the last of them (``keep_graph``: the tensors
        themselves, to take gradients through)."""
        return _Recorder(self.graph, nodes, keep_graph).run_until_kept(self._normalised(images))

    def block(self, name: str) -> list[fx.Node]:
        """The nodes of shown layer ``name``: its conv, linear or pool, then the element-wise tail
        (norm, activation, dropout) whose output the layer's name stands for."""
        if name not in self.shown:
            raise NetworkError(f"{self.where} shows no layer {name!r}: its layers are {', '.join(self.shown)}")
        start = next(layer.node for layer in self.layers if layer.name == name)
        nodes = {node.name: node for node in self.graph.graph.nodes}
        chain = [nodes[start]]
        while chain[-1].name != self.shown[name]:
            chain.append(next(iter(chain[-1].users)))
        return chain

    def ablated_logits(self, images: torch.Tensor, name: str, unit: int) -> torch.Tensor:
        """Logits (B, classes) with unit ``unit`` of shown layer ``name`` set to zero (a channel at
        every position, or one value of a linear layer) and the rest of the graph run on that:
        paths that bypass the layer (a residual's shortcut) keep their values. No weight changes."""

        def zero(values: torch.Tensor) -> torch.Tensor:
            values[:, unit] = 0.0
            return values

        editor = _Editor(self.graph, self.shown[name], zero)
        return to_logits(editor.run(self._normalised(images)), self.output)

    def gradients(
        self, images: torch.Tensor, names: Iterable[str], target: torch.Tensor
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """For each layer in ``names``: its output for float32 images (B, 1, 28, 28) in [0, 1]
        and the gradient of each image's ``target`` logit (int64 (B,)) with respect to it, both
        detached, from one pass and one backward: no hook, so the shared network serves many
        threads. Layer methods (Grad-CAM) are built on this."""
        by_name = {layer.name: layer.node for layer in self.layers} | self.shown
        names = list(names)
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise NetworkError(f"{self.where} has no layer {', '.join(map(repr, unknown))}")
        recorder = _Recorder(self.graph, [by_name[n] for n in names], keep_graph=True)
        with torch.enable_grad():
            logits = to_logits(recorder.run(self._normalised(images)), self.output)
            chosen = logits.gather(1, target.view(-1, 1).to(logits.device)).sum()
            outputs = [recorder.kept[by_name[n]] for n in names]
            grads = torch.autograd.grad(chosen, outputs)
        return {n: (out.detach(), grad.detach()) for n, out, grad in zip(names, outputs, grads, strict=True)}

    def grad_cam(self, images: torch.Tensor, name: str, target: torch.Tensor) -> torch.Tensor:
        """Grad-CAM (Selvaraju et al. 2017) at a layer with channels, float32 (B, h, w): each
        channel weighted by the mean gradient of the target logit over its positions, summed,
        then ReLU'd."""
        out, grad = self.gradients(images, [name], target)[name]
        if out.dim() != 4:
            raise NetworkError(f"{name} has no positions (its output is {tuple(out.shape[1:])}): no Grad-CAM there")
        weights = grad.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        return torch.relu((weights * out).sum(dim=1))

    def parameterised(self) -> list[str]:
        """The modules with parameters of their own, in the order the graph first calls them:
        the order a top-down randomisation walks backwards."""
        return parameterised(self.graph)

    def attribution_copy(self) -> nn.Module:
        """A private copy for Captum: it takes [0, 1] images and returns logits, and every ReLU
        call site is its own ``nn.ReLU`` module. DeepLift and Guided Backprop hook ReLU modules,
        once each: a functional ``F.relu`` is invisible to them and a module called at two
        sites makes DeepLift refuse ("used more than once"). Outputs equal :meth:`logits`."""
        return _Scored(with_relu_modules(self.graph), self.contract.mean, self.contract.std, self.output).eval()

    def checked_contract(self) -> Contract:
        """The contract with the output found on real digits (never ``DETECT``): what a cached
        copy records, so it opens again without digits."""
        return dataclasses.replace(self.contract, output=self.output)

    def randomised(self, layers: int, seed: int) -> nn.Module:
        """A copy of :meth:`attribution_copy` with its top ``layers`` parameterised modules (in
        :meth:`parameterised` order, last first: the cascade of Adebayo et al.) drawn anew as
        PyTorch initialises them, from a private generator seeded ``seed`` (never the global one,
        which every thread shares). A norm layer gets its initial constants back: a BatchNorm's
        running mean and variance become 0 and 1, its statistics going with its weights. The
        network itself is untouched."""
        names = self.parameterised()
        if not 0 <= layers <= len(names):
            raise NetworkError(f"{self.where} has {len(names)} layers with weights, not {layers}")
        private = self.attribution_copy()
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name in reversed(names[len(names) - layers :]):
                draw_anew(private.graph.get_submodule(name), generator, f"{self.where}: {name}")
        return private

    # ---- checks and defaults ------------------------------------------------------------

    def _check(self, digits: torch.Tensor) -> torch.Tensor:
        where = self.where
        try:
            with torch.inference_mode():
                out = self.raw(digits.float())
        except Exception as err:
            raise NetworkError(
                f"{where} fails on a batch of {len(digits)} digits of 1×28×28 ({type(err).__name__}: "
                f"{str(err).splitlines()[0]}): it must take float32 (B, 1, 28, 28) images"
            ) from err
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise NetworkError(f"{where} returns {shape}, not one row of class scores per digit (B, classes)")
        if out.shape[1] != self.classes:
            raise NetworkError(
                f"{where} gives {out.shape[1]} scores per digit, but the data set has {self.classes} classes: "
                "make its last layer as wide as the classes, or open it on another data set"
            )
        if not torch.isfinite(out).all():
            raise NetworkError(
                f"{where} returns NaN or infinite scores on real digits: check its weights and its normalisation"
            )
        return out


def graph_layers(graph: fx.GraphModule, contract: Contract) -> tuple[tuple[Layer, ...], dict[str, str]]:
    """Every node of ``graph`` whose output is a tensor, as a :class:`Layer` (shapes from one run
    on a blank digit), and the layers shown by default, {name: fx node}: each conv/linear
    block's output after its element-wise tail, the pools, and the last linear layer (the logits)."""
    modules = dict(graph.named_modules())
    nodes = [n for n in graph.graph.nodes if n.op not in ("placeholder", "output", "get_attr")]
    recorder = _Recorder(graph, [n.name for n in nodes])
    with torch.inference_mode():
        recorder.run((torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE) - contract.mean) / contract.std)
    shapes = {name: tuple(value.shape[1:]) for name, value in recorder.kept.items()}
    seen: set[str] = set()
    layers = []
    for node in nodes:
        if node.name not in shapes:
            continue  # not a tensor (a size, a tuple)
        name = str(node.target) if node.op == "call_module" and node.target not in seen else node.name
        seen.add(str(node.target))
        own = modules[node.target].parameters() if node.op == "call_module" else ()
        layers.append(Layer(name, _kind(node, modules), shapes[node.name], sum(p.numel() for p in own), node.name))
    kinds = {node.name: _kind(node, modules) for node in nodes}
    names = {layer.node: layer.name for layer in layers}
    linears = [n for n in nodes if kinds[n.name] == LINEAR]
    shown: dict[str, str] = {}
    for node in nodes:
        kind = kinds[node.name]
        if kind not in (CONV, LINEAR, POOL) or node.name not in names:
            continue
        end = node
        if node is not (linears[-1] if linears else None):
            while len(end.users) == 1 and kinds.get(next(iter(end.users)).name) in _BLOCK_TAIL:
                end = next(iter(end.users))
        shown[names[node.name]] = end.name
    return tuple(layers), shown


def detect_output(raw: torch.Tensor) -> str:
    """Which kind of scores a network returns, from its output on real digits (B, K)."""
    raw = raw.double()
    if (raw >= 0).all() and ((raw.sum(1) - 1).abs() < SUM_TOLERANCE).all():
        return PROBS
    if (raw <= 0).all() and ((raw.exp().sum(1) - 1).abs() < SUM_TOLERANCE).all():
        return LOG_PROBS
    return LOGITS


def to_logits(raw: torch.Tensor, output: str) -> torch.Tensor:
    """Scores whose softmax is the network's probabilities: log-probabilities are such logits
    already; probabilities become their logarithm (clamped above zero)."""
    if output == PROBS:
        return torch.log(raw.clamp_min(TINY))
    if output in (LOGITS, LOG_PROBS):
        return raw
    raise NetworkError(f"unknown output {output!r}: use one of {', '.join(OUTPUTS)}")


def network_of(model: nn.Module, classes: int, digits: torch.Tensor, where: str) -> Network:
    """The contract's view of a model as the pages hold it: the reference network (which
    normalises its pixels itself) as it is, a host's network (:func:`scored`) through its own
    module, normalisation and output."""
    source = getattr(model, "source", None)
    if source is None:
        return Network(model, classes, digits, where=where)
    return Network(source, classes, digits, Contract(model.mean, model.std, model.output), where)


def parameterised(graph: fx.GraphModule) -> list[str]:
    """The modules of ``graph`` with parameters of their own, in the order it first calls them."""
    modules = dict(graph.named_modules())
    order: list[str] = []
    for node in graph.graph.nodes:
        own = modules[node.target].parameters(recurse=False) if node.op == "call_module" else ()
        if node.target not in order and any(True for _ in own):
            order.append(str(node.target))
    return order


def top_down(model: nn.Module) -> tuple[str, ...]:
    """A model's parameterised modules from the top down, as ``model.get_submodule`` names them:
    the order a randomisation cascade (Adebayo et al. 2018) re-initialises them. For a host's
    network (:func:`scored`) they come from its graph; a plain module must name its own."""
    graph = getattr(model, "graph", None)
    if not isinstance(graph, fx.GraphModule):
        raise NetworkError(f"{type(model).__name__}: no graph to find its layers in (open it through the contract)")
    return tuple(f"graph.{name}" for name in reversed(parameterised(graph)))


def draw_anew(module: nn.Module, generator: torch.Generator, where: str) -> None:
    """``module``'s parameters drawn again as PyTorch initialises them, from ``generator``; a
    norm layer gets its initial constants (and a BatchNorm its initial statistics) back."""
    if not _draw_anew(module, generator):
        raise NetworkError(
            f"{where} ({type(module).__name__}) cannot be drawn anew for the randomisation check: only "
            "convolutions, linear and norm layers can"
        )


def scored(module: nn.Module, contract: Contract, where: str = "the network") -> nn.Module:
    """A host's ``module`` as the pages use a model: [0, 1] images in, logits out, one ``nn.ReLU``
    per call site, in eval mode. ``contract.output`` must be known (see
    :meth:`Network.checked_contract`). ``.source`` is the module itself, for :class:`Network`."""
    if contract.output not in OUTPUTS:
        raise NetworkError(f"{where}: say what it returns ({', '.join(OUTPUTS)}) before it is served")
    graph = trace(module.eval(), where)
    layers, shown = graph_layers(graph, contract)
    # The graph is this call's own trace: its ReLUs are changed in place, so the wrapper and
    # ``module`` share their parameters (training one trains the other).
    model = _Scored(with_relu_modules(graph, private_copy=False), contract.mean, contract.std, contract.output)
    model.__dict__["source"] = module  # a plain attribute, not a submodule: parameters counted once
    shapes = {layer.node: layer.shape for layer in layers}
    model.shown = {name: (node, shapes[node]) for name, node in shown.items()}  # {name: (fx node, shape)}
    return model.eval()


class _Scored(nn.Module):
    """[0, 1] images in, logits out: the contract's normalisation and output turned into one module."""

    def __init__(self, graph: fx.GraphModule, mean: float, std: float, output: str) -> None:
        super().__init__()
        self.graph, self.mean, self.std, self.output = graph, mean, std, output

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return to_logits(self.graph((images - self.mean) / self.std), self.output)

    def layer_module(self, name: str) -> nn.Module:
        """A module whose output is shown layer ``name``'s tensor, for Captum's layer methods to
        hook: an ``nn.Identity`` put after that node of this copy's graph. It changes this
        module: call it on a private copy (core.attributions makes one per map)."""
        if name not in self.shown:
            raise NetworkError(f"no layer {name!r}: the layers shown are {', '.join(self.shown)}")
        node_name = self.shown[name][0]
        node = next(n for n in self.graph.graph.nodes if node_name in (n.name, n.meta.get("was")))
        tap = f"tap_{node.name}"
        if not hasattr(self.graph, tap):
            self.graph.add_submodule(tap, nn.Identity())
            with self.graph.graph.inserting_after(node):
                tapped = self.graph.graph.call_module(tap, args=(node,))
            node.replace_all_uses_with(tapped, delete_user_cb=lambda user: user is not tapped)
            self.graph.recompile()
        return self.graph.get_submodule(tap)

    @property
    def last_linear(self) -> nn.Linear:
        """The last linear layer: its output is the network's scores (see :meth:`head`)."""
        return self.graph.get_submodule(self._last_linear_node().target)

    def _last_linear_node(self) -> fx.Node:
        modules = dict(self.graph.named_modules())
        nodes = self.graph.graph.nodes
        found = [n for n in nodes if n.op == "call_module" and isinstance(modules[n.target], nn.Linear)]
        if not found:
            raise NetworkError("this network has no linear layer: the data tools read the one that gives the scores")
        return found[-1]

    def head(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last linear layer's input, flattened (B, D), and its output (B, classes), for
        float32 images in [0, 1]: what the data map and TracIn read (the reference's fc1 and fc2).
        Refused when that output is not the network's scores (its softmax must be the network's
        probabilities: a layer after it that changes them would make both tools wrong)."""
        node = self._last_linear_node()
        source = node.args[0]
        recorder = _Recorder(self.graph, [source.name, node.name])
        logits = to_logits(recorder.run((images - self.mean) / self.std), self.output)
        inputs, outputs = recorder.kept[source.name], recorder.kept[node.name]
        if not torch.allclose(torch.softmax(outputs.double(), 1), torch.softmax(logits.double(), 1), atol=1e-4):
            raise NetworkError(
                f"the output of the last linear layer ({node.target}) is not the network's scores: something after "
                "it changes them, so the data map and the training digits behind an answer cannot read it"
            )
        return inputs.flatten(1), outputs


def _is_relu(node: fx.Node, graph: fx.GraphModule) -> bool:
    if node.op == "call_function":
        return node.target in (F.relu, torch.relu)
    if node.op == "call_method":
        return node.target in ("relu", "relu_")
    return node.op == "call_module" and isinstance(graph.get_submodule(node.target), nn.ReLU)


def with_relu_modules(graph: fx.GraphModule, private_copy: bool = True) -> fx.GraphModule:
    """A deep copy of ``graph`` in which each ReLU call site (``F.relu``, ``torch.relu``,
    ``x.relu()``, or a second call of one ``nn.ReLU`` module) calls a fresh ``nn.ReLU`` of its
    own (never in place). The original is untouched; with ``private_copy=False`` (a graph traced
    for this alone) it is changed instead, sharing the traced module's parameters."""
    private = copy.deepcopy(graph) if private_copy else graph
    kept: set[str] = set()
    count = 0
    for node in list(private.graph.nodes):
        if not _is_relu(node, private):
            continue
        if node.op == "call_module" and node.target not in kept:
            kept.add(node.target)
            private.get_submodule(node.target).inplace = False
            continue
        name = f"relu_site_{count}"
        while hasattr(private, name):
            count += 1
            name = f"relu_site_{count}"
        count += 1
        private.add_submodule(name, nn.ReLU())
        with private.graph.inserting_after(node):
            replacement = private.graph.call_module(name, args=(node.args[0],))
        replacement.meta["was"] = node.name  # the node a shown layer names (see _Scored.layer_module)
        node.replace_all_uses_with(replacement)
        private.graph.erase_node(node)
    private.graph.lint()
    private.recompile()
    return private


def _draw_anew(module: nn.Module, generator: torch.Generator) -> bool:
    """Re-initialise ``module`` as its ``reset_parameters`` would, drawing from ``generator``."""
    if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
        nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
        if module.bias is not None:
            fan_in = module.weight[0].numel()
            bound = 1 / math.sqrt(fan_in) if fan_in else 0.0
            nn.init.uniform_(module.bias, -bound, bound, generator=generator)
        return True
    if isinstance(module, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm | nn.PReLU):
        module.reset_parameters()  # constants (ones, zeros, 0.25): no random draw
        return True
    return False
