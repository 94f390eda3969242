"""A session's choices (model, digit, unit, cell, probe, label filter) in ``st.session_state``,
resolved once per run into a View.

``dashboard/Home.py`` calls :func:`resolve` at the start of every run and hands the
:class:`~dashboard.view.View` to the page (:func:`page_view` is how a page file receives
it). Widgets change the choices only through :func:`select`, :func:`select_drawn` and
:func:`use_model`; :func:`sync_url` writes them to the query string after the page ran.
Nothing here trains or loads behind a caller's back: :func:`resolve` is the one place that
asks for a model, and a model still training is a background job (``core.jobs``).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from core import checkpoints
from core.checkpoints import CheckpointError, ModelRef
from core.data import DataError
from core.jobs import DONE
from dashboard import cache
from dashboard.view import (
    DRAWN,
    FIRST,
    FIRST_FILTER,
    FIRST_PROBE,
    FIRST_UNIT,
    LabelFilter,
    Probe,
    Sample,
    Unit,
    View,
    cell_from_query,
    cell_to_query,
    check_epoch,
    check_sample,
    check_unit,
    from_query,
    label_filter_from_query,
    label_filter_to_query,
    probe_from_query,
    probe_to_query,
    to_query,
    unit_from_query,
    unit_to_query,
)


class NoModelError(RuntimeError):
    """No model can be shown and none can be trained here; the message says what to do."""


_REF, _SAMPLE, _DRAWN, _WAIT, _VIEW = "view_ref", "view_sample", "drawn_image", "view_job", "view_resolved"
_UNIT = "view_unit"  # the unit card's choice; None until a link or a click names one
_FILTER = "view_label_filter"  # the Suspicious labels page's choices; None until a link or a click
_PROBE = "view_probe"  # the Probe page's choices; None until a link or a click names them
_CELL = "view_cell"  # the Errors page's confusion cell (true, predicted); None until a link or a click


def resolve(fall_back: bool = True, avoid: str | None = None) -> tuple[View, list[str]]:
    """This run's view, and warnings to show at the top of the page (a bad link, a model
    that had to be retrained). When no model is cached, the default one is requested
    from the background trainer and the view has ``trained=None`` until it is done. A model
    whose data set cannot be read any more (its folder moved or damaged) gives way, once
    (``fall_back``), to the server's default model, with a warning saying why; ``avoid`` is that
    model's key, left out of the models to fall back on."""
    warnings: list[str] = []
    cache.host_networks()  # opened into the cache once per server (normally at its start)
    models = {info.key: info for info in cache.cached_models() if info.key != avoid}
    if _REF not in st.session_state:  # a new session: take the model and digit from the link
        params = st.query_params.to_dict()
        ref, sample, warnings = from_query(params, models)
        unit, problem = unit_from_query(params)
        warnings += problem
        cell, problem = cell_from_query(params)
        warnings += problem
        st.session_state[_CELL] = cell
        probe, problem = probe_from_query(params)
        warnings += problem
        st.session_state[_PROBE] = probe
        label_filter, problem = label_filter_from_query(params)
        warnings += problem
        st.session_state[_FILTER] = label_filter
        st.session_state[_REF] = ref
        st.session_state[_SAMPLE] = sample
        st.session_state[_UNIT] = unit if "layer" in params or "unit" in params else None
    ref: ModelRef | None = st.session_state[_REF]
    if ref is None:
        ref = _default_ref(models)
    trained = job = None
    training = cache.settings().training
    if ref is not None and ref.key not in models and models and cache.settings().pinned:
        warnings.append("This server offers only the models its host pinned; showing one of them.")
        ref = ModelRef(next(iter(models)))
    if ref is not None:
        try:
            trained = cache.model(ref)
        except CheckpointError as err:
            if not training:
                raise NoModelError(
                    f"The cached model could not be loaded ({err}), and training is switched off on this server. "
                    "Ask its host to retrain it (python -m core.train) or pick another model."
                ) from err
            warnings.append(f"The cached model could not be loaded ({err}). Training it again.")
            config = models[ref.key].config if ref.key in models else _config_in(ref.key)
            st.session_state[_WAIT] = cache.training_jobs().request(config)
            ref = None
        else:
            if ref.epoch is not None:
                ref, problem = check_epoch(ref, trained.info)
                warnings += problem
                trained = cache.model(ref)
    if trained is None:
        if not training and _WAIT not in st.session_state:
            raise NoModelError(
                "No trained model is cached, and training is switched off on this server "
                "(--no-training or MNIST_CNN_TRAINING=off). Its host can train one with: python -m core.train"
            )
        job = _waited_job()
        if job.state == DONE and job.result is not None:
            ref = ModelRef(job.key)
            trained = cache.model(ref)
            if job.message:
                warnings.append(job.message)
            del st.session_state[_WAIT]
        elif job.active and (early := cache.provisional(job.key)) is not None:
            # Serve the epochs saved so far; the session's model stays unset, so the run after
            # training ends takes the final weights (Home.py reruns the app when it does).
            trained = early
    st.session_state[_REF] = ref
    if trained is not None and trained.info.provisional:  # links name the epoch shown
        ref = ModelRef(trained.info.folder.name, trained.info.epochs_done)
    if trained is not None:
        cache.mark_in_use(trained.info.key)
    try:
        data = cache.dataset(trained.info.data_source if trained else cache.settings().data)
    except DataError as err:
        if not fall_back or trained is None or trained.info.data_source == cache.settings().data:
            raise
        st.session_state[_REF] = None  # the server's default model instead
        view, more = resolve(fall_back=False, avoid=trained.info.folder.name)
        moved = f"The model {trained.info.key} was trained on data this server cannot read now ({err})"
        return view, [*warnings, f"{moved}; showing the default model instead.", *more]
    drawn = st.session_state.get(_DRAWN)
    sample, problem = check_sample(st.session_state[_SAMPLE], data, drawn is not None)
    st.session_state[_SAMPLE] = sample
    layers = cache.unit_layers(ref) if trained is not None and ref is not None else {}
    unit, unit_problem = check_unit(st.session_state.get(_UNIT) or FIRST_UNIT, layers)
    if st.session_state.get(_UNIT) is not None:  # a choice of the user's (a link, a click) that cannot stay
        problem = problem + unit_problem
        st.session_state[_UNIT] = unit
    view = View(
        ref=ref,
        trained=trained,
        data=data,
        sample=sample,
        drawn=drawn,
        job=job if trained is None or trained.info.provisional else None,
        unit=unit,
        unit_layers=layers,
        probe=st.session_state.get(_PROBE) or FIRST_PROBE,
        label_filter=st.session_state.get(_FILTER) or FIRST_FILTER,
    )
    st.session_state[_VIEW] = view
    return view, warnings + problem


