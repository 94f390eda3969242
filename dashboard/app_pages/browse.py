"""Browse digits: a paged, filtered grid of any split; click a digit to look at it closely."""

import numpy as np
import streamlit as st

from core.evaluate import SORT_ORDERS, filter_indices
from dashboard import cache, figures, panels, state

ANY = "any"
data = state.current_data()
key = state.model_ref()

st.title("Browse digits")
controls = st.columns([1.2, 1, 1, 1.2, 1.6])
split = controls[0].segmented_control("Split", ["test", "train"], default="test", key="browse_split") or "test"
true = controls[1].selectbox("True label", [ANY, *range(10)], key="browse_true")
pred = controls[2].selectbox("Predicted", [ANY, *range(10)], key="browse_pred")
verdict = controls[3].selectbox("Prediction", [ANY, "correct", "wrong"], key="browse_verdict")
sort = controls[4].selectbox("Order", SORT_ORDERS, key="browse_sort")

evaluation = cache.evaluation(key, split)
indices = filter_indices(
    evaluation,
    true=None if true == ANY else int(true),
    pred=None if pred == ANY else int(pred),
    correct=None if verdict == ANY else verdict == "correct",
    sort=sort,
)

grid, detail = st.columns([1.05, 1], gap="large")
with grid:
    if len(indices) == 0:
        st.info("No digit matches these filters. Widen them: set a filter back to “any”.")
    else:
        pages = -(-len(indices) // panels.PAGE_SIZE)
        if st.session_state.get("browse_page", 1) > pages:
            st.session_state["browse_page"] = 1  # the filters changed under an old page number
        page = st.number_input(f"Page (of {pages:,})", 1, pages, key="browse_page")
        shown = indices[(page - 1) * panels.PAGE_SIZE : page * panels.PAGE_SIZE]
        st.caption(
            f"{len(indices):,} digits match · showing {shown.size} · captions read “true→predicted confidence”, "
            "red when wrong · click a digit to select it"
        )
        panels.digit_grid(split, shown, key=f"browse_grid_{split}")
with detail:
    panels.sample_detail()

with st.expander("Class balance"):
    counts = {name: np.bincount(data.split(name).labels, minlength=10) for name in ("train", "test")}
    st.plotly_chart(figures.class_balance(counts, data.classes), key="browse_balance", config=figures.CHART_CONFIG)
