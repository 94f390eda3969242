"""What every layer outputs for a batch of images, read from the model's own named taps."""

from __future__ import annotations

import numpy as np
import torch

from core.model import MnistCNN


def layer_outputs(model: MnistCNN, images: torch.Tensor) -> dict[str, np.ndarray]:
    """Outputs of every layer for float32 images (B, 1, 28, 28) in [0, 1].

    Returns float32 arrays keyed by layer name (``core.model.TAPS``), in forward order:
    conv1 (B, 4, 26, 26), conv2 (B, 8, 24, 24), pool1 (B, 8, 12, 12), conv3 (B, 16, 10, 10),
    conv4 (B, 32, 8, 8), pool2 (B, 32, 4, 4), fc1 (B, 20), fc2 (B, 10) logits. Conv layers
    and fc1 are after their ReLU. The model is only read: safe to share between threads.
    """
    with torch.inference_mode():
        outputs = model.taps(images.to(next(model.parameters()).device))
    return {name: value.float().cpu().numpy() for name, value in outputs.items()}


def strongest_channels(activation: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k channels with the largest mean activation, for one image.

    ``activation``: (C, H, W) or (C,) for one image. Returns int64 (k,), strongest first.
    """
    strength = activation.reshape(activation.shape[0], -1).mean(axis=1)
    return np.argsort(-strength, kind="stable")[:k]
