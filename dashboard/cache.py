"""Every Streamlit cache of the dashboard, keyed by simple hashable values.

``st.cache_resource`` holds shared objects (the data set, models, evaluations, the
background trainer): one copy for all sessions, never mutated, never cleared by a session.
``st.cache_data`` holds small derived arrays. Keys are the cache folder, a model key and
epoch, a split name, pixel bytes, a frozen request: nothing unhashed that could go stale.
The public functions take typed values (a ``ModelRef``, one handle for per-digit and
dataset-wide calls alike) and pass their parts as keys. Runs over a data set that pages wait
for (the unit index, the data map, the banks, the flip summary, the scorecard) are declared
once in :data:`INDEXES` and reached through three calls: :func:`result`, :func:`start`, :func:`task`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from core import (
    checkpoints,
    confusion,
    data_access,
    explanation_checks,
    influence,
    label_issues,
    probes,
    projection,
    relevance,
    relevance_graph,
    scorecard,
    unit_steps,
    units,
)
from core.attributions import AttributionRequest, explain, explainer, target_class
from core.checkpoints import CheckpointError, CheckpointInfo, ModelRef
from core.config import NetSpec, ServerSettings, cache_dir, server_settings, shuffled_labels_config
from core.data import IMAGE_SIZE, TYPED_MAX_BYTES, Mnist, load_mnist, to_tensor
from core.evaluate import Evaluation, evaluate, load_or_evaluate, predict_logits, softmax
from core.geometry import Geometry
from core.host_networks import open_into_cache
from core.jobs import TrainingJobs
from core.network import Network, NetworkError, network_of
from core.runs import Point
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


def typed_dataset(source: str) -> Mnist:
    """A data source a visitor typed (already allowed by ``typed_sources``): a folder's files are
    read in bounded chunks and refused past ``TYPED_MAX_BYTES`` before anything is queued."""
    return load_mnist(source, max_bytes=TYPED_MAX_BYTES)


def typed_sources() -> data_access.TypedSources:
    """Which sources this session's visitor may type: the host's settings and the address the
    server listens on (Streamlit's server.address); a request a proxy forwarded (a loopback
    server behind nginx, JupyterHub) counts as coming from another machine."""
    proxied = data_access.forwarded(st.context.headers)
    return data_access.typed_sources(settings(), None if proxied else st.get_option("server.address"))


def model(ref: ModelRef) -> TrainedModel:
    """The weights ``ref`` names, loaded once per server for every session (read-only).

    Raises ``CheckpointError`` when they are gone, damaged or unverifiable.
    """
    return _model(str(cache_dir()), ref.key, ref.epoch)


def network(ref: ModelRef) -> Network:
    """The weights ``ref`` names through the network contract: its layers from the torch.fx
    graph, read without hooks (built once per server; checked on the first test digits)."""
    return _network(str(cache_dir()), ref.key, ref.epoch)


NETWORK_CHECK_DIGITS = 16  # test digits a network is checked on when it is opened


@st.cache_resource(show_spinner=False, max_entries=16)
def _network(root: str, key: str, epoch: int | None) -> Network:
    trained = _model(root, key, epoch)
    data = dataset(trained.info.data_source)
    digits = to_tensor(data.test.images[:NETWORK_CHECK_DIGITS])
    info = trained.info
    where = info.network.net if info.network else info.config.arch or f"model {info.key}"
    return network_of(trained.model, len(data.classes), digits, where)


@dataclasses.dataclass(frozen=True)
class HostNetworks:
    """The networks the host named (--net), as this server opened them at its start."""

    opened: tuple[tuple[NetSpec, str], ...]  # (what the host named, its model key), in the host's order
    refused: tuple[tuple[NetSpec, str], ...]  # (what the host named, why it cannot be served)


def host_networks() -> HostNetworks:
    """The host's networks, opened once per server (at its start: dashboard.server_start) into the
    model cache; one that does not meet the contract is refused with its sentence, logged once,
    and the server goes on serving the others."""
    return _host_networks(str(cache_dir()), settings().nets, settings().data)


@st.cache_resource(show_spinner="Opening the host's networks…")
def _host_networks(root: str, nets: tuple[NetSpec, ...], data_source: str) -> HostNetworks:
    opened, refused = [], []
    for spec in nets:
        try:
            info = open_into_cache(spec, dataset(data_source), Path(root))
        except (NetworkError, CheckpointError, OSError) as err:
            logging.getLogger("dashboard").error("the host's network is not served: %s", err)
            refused.append((spec, str(err)))
        except Exception as err:  # a forward that fails in another way: refuse this one, serve the rest
            logging.getLogger("dashboard").exception("the host's network %s is not served", spec.net)
            refused.append((spec, f"{spec.net} failed when it was opened ({type(err).__name__}: {err})"))
        else:
            opened.append((spec, info.key))
    return HostNetworks(tuple(opened), tuple(refused))


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


# ---- one model handle: every call names its weights by a ModelRef -------------------------


def _point(ref: ModelRef) -> tuple[str, str, int]:
    """(cache folder, model key, saved point) of the weights ``ref`` names, for work over a data
    set. The key reads "KEY~N" while the model is still training (N points saved), so nothing
    computed from provisional weights outlives training under the finished model's name."""
    trained = model(ref)
    return str(cache_dir()), trained.info.key, ref.epoch or trained.info.epochs_done