_NOTICES = "view_link_notices"  # (the page a link opened, what it could not honour)


def link_notices(warnings: list[str], page: str) -> list[str]:
    """What to say at the top of this run: ``warnings`` of this run, and those of the link that
    opened the session for as long as the session stays on the page the link opened. A page
    that reruns itself at once (the Units and Probe pages do, as their widgets settle) no
    longer wipes the notice before anyone could read it."""
    kept = st.session_state.get(_NOTICES)
    if kept is None:  # the session's first run: the link's own notices (none, for a good link)
        st.session_state[_NOTICES] = (page, list(warnings))
        return warnings
    if kept is not None and kept[0] != page:  # the user went elsewhere: the link's notices are done
        st.session_state[_NOTICES] = (None, [])
        kept = None
    earlier = [w for w in kept[1] if w not in warnings] if kept is not None else []
    return earlier + warnings


def page_view() -> View:
    """The view Home.py resolved for this run: how a page file receives what it draws."""
    return st.session_state[_VIEW]


def _default_ref(models: dict) -> ModelRef | None:
    """The host's first network (--net) if it opened, else the default recipe's model if cached,
    else the newest cached one on the server's data set, else the newest cached one, else None."""
    hosts = [key for _, key in cache.host_networks().opened if key in models]
    if hosts:
        return ModelRef(hosts[0])
    default_key = cache.training_jobs().key(cache.settings().default_config())
    if default_key in models:
        return ModelRef(default_key)
    on_data = [key for key, info in models.items() if info.data_source == cache.settings().data]
    return ModelRef(on_data[0]) if on_data else ModelRef(next(iter(models))) if models else None


def _waited_job():
    """The training job this session waits for (the default model's, unless another was asked)."""
    jobs = cache.training_jobs()
    default = cache.settings().default_config()
    key = st.session_state.get(_WAIT) or jobs.request(default)
    st.session_state[_WAIT] = key
    status = jobs.status(key)
    return status if status is not None else jobs.status(jobs.request(default))


def _config_in(key: str):
    """The settings a damaged model folder's meta.json still records, else the default recipe."""
    try:
        return checkpoints.read_info(checkpoints.models_root() / key).config
    except CheckpointError:
        return cache.settings().default_config()


