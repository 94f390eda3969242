"""How a host's network arrives: a Python file and class, and weights, read without pickle.

Only the host names a network (``--net FILE.py:CLASS --weights FILE``): importing a class
file runs its code, the same trust as running one's own training script, so a visitor never
uploads one. Weights are safetensors, or a ``torch.save`` state dict read with
``weights_only=True``; never plain pickle. Every failure is one :class:`NetworkError` sentence
naming the file and what to do.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import io
import json
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from torch import nn

from core.network import Contract, Network, NetworkError

KEY_LENGTH = 16  # hexadecimal characters, as core.checkpoints' model keys


def import_class(spec: str) -> tuple[type[nn.Module], str]:
    """The class ``FILE.py:CLASS`` names, and the file's source (part of the network's key)."""
    file, colon, name = spec.rpartition(":")
    if not colon or not file or not name:
        raise NetworkError(f"{spec!r}: name a network as FILE.py:CLASS, e.g. nets/lenet.py:LeNet5")
    path = Path(file).expanduser()
    if not path.is_file():
        raise NetworkError(f"{spec}: there is no file {path}: name a Python file and a class in it as FILE.py:CLASS")
    source = path.read_text(errors="replace")
    module_name = "user_network_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise NetworkError(f"{spec}: {path} cannot be imported as Python: name a .py file")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # dataclasses and pickling of classes look their module up
    try:
        loader_spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(module_name, None)
        raise NetworkError(
            f"{spec}: {path} could not be imported ({type(err).__name__}: {err}): fix the file, or name another"
        ) from err
    cls = getattr(module, name, None)
    if cls is None:
        defined = sorted(n for n, v in vars(module).items() if inspect.isclass(v) and v.__module__ == module_name)
        raise NetworkError(f"{spec}: {path} has no class {name} (it defines {', '.join(defined) or 'no class'})")
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise NetworkError(f"{spec}: {name} is not a torch.nn.Module subclass: name the network's class")
    return cls, source


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """A state dict from a safetensors file or a ``torch.save`` file read with
    ``weights_only=True``, and the file's SHA-256 (part of the network's key)."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except OSError as err:
        raise NetworkError(f"the weights {path} cannot be read ({err.strerror or err}): name an existing file") from err
    digest = hashlib.sha256(data).hexdigest()
    if path.suffix == ".safetensors":
        try:
            return load_safetensors(data), digest
        except (SafetensorError, ValueError) as err:
            raise NetworkError(f"the weights {path} are not a valid safetensors file ({err})") from err
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # an UnpicklingError for anything but tensors and plain containers
        raise NetworkError(
            f"the weights {path} could not be read as a state dict without unpickling code "
            f"({type(err).__name__}: {str(err).splitlines()[0]}): save model.state_dict() with torch.save, "
            "or as safetensors"
        ) from err
    if not (isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise NetworkError(
            f"the weights {path} hold a {type(state).__name__}, not a state dict of tensors: "
            "save model.state_dict(), not the model or a training checkpoint"
        )
    return state, digest


def build(cls: type[nn.Module], state: dict[str, torch.Tensor], spec: str, weights: Path) -> nn.Module:
    """``cls()`` with ``state`` loaded; weights that do not fit are listed, key by key."""
    try:
        module = cls()
    except Exception as err:
        raise NetworkError(
            f"{spec}: {cls.__name__}() failed ({type(err).__name__}: {err}): the class must build with no arguments"
        ) from err
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshaped = [
        f"{k} (file {_shape(state[k])}, class {_shape(own[k])})"
        for k in own
        if k in state and tuple(own[k].shape) != tuple(state[k].shape)
    ]
    if missing or unexpected or misshaped:
        parts = [
            f"{label}: {', '.join(keys[:8])}{' …' if len(keys) > 8 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
            if keys
        ]
        raise NetworkError(f"the weights {weights} do not fit {spec}: {'; '.join(parts)}")
    module.load_state_dict(state)
    return module.eval()


def _shape(tensor: torch.Tensor) -> str:
    return "×".join(str(d) for d in tensor.shape) or "scalar"


def network_key(source: str, weights_sha256: str, data_fingerprint: str, contract: dict) -> str:
    """A short hash of everything that changes what a host's network computes: its class file's
    source, its weights, the data it is opened on and what it declares (normalisation, output)."""
    payload = json.dumps(
        {"source": source, "weights": weights_sha256, "data": data_fingerprint, "contract": contract}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:KEY_LENGTH]


def open_host_network(
    spec: str,
    weights: Path,
    classes: int,
    digits: torch.Tensor,
    data_fingerprint: str,
    contract: Contract | None = None,
) -> tuple[Network, str]:
    """A host's network opened through the contract on real ``digits`` (N, 1, 28, 28) in [0, 1],
    and its key (class source, weights, data, contract); a :class:`NetworkError` names what is wrong."""
    contract = contract or Contract()
    cls, source = import_class(spec)
    state, digest = read_weights(Path(weights))
    module = build(cls, state, spec, Path(weights))
    network = Network(module, classes, digits, contract, where=spec)
    declared = {"mean": contract.mean, "std": contract.std, "output": network.output, "layers": list(contract.layers)}
    return network, network_key(source, digest, data_fingerprint, declared)


def format_layers(network: Network) -> str:
    """The network's layers from its graph as aligned text; the ones shown by default starred,
    with the node their output is read after (a conv read after its ReLU)."""
    names = {layer.node: layer.name for layer in network.layers}
    width = max(12, *(len(layer.name) for layer in network.layers)) + 2
    lines = [f"  {'layer':<{width}} {'kind':<11} {'output per digit':<18} {'parameters':>10}"]
    for layer in network.layers:
        shown = network.shown.get(layer.name)
        star = "*" if shown is not None else " "
        after = f"  (read after {names[shown]})" if shown not in (None, layer.node) else ""
        shape = "×".join(str(d) for d in layer.shape)
        lines.append(f"{star} {layer.name:<{width}} {layer.kind:<11} {shape:<18} {layer.parameters:>10,}{after}")
    lines.append(f"  {'total':<{width + 31}} {sum(layer.parameters for layer in network.layers):>10,}")
    return "\n".join(lines)


CHECK_DIGITS = 64  # test digits a network is checked on before it is served


def main(argv: list[str] | None = None) -> int:
    """Check a network against the contract before serving it: its layers from the graph, what
    it returns, its accuracy on the data set's test digits, and its key."""
    import argparse

    from core.data import load_mnist, to_tensor
    from core.network import DETECT, OUTPUTS

    parser = argparse.ArgumentParser(prog="python -m core.network_files", description=main.__doc__)
    parser.add_argument("--net", required=True, help="the network's class, as FILE.py:CLASS")
    parser.add_argument("--weights", required=True, help="a .safetensors file, or a torch.save state dict")
    parser.add_argument("--mean", type=float, default=0.0, help="the normalisation it expects (default: none)")
    parser.add_argument("--std", type=float, default=1.0, help="(default: 1)")
    parser.add_argument(
        "--output", choices=(*OUTPUTS, DETECT), default=DETECT, help="what it returns (default: detect)"
    )
    parser.add_argument("--data", default="bundled", help="the data set (default: the bundled MNIST)")
    args = parser.parse_args(argv)
    data = load_mnist(args.data)
    try:
        contract = Contract(args.mean, args.std, args.output)
        digits = to_tensor(data.test.images[:CHECK_DIGITS])
        network, key = open_host_network(
            args.net, Path(args.weights), len(data.classes), digits, data.fingerprint, contract
        )
    except NetworkError as err:
        print(err, file=sys.stderr)
        return 1
    with torch.inference_mode():
        preds = torch.cat(
            [
                network.logits(to_tensor(data.test.images[i : i + 1000])).argmax(1)
                for i in range(0, len(data.test), 1000)
            ]
        )
    accuracy = float((preds.numpy() == data.test.labels).mean())
    print(f"{args.net} with {args.weights}: returns {network.output}; key {key}")
    print(format_layers(network))
    print(f"* shown by default. Test accuracy on {len(data.test):,} digits: {accuracy:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