def _weights(root: str, key: str, epoch: int) -> TrainedModel:
    """The weights of saved point ``epoch``; the last point's are the copy ``ModelRef(key)`` loads."""
    last = _model(root, key, None)
    return last if epoch == last.info.epochs_done else _model(root, key, epoch)


def evaluation(ref: ModelRef, split: str = "test") -> Evaluation:
    """Predictions of some weights on a split, kept on disk beside them and in memory here."""
    return _evaluation(*_point(ref), split)


@st.cache_resource(show_spinner="Running the model over the split (once per model)…", max_entries=16)
def _evaluation(root: str, key: str, epoch: int, split: str) -> Evaluation:
    trained = _weights(root, key, epoch)
    info = trained.info
    data = dataset(info.data_source)
    if not info.folder.is_dir():  # the cache folder was deleted while the app runs: keep it in memory
        return evaluate(trained.model, data.split(split))
    return load_or_evaluate(trained.model, data.split(split), Point(info.folder, epoch, split, data.fingerprint))


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
    """Every shown layer's output for one digit (given as its 784 pixel bytes), batch axis
    dropped, in forward order, read through the network contract (no hook)."""
    return _activations(str(cache_dir()), ref.key, ref.epoch, pixels)


@st.cache_data(max_entries=256, show_spinner=False)
def _activations(root: str, key: str, epoch: int | None, pixels: bytes) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        outputs = _network(root, key, epoch).outputs(_pixels_tensor(pixels))
    return {name: value[0].float().cpu().numpy() for name, value in outputs.items()}


def probabilities(ref: ModelRef, pixels: bytes) -> np.ndarray:
    """float32 (K,): the class probabilities of one digit (softmax of its logits, as the network
    contract turns the network's output into logits)."""
    return _probabilities(str(cache_dir()), ref.key, ref.epoch, pixels)


@st.cache_data(max_entries=256, show_spinner=False)
def _probabilities(root: str, key: str, epoch: int | None, pixels: bytes) -> np.ndarray:
    with torch.inference_mode():
        logits = _network(root, key, epoch).logits(_pixels_tensor(pixels))
    return softmax(logits[0].float().cpu().numpy())


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


# ---- runs over a data set: kept beside the checkpoint, computed in the background ----------

UNIT_SPLIT = "test"  # unit cards, the data map and the flip summary rank and average over the test digits


def _network_at(root: str, key: str, epoch: int) -> Network:
    """The network of saved point ``epoch``; the last point's is the one ``ModelRef(key)`` opens."""
    last = _model(root, key, None)
    return _network(root, key, None if epoch == last.info.epochs_done else epoch)


def _index_of(root: str, key: str, epoch: int, progress=None) -> units.ActivationIndex:
    """Every unit of the network over the test digits (the unit cards' index), kept beside the checkpoint."""
    info = _weights(root, key, epoch).info
    data = dataset(info.data_source)
    at = Point(info.folder, epoch, UNIT_SPLIT, data.fingerprint)
    return units.load_or_compute_index(
        _network_at(root, key, epoch), data.test, at, progress=progress, words=data.words
    )


def _over_test_digits(compute: Callable) -> Callable:
    """A run of one saved point's weights over the test digits, as INDEXES computes it:
    ``compute(model, split, point, progress=...)`` is a core ``load_or_compute_*``."""

    def run(root: str, key: str, epoch: int, progress=None):
        trained = _weights(root, key, epoch)
        data = dataset(trained.info.data_source)
        at = Point(trained.info.folder, epoch, UNIT_SPLIT, data.fingerprint)
        return compute(trained.model, data.test, at, progress=progress, words=data.words)

    return run


