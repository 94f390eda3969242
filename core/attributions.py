"""Attribution methods from Captum behind one registry and one signature.

Every method is called the same way::

    attribute(name, model, images, target, layer=None, **options) -> np.ndarray

``images`` are float32 (B, 1, 28, 28) in [0, 1]; ``target`` is int64 (B,) class indices.
Input methods return float32 (B, 28, 28): one value per pixel. Layer methods take a
``layer`` (conv1..conv4 or fc1) and attribute to that layer's tensor as
``core.model.TAPS`` defines it (after the ReLU, as the Feature maps page shows it); they
return the layer's map summed over channels:
(B, h, w) for a conv layer, (B, 28, 28) when ``upsample=True``, or (B, units) for fc1.
Adding a method is adding one entry to :data:`METHODS`.

Each call runs on a private copy of the model: Captum's methods hook its modules, and
the dashboard shares one model between sessions' threads. SmoothGrad draws its noise from
a generator seeded by each image's pixels, never from torch's global generator, so the
same digit always gets the same map, batched or alone, whatever other threads do.

The dashboard asks with one :class:`AttributionRequest` (method, target, layer, options)
through :func:`explain`.
"""

from __future__ import annotations

import copy
import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from core.data import IMAGE_SIZE
from core.model import CONV_LAYERS, MnistCNN, tap_module

# Captum warns on every call that inputs need gradients and that hooks are added; both
# are expected here and would flood the app's log. Filtered once, here: a per-call
# ``warnings.catch_warnings()`` is not thread-safe and leaves filters behind.
warnings.filterwarnings("ignore", category=UserWarning, module=r"captum\.")


def _captum():
    """``captum.attr``, imported on first use: the import takes about half a second (it pulls in
    matplotlib.pyplot), which a first page that draws no map should not wait for."""
    import captum.attr

    return captum.attr


LAYERS = (*CONV_LAYERS, "fc1")  # the layers layer methods can explain
BASELINES = {"black": 0.0, "mean pixel": 0.1307}  # what "absence of ink" means for IG/DeepLift
# Rows (images x steps, samples or perturbations) per forward pass inside IG, SmoothGrad
# and Occlusion. Measured on 2 CPU cores: ~500 rows amortise the per-call overhead, while
# much larger chunks fall out of cache and run slower per row.
ROWS_PER_PASS = 512


class AttributionError(ValueError):
    """A method cannot run as asked (wrong layer, option out of range); the message says why and what to do."""


@dataclass(frozen=True)
class Option:
    """A numeric or choice option a method takes, with its range for validation and widgets."""

    name: str
    label: str
    default: float | int | str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[str, ...] = ()
    help: str = ""

    def check(self, method: str, value: object) -> object:
        if self.choices:
            if value not in self.choices:
                raise AttributionError(
                    f"{method}: {self.label} must be one of {', '.join(self.choices)}, not {value!r}"
                )
            return value
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise AttributionError(f"{method}: {self.label} must be a number, not {value!r}")
        if not self.low <= value <= self.high:
            raise AttributionError(f"{method}: {self.label} must lie in {self.low}..{self.high}, not {value}")
        if isinstance(self.default, int) and value != int(value):
            raise AttributionError(f"{method}: {self.label} must be a whole number, not {value}")
        return type(self.default)(value)


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # "input" or "layer"
    run: Callable[..., torch.Tensor]  # (model, images, target, layer, **options) -> Tensor
    description: str
    options: tuple[Option, ...] = ()
    layers: tuple[str, ...] = field(default=())  # layer methods only: where it applies (the reference's)
    not_applicable: str = ""  # why it cannot apply to the layers left out
    spatial: bool = False  # needs a layer with positions (channels × height × width)

    def defaults(self) -> dict[str, object]:
        return {o.name: o.default for o in self.options}

    def layers_of(self, model: nn.Module) -> tuple[str, ...]:
        """The layers this layer method applies to in ``model``: the reference's names, or a host's
        shown layers but the logits (those with positions only, for a spatial method)."""
        if isinstance(model, MnistCNN):
            return self.layers
        shown = getattr(model, "shown", None)
        if shown is None:
            raise AttributionError(f"{type(model).__name__} names no layers: open it through the network contract")
        return tuple(name for name, (_, shape) in list(shown.items())[:-1] if len(shape) == 3 or not self.spatial)


