"""What every layer outputs for a batch of images, from one forward pass with hooks."""

from __future__ import annotations

import numpy as np
import torch

from core.model import LAYER_NAMES, MnistCNN

# Where each named layer's output is read. Conv layers and fc1 are read after their ReLU:
# that is what the next layer sees, and what "this channel fired" means.
TAPS = {
    "conv1": "relu1",
    "conv2": "relu2",
    "pool1": "pool1",
    "conv3": "relu3",
    "conv4": "relu4",
    "pool2": "pool2",
    "fc1": "relu5",
    "fc2": "fc2",
}


def layer_outputs(model: MnistCNN, images: torch.Tensor) -> dict[str, np.ndarray]:
    """Outputs of every layer for float32 images (B, 1, 28, 28) in [0, 1].

    Returns float32 arrays keyed by layer name, in forward order:
    conv1 (B, 4, 26, 26), conv2 (B, 8, 24, 24), pool1 (B, 8, 12, 12), conv3 (B, 16, 10, 10),
    conv4 (B, 32, 8, 8), pool2 (B, 32, 4, 4), fc1 (B, 20), fc2 (B, 10) logits.
    """
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        getattr(model, module).register_forward_hook(
            lambda _m, _inp, out, name=name: captured.__setitem__(name, out.detach())
        )
        for name, module in TAPS.items()
    ]
    try:
        with torch.inference_mode():
            model(images.to(next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
    return {name: captured[name].float().cpu().numpy() for name in LAYER_NAMES}


def kernels(model: MnistCNN, layer: str) -> np.ndarray:
    """A conv layer's weights, float32 (out_channels, in_channels, 3, 3)."""
    if layer not in ("conv1", "conv2", "conv3", "conv4"):
        raise ValueError(f"{layer!r} has no convolution kernels: choose conv1, conv2, conv3 or conv4")
    return getattr(model, layer).weight.detach().float().cpu().numpy()


def strongest_channels(activation: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k channels with the largest mean activation, for one image.

    ``activation``: (C, H, W) or (C,) for one image. Returns int64 (k,), strongest first.
    """
    strength = activation.reshape(activation.shape[0], -1).mean(axis=1)
    return np.argsort(-strength, kind="stable")[:k]
