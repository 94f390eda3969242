"""The sidebar on every page: which model is loaded, switch to another, step through its
epochs, or train a new one in the background."""

from __future__ import annotations

import streamlit as st

from core.checkpoints import ModelRef
from core.config import RECIPES, recipe
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
        _train_form(view)
        st.caption(
            f"Layer names mean one tensor everywhere: {', '.join(AFTER_RELU)} are read after their ReLU; "
            "fc2 is the raw scores (logits)."
        )


def _model_card(view: View) -> None:
    info = view.trained.info
    st.markdown(f"**Model:** {info.config.recipe} recipe")
    st.caption(
        f"{info.epochs_done} epoch{'s' if info.epochs_done != 1 else ''} · seed {info.config.seed} · "
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
    """Step through the checkpoints saved after each epoch: every page follows."""
    trained = view.trained
    epochs = trained.info.epochs_done
    if epochs < 2:
        return
    st.session_state["sidebar_epoch"] = view.epoch

    def on_change() -> None:
        chosen = st.session_state["sidebar_epoch"]
        state.use_model(ModelRef(trained.info.key, None if chosen == epochs else chosen))

    st.select_slider(
        "Weights after epoch",
        options=list(range(1, epochs + 1)),
        key="sidebar_epoch",
        on_change=on_change,
        help="Every page shows the network as it was after this epoch: see the features form as it learns.",
    )
    if view.epoch < epochs:
        accuracy = trained.history[view.epoch - 1]["test_accuracy"]
        st.caption(f"After epoch {view.epoch}: test accuracy {accuracy:.2%}")


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
        if not st.form_submit_button("Train", type="primary"):
            return
    config = recipe(name, epochs=epochs, batch_size=batch, lr=lr, seed=seed)
    st.session_state[_TRAINING] = jobs.request(config)
    st.rerun()
