"""Browse digits: a paged, filtered grid of any split; click a digit to look at it closely.
Before the first model is trained, the digits and their labels are browsable already."""

import numpy as np
import streamlit as st

from core.evaluate import SORT_ORDERS, filter_indices
from dashboard import cache, figures, panels, state
from dashboard.view import View

ANY = "any"


def render(view: View) -> None:
    data = view.data
    noun, plural = view.words.noun, view.words.plural
    st.title(f"Browse {plural}")
    if view.trained is None:
        panels.training_status(view.job.key, "Predictions appear when the model is trained")
    controls = st.columns([1.2, 1, 1, 1.2, 1.6])
    split = controls[0].segmented_control("Split", ["test", "train"], default="test", key="browse_split") or "test"
    name = lambda c: c if c == ANY else data.classes[c]  # noqa: E731
    true = controls[1].selectbox("True label", [ANY, *range(len(data.classes))], format_func=name, key="browse_true")
    if view.trained is not None:
        pred = controls[2].selectbox("Predicted", [ANY, *range(len(data.classes))], format_func=name, key="browse_pred")
        verdict = controls[3].selectbox("Prediction", [ANY, "correct", "wrong"], key="browse_verdict")
        sort = controls[4].selectbox("Order", SORT_ORDERS, key="browse_sort")
        indices = filter_indices(
            cache.evaluation(view.ref, split),
            true=None if true == ANY else int(true),
            pred=None if pred == ANY else int(pred),
            correct=None if verdict == ANY else verdict == "correct",
            sort=sort,
        )
    else:
        labels = data.split(split).labels
        indices = np.arange(len(labels)) if true == ANY else np.flatnonzero(labels == int(true))

    grid, detail = st.columns([1.05, 1], gap="large")
    with grid:
        if len(indices) == 0:
            st.info(f"No {noun} matches these filters. Widen them: set a filter back to “any”.")
        else:
            pages = -(-len(indices) // panels.PAGE_SIZE)
            if st.session_state.get("browse_page", 1) > pages:
                st.session_state["browse_page"] = 1  # the filters changed under an old page number
            page = st.number_input(f"Page (of {pages:,})", 1, pages, key="browse_page")
            shown = indices[(page - 1) * panels.PAGE_SIZE : page * panels.PAGE_SIZE]
            reading = (
                "captions read “true→predicted confidence”, red when wrong"
                if view.trained is not None
                else "captions give the true label"
            )
            st.caption(
                f"{len(indices):,} {plural} match · showing {shown.size} · {reading} · "
                f"click {view.words.a} to select it"
            )
            panels.digit_grid(view, split, shown, key=f"browse_grid_{split}")
    with detail:
        if view.trained is not None:
            panels.sample_detail(view, view.sample, view.image())

    with st.expander("Class balance"):
        counts = {name: np.bincount(data.split(name).labels, minlength=10) for name in ("train", "test")}
        st.plotly_chart(figures.class_balance(counts, data.classes), key="browse_balance", config=figures.CHART_CONFIG)


render(state.page_view())
