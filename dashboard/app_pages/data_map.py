"""Data map: every test digit on one map, where the network's fc1 places it (PCA of its
20 values), coloured by class or by mistake; click a point to select that digit."""

import streamlit as st

from dashboard import cache, data_figures, figures, panels, state
from dashboard.view import View


def render(view: View) -> None:
    noun, plural = view.words.noun, view.words.plural
    st.title(f"Every test {noun} on one map")
    features = "the 20 numbers fc1 computes for it"
    if view.host:
        last = cache.network(view.ref).shown
        features = f"the numbers its last linear layer ({list(last)[-1]}) reads"
    st.caption(
        f"Each point is a test {noun}, placed by {features} (the features the last layer weighs into a decision), "
        f"flattened to two dimensions by PCA: {plural} the network sees alike sit close. The axes are the last "
        "epoch's, so stepping through epochs in the sidebar shows the classes separate. Crosses are mistakes. "
        f"Click a point to select that {noun} on every page."
    )
    if view.trained is None:
        panels.training_status(view.job.key, "The map appears when the model is trained")
        return
    found = cache.result("map", view.ref)
    if found is None:
        panels.wait_for("map", view)
        return
    evaluation = cache.evaluation(view.ref, "test")
    colour_by = st.segmented_control(
        "Colour by", data_figures.COLOUR_BY, default=data_figures.COLOUR_BY[0], key="map_colour"
    )
    selected = view.sample.index if view.sample.split == "test" else None

    def on_click() -> None:
        data = panels.clicked("map_points")
        if data:
            state.select("test", int(data[0]))

    left, right = st.columns([2.6, 1.6])
    with left:
        st.plotly_chart(
            data_figures.data_map(
                found.points,
                evaluation.labels,
                evaluation.preds,
                view.data.classes,
                colour_by or data_figures.COLOUR_BY[0],
                selected,
                found.explained,
            ),
            key="map_points",
            on_select=on_click,
            selection_mode="points",
            config=figures.CHART_CONFIG,
        )
        epoch = f"{view.epoch_name} of {view.trained.info.config.epochs}"
        mistakes = int((evaluation.labels != evaluation.preds).sum())
        st.caption(
            f"{len(found.points):,} {plural} ({mistakes} misread), weights after {epoch}; the two axes hold "
            f"{found.explained.sum():.0%} of the spread of those features."
        )
    with right:
        if selected is None:
            st.info(f"Your own {noun} is selected: pick a test {noun} on the map.")
        else:
            panels.sample_detail(view, view.sample, view.image(), "", map_link=False)


render(state.page_view())