STEPS = Option("steps", "IG steps", 32, 2, 300, help="Points on the path from baseline to image; more is more exact")
BASELINE = Option(
    "baseline", "baseline", "black", choices=tuple(BASELINES), help="The image taken to mean 'no evidence'"
)
SAMPLES = Option("samples", "SmoothGrad samples", 16, 1, 200, help="Noisy copies averaged")
NOISE = Option("noise", "SmoothGrad noise (std)", 0.15, 0.0, 1.0, help="Noise standard deviation, in pixel units")
WINDOW = Option(
    "window",
    "occlusion window",
    4,
    1,
    14,
    help="Side of the square set to black (0) as it slides over the image, pixels",
)
STRIDE = Option("stride", "occlusion stride", 2, 1, 14, help="Pixels between window positions")


def _per_pass(images: torch.Tensor) -> int:
    """Copies of the batch per forward pass so a pass holds about ROWS_PER_PASS rows."""
    return max(1, ROWS_PER_PASS // max(len(images), 1))


def _baseline(images: torch.Tensor, name: str) -> torch.Tensor:
    return torch.full_like(images, BASELINES[name])


def _saliency(model, images, target, layer):
    return _captum().Saliency(model).attribute(images, target=target, abs=True)


def _integrated_gradients(model, images, target, layer, steps, baseline):
    return (
        _captum()
        .IntegratedGradients(model)
        .attribute(images, _baseline(images, baseline), target=target, n_steps=steps, internal_batch_size=ROWS_PER_PASS)
    )


def _deeplift(model, images, target, layer, baseline):
    return _captum().DeepLift(model).attribute(images, _baseline(images, baseline), target=target)


def _input_x_gradient(model, images, target, layer):
    return _captum().InputXGradient(model).attribute(images, target=target)


def _guided_backprop(model, images, target, layer):
    return _captum().GuidedBackprop(model).attribute(images, target=target)


def _occlusion(model, images, target, layer, window, stride):
    if stride > window:
        raise AttributionError(f"Occlusion: a stride ({stride}) larger than the window ({window}) skips pixels")
    return (
        _captum()
        .Occlusion(model)
        .attribute(
            images,
            sliding_window_shapes=(1, window, window),
            strides=(1, stride, stride),
            baselines=0.0,
            target=target,
            perturbations_per_eval=_per_pass(images),
        )
    )


def _smoothgrad(model, images, target, layer, samples, noise):
    # SmoothGrad (Smilkov et al. 2017) as Captum's NoiseTunnel(Saliency, abs=True) computes
    # it: the mean over noisy copies of |gradient|. Written out so the noise comes from a
    # generator seeded per image (NoiseTunnel draws from torch's global generator).
    noisy = torch.stack(
        [image + noise * torch.randn(samples, *image.shape, generator=_generator(image)) for image in images]
    )  # (B, samples, 1, 28, 28)
    flat = noisy.flatten(0, 1).contiguous(memory_format=torch.channels_last)  # (B * samples, 1, 28, 28)
    targets = target.repeat_interleave(samples)
    grads = torch.cat(
        [
            _captum()
            .Saliency(model)
            .attribute(flat[i : i + ROWS_PER_PASS], target=targets[i : i + ROWS_PER_PASS], abs=True)
            for i in range(0, len(flat), ROWS_PER_PASS)
        ]
    )
    return grads.reshape(len(images), samples, *images.shape[1:]).mean(dim=1)  # (B, 1, 28, 28)


def _generator(image: torch.Tensor) -> torch.Generator:
    """A generator seeded by the image's pixels: the same digit always draws the same noise."""
    digest = hashlib.sha256(image.detach().cpu().float().contiguous().numpy().tobytes()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def _grad_cam(model, images, target, layer):
    return (
        _captum().LayerGradCam(model, tap_module(model, layer)).attribute(images, target=target, relu_attributions=True)
    )


def _layer_integrated_gradients(model, images, target, layer, steps, baseline):
    return (
        _captum()
        .LayerIntegratedGradients(model, tap_module(model, layer))
        .attribute(images, _baseline(images, baseline), target=target, n_steps=steps, internal_batch_size=ROWS_PER_PASS)
    )


def _layer_activation_x_gradient(model, images, target, layer):
    return _captum().LayerGradientXActivation(model, tap_module(model, layer)).attribute(images, target=target)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("Saliency", "input", _saliency, "How much each pixel's change would move the class score (|gradient|)."),
        Method(
            "Integrated Gradients",
            "input",
            _integrated_gradients,
            "Gradients summed along the path from a blank image to this one; the map adds up to the score change.",
            (STEPS, BASELINE),
        ),
        Method(
            "DeepLift",
            "input",
            _deeplift,
            "Each pixel's contribution relative to a blank image, by DeepLift's rules.",
            (BASELINE,),
        ),
        Method("Input × Gradient", "input", _input_x_gradient, "Pixel value times gradient: only inked pixels count."),
        Method(
            "Guided Backprop",
            "input",
            _guided_backprop,
            "Gradients with negative signals stopped at every ReLU: sharp, edge-like maps.",
        ),
        Method(
            "Occlusion",
            "input",
            _occlusion,
            "How much the class score drops when a square of the image is blanked out.",
            (WINDOW, STRIDE),
        ),
        Method(
            "SmoothGrad",
            "input",
            _smoothgrad,
            "Saliency averaged over noisy copies of the image: less speckle.",
            (SAMPLES, NOISE),
        ),
        Method(
            "Grad-CAM",
            "layer",
            _grad_cam,
            "The layer's channels weighted by their mean gradient, positive part: where the layer looks.",
            layers=CONV_LAYERS,
            not_applicable="Grad-CAM needs a layer with a spatial map (conv1..conv4); fc1's 20 units have no position",
            spatial=True,
        ),
        Method(
            "Layer Integrated Gradients",
            "layer",
            _layer_integrated_gradients,
            "Integrated Gradients on the layer's output: each unit's share of the score change.",
            (STEPS, BASELINE),
            layers=LAYERS,
        ),
        Method(
            "Layer Activation × Gradient",
            "layer",
            _layer_activation_x_gradient,
            "The layer's activations times their gradients.",
            layers=LAYERS,
        ),
    )
}
INPUT_METHODS = tuple(n for n, m in METHODS.items() if m.kind == "input")
LAYER_METHODS = tuple(n for n, m in METHODS.items() if m.kind == "layer")


