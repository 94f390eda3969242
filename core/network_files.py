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

from core.network import NetworkError

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