def _data_map_of(root: str, key: str, epoch: int, progress=None) -> projection.Projection:
    """The last epoch's PCA (the axes), then ``epoch`` through it; each kept beside the checkpoint."""
    last = _model(root, key, None)
    info, data = last.info, dataset(last.info.data_source)
    at = Point(info.folder, info.epochs_done, UNIT_SPLIT, data.fingerprint)
    basis = projection.load_or_compute_projection(last.model, data.test, at, progress=progress, words=data.words)
    if epoch == info.epochs_done:
        return basis
    model = _model(root, key, epoch).model
    at = Point(info.folder, epoch, UNIT_SPLIT, data.fingerprint)
    return projection.load_or_compute_projection(model, data.test, at, basis=basis, progress=progress, words=data.words)


def _data_map_runs(info: CheckpointInfo, epoch: int) -> list:
    return [
        projection.projection_run(
            Point(info.folder, e, UNIT_SPLIT, info.data_fingerprint), basis_epoch=info.epochs_done
        )
        for e in {epoch, info.epochs_done}
    ]


def _banks_of(root: str, key: str, epoch: int, progress=None) -> dict[str, list[influence.Bank]]:
    info = _model(root, key, None).info
    return influence.load_or_compute_banks(info, dataset(info.data_source), progress)


def _scorecard_of(root: str, key: str, epoch: int, progress=None) -> scorecard.Scorecard:
    return scorecard.load_or_compute(ModelRef(key, epoch), root=Path(root), progress=progress)


@dataclasses.dataclass(frozen=True)
class Index:
    """A run over a data set that pages wait for: how to compute it (a verified read when it is
    kept), which files it keeps, and what the page says while it runs."""

    compute: Callable  # (root, key, epoch, progress) -> the result
    runs: Callable  # (CheckpointInfo, epoch) -> the core.runs.Run it keeps: all kept means ready
    title: str  # the progress bar's title ({noun}, {plural}: the data set's words for its images)
    failed: str  # what failed, before the error (the same)
    per_point: bool = True  # False: one run over every saved point of the model (the banks)


INDEXES: dict[str, Index] = {
    "units": Index(
        _index_of,
        lambda info, epoch: [units.index_run(Point(info.folder, epoch, UNIT_SPLIT, info.data_fingerprint))],
        "Indexing every unit over the test {plural} (once per model and epoch)",
        "Indexing the units failed",
    ),
    "map": Index(
        _data_map_of,
        _data_map_runs,
        "Placing the test {plural} (once per model and epoch)",
        "Mapping the {plural} failed",
    ),
    "banks": Index(
        _banks_of,
        lambda info, epoch: influence.bank_runs(info, dataset(info.data_source)),
        "Running every training and test {noun} through each saved point of the model (once per model)",
        "Reading the {plural} through the saved points failed",
        per_point=False,
    ),
    "flips": Index(
        _over_test_digits(probes.load_or_compute_flip_summary),
        lambda info, epoch: [probes.flip_run(Point(info.folder, epoch, UNIT_SPLIT, info.data_fingerprint), 15, 2)],
        "Rotating and shifting the test {plural} a little (once per model and epoch)",
        "Bending the test {plural} failed",
    ),
    "scorecard": Index(
        _scorecard_of,
        lambda info, epoch: [scorecard.scorecard_run(info.folder, epoch, info.data_fingerprint)],
        "Computing the scorecard",
        "Computing the scorecard failed",
    ),
}


def task(name: str, ref: ModelRef) -> str:
    """The background pool's key for run ``name`` of these weights, e.g. "units:KEY@3"."""
    _, key, epoch = _point(ref)
    return _task_key(name, key, epoch)


def _task_key(name: str, key: str, epoch: int) -> str:
    return f"{name}:{key}" if not INDEXES[name].per_point else f"{name}:{key}@{epoch}"


def result(name: str, ref: ModelRef):
    """Run ``name`` of these weights if it is kept on disk (read and verified once per server),
    else None: :func:`start` computes it in the background."""
    root, key, epoch = _point(ref)
    try:
        return _available(name, root, key, epoch if INDEXES[name].per_point else 0)
    except LookupError:
        return None