def attribute(
    name: str,
    model: MnistCNN,
    images: torch.Tensor,
    target: torch.Tensor | int,
    layer: str | None = None,
    upsample: bool = False,
    **options: object,
) -> np.ndarray:
    """Run one registered method on a batch (see the module docstring for shapes).

    Raises :class:`AttributionError` for an unknown method, a layer it cannot apply to,
    or an option out of range.
    """
    method = METHODS.get(name)
    if method is None:
        raise AttributionError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}")
    unknown = set(options) - {o.name for o in method.options}
    if unknown:
        raise AttributionError(f"{name} takes no option {', '.join(sorted(unknown))}")
    values = {o.name: o.check(name, options.get(o.name, o.default)) for o in method.options}
    if method.kind == "layer":
        if layer not in method.layers_of(model):
            if isinstance(model, MnistCNN):
                reason = method.not_applicable or f"{name} applies to {', '.join(method.layers)}"
            else:
                reason = f"{name} applies to {', '.join(method.layers_of(model)) or 'no layer'} in this network"
            raise AttributionError(f"{reason}; {layer!r} was asked for.")
    elif layer is not None:
        raise AttributionError(f"{name} explains the input pixels, not a layer; leave the layer unset")
    images = images.detach().float()
    if images.ndim != 4 or images.shape[1:] != (1, IMAGE_SIZE, IMAGE_SIZE):
        raise AttributionError(f"images must be (B, 1, 28, 28), got {tuple(images.shape)}")
    if isinstance(target, int):
        target = torch.full((len(images),), target, dtype=torch.int64)
    # A private copy: method hooks must not touch the shared model. channels_last: the
    # convolutions run about 2x faster in that layout on the CPU.
    private = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
    images = images.contiguous(memory_format=torch.channels_last)
    result = method.run(private, images.clone(), target, layer, **values).detach()
    if method.kind == "input":
        return result[:, 0].float().numpy()  # (B, 28, 28)
    if result.ndim == 4:
        result = result.sum(dim=1, keepdim=True)  # (B, 1, h, w): all channels' evidence at each position
        if upsample:
            result = _captum().LayerAttribution.interpolate(
                result, (IMAGE_SIZE, IMAGE_SIZE), interpolate_mode="bilinear"
            )
        return result[:, 0].float().numpy()
    return result.float().numpy()  # (B, units): fc1


