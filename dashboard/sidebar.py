"""The sidebar on every page: which model is loaded, switch to another, step through its
epochs, or train a new one in the background."""

from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from core import data_access
from core.checkpoints import ModelRef
from core.config import MAX_SAVES_PER_EPOCH, RECIPES, data_source, recipe
from core.data import BUNDLED, source_name
from core.jobs import DONE, FAILED, QUEUED
from core.model import AFTER_RELU
from dashboard import cache, panels, state
from dashboard.view import View

_TRAINING = "sidebar_job"  # the key of a model this session asked the sidebar to train


def show(view: View) -> None:
    with st.sidebar:
        if view.trained is None:
            st.markdown("**Model:** the default recipe, training now")
        elif view.trained.info.provisional:
            st.markdown(f"**Model:** {view.trained.info.config.recipe} recipe, training now")
            st.caption(view.trained.info.label)
        else:
            _model_card(view)
            _switch_model(view)
            _step_epochs(view)
        _refused_networks()
        _train_form(view)
        if view.host:
            st.caption("Layer names are the network's own; each block is read after its activation.")
        else:
            st.caption(
                f"Layer names mean one tensor everywhere: {', '.join(AFTER_RELU)} are read after their ReLU; "
                "fc2 is the raw scores (logits)."
            )


def _refused_networks() -> None:
    """The host's networks this server could not open, each with its sentence (the others serve)."""
    for spec, why in cache.host_networks().refused:
        st.warning(f"**{spec.name}** is not served: {why}", icon=":material/block:")


def _model_card(view: View) -> None:
    info = view.trained.info
    if info.network is not None:
        st.markdown(f"**Model:** {info.network.name}, the host's network")
        st.caption(
            f"from {Path(info.network.net).name} with {Path(info.network.weights).name} · trained elsewhere  \n"
            f"test accuracy **{info.test_accuracy:.2%}**"
        )
        return
    arch = f" · {info.config.arch.rpartition(':')[2]}" if info.config.arch else ""
    st.markdown(f"**Model:** {info.config.recipe} recipe{arch}")
    st.caption(
        f"{info.config.epochs} epoch{'s' if info.config.epochs != 1 else ''} · seed {info.config.seed} · "
        f"trained in {info.train_seconds:.1f} s on {info.device}  \n"
        f"test accuracy **{info.test_accuracy:.2%}**"
    )
    if not info.folder.is_dir():
        st.warning(
            "This model's files were deleted from the cache folder. It stays loaded for now; "
            "train it again below to save it."
        )


def _switch_model(view: View) -> None:
    infos = {i.key: i for i in cache.cached_models()}
    current = view.trained.info
    infos.setdefault(current.key, current)
    if len(infos) < 2:
        return
    st.session_state["sidebar_model"] = current.key
    st.selectbox(
        "Cached models",
        options=list(infos),
        format_func=lambda key: infos[key].label,
        key="sidebar_model",
        on_change=lambda: state.use_model(ModelRef(st.session_state["sidebar_model"])),
    )


def _step_epochs(view: View) -> None:
    """Step through the saved checkpoints (each epoch's, or more often): every page follows."""
    trained = view.trained
    epochs = trained.info.epochs_done
    if epochs < 2:
        return
    st.session_state["sidebar_epoch"] = view.epoch

    def on_change() -> None:
        chosen = st.session_state["sidebar_epoch"]
        state.use_model(ModelRef(trained.info.key, None if chosen == epochs else chosen))

    config = trained.info.config
    st.select_slider(
        "Weights after epoch",
        options=list(range(1, epochs + 1)),
        format_func=lambda point: f"{config.point_epoch(point):.4g}",
        key="sidebar_epoch",
        on_change=on_change,
        help=(
            "Every page shows the network as it was at this point of training: see the features form as it learns. "
            "A recipe saving its weights more than once an epoch (the default saves twice) has a point at each "
            "half or finer step."
        ),
    )
    if view.epoch < epochs:
        accuracy = trained.history[view.epoch - 1]["test_accuracy"]
        st.caption(f"After {view.epoch_name}: test accuracy {accuracy:.2%}")