def _available(name: str, root: str, key: str, epoch: int):
    """Run ``name`` as kept on disk, else as the pool finished it; raises ``LookupError`` when
    neither has it. A cache that cannot be written (a read-only share) keeps nothing: the pool
    still holds what it computed, so every reader gets it instead of waiting for a file forever
    (the pages' check and the calls that then read the run alike)."""
    try:
        return _result(name, root, key, epoch)
    except LookupError:  # not kept yet: an exception, so Streamlit does not remember it
        status = heavy_work().status(_task_key(name, key, epoch or _model(root, key, None).info.epochs_done))
        if status is not None and status.state == "done":
            return status.result
        raise


@st.cache_resource(show_spinner=False, max_entries=48)
def _result(name: str, root: str, key: str, epoch: int):
    index, info = INDEXES[name], _model(root, key, None).info
    if PROVISIONAL_MARK in key and name == "scorecard":
        raise LookupError("the scorecard is computed for finished models")
    if not all(run.is_kept() for run in index.runs(info, epoch or info.epochs_done)):
        raise LookupError(f"{name} not computed yet")
    return index.compute(root, key, epoch or info.epochs_done)  # a verified read; a damaged file is recomputed


def start(name: str, ref: ModelRef) -> None:
    """Compute run ``name`` of these weights in the server's pool (attaching to one already running)."""
    root, key, epoch = _point(ref)
    compute = INDEXES[name].compute
    heavy_work().submit(task(name, ref), lambda progress: compute(root, key, epoch, progress))


# ---- units (the unit cards) -------------------------------------------------------------


def unit_layers(ref: ModelRef) -> dict[str, units.UnitLayer]:
    """The layers of these weights' network whose units get cards, in forward order."""
    return units.unit_layers(network(ref))


def geometry(ref: ModelRef) -> Geometry:
    """Every layer's receptive field in these weights' network (walked from its graph once)."""
    return _geometry(str(cache_dir()), ref.key, ref.epoch)


@st.cache_resource(show_spinner=False, max_entries=16)
def _geometry(root: str, key: str, epoch: int | None) -> Geometry:
    return Geometry(_network(root, key, epoch))


def kernels(ref: ModelRef, layer: str) -> np.ndarray | None:
    """A conv layer's weights (out, in / groups, kh, kw), None when not a module's."""
    return units.kernels(network(ref), layer)


def pooled_layers(ref: ModelRef) -> dict[str, str]:
    """{pool layer: the unit layer whose channels it pools} in these weights' network."""
    return units.pooled_layers(network(ref))


def incoming_weights(ref: ModelRef, layer: str, unit: int) -> units.IncomingWeights:
    """The weights a unit reads with (a conv's kernel per input channel, a linear unit's row)."""
    return units.incoming_weights(network(ref), layer, unit)


def ablation_task(ref: ModelRef, layer: str, unit: int) -> str:
    """The background pool's key for zeroing one unit of these weights, e.g. "ablation:KEY@3:conv3:7"."""
    _, key, epoch = _point(ref)
    return f"ablation:{key}@{epoch}:{layer}:{unit}"