# ---- requests and targets ------------------------------------------------------------

TARGETS = ("predicted", "true", "predicted − true", "class")


@dataclass(frozen=True)
class AttributionRequest:
    """One map as the dashboard asks for it; hashable, so it can key a cache.

    ``target``: "predicted" and "true" take those classes per image, "class" takes
    ``chosen_class``, "predicted − true" subtracts the true class's map from the predicted
    one's (the evidence that pushed a wrong answer over the right one; zero where they
    agree). ``options``: (name, value) pairs, sorted; missing ones take their defaults.
    """

    method: str
    target: str = "predicted"
    chosen_class: int = 0
    layer: str | None = None
    upsample: bool = False
    options: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, method: str, options: dict[str, object] | None = None, **fields: object) -> AttributionRequest:
        """A request taking from ``options`` only what ``method`` uses (so unrelated options do not split caches)."""
        known = {o.name for o in METHODS[method].options} if method in METHODS else set()
        chosen = tuple(sorted((k, v) for k, v in (options or {}).items() if k in known))
        return cls(method=method, options=chosen, **fields)


def explain(
    request: AttributionRequest,
    model: MnistCNN,
    images: torch.Tensor,
    predicted: torch.Tensor,
    true: torch.Tensor | None,
) -> np.ndarray:
    """The map ``request`` asks for, per image (shapes as :func:`attribute`).

    ``predicted`` and ``true`` are int64 (B,) classes; ``true`` is None for a user's own digit.
    """
    r = request
    options = dict(r.options)
    if r.target in ("true", "predicted − true") and true is None:
        raise AttributionError(f"target {r.target!r} needs a true label; this image has none (your own digit)")
    if r.target == "predicted":
        return attribute(r.method, model, images, predicted, r.layer, r.upsample, **options)
    if r.target == "true":
        return attribute(r.method, model, images, true, r.layer, r.upsample, **options)
    if r.target == "class":
        if not 0 <= r.chosen_class <= 9:
            raise AttributionError(f"the class must be 0..9, not {r.chosen_class}")
        return attribute(r.method, model, images, int(r.chosen_class), r.layer, r.upsample, **options)
    if r.target == "predicted − true":
        both = torch.cat([images, images])
        maps = attribute(r.method, model, both, torch.cat([predicted, true]), r.layer, r.upsample, **options)
        return maps[: len(images)] - maps[len(images) :]
    raise AttributionError(f"unknown target {r.target!r}: choose one of {', '.join(TARGETS)}")


def explainer(request: AttributionRequest) -> Callable[[MnistCNN, torch.Tensor, torch.Tensor], np.ndarray]:
    """``request``'s method and options as a function (model, images, targets) -> (B, 28, 28)
    maps, as the explanation checks take it; a layer map is upsampled to the input grid."""
    options = dict(request.options)

    def run(model: MnistCNN, images: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
        upsample = request.layer is not None
        return attribute(request.method, model, images, targets, request.layer, upsample, **options)

    return run


def target_class(request: AttributionRequest, predicted: int, true: int | None) -> int | None:
    """The one class a request explains, or None for the contrast of two classes."""
    if request.target == "predicted":
        return predicted
    if request.target == "true":
        return true
    if request.target == "class":
        return request.chosen_class
    return None