def _train_form(view: View) -> None:
    jobs = cache.training_jobs()
    waiting = st.session_state.get(_TRAINING)
    if waiting is not None:
        status = jobs.status(waiting)
        if status is not None and status.state == DONE:
            del st.session_state[_TRAINING]
            state.use_model(ModelRef(waiting))
            st.toast(f"Model ready: {status.result.info.label}")
            st.rerun()
        if status is not None and (status.active or status.state == FAILED):
            panels.training_status(waiting, "Training your model in the background")
            if status.state == QUEUED and st.button("Cancel my request", key="sidebar_cancel"):
                jobs.cancel(waiting)
                del st.session_state[_TRAINING]
                st.rerun()
            return
        del st.session_state[_TRAINING]
    if view.trained is None:
        return
    if not cache.settings().training:
        st.caption(
            "Training is switched off on this server by its host: explore the cached models "
            "(a classroom's two cores would stall under many trainings)."
        )
        return
    with st.expander("Train a new model"):
        name = st.selectbox("Recipe", options=list(RECIPES), key="train_recipe")
        base = RECIPES[name]
        # The host's own classes (--net) can be trained here too; a visitor only picks among them.
        architectures = {"": "the reference CNN"} | {
            spec.net: f"{spec.name} (the host's)" for spec, _ in cache.host_networks().opened
        }
        arch = st.selectbox(
            "Architecture",
            options=list(architectures),
            format_func=architectures.get,
            key="train_arch",
            help="The host's networks can be trained here from scratch with the recipe (normalised as the reference).",
        )
        source = _data_choice(view)
        form = st.form("train_form", border=False)
    with form:
        epochs = st.number_input("Epochs", 1, 30, value=None, placeholder=f"recipe: {base.epochs}", key="train_epochs")
        batch = st.number_input(
            "Batch size", 8, 2048, value=None, placeholder=f"recipe: {base.batch_size}", key="train_batch"
        )
        lr = st.number_input(
            "Learning rate", 1e-5, 1.0, value=None, format="%.4f", placeholder=f"recipe: {base.lr}", key="train_lr"
        )
        seed = st.number_input("Seed", 0, 2**31 - 1, value=None, placeholder=f"recipe: {base.seed}", key="train_seed")
        saves = st.number_input(
            "Saves per epoch",
            1,
            MAX_SAVES_PER_EPOCH,
            value=None,
            placeholder=f"recipe: {base.saves_per_epoch}",
            key="train_saves",
            help="Save the weights this many times an epoch, to travel through a short training in finer steps.",
        )
        if not st.form_submit_button("Train", type="primary"):
            return
    typed = source is None or isinstance(source, _Typed)
    if typed and not (source or "").strip():
        st.error(f"Type {_typed_what(cache.typed_sources())}.")
        return
    try:
        if typed:  # a visitor's: only what the host allows, read with limits
            source = data_access.typed_source(source, cache.typed_sources())
            data = cache.typed_dataset(source)
        else:
            source = data_source(source)
            data = cache.dataset(source)  # every check the command line makes, before anything is queued
    except data_access.DataAccessError as err:  # one sentence, whatever the reason: nothing about the disk
        st.error(str(err), icon=":material/block:")
        return
    except ValueError as err:  # core.data.DataError included: names the file and what is wrong
        st.error(f"Cannot train on that data: {err}")
        return
    try:
        config = recipe(
            name,
            epochs=epochs,
            batch_size=batch,
            lr=lr,
            seed=seed,
            saves_per_epoch=saves,
            data_source=source,
            arch=arch or None,
        )
        images = config.train_limit or len(data.train)
        config.save_batches(math.ceil(images / config.batch_size))  # an epoch has enough batches to save
    except ValueError as err:
        st.error(f"Cannot train that: {err}")
        return
    st.session_state[_TRAINING] = jobs.request(config)
    st.rerun()


_OTHER = "a source I type"


class _Typed(str):
    """A data source a visitor typed (checked against the host's rules), not one from the list."""


def _typed_what(allowed) -> str:
    """What the visitor may type: "a folder or hf:NAME", "a folder", "hf:NAME"."""
    return " or ".join(
        [
            *(["a folder inside the server's data folder" if allowed.root else "a folder"] if allowed.folders else []),
            *(["hf:NAME (a Hugging Face data set)"] if allowed.hugging_face else []),
        ]
    )


def _data_choice(view: View) -> str | None:
    """The data set a new model trains on: the one in use, the server's, MNIST, those of the
    cached models, or what the host allows visitors to type: a folder of MNIST-format IDX files
    (with an optional classes.txt), inside the host's data root, or a Hugging Face data set
    (``core.data_access``). A typed source comes back as ``_Typed``; None when nothing is typed."""
    sources = [view.data.source, cache.settings().data, BUNDLED]
    sources += [info.data_source for info in cache.cached_models()]
    allowed = cache.typed_sources()
    options = [*dict.fromkeys(sources), *([_OTHER] if allowed.any else [])]
    chosen = st.selectbox(
        "Data",
        options,
        format_func=lambda s: s if s == _OTHER else source_name(s),
        key="train_data",
        help="A folder holds the four IDX files under torchvision's names (gzip or not) and may hold classes.txt, "
        "the ten class names one a line.",
    )
    if chosen == _OTHER or not (allowed.folders and allowed.hugging_face):
        st.caption(allowed.why)  # which typed sources are open, and why the others are not
    if chosen != _OTHER:
        return chosen
    label = _typed_what(allowed)
    typed = st.text_input(
        label[0].upper() + label[1:],
        key="train_data_other",
        placeholder="fashion" if allowed.root else ("/data/fashion-mnist" if allowed.folders else "hf:fashion_mnist"),
    )
    return _Typed(typed) if typed else None