# ---- changing the choices (from widget callbacks) -------------------------------------


def select(split: str, index: int) -> None:
    """Make (split, index) the selected sample for every page."""
    st.session_state[_SAMPLE] = Sample(split, int(index))


def select_drawn(image: np.ndarray) -> None:
    """Make the user's own 28x28 uint8 digit the selected sample."""
    st.session_state[_DRAWN] = image
    st.session_state[_SAMPLE] = Sample(DRAWN, 0)


def select_unit(unit: Unit) -> None:
    """Make ``unit`` (and its position, if any) the unit card's choice."""
    st.session_state[_UNIT] = unit


def select_cell(true: int, pred: int) -> None:
    """Make (true, predicted) the Errors page's confusion cell."""
    st.session_state[_CELL] = (int(true), int(pred))


def select_probe(probe: Probe) -> None:
    """Make ``probe`` the Probe page's choice (tool, bend, class)."""
    st.session_state[_PROBE] = probe


def select_label_filter(chosen: LabelFilter) -> None:
    """Make ``chosen`` the Suspicious labels page's split and classes."""
    st.session_state[_FILTER] = chosen


def selected_cell() -> tuple[int, int] | None:
    return st.session_state.get(_CELL)


def use_model(ref: ModelRef) -> None:
    """Switch to other weights; the sample is checked against their data on the next run."""
    st.session_state[_REF] = ref


def selected() -> Sample:
    """The selection as it stands now (a callback earlier in this run may have changed it)."""
    return st.session_state.get(_SAMPLE, FIRST)


# ---- the Probe page's digit: the selected one, or a version of it the person loaded --------

_PROBED, _CANVAS, _SEARCHED = "probe_base", "probe_round", "probe_searched"


def probed_digit(view) -> tuple[np.ndarray, str]:
    """The digit being probed and its title: the selected one, or what the person loaded in its
    place (a bent or changed version) while the same digit stays selected."""
    loaded = st.session_state.get(_PROBED)
    if loaded is not None and loaded["sample"] == view.sample:
        return loaded["image"], loaded["title"]
    return view.image(), view.title()


def probe_loaded() -> bool:
    """Whether a version of the digit, not the digit itself, is being probed."""
    return _PROBED in st.session_state


def probe_instead(view, image: np.ndarray, title: str) -> None:
    """Probe ``image`` in place of the selected digit (until another digit is selected)."""
    st.session_state[_PROBED] = {"sample": view.sample, "image": image, "title": title}
    st.session_state[_CANVAS] = canvas_round() + 1  # a fresh canvas


def probe_the_digit() -> None:
    """Back to probing the selected digit itself, on a fresh canvas."""
    st.session_state.pop(_PROBED, None)
    st.session_state[_CANVAS] = canvas_round() + 1


def canvas_round() -> int:
    """Bumped whenever the canvas must start again from the probed digit (it keys the canvas)."""
    return st.session_state.get(_CANVAS, 0)


def searched(search: tuple) -> bool:
    """Whether this session asked for this smallest-change search (the result is in the cache layer)."""
    return st.session_state.get(_SEARCHED) == search


def mark_searched(search: tuple) -> None:
    st.session_state[_SEARCHED] = search


LINK_PARAMETERS = (  # every query parameter the app writes; others (a user's own) are left alone
    *("model", "split", "index", "layer", "unit", "at", "cell"),
    *("probe", "bend", "toward", "labels", "given", "says", "page"),
)


def sync_url() -> None:
    """Write the model, the selected sample and the unit card's choice to the query string
    (after the page ran)."""
    shown = st.session_state.get(_VIEW)  # weights still training are named by the view only
    params = to_query(st.session_state.get(_REF) or (shown.ref if shown else None), selected())
    if st.session_state.get(_UNIT) is not None:
        params |= unit_to_query(st.session_state[_UNIT])
    if st.session_state.get(_CELL) is not None:
        params |= cell_to_query(st.session_state[_CELL])
    if st.session_state.get(_PROBE) is not None:
        params |= probe_to_query(st.session_state[_PROBE])
    if st.session_state.get(_FILTER) is not None:
        params |= label_filter_to_query(st.session_state[_FILTER])
    for name, value in params.items():
        if st.query_params.get(name) != value:
            st.query_params[name] = value
    for name in set(st.query_params) - set(params):
        if name in LINK_PARAMETERS:
            del st.query_params[name]
