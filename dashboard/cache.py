"""Every Streamlit cache of the dashboard, keyed by simple hashable values.

``st.cache_resource`` holds shared objects (the data set, models, evaluations): one copy
for all sessions, never mutated. ``st.cache_data`` holds small derived arrays. Keys are a
model key, a split name, an index, a method name: nothing unhashed that could go stale.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from core import checkpoints
from core.activations import layer_outputs
from core.attributions import attribute_for
from core.checkpoints import CheckpointInfo
from core.config import TrainConfig
from core.data import IMAGE_SIZE, Mnist, load_mnist, to_tensor
from core.evaluate import Evaluation, evaluate, load_or_evaluate, predict_logits
from core.train import Progress, TrainedModel, load_cached, load_or_train


@st.cache_resource(show_spinner="Loading MNIST…")
def dataset(source: str = "bundled") -> Mnist:
    return load_mnist(source)


@st.cache_resource(show_spinner="Loading the model…", max_entries=16)
def model(ref: str) -> TrainedModel:
    """Cached weights by reference: "KEY" (last epoch) or "KEY@N" (after epoch N).

    Raises ``CheckpointError`` when they are gone or damaged.
    """
    key, _, epoch = ref.partition("@")
    return load_cached(key, epoch=int(epoch) if epoch else None)


@st.cache_resource(show_spinner="Running the model over the split (once per model)…", max_entries=16)
def evaluation(ref: str, split: str = "test") -> Evaluation:
    """Predictions of some weights on a split, cached on disk beside them and in memory here."""
    trained = model(ref)
    data = dataset(trained.info.data_source).split(split)
    folder = trained.info.folder
    if not folder.is_dir():  # the cache folder was deleted while the app runs: keep it in memory
        return evaluate(trained.model, data)
    _, _, epoch = ref.partition("@")
    return load_or_evaluate(trained.model, data, folder, f"{split}_epoch{int(epoch):02d}" if epoch else split)


def cached_models() -> list[CheckpointInfo]:
    """Finished models in the disk cache, newest first (read fresh: it is a directory listing)."""
    return checkpoints.list_checkpoints()


def train_with_progress(config: TrainConfig) -> TrainedModel:
    """Train (or load) a model, showing a progress bar with epoch, loss and accuracy so far."""
    bar = st.progress(0.0, text="Preparing to train…")

    def report(p: Progress) -> None:
        accuracy = f" · test accuracy so far {p.test_accuracy:.2%}" if p.test_accuracy is not None else ""
        bar.progress(p.fraction, text=f"Training: epoch {p.epoch}/{p.epochs} · loss {p.loss:.3f}{accuracy}")

    trained = load_or_train(config, progress=report)
    bar.empty()
    return trained


def _pixels_tensor(pixels: bytes) -> torch.Tensor:
    """784 bytes of a 28x28 uint8 digit → float32 (1, 1, 28, 28) model input."""
    return to_tensor(np.frombuffer(pixels, dtype=np.uint8).reshape(1, IMAGE_SIZE, IMAGE_SIZE).copy())


@st.cache_data(max_entries=256, show_spinner=False)
def activations(ref: str, pixels: bytes) -> dict[str, np.ndarray]:
    """Every layer's output for one digit (given as its 784 pixel bytes), batch axis dropped."""
    outputs = layer_outputs(model(ref).model, _pixels_tensor(pixels))
    return {name: value[0] for name, value in outputs.items()}


@st.cache_data(max_entries=1024, show_spinner=False)
def attribution_map(
    ref: str,
    pixels: bytes,
    label: int | None,
    method: str,
    target: str,
    chosen_class: int,
    layer: str | None,
    upsample: bool,
    options: tuple[tuple[str, object], ...],
) -> np.ndarray:
    """One attribution map for one digit; raises ``AttributionError`` with a message for the page."""
    trained = model(ref)
    images = _pixels_tensor(pixels)
    predicted = predict_logits(trained.model, images).argmax(1)
    true = None if label is None else torch.tensor([label])
    maps = attribute_for(
        method, trained.model, images, predicted, true, target, chosen_class, layer, upsample, **dict(options)
    )
    return maps[0]