def unit_ablation(ref: ModelRef, layer: str, unit: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Each class's test accuracy with the unit intact and zeroed, float (K,) twice, once the
    background pool has computed it (:func:`start_unit_ablation`); None until then. Held in the
    pool's memory for every session, not kept on disk."""
    status = heavy_work().status(ablation_task(ref, layer, unit))
    return status.result if status is not None and status.state == "done" else None


def start_unit_ablation(ref: ModelRef, layer: str, unit: int) -> None:
    """Zero the unit and rerun the test digits in the shared pool (with progress; needs the unit
    index: for a layer ending in a ReLU only the digits the unit fires on are rerun)."""
    root, key, epoch = _point(ref)
    heavy_work().submit(
        ablation_task(ref, layer, unit), lambda progress: _unit_ablation(root, key, epoch, layer, unit, progress)
    )


def _unit_ablation(root: str, key: str, epoch: int, layer: str, unit: int, progress) -> tuple[np.ndarray, np.ndarray]:
    net = _network_at(root, key, epoch)
    data = dataset(_weights(root, key, epoch).info.data_source)
    split = data.test
    before = _evaluation(root, key, epoch, UNIT_SPLIT).preds
    nonnegative = units.unit_layers(net)[layer].nonnegative
    active = _available("units", root, key, epoch).maximum[layer][:, unit] > 0 if nonnegative else None
    images = to_tensor(split.images)
    return units.ablation_accuracy(
        net, images, split.labels, layer, unit, before=before, active=active, progress=progress, words=data.words
    )


def feature_visualisation(ref: ModelRef, layer: str) -> units.FeatureVisualisation:
    """One optimised image per unit of ``layer`` (the whole layer in batches, once per server)."""
    return _feature_visualisation(str(cache_dir()), ref.key, ref.epoch, layer)


@st.cache_resource(show_spinner="Optimising an image for every unit of the layer (a few seconds, once)…")
def _feature_visualisation(root: str, key: str, epoch: int | None, layer: str) -> units.FeatureVisualisation:
    with heavy_gate():
        return units.feature_visualisation(_network(root, key, epoch), layer)


def one_value(ref: ModelRef, pixels: bytes, layer: str, unit: int, row: int = 0, col: int = 0) -> unit_steps.OneValue:
    """One unit's value on one digit taken apart, step by step (conv or linear, norm, activation, pool)."""
    return _one_value(str(cache_dir()), ref.key, ref.epoch, pixels, layer, unit, row, col)


@st.cache_data(max_entries=256, show_spinner=False)
def _one_value(
    root: str, key: str, epoch: int | None, pixels: bytes, layer: str, unit: int, row: int, col: int
) -> unit_steps.OneValue:
    return unit_steps.one_value(_network(root, key, epoch), _pixels_tensor(pixels), layer, unit, row, col)


def channel_relevance(ref: ModelRef, pixels: bytes, layer: str, target: int) -> relevance.ChannelRelevance:
    """Which channels of ``layer`` carry the evidence for ``target`` on this digit (CRP): the
    reference's own modules, or a host's network through its converted graph. Raises
    ``RelevanceOff`` with the sentence when a host's network cannot be converted."""
    return _channel_relevance(str(cache_dir()), ref.key, ref.epoch, pixels, layer, target)


@st.cache_data(max_entries=256, show_spinner=False)
def _channel_relevance(
    root: str, key: str, epoch: int | None, pixels: bytes, layer: str, target: int
) -> relevance.ChannelRelevance:
    trained = _model(root, key, epoch)
    with heavy_gate():
        if trained.info.host:
            return relevance_graph.channel_relevance(_network(root, key, epoch), _pixels_tensor(pixels), layer, target)
        return relevance.channel_relevance(trained.model, _pixels_tensor(pixels), layer, target)


# ---- why a confusion cell fails -----------------------------------------------------------

CELL_DIGITS_SHOWN = 8  # cell digits whose nearest training digits are drawn


def why_cell(ref: ModelRef, a: int, b: int) -> dict:
    """Why the test digits of class ``a`` read as ``b`` are misread: the contrast maps, the
    channels that differ (needs the unit index: {} until it exists), the nearest training
    digits of the first cell digits, and the sentence."""
    indexed = result("units", ref) is not None
    plural = dataset(model(ref).info.data_source).words.plural
    with st.spinner(f"Comparing the cell's {plural} with the ones read right…"):
        return _why_cell(*_point(ref), a, b, indexed)


@st.cache_data(max_entries=128, show_spinner=False)  # why_cell says what it computes
def _why_cell(root: str, key: str, epoch: int, a: int, b: int, indexed: bool) -> dict:
    trained = _weights(root, key, epoch)
    data = dataset(trained.info.data_source)
    evaluation = _evaluation(root, key, epoch, UNIT_SPLIT)
    cell = confusion.cell_digits(evaluation, a, b)
    correct = confusion.correct_digits(evaluation, a)
    with heavy_gate():
        maps = confusion.contrast_maps(
            trained.model, to_tensor(data.test.images[cell]), to_tensor(data.test.images[correct]), a, b
        )
        shown = cell[:CELL_DIGITS_SHOWN]
        try:
            nearest = confusion.nearest_training_digits(
                projection.fc1_features(trained.model, to_tensor(data.test.images[shown])),
                _train_features(root, key, epoch),
                data.train.labels,
                a,
                b,
            )
        except NetworkError as err:  # no last linear layer giving the scores: no features to compare
            nearest = str(err)
    layers = units.unit_layers(_network_at(root, key, epoch))
    index = _available("units", root, key, epoch) if indexed and layers else None
    channels = confusion.channel_differences(index, cell, correct) if index is not None else {}
    layer = confusion.explained_layer(layers)
    word = layers[layer].unit_word if layer is not None else "channel"
    return {
        "cell": cell,
        "correct": correct,
        "maps": maps,
        "channels": channels,
        "shown": shown,
        "nearest": nearest,
        "layer": layer,
        "sentence": confusion.explain_cell(maps, channels, data.classes, layer, word, words=data.words),
    }


@st.cache_resource(show_spinner=False)  # within why_cell's spinner
def _train_features(root: str, key: str, epoch: int) -> np.ndarray:
    """float32 (60000, 20): every training digit's fc1, for nearest-neighbour look-ups."""
    trained = _weights(root, key, epoch)
    train = dataset(trained.info.data_source).train
    return np.concatenate(
        [
            projection.fc1_features(trained.model, to_tensor(train.images[i : i + 10_000]))
            for i in range(0, len(train), 10_000)
        ]
    )


# ---- the training digits: suspicious labels and the digits behind an answer ----------------


def given_labels(ref: ModelRef, split: str) -> np.ndarray:
    """The labels a split's digits carry for this model: for the training split the ones it
    trained on (its first ``train_limit`` digits, with any labels flipped on purpose)."""
    return _given_labels(model(ref).info, split)


def _given_labels(info: CheckpointInfo, split: str) -> np.ndarray:
    data = dataset(info.data_source)
    if split == "train":
        return training_labels(info.config, data).numpy()
    return data.split(split).labels


def suspicious_labels(ref: ModelRef, split: str) -> label_issues.LabelIssues:
    """Confident learning over a split's given labels and the epoch's probabilities (needs the banks)."""
    return _suspicious_labels(*_point(ref), split)


@st.cache_resource(show_spinner="Ranking the labels (confident learning)…", max_entries=16)
def _suspicious_labels(root: str, key: str, epoch: int, split: str) -> label_issues.LabelIssues:
    probs = softmax(_available("banks", root, key, 0)[split][epoch - 1].logits)
    return label_issues.find(_given_labels(_model(root, key, None).info, split), probs)


@st.cache_resource(show_spinner=False, max_entries=4)
def _training_side(root: str, key: str, epoch: int) -> influence.TrainingSide:
    trained = _model(root, key, None)
    train_banks = _available("banks", root, key, 0)["train"][:epoch]
    digits = len(train_banks[0])
    weights = influence.point_weights(trained.info, digits)[:epoch]
    return influence.TrainingSide.of(train_banks, _given_labels(trained.info, "train"), weights)


def training_digits_behind(ref: ModelRef, split: str, index: int) -> influence.Behind:
    """TracIn over checkpoints 1..epoch: the training digits that most raised and most lowered
    the probability of the class the epoch's weights give digit ``index`` of ``split`` (needs
    the banks, and a digit they hold)."""
    return _training_digits_behind(*_point(ref), split, index)


@st.cache_data(max_entries=256, show_spinner=False)
def _training_digits_behind(root: str, key: str, epoch: int, split: str, index: int) -> influence.Behind:
    rows = _available("banks", root, key, 0)[split][:epoch]
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
        trained = _model(root, key, epoch)
        model = _network(root, key, epoch) if trained.info.host else trained.model
        return probes.sweep(model, _pixels_tensor(pixels)[0], kind)


def counterfactual(
    ref: ModelRef, pixels: bytes, target: int, confidence: float, progress=None
) -> probes.Counterfactual:
    """The smallest change of ink that makes the network read ``target`` (a search of a few
    seconds, kept for the last searches of every session); ``progress(fraction)`` while it runs."""
    return _counterfactual(str(cache_dir()), ref.key, ref.epoch, pixels, target, confidence, progress)


@st.cache_data(max_entries=64, show_spinner=False)
def _counterfactual(
    root: str, key: str, epoch: int | None, pixels: bytes, target: int, confidence: float, _progress
) -> probes.Counterfactual:
    image = np.frombuffer(pixels, dtype=np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE).copy()
    with heavy_gate():
        return probes.counterfactual(_model(root, key, epoch).model, image, target, confidence, progress=_progress)


def nearest_training_digit(ref: ModelRef, pixels: bytes, cls: int) -> int:
    """The training digit labelled ``cls`` nearest to a digit in fc1 (read once per model)."""
    root, key, epoch = _point(ref)
    trained = _weights(root, key, epoch)
    feature = projection.fc1_features(trained.model, _pixels_tensor(pixels))[0]
    labels = dataset(trained.info.data_source).train.labels
    return probes.nearest_training_digit(_train_features(root, key, epoch), labels, feature, cls)
