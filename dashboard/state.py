"""What the whole app shares: the loaded model and the selected sample, mirrored in the URL.

The selected sample is a split and an index (``test``/``train``), or the user's own digit
(split ``drawn``). Every page reads it with :func:`selected_sample` and sets it with
:func:`select`; :func:`sync_url` writes it to the query string so a view can be shared.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import streamlit as st

from core import checkpoints
from core.checkpoints import CheckpointError
from core.config import RECIPES
from core.data import Mnist
from core.train import TrainedModel
from dashboard import cache

DATA_SPLITS = ("test", "train")
DRAWN = "drawn"  # the user's own digit, drawn or uploaded
_SPLIT, _INDEX, _MODEL, _EPOCH, _DRAWN_IMAGE = "sample_split", "sample_index", "model_key", "model_epoch", "drawn_image"


@dataclass(frozen=True)
class Sample:
    split: str  # "test", "train" or "drawn"
    index: int

    @property
    def title(self) -> str:
        return "your digit" if self.split == DRAWN else f"{self.split} #{self.index:,}"


# ---- the model -------------------------------------------------------------------------


def ensure_model() -> TrainedModel:
    """The model this session uses: from the URL, else the default recipe, else the newest
    cached one; trains the default recipe (with a progress bar) when none is cached."""
    key = st.session_state.get(_MODEL)
    if key is None:
        key = _initial_model_key()
    config = RECIPES["default"]
    if key is not None:
        try:
            trained = cache.model(key)
            st.session_state[_MODEL] = key
            return trained
        except CheckpointError as err:
            with contextlib.suppress(CheckpointError):  # retrain the same settings if meta.json still says
                config = checkpoints.read_info(checkpoints.models_root() / key).config
            st.warning(f"The cached model could not be loaded ({err}). Training it again.")
    with st.container(border=True):
        if key is None:
            st.info("No trained model is cached yet: training the default recipe once (about 15 s on a laptop CPU).")
        trained = cache.train_with_progress(config)
    if trained.notice:
        st.warning(trained.notice)
    use_model(trained.info.key)
    cache.model.clear()
    return cache.model(trained.info.key)


def _initial_model_key() -> str | None:
    available = {info.key: info for info in cache.cached_models()}
    wanted = st.query_params.get("model", "")
    key, _, epoch = wanted.partition("@")
    if key in available:
        if epoch.isdigit() and 1 <= int(epoch) < available[key].epochs_done:
            st.session_state[_EPOCH] = int(epoch)
        elif epoch:
            st.warning(f"The link asks for epoch {epoch!r}, which this model does not have; showing its last epoch.")
        return key
    if wanted:
        st.warning(f"The model {wanted!r} from the link is not in this machine's cache; showing another one.")
    default_key = checkpoints.model_key(RECIPES["default"], cache.dataset().fingerprint)
    if default_key in available:
        return default_key
    return next(iter(available), None)  # the newest


def use_model(key: str, epoch: int | None = None) -> None:
    """Switch to a cached model, at its last epoch or (``epoch``) the weights after an earlier one."""
    st.session_state[_MODEL] = key
    st.session_state[_EPOCH] = epoch


def model_epoch() -> int:
    """The epoch whose weights are in use."""
    return st.session_state.get(_EPOCH) or ensure_model().info.epochs_done


def model_ref() -> str:
    """The weights in use as one cache key: "KEY" for the last epoch, "KEY@N" for epoch N."""
    key = ensure_model().info.key
    epoch = st.session_state.get(_EPOCH)
    return key if epoch is None else f"{key}@{epoch}"


def current_model() -> TrainedModel:
    """The weights in use (``ensure_model`` ran in Home.py before any page)."""
    return cache.model(model_ref())


def current_data() -> Mnist:
    return cache.dataset(current_model().info.data_source)


# ---- the selected sample ---------------------------------------------------------------


def selected_sample() -> Sample:
    if _SPLIT not in st.session_state:
        _read_url()
    return Sample(st.session_state[_SPLIT], st.session_state[_INDEX])


def select(split: str, index: int) -> None:
    """Make (split, index) the selected sample for every page."""
    st.session_state[_SPLIT] = split
    st.session_state[_INDEX] = int(index)


def select_drawn(image: np.ndarray) -> None:
    """Make the user's own 28x28 uint8 digit the selected sample."""
    st.session_state[_DRAWN_IMAGE] = image
    select(DRAWN, 0)


def has_drawn() -> bool:
    return _DRAWN_IMAGE in st.session_state


def sample_image(sample: Sample) -> np.ndarray:
    """uint8 (28, 28) pixels of a sample."""
    if sample.split == DRAWN:
        return st.session_state[_DRAWN_IMAGE]
    return current_data().split(sample.split).images[sample.index]


def sample_label(sample: Sample) -> int | None:
    """The true label, or None for the user's own digit."""
    if sample.split == DRAWN:
        return None
    return int(current_data().split(sample.split).labels[sample.index])


def _read_url() -> None:
    """Take the selection from the query string once per session, checking it."""
    split = st.query_params.get("split", "test")
    raw_index = st.query_params.get("index", "0")
    select("test", 0)
    if split not in DATA_SPLITS:
        st.warning(f"The link names split {split!r}; only 'test' and 'train' exist. Showing test #0.")
        return
    size = len(current_data().split(split))
    try:
        index = int(raw_index)
    except ValueError:
        st.warning(f"The link's index {raw_index!r} is not a number. Showing {split} #0.")
        index = 0
    if not 0 <= index < size:
        st.warning(
            f"The link's index {index:,} is out of range: the {split} split has 0 to {size - 1:,}. Showing {split} #0."
        )
        index = 0
    select(split, index)


def sync_url() -> None:
    """Write the model and the selected sample to the query string (after the page ran)."""
    sample = selected_sample()
    params = {"model": model_ref()}
    if sample.split in DATA_SPLITS:
        params.update(split=sample.split, index=str(sample.index))
    for name, value in params.items():
        if st.query_params.get(name) != value:
            st.query_params[name] = value
