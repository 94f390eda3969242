"""Which channels of a layer carry the evidence for a class, and where on the digit.

For one digit, a layer (conv1..conv4 or fc1, read after its ReLU as everywhere else:
``core.model.TAPS``) and a target class, :func:`channel_relevance` splits the target's
logit over the layer's channels and draws, for each channel, the part of the input
heatmap whose relevance flows through that channel only. This is concept relevance
propagation (CRP; Achtibat et al. 2023, "From attribution maps to human-understandable
explanations through concept relevance propagation"), run with zennit-crp's
``CondAttribution`` and the ``EpsilonPlusFlat`` rules of zennit.

Why LRP with these rules, on this model
  The network is ReLU convolutions, max pools and two dense layers: the case LRP's rules
  were made for, and every rule conserves relevance up to what biases take, so a channel's
  value is its part of the logit and the per-channel input maps add up to the whole map.
  ``EpsilonPlusFlat`` uses Epsilon (stabiliser 1e-6) on fc1 and fc2, where it equals
  Gradient x Activation: fc1's and conv4's values are that method's, signed (tested). It
  uses z+ on conv2..conv4, which passes relevance down only along positive contributions,
  so the maps below conv4 stay sparse and nearly all positive (0.2-2% of conv1..conv3's
  channel values are negative; a fifth at conv4 and fc1) instead of the noise of signed
  gradients. And it uses Flat on conv1, which spreads each conv1 unit's relevance evenly
  over its 3x3 window whatever the pixels: the model normalises first, so a black pixel
  reaches conv1 as -0.42, not 0, and a rule weighing by the input would hand relevance of
  either sign to black pixels by the sign of their weight. Flat's price: black pixels next
  to a stroke share its relevance, so read the heatmaps at 3-pixel resolution.
  All C conditional heatmaps come from one batched backward pass (one row per channel),
  where per-channel ablation or Integrated Gradients would need a pass per channel and step.
  Captum's LRP has only Epsilon-type rules here and cannot attach to the TAPS modules (the
  ReLUs), so it would add nothing over ``core.attributions``' Gradient x Activation.

What the numbers mean
  Relevance is in logit units. ``relevance[c]`` is the share of the target logit that
  reaches channel c of ``layer`` (all positions); positive is evidence for the class,
  negative against it. ``maps[c]`` is where on the layer's own grid that relevance sits
  and ``heatmaps[c]`` where on the digit, in input pixels: multiplied by ``MNIST_STD``
  because the relevance reaches the pixels through the model's own normalisation
  ``(x - MNIST_MEAN) / MNIST_STD`` as a gradient, which divides it by the STD.

What is conserved, and how well
  - ``relevance`` sums to ``total`` (a sum), ``maps[c]`` sums to ``relevance[c]``, and the C
    ``heatmaps`` sum to the unconditional input heatmap (every rule is linear in the
    relevance it passes on): all to float rounding.
  - ``total`` is the logit less what the biases above the layer take: Epsilon leaves a dense
    unit's bias its share b / z of the unit's relevance, z+ a positive conv bias its share.
    Measured on the reference model (64 test digits, predicted class): 0.94-1.02 of the
    logit from fc1 down to conv2 (median 0.99-1.00), 0.90-0.98 at conv1. With every bias
    zeroed, every layer's total is the logit to ~1e-6 (the rules' 1e-6 stabiliser).
  - ``heatmaps[c]`` sums to ``relevance[c]`` exactly at conv1 (Flat ignores conv1's bias and
    the normalisation passes relevance on whole). Below a higher layer the biases in
    between take a little, or add some (a negative dense bias makes b / z negative):
    measured within 1.7% of the layer's total per channel at conv2..conv4 and 9.4% at fc1;
    all heatmaps together hold 0.93-0.98 of the total. With every bias zeroed, exact to ~1e-6.

Everything runs on a private copy of the model: CRP and zennit register hooks and swap
parameters during the call, and the dashboard shares one model between sessions' threads.
The model passed in is only copied, never hooked, put in another mode or changed, and no
global state (random generators, thread count, warnings) is touched.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from crp.attribution import CondAttribution
from torch import nn
from zennit.composites import EpsilonPlusFlat

from core.data import IMAGE_SIZE
from core.model import CONV_LAYERS, LAYER_NAMES, MNIST_STD, TAPS

RELEVANCE_LAYERS = (*CONV_LAYERS, "fc1")  # layers with channels to rank; fc2 is the logits themselves


@dataclass(frozen=True, eq=False)
class ChannelRelevance:
    """How one layer's channels share the evidence for ``target`` on one digit.

    ``relevance`` float64 (C,): each channel's relevance, signed, in logit units;
    ``total``: their sum, the layer's relevance; ``logit``: the target's logit, where the
    relevance started (``total / logit`` says how much the biases above took);
    ``ranking`` int64 (C,): channel indices by relevance, highest first (ties by index);
    ``share`` float64 (C,): ``relevance / sum(|relevance|)``, CRP's normalisation: signed,
    its absolute values sum to 1 (all zeros when no relevance reaches the layer);
    ``heatmaps`` float32 (C, 28, 28): channel c's conditional relevance on the input pixels;
    ``maps`` float32 (C, h, w): channel c's relevance on the layer's own grid, e.g. (32, 8, 8)
    for conv4; fc1's units have no grid, so (20, 1, 1).
    """

    layer: str
    target: int
    logit: float
    relevance: np.ndarray
    total: float
    ranking: np.ndarray
    share: np.ndarray
    heatmaps: np.ndarray
    maps: np.ndarray


def _check(image: torch.Tensor, layer: str, target: int, classes: int) -> None:
    """``classes``: how many the network scores (its last layer's width)."""
    if layer not in RELEVANCE_LAYERS:
        raise ValueError(f"unknown layer {layer!r}: choose one of {', '.join(RELEVANCE_LAYERS)}")
    if isinstance(target, bool) or not isinstance(target, int | np.integer) or not 0 <= target < classes:
        raise ValueError(f"the target class must be an integer 0..{classes - 1}, not {target!r}")
    if tuple(image.shape) != (1, 1, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"expected one image shaped (1, 1, 28, 28), got {tuple(image.shape)}")


def channel_relevance(model: nn.Module, image: torch.Tensor, layer: str, target: int) -> ChannelRelevance:
    """Per-channel relevance of ``layer`` for class ``target`` on one float32 image (1, 1, 28, 28)
    in [0, 1], with every channel's conditional input heatmap, from one batched CRP pass.

    Raises ValueError for a layer outside ``RELEVANCE_LAYERS``, a class outside 0..9 or an
    image of another shape. Shapes and meanings: see :class:`ChannelRelevance`.
    """
    _check(image, layer, target, getattr(model, LAYER_NAMES[-1]).out_features)
    target = int(target)
    module = TAPS[layer]  # condition and record after the ReLU: "conv2" is one tensor everywhere
    device = next(model.parameters()).device
    # Out of any caller's inference mode: LRP is a backward pass, so the copy and the input
    # must be ordinary tensors.
    with torch.inference_mode(False), torch.enable_grad():
        private = copy.deepcopy(model).eval()  # CondAttribution also sets requires_grad_(False) on it
        attribution = CondAttribution(private)
        x = image.detach().to(device=device, dtype=torch.float32).clone().requires_grad_(True)
        channels = _channels(private, layer)
        # Row c of the batch: relevance from the target's logit, masked at ``module`` to channel c.
        conditions = [{module: [c], "y": [target]} for c in range(channels)]
        # exclude_parallel=False: one plain backward pass. The default (True, meant for skip
        # connections, which this sequential model has none of) runs a partial pass to ``module``
        # and a second one from it, and the recorded relevance there (a retained .grad) collects
        # both: exactly twice the true value (measured; the heatmaps are unaffected).
        result = attribution(x, conditions, EpsilonPlusFlat(), record_layer=[module], exclude_parallel=False)
    own = torch.arange(channels)
    layer_relevance = result.relevances[module].detach()  # (C, C, h, w) or (C, C): row c masked to channel c
    maps = layer_relevance[own, own].float().cpu()  # (C, h, w), fc1 (C,)
    if maps.dim() == 1:
        maps = maps[:, None, None]  # fc1: (C, 1, 1), one position per unit
    heatmaps = (result.heatmap.detach() * MNIST_STD).float().cpu()  # (C, 28, 28): per raw pixel, see docstring
    relevance = maps.double().sum(dim=(1, 2)).numpy()  # (C,)
    magnitude = np.abs(relevance).sum()
    share = relevance / magnitude if magnitude > 0 else np.zeros_like(relevance)
    return ChannelRelevance(
        layer=layer,
        target=target,
        logit=float(result.prediction.detach()[0, target]),
        relevance=relevance,
        total=float(relevance.sum()),
        ranking=np.argsort(-relevance, kind="stable").astype(np.int64),
        share=share,
        heatmaps=heatmaps.numpy(),
        maps=maps.numpy(),
    )


def _channels(model: nn.Module, layer: str) -> int:
    module = getattr(model, layer)
    return module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
