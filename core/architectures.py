"""Another architecture trained here: ``python -m core.train --arch nets/lenet.py:LeNet5``.

A host's class (``TrainConfig.arch``, an absolute ``FILE.py:CLASS``) trained with the project's
recipes. The module is built from a seed, wrapped as every page uses a model (core.network.scored:
[0, 1] pixels in, normalised with MNIST's mean and standard deviation as the reference does,
logits out), and trained through the wrapper, whose layers are the class's own. Checkpoints hold
the class's own state dict; the cache key holds the class file's SHA-256, so an edited file is a
new model.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import torch
from torch import nn

from core.model import MNIST_MEAN, MNIST_STD
from core.network import Contract, NetworkError, detect_output, scored
from core.network_files import build, import_class

_BUILDING = threading.Lock()  # a class built from a seed draws from torch's global generator


def signature(arch: str) -> str:
    """What changes an architecture's weights: its class name and its file's source."""
    file, _, name = arch.rpartition(":")
    try:
        source = Path(file).read_bytes()
    except OSError as err:
        raise NetworkError(f"{arch}: the class file cannot be read ({err.strerror or err})") from err
    return hashlib.sha256(name.encode() + b"\0" + source).hexdigest()


def arch_model(arch: str, seed: int | None = None, state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """The class ``arch`` names, initialised from ``seed`` (PyTorch's default initialisation drawn
    under that seed, the global generator restored after) or holding ``state``, as the pages use a
    model (core.network.scored). Raises :class:`NetworkError` with a sentence."""
    cls, _ = import_class(arch)
    with _BUILDING, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed or 0)
        if state is not None:
            module = build(cls, state, arch, Path("its checkpoint"))
        else:
            try:
                module = cls()
            except Exception as err:
                raise NetworkError(f"{arch}: {cls.__name__}() failed ({type(err).__name__}: {err})") from err
    module.eval()
    pixels = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        output = detect_output(module((pixels - MNIST_MEAN) / MNIST_STD))  # untrained, its last step still shows
    return scored(module, Contract(MNIST_MEAN, MNIST_STD, output), arch)
