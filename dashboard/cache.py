"""Every Streamlit cache of the dashboard, keyed by simple hashable values.

``st.cache_resource`` holds shared objects (the data set, models, evaluations, the
background trainer): one copy for all sessions, never mutated, never cleared by a session.
``st.cache_data`` holds small derived arrays. Keys are the cache folder, a model key and
epoch, a split name, pixel bytes, a frozen request: nothing unhashed that could go stale.
The public functions take typed values (a ``ModelRef``) and pass their parts as keys.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from core import (
    checkpoints,
    confusion,
    explanation_checks,
    influence,
    label_issues,
    probes,
    projection,
    relevance,
    scorecard,
    units,
)
from core.activations import layer_outputs
from core.attributions import AttributionRequest, explain, explainer, target_class
from core.checkpoints import CheckpointError, CheckpointInfo, ModelRef
from core.config import ServerSettings, cache_dir, server_settings, shuffled_labels_config
from core.data import IMAGE_SIZE, Mnist, load_mnist, to_tensor
from core.evaluate import Evaluation, evaluate, load_or_evaluate, predict_logits, softmax
from core.jobs import TrainingJobs
from core.train import (
    ShuffledNetwork,
    TrainedModel,
    load_cached,
    load_provisional,
    shuffled_label_network,
    training_labels,
)
from core.workers import Gate, Workers


@st.cache_resource(show_spinner="Loading the data…", max_entries=4)  # ~55 MB each: a few data sets at once
def dataset(source: str = "bundled") -> Mnist:
    return load_mnist(source)


def model(ref: ModelRef) -> TrainedModel:
    """The weights ``ref`` names, loaded once per server for every session (read-only).

    Raises ``CheckpointError`` when they are gone, damaged or unverifiable.
    """
    return _model(str(cache_dir()), ref.key, ref.epoch)


PROVISIONAL_MARK = "~"  # "KEY~N": a model still training, as far as its N saved epochs (see provisional())


def _model(root: str, key: str, epoch: int | None) -> TrainedModel:
    """The weights a key names: a finished model's, or, for "KEY~N" or a key still training, the
    weights saved so far (then cached apart, so nothing computed from them outlives training
    under the finished model's name)."""
    real, mark, saved = key.partition(PROVISIONAL_MARK)
    if not mark and not (checkpoints.models_root(Path(root)) / key / checkpoints.META).exists():
        found = _provisional_now(root, key)
        if found is not None:
            real, saved = key, str(found)
    if saved:
        return _provisional_model(root, real, int(saved), epoch)
    return _finished_model(root, key, epoch)


@st.cache_resource(show_spinner="Loading the model…", max_entries=16)
def _finished_model(root: str, key: str, epoch: int | None) -> TrainedModel:
    return load_cached(key, root=Path(root), epoch=epoch)


def _provisional_now(root: str, key: str) -> int | None:
    """How many epochs a model still training has saved, or None (read fresh: a small file)."""
    try:
        return checkpoints.read_provisional(checkpoints.models_root(Path(root)) / key)[0].epochs_done
    except CheckpointError:
        return None


@st.cache_resource(show_spinner="Loading the weights saved so far…", max_entries=8)
def _provisional_model(root: str, key: str, saved: int, epoch: int | None) -> TrainedModel:
    found = load_provisional(key, Path(root), epoch)
    if found is None or found.info.epochs_done < saved:
        raise CheckpointError(f"model {key}: the weights of epoch {epoch or saved} are no longer provisional")
    info = dataclasses.replace(found.info, key=f"{key}{PROVISIONAL_MARK}{saved}", epochs_done=saved)
    return dataclasses.replace(found, info=info, history=found.history[:saved])


def provisional_epochs(key: str) -> int | None:
    """How many epochs a model still training has saved (None: none, or it is finished)."""
    return _provisional_now(str(cache_dir()), key)


def provisional(key: str) -> TrainedModel | None:
    """The weights a model still training has saved so far (its latest epoch), or None. Its
    ``info.key`` reads "KEY~N" (N epochs saved): every cache keyed by it stays apart from the
    finished model's, while ``ModelRef(KEY, N)`` names the same weights in links."""
    root = str(cache_dir())
    saved = _provisional_now(root, key)
    if saved is None:
        return None
    try:
        return _provisional_model(root, key, saved, None)
    except CheckpointError:
        return None


def evaluation(trained: TrainedModel, epoch: int, split: str = "test") -> Evaluation:
    """Predictions of some weights on a split, cached on disk beside them and in memory here."""
    # The last epoch's weights are loaded as ModelRef(key) (epoch None): reuse that copy.
    loaded_as = None if epoch == trained.info.epochs_done else epoch
    return _evaluation(str(cache_dir()), trained.info.key, epoch, loaded_as, split)


@st.cache_resource(show_spinner="Running the model over the split (once per model)…", max_entries=16)
def _evaluation(root: str, key: str, epoch: int, loaded_as: int | None, split: str) -> Evaluation:
    trained = _model(root, key, loaded_as)
    info = trained.info
    data = dataset(info.data_source)
    if not info.folder.is_dir():  # the cache folder was deleted while the app runs: keep it in memory
        return evaluate(trained.model, data.split(split))
    return load_or_evaluate(trained.model, data.split(split), split, info.folder, epoch, data.fingerprint)


@st.cache_resource(show_spinner=False)
def settings() -> ServerSettings:
    """The server's settings: .streamlit/config.toml's [mnist_dashboard] section, the
    environment, then the app's arguments when started as
    ``streamlit run dashboard/Home.py -- --no-training`` (Streamlit puts them in sys.argv)."""
    started_as_app = Path(sys.argv[0]).name == "Home.py"
    config_file = Path.cwd() / ".streamlit" / "config.toml"  # where `streamlit run` reads its own
    return server_settings(sys.argv[1:] if started_as_app else [], config_file)


@st.cache_resource(show_spinner=False, max_entries=16)
def log_setting_error(message: str) -> None:
    """Say a wrong server setting once in the server's log (the page says it on every run)."""
    logging.getLogger("dashboard").error("wrong server setting: %s", message)


IN_USE_S = 1800  # a model a session showed within this many seconds is never evicted


@st.cache_resource(show_spinner=False)
def _in_use() -> dict[str, float]:
    return {}


def mark_in_use(key: str) -> None:
    """Note that a session shows this model now (the cache's eviction spares it)."""
    _in_use()[key.partition(PROVISIONAL_MARK)[0]] = time.monotonic()


def models_in_use() -> set[str]:
    now = time.monotonic()
    return {key for key, seen in list(_in_use().items()) if now - seen < IN_USE_S}


def training_jobs() -> TrainingJobs:
    """The server's background trainer for the cache folder: one per process, shared by every session."""
    return _training_jobs(str(cache_dir()))


@st.cache_resource(show_spinner=False)
def _training_jobs(root: str) -> TrainingJobs:
    server = settings()
    jobs: TrainingJobs

    def keep() -> set[str]:  # never evicted: the default model, pinned ones, those in use
        return {jobs.key(server.default_config()), *server.pinned, *models_in_use()}

    jobs = TrainingJobs(root=Path(root), max_models=server.max_models, keep=keep)
    return jobs


def cached_models() -> list[CheckpointInfo]:
    """Finished models in the disk cache that this server offers, newest first (pinned
    ones only, in their order, when the host pinned some). Read fresh: a directory listing."""
    # Shuffled-label networks are the trust checks' instruments, not models to explore.
    found = [info for info in checkpoints.list_checkpoints() if not info.config.shuffle_labels]
    pinned = settings().pinned
    if not pinned:
        return found
    by_key = {info.key: info for info in found}
    return [by_key[key] for key in pinned if key in by_key]


def _pixels_tensor(pixels: bytes) -> torch.Tensor:
    """784 bytes of a 28x28 uint8 digit → float32 (1, 1, 28, 28) model input."""
    return to_tensor(np.frombuffer(pixels, dtype=np.uint8).reshape(1, IMAGE_SIZE, IMAGE_SIZE).copy())


def activations(ref: ModelRef, pixels: bytes) -> dict[str, np.ndarray]:
    """Every layer's output for one digit (given as its 784 pixel bytes), batch axis dropped."""
    return _activations(str(cache_dir()), ref.key, ref.epoch, pixels)


@st.cache_data(max_entries=256, show_spinner=False)
def _activations(root: str, key: str, epoch: int | None, pixels: bytes) -> dict[str, np.ndarray]:
    outputs = layer_outputs(_model(root, key, epoch).model, _pixels_tensor(pixels))
    return {name: value[0] for name, value in outputs.items()}


def attribution_map(ref: ModelRef, pixels: bytes, label: int | None, request: AttributionRequest) -> np.ndarray:
    """One attribution map for one digit; raises ``AttributionError`` with a message for the page."""
    return _attribution_map(str(cache_dir()), ref.key, ref.epoch, pixels, label, request)


@st.cache_data(max_entries=1024, show_spinner=False)
def _attribution_map(
    root: str, key: str, epoch: int | None, pixels: bytes, label: int | None, request: AttributionRequest
) -> np.ndarray:
    trained = _model(root, key, epoch)
    images = _pixels_tensor(pixels)
    predicted = predict_logits(trained.model, images).argmax(1)
    true = None if label is None else torch.tensor([label])
    with heavy_gate():
        return explain(request, trained.model, images, predicted, true)[0]


def verdict(
    ref: ModelRef, pixels: bytes, label: int | None, request: AttributionRequest
) -> explanation_checks.Verdict | None:
    """The trust badge's checks for one map (None for a contrast of two classes)."""
    return _verdict(str(cache_dir()), ref.key, ref.epoch, pixels, label, request)


@st.cache_data(max_entries=1024, show_spinner=False)
def _verdict(
    root: str, key: str, epoch: int | None, pixels: bytes, label: int | None, request: AttributionRequest
) -> explanation_checks.Verdict | None:
    model = _model(root, key, epoch).model
    images, target = _checked_target(model, pixels, label, request)
    if target is None:
        return None
    seed = explanation_checks.digit_seed(images[0])
    with heavy_gate():
        return explanation_checks.verdicts(explainer(request), model, images, target, seed)[0]


def randomisation_detail(ref: ModelRef, pixels: bytes, label: int | None, request: AttributionRequest) -> dict | None:
    """A map's detail: the cascade's maps with their similarity, and the deletion and
    insertion curves for the map and its baselines (None for a contrast of two classes)."""
    return _randomisation_detail(str(cache_dir()), ref.key, ref.epoch, pixels, label, request)


@st.cache_data(max_entries=128, show_spinner="Randomising the network layer by layer…")
def _randomisation_detail(
    root: str, key: str, epoch: int | None, pixels: bytes, label: int | None, request: AttributionRequest
) -> dict | None:
    checks = explanation_checks
    model = _model(root, key, epoch).model
    images, target = _checked_target(model, pixels, label, request)
    if target is None:
        return None
    seed = checks.digit_seed(images[0])
    run = explainer(request)
    with heavy_gate():
        original, steps = checks.cascade(run, model, images, target, seed)
        alone = checks.independent(run, model, images, target, seed, original=original)
        floor = checks.floor(run, model, images, target, seed)[0]
    orders = checks.baseline_orders(original, steps[-1].maps, images[:, 0].numpy(), seed)
    curves = {
        kind: {name: fn(model, images, target, order) for name, order in orders.items()}
        for kind, fn in (("deletion", checks.deletion), ("insertion", checks.insertion))
    }
    return {
        "original": original[0],
        "steps": [(s.layers, s.maps[0], s.similarity[0]) for s in steps],
        "alone": [(s.layers, s.maps[0], s.similarity[0]) for s in alone],
        "floor": floor,
        "curves": {
            kind: {name: (c.fractions, c.probs[0], float(c.area[0])) for name, c in by.items()}
            for kind, by in curves.items()
        },
    }


def shuffled_network(ref: ModelRef) -> ShuffledNetwork:
    """The data-randomisation check's network for this model (never trained here: when it is
    missing, ``missing`` says so and :func:`start_shuffled_network` asks the trainer for it)."""
    try:
        return _shuffled_network(str(cache_dir()), ref.key)
    except LookupError as err:  # not cached: an exception, so Streamlit does not remember it
        return ShuffledNetwork(None, True, str(err))


@st.cache_resource(show_spinner=False, max_entries=16)
def _shuffled_network(root: str, key: str) -> ShuffledNetwork:
    info = checkpoints.read_info(Path(root) / "models" / key)
    found = shuffled_label_network(info.config, root=Path(root), train_if_missing=False)
    if found.missing:
        raise LookupError(found.message)
    return found


def start_shuffled_network(ref: ModelRef) -> str | None:
    """Queue the training of the shuffled-label network (about 15 s); its job key, or None
    when this server does not train."""
    if not settings().training:
        return None
    info = model(ref).info
    return training_jobs().request(shuffled_labels_config(info.config))


def data_randomisation(
    ref: ModelRef, pixels: bytes, label: int | None, request: AttributionRequest
) -> tuple[np.ndarray, explanation_checks.Similarity] | None:
    """The shuffled-label network's map of this digit and its similarity to the model's map,
    or None (a contrast of two classes, or no usable shuffled-label network)."""
    if shuffled_network(ref).model is None:
        return None
    return _data_randomisation(str(cache_dir()), ref.key, ref.epoch, pixels, label, request)


@st.cache_data(max_entries=128, show_spinner=False)
def _data_randomisation(
    root: str, key: str, epoch: int | None, pixels: bytes, label: int | None, request: AttributionRequest
) -> tuple[np.ndarray, explanation_checks.Similarity] | None:
    model = _model(root, key, epoch).model
    images, target = _checked_target(model, pixels, label, request)
    if target is None:
        return None
    with heavy_gate():
        maps, similar = explanation_checks.data_randomisation(
            explainer(request), model, _shuffled_network(root, key).model, images, target
        )
    return maps[0], similar[0]


def _checked_target(model, pixels: bytes, label: int | None, request: AttributionRequest):
    images = _pixels_tensor(pixels)
    predicted = int(predict_logits(model, images).argmax(1)[0])
    target = target_class(request, predicted, label)
    return images, None if target is None else torch.tensor([target])


@st.cache_resource(show_spinner=False)
def heavy_gate() -> Gate:
    """Attribution maps and their checks, from every session, at most this many at once."""
    return Gate(slots=max(1, os.cpu_count() or 1))


@st.cache_resource(show_spinner=False)
def heavy_work() -> Workers:
    """The server's small pool for heavy computations (scorecards), shared by every session."""
    return Workers(workers=1)


def scorecard_card(ref: ModelRef) -> scorecard.Scorecard | None:
    """The cached scorecard of these weights, or None (read from disk; nothing computed)."""
    return scorecard.cached(ref, root=cache_dir())


def start_scorecard(ref: ModelRef) -> None:
    """Compute the scorecard in the background (attaching to a computation already running)."""
    root = cache_dir()
    heavy_work().submit(
        f"scorecard:{ref}", lambda progress: scorecard.load_or_compute(ref, root=root, progress=progress)
    )


# ---- units (the unit cards) -------------------------------------------------------------

UNIT_SPLIT = "test"  # unit cards rank and average over the test digits


def unit_index(trained: TrainedModel, epoch: int) -> units.ActivationIndex | None:
    """The test split's activation index of these weights if it is on disk (read once per
    server), else None: :func:`start_unit_index` computes it in the background."""
    loaded_as = None if epoch == trained.info.epochs_done else epoch
    try:
        return _unit_index(str(cache_dir()), trained.info.key, epoch, loaded_as)
    except LookupError:  # not computed yet: an exception, so Streamlit does not remember it
        return None


@st.cache_resource(show_spinner=False, max_entries=16)
def _unit_index(root: str, key: str, epoch: int, loaded_as: int | None) -> units.ActivationIndex:
    trained = _model(root, key, loaded_as)
    info = trained.info
    if not (info.folder / checkpoints.activation_index_file(epoch, UNIT_SPLIT, info.data_fingerprint)).is_file():
        raise LookupError("not indexed yet")
    data = dataset(info.data_source)
    return units.load_or_compute_index(
        trained.model, data.test, UNIT_SPLIT, info.folder, epoch, data.fingerprint
    )  # a verified read; a damaged file is recomputed here


def unit_index_task(trained: TrainedModel, epoch: int) -> str:
    return f"units:{trained.info.key}@{epoch}"


def start_unit_index(trained: TrainedModel, epoch: int) -> None:
    """Index every unit over the test digits in the background (about 1.5 s; once per epoch)."""
    info = trained.info
    model = _model(str(cache_dir()), info.key, None if epoch == info.epochs_done else epoch).model
    data = dataset(info.data_source)
    heavy_work().submit(
        unit_index_task(trained, epoch),
        lambda progress: units.load_or_compute_index(
            model, data.test, UNIT_SPLIT, info.folder, epoch, data.fingerprint, progress=progress
        ),
    )


def unit_ablation(trained: TrainedModel, epoch: int, layer: str, unit: int) -> tuple[np.ndarray, np.ndarray]:
    """Each class's test accuracy with the unit intact and zeroed, float (10,) twice (needs the
    unit index: only the digits the unit fires on are rerun)."""
    loaded_as = None if epoch == trained.info.epochs_done else epoch
    return _unit_ablation(str(cache_dir()), trained.info.key, epoch, loaded_as, layer, unit)


@st.cache_data(max_entries=256, show_spinner="Zeroing the unit and rerunning the test digits it fires on…")
def _unit_ablation(
    root: str, key: str, epoch: int, loaded_as: int | None, layer: str, unit: int
) -> tuple[np.ndarray, np.ndarray]:
    trained = _model(root, key, loaded_as)
    split = dataset(trained.info.data_source).test
    before = _evaluation(root, key, epoch, loaded_as, UNIT_SPLIT).preds
    active = _unit_index(root, key, epoch, loaded_as).maximum[layer][:, unit] > 0
    with heavy_gate():
        return units.ablation_accuracy(
            trained.model, to_tensor(split.images), split.labels, layer, unit, before=before, active=active
        )


def feature_visualisation(ref: ModelRef, layer: str) -> units.FeatureVisualisation:
    """One optimised image per unit of ``layer`` (the whole layer in one batch, once per server)."""
    return _feature_visualisation(str(cache_dir()), ref.key, ref.epoch, layer)


@st.cache_resource(show_spinner="Optimising an image for every unit of the layer (a few seconds, once)…")
def _feature_visualisation(root: str, key: str, epoch: int | None, layer: str) -> units.FeatureVisualisation:
    with heavy_gate():
        return units.feature_visualisation(_model(root, key, epoch).model, layer)


def conv_step(ref: ModelRef, pixels: bytes, layer: str, channel: int, row: int, col: int) -> units.ConvStep:
    """One conv activation of one digit taken apart (patch, kernel, products, bias, ReLU)."""
    return _conv_step(str(cache_dir()), ref.key, ref.epoch, pixels, layer, channel, row, col)


@st.cache_data(max_entries=256, show_spinner=False)
def _conv_step(
    root: str, key: str, epoch: int | None, pixels: bytes, layer: str, channel: int, row: int, col: int
) -> units.ConvStep:
    return units.conv_step(_model(root, key, epoch).model, _pixels_tensor(pixels), layer, channel, row, col)


def pool_step(ref: ModelRef, pixels: bytes, layer: str, channel: int, row: int, col: int) -> units.PoolStep:
    """One max-pool value of one digit: the 2x2 block it keeps the largest of."""
    return _pool_step(str(cache_dir()), ref.key, ref.epoch, pixels, layer, channel, row, col)


@st.cache_data(max_entries=256, show_spinner=False)
def _pool_step(
    root: str, key: str, epoch: int | None, pixels: bytes, layer: str, channel: int, row: int, col: int
) -> units.PoolStep:
    return units.pool_step(_model(root, key, epoch).model, _pixels_tensor(pixels), layer, channel, row, col)


def channel_relevance(ref: ModelRef, pixels: bytes, layer: str, target: int) -> relevance.ChannelRelevance:
    """Which channels of ``layer`` carry the evidence for ``target`` on this digit (CRP)."""
    return _channel_relevance(str(cache_dir()), ref.key, ref.epoch, pixels, layer, target)


@st.cache_data(max_entries=256, show_spinner=False)
def _channel_relevance(
    root: str, key: str, epoch: int | None, pixels: bytes, layer: str, target: int
) -> relevance.ChannelRelevance:
    with heavy_gate():
        return relevance.channel_relevance(_model(root, key, epoch).model, _pixels_tensor(pixels), layer, target)


# ---- the data map (every test digit's fc1 in two dimensions) ----------------------------


def data_map(trained: TrainedModel, epoch: int) -> projection.Projection | None:
    """The test digits' fc1 map of these weights on the last epoch's axes if it is on disk
    (read once per server), else None: :func:`start_data_map` computes it in the background."""
    try:
        return _data_map(str(cache_dir()), trained.info.key, epoch)
    except LookupError:  # not computed yet: an exception, so Streamlit does not remember it
        return None


@st.cache_resource(show_spinner=False, max_entries=32)
def _data_map(root: str, key: str, epoch: int) -> projection.Projection:
    info = _model(root, key, None).info
    names = [
        checkpoints.projection_file(e, UNIT_SPLIT, info.data_fingerprint, projection.PCA, info.epochs_done)
        for e in {epoch, info.epochs_done}
    ]
    if not all((info.folder / name).is_file() for name in names):
        raise LookupError("not mapped yet")
    return _compute_data_map(root, key, epoch)


def _compute_data_map(root: str, key: str, epoch: int, progress=None) -> projection.Projection:
    """The last epoch's PCA (the axes), then ``epoch`` through it; each cached beside the checkpoint."""
    last = _model(root, key, None)
    info, data = last.info, dataset(last.info.data_source)
    args = (data.test, UNIT_SPLIT, info.folder)
    basis = projection.load_or_compute_projection(
        last.model, *args, info.epochs_done, data.fingerprint, progress=progress
    )
    if epoch == info.epochs_done:
        return basis
    model = _model(root, key, epoch).model
    return projection.load_or_compute_projection(model, *args, epoch, data.fingerprint, basis=basis, progress=progress)


def data_map_task(trained: TrainedModel, epoch: int) -> str:
    return f"map:{trained.info.key}@{epoch}"


def start_data_map(trained: TrainedModel, epoch: int) -> None:
    """Map every test digit's fc1 in the background (about a second per epoch)."""
    root, key = str(cache_dir()), trained.info.key
    heavy_work().submit(data_map_task(trained, epoch), lambda progress: _compute_data_map(root, key, epoch, progress))


# ---- why a confusion cell fails -----------------------------------------------------------

CELL_DIGITS_SHOWN = 8  # cell digits whose nearest training digits are drawn


def why_cell(trained: TrainedModel, epoch: int, a: int, b: int) -> dict:
    """Why the test digits of class ``a`` read as ``b`` are misread: the contrast maps, the
    channels that differ (needs the unit index: {} until it exists), the nearest training
    digits of the first cell digits, and the sentence."""
    loaded_as = None if epoch == trained.info.epochs_done else epoch
    indexed = unit_index(trained, epoch) is not None
    return _why_cell(str(cache_dir()), trained.info.key, epoch, loaded_as, a, b, indexed)


@st.cache_data(max_entries=128, show_spinner="Comparing the cell's digits with the ones read right…")
def _why_cell(root: str, key: str, epoch: int, loaded_as: int | None, a: int, b: int, indexed: bool) -> dict:
    trained = _model(root, key, loaded_as)
    data = dataset(trained.info.data_source)
    evaluation = _evaluation(root, key, epoch, loaded_as, UNIT_SPLIT)
    cell = confusion.cell_digits(evaluation, a, b)
    correct = confusion.correct_digits(evaluation, a)
    with heavy_gate():
        maps = confusion.contrast_maps(
            trained.model, to_tensor(data.test.images[cell]), to_tensor(data.test.images[correct]), a, b
        )
        shown = cell[:CELL_DIGITS_SHOWN]
        nearest = confusion.nearest_training_digits(
            projection.fc1_features(trained.model, to_tensor(data.test.images[shown])),
            _train_features(root, key, loaded_as),
            data.train.labels,
            a,
            b,
        )
    channels = confusion.channel_differences(_unit_index(root, key, epoch, loaded_as), cell, correct) if indexed else {}
    return {
        "cell": cell,
        "correct": correct,
        "maps": maps,
        "channels": channels,
        "shown": shown,
        "nearest": nearest,
        "sentence": confusion.explain_cell(maps, channels, data.classes),
    }


@st.cache_resource(show_spinner="Reading fc1 for the 60,000 training digits (once per model, a few seconds)…")
def _train_features(root: str, key: str, loaded_as: int | None) -> np.ndarray:
    """float32 (60000, 20): every training digit's fc1, for nearest-neighbour look-ups."""
    trained = _model(root, key, loaded_as)
    train = dataset(trained.info.data_source).train
    return np.concatenate(
        [
            projection.fc1_features(trained.model, to_tensor(train.images[i : i + 10_000]))
            for i in range(0, len(train), 10_000)
        ]
    )


# ---- the training digits: suspicious labels and the digits behind an answer ----------------


def banks_task(trained: TrainedModel) -> str:
    return f"banks:{trained.info.key}"


def start_banks(trained: TrainedModel) -> None:
    """Run every train and test digit through each saved epoch in the background (about 15 s
    for the default model), keeping fc2's input and the logits beside each checkpoint."""
    info, data = trained.info, dataset(trained.info.data_source)
    heavy_work().submit(banks_task(trained), lambda progress: influence.load_or_compute_banks(info, data, progress))


def banks(trained: TrainedModel) -> dict[str, list[influence.Bank]] | None:
    """Both splits' banks at every saved epoch if they are on disk (read once per server), else
    None: :func:`start_banks` computes them in the background."""
    try:
        return _banks(str(cache_dir()), trained.info.key)
    except LookupError:  # not computed yet: an exception, so Streamlit does not remember it
        return None


@st.cache_resource(show_spinner=False, max_entries=4)
def _banks(root: str, key: str) -> dict[str, list[influence.Bank]]:
    info = _model(root, key, None).info
    names = [
        checkpoints.influence_bank_file(epoch, split, info.data_fingerprint)
        for epoch in range(1, info.epochs_done + 1)
        for split in influence.SPLITS
    ]
    if not all((info.folder / name).is_file() for name in names):
        raise LookupError("not banked yet")
    return influence.load_or_compute_banks(info, dataset(info.data_source))  # a verified read


def given_labels(trained: TrainedModel, split: str) -> np.ndarray:
    """The labels a split's digits carry for this model: for the training split the ones it
    trained on (its first ``train_limit`` digits, with any labels flipped on purpose)."""
    data = dataset(trained.info.data_source)
    if split == "train":
        return training_labels(trained.info.config, data).numpy()
    return data.split(split).labels


def suspicious_labels(trained: TrainedModel, epoch: int, split: str) -> label_issues.LabelIssues:
    """Confident learning over a split's given labels and the epoch's probabilities (needs the banks)."""
    return _suspicious_labels(str(cache_dir()), trained.info.key, epoch, split)


@st.cache_resource(show_spinner="Ranking the labels (confident learning)…", max_entries=16)
def _suspicious_labels(root: str, key: str, epoch: int, split: str) -> label_issues.LabelIssues:
    trained = _model(root, key, None)
    probs = softmax(_banks(root, key)[split][epoch - 1].logits)
    return label_issues.find(given_labels(trained, split), probs)


@st.cache_resource(show_spinner=False, max_entries=4)
def _training_side(root: str, key: str, epoch: int) -> influence.TrainingSide:
    trained = _model(root, key, None)
    train_banks = _banks(root, key)["train"][:epoch]
    digits = len(train_banks[0])
    weights = influence.checkpoint_weights(trained.info.config, digits)[:epoch]
    return influence.TrainingSide.of(train_banks, given_labels(trained, "train"), weights)


def training_digits_behind(trained: TrainedModel, epoch: int, split: str, index: int) -> influence.Behind:
    """TracIn over checkpoints 1..epoch: the training digits that most raised and most lowered
    the probability of the class the epoch's weights give digit ``index`` of ``split`` (needs
    the banks, and a digit they hold)."""
    return _training_digits_behind(str(cache_dir()), trained.info.key, epoch, split, index)


@st.cache_data(max_entries=256, show_spinner=False)
def _training_digits_behind(root: str, key: str, epoch: int, split: str, index: int) -> influence.Behind:
    rows = _banks(root, key)[split][:epoch]
    inputs = np.stack([bank.inputs[index] for bank in rows])
    logits = np.stack([bank.logits[index] for bank in rows])
    target = int(logits[-1].argmax())
    return influence.behind(influence.tracin_scores(_training_side(root, key, epoch), inputs, logits, target), target)


# ---- probes: bending a digit, the smallest change ------------------------------------------


def probe_sweep(ref: ModelRef, pixels: bytes, kind: str) -> probes.Sweep:
    """A digit bent along ``kind``'s whole range (50 versions, one batched pass)."""
    return _probe_sweep(str(cache_dir()), ref.key, ref.epoch, pixels, kind)


@st.cache_data(max_entries=128, show_spinner=False)
def _probe_sweep(root: str, key: str, epoch: int | None, pixels: bytes, kind: str) -> probes.Sweep:
    with heavy_gate():
        return probes.sweep(_model(root, key, epoch).model, _pixels_tensor(pixels)[0], kind)


def flip_summary_task(trained: TrainedModel, epoch: int) -> str:
    return f"flips:{trained.info.key}@{epoch}"


def flip_summary(trained: TrainedModel, epoch: int) -> probes.FlipSummary | None:
    """Which test digits flip when rotated or shifted a little, if computed (else None:
    :func:`start_flip_summary` computes it in the background)."""
    try:
        return _flip_summary(str(cache_dir()), trained.info.key, epoch)
    except LookupError:  # not computed yet: an exception, so Streamlit does not remember it
        return None


@st.cache_resource(show_spinner=False, max_entries=16)
def _flip_summary(root: str, key: str, epoch: int) -> probes.FlipSummary:
    info = _model(root, key, None).info
    if not (info.folder / checkpoints.flip_summary_file(epoch, UNIT_SPLIT, info.data_fingerprint)).is_file():
        raise LookupError("not bent yet")
    return _compute_flip_summary(root, key, epoch)


def _compute_flip_summary(root: str, key: str, epoch: int, progress=None) -> probes.FlipSummary:
    last = _model(root, key, None)
    model = _model(root, key, None if epoch == last.info.epochs_done else epoch).model
    data = dataset(last.info.data_source)
    return probes.load_or_compute_flip_summary(
        model, data.test, UNIT_SPLIT, last.info.folder, epoch, data.fingerprint, progress=progress
    )


def start_flip_summary(trained: TrainedModel, epoch: int) -> None:
    """Rotate and shift every test digit a little, in the background (once per model and epoch)."""
    root, key = str(cache_dir()), trained.info.key
    heavy_work().submit(
        flip_summary_task(trained, epoch), lambda progress: _compute_flip_summary(root, key, epoch, progress)
    )


def nearest_training_digit(trained: TrainedModel, epoch: int, pixels: bytes, cls: int) -> int:
    """The training digit labelled ``cls`` nearest to a digit in fc1 (read once per model)."""
    loaded_as = None if epoch == trained.info.epochs_done else epoch
    root = str(cache_dir())
    model = _model(root, trained.info.key, loaded_as).model
    feature = projection.fc1_features(model, _pixels_tensor(pixels))[0]
    labels = dataset(trained.info.data_source).train.labels
    return probes.nearest_training_digit(_train_features(root, trained.info.key, loaded_as), labels, feature, cls)
