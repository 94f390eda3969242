"""The sidebar on every page: which model is loaded, switch to another, or train a new one."""

from __future__ import annotations

import streamlit as st

from core.config import RECIPES, recipe
from dashboard import cache, state


def show() -> None:
    trained = state.current_model()
    info = trained.info
    with st.sidebar:
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
        _switch_model(info.key)
        _step_epochs(trained)
        _train_form()


def _switch_model(current: str) -> None:
    infos = {i.key: i for i in cache.cached_models()}
    if current not in infos:
        infos[current] = state.current_model().info
    if len(infos) < 2:
        return
    st.session_state["sidebar_model"] = current
    st.selectbox(
        "Cached models",
        options=list(infos),
        format_func=lambda key: infos[key].label,
        key="sidebar_model",
        on_change=lambda: state.use_model(st.session_state["sidebar_model"]),
    )


def _step_epochs(trained) -> None:
    """Step through the checkpoints saved after each epoch: every page follows."""
    epochs = trained.info.epochs_done
    if epochs < 2:
        return
    current = state.model_epoch()
    st.session_state["sidebar_epoch"] = current

    def on_change() -> None:
        chosen = st.session_state["sidebar_epoch"]
        state.use_model(trained.info.key, None if chosen == epochs else chosen)

    st.select_slider(
        "Weights after epoch",
        options=list(range(1, epochs + 1)),
        key="sidebar_epoch",
        on_change=on_change,
        help="Every page shows the network as it was after this epoch: see the features form as it learns.",
    )
    if current < epochs:
        accuracy = trained.history[current - 1]["test_accuracy"]
        st.caption(f"After epoch {current}: test accuracy {accuracy:.2%}")


def _train_form() -> None:
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
    with st.sidebar:
        trained = cache.train_with_progress(config)
    state.use_model(trained.info.key)
    st.toast(f"Model ready: {trained.info.label}")
    st.rerun()
