"""Errors: the confusion matrix; click a cell to see the digits in it."""

import numpy as np
import streamlit as st

from core import confusion
from core.data import one_of, some_of
from dashboard import cache, figures, panels, state
from dashboard.view import Unit, View

TOP_CONFUSIONS = 15  # rows of the most frequent confusions table


def render(view: View) -> None:
    st.title("Where the network fails")
    if view.trained is None:
        panels.training_status(view.job.key, "The confusion matrix appears when the model is trained")
        return
    data = view.data
    names = data.classes
    noun, plural = view.words.noun, view.words.plural
    evaluation = cache.evaluation(view.ref, "test")
    matrix = evaluation.confusion
    st.markdown(
        f"**{len(evaluation.misclassified):,}** of {len(evaluation.labels):,} test {plural} are misread. "
        f"Rows are the true {noun}, columns what the network answered. Click a square to see its {plural}."
    )

    if state.selected_cell() is None:  # start on the most frequent confusion
        top = confusion.top_confusions(matrix, 1)
        state.select_cell(*(top[0][:2] if top else (0, 1)))
    # The shared choice (a link's cell=4,9 included) is the truth: put it into the widgets.
    st.session_state["errors_true"], st.session_state["errors_pred"] = state.selected_cell()

    def on_cell_click() -> None:
        clicked = panels.clicked("errors_matrix")
        if clicked:
            state.select_cell(*clicked[:2])  # customdata: (true, predicted, count, rate)

    def on_pick() -> None:
        state.select_cell(st.session_state["errors_true"], st.session_state["errors_pred"])

    left, right = st.columns([1, 1], gap="large")
    with left:
        toggles = st.columns(2)
        show_diagonal = toggles[0].toggle(
            "Show the diagonal",
            value=False,
            key="errors_diagonal",
            help="Hidden, the colour scale spreads over the mistakes alone",
        )
        normalise = toggles[1].toggle(
            "Rates per true class",
            value=False,
            key="errors_normalise",
            help=f"Each row divided by the number of {plural} of that class",
        )
        st.plotly_chart(
            figures.confusion(
                matrix,
                show_diagonal,
                normalise,
                data.classes,
                selected=(st.session_state["errors_true"], st.session_state["errors_pred"]),
                words=view.words,
            ),
            key="errors_matrix",
            on_select=on_cell_click,
            selection_mode="points",
            config=figures.CHART_CONFIG,
            width="content",
        )
        st.subheader("Most frequent confusions")
        totals = matrix.sum(axis=1)
        st.dataframe(
            [
                {"true → predicted": f"{names[t]} → {names[p]}", "count": c, "share of class": c / totals[t]}
                for t, p, c in confusion.top_confusions(matrix, TOP_CONFUSIONS)
            ],
            hide_index=True,
            column_config={
                "share of class": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=0.1)
            },
        )

    with right:
        picks = st.columns(2)
        classes = range(len(names))
        true = picks[0].selectbox(
            "True class", classes, format_func=names.__getitem__, key="errors_true", on_change=on_pick
        )
        pred = picks[1].selectbox(
            "Predicted class", classes, format_func=names.__getitem__, key="errors_pred", on_change=on_pick
        )
        cell = evaluation.cell(true, pred)
        kind = "correct" if true == pred else "mistakes"
        st.markdown(
            f"**{len(cell):,}** {kind}: true **{names[true]}**, predicted **{names[pred]}**, most confident first"
        )
        if len(cell) == 0:
            st.info(f"The network never read {one_of(true, names)} as {names[pred]}. Pick another cell.")
        else:
            panels.digit_grid(view, "test", cell[: panels.PAGE_SIZE], key="errors_cell_grid", columns=8, short=True)
            st.caption(f"Under each {noun}: the network's confidence in its answer.")
            if len(cell) > panels.PAGE_SIZE:
                st.caption(f"The {panels.PAGE_SIZE} most confident of {len(cell):,}.")
        sample = view.sample
        if sample.split == "test" and sample.index in set(cell.tolist()):
            panels.sample_detail(view, sample, view.image(sample))
        else:
            st.caption(f"Click {view.words.a} to see its probabilities and look inside the network.")
    if true != pred and len(cell):
        these = f"these {some_of(true, names, view.words)}"
        why = st.expander(
            f"Why are {these} read as {names[pred]}? The cell as a whole", key="errors_why_open", on_change="rerun"
        )
        if why.open:
            with why:
                _why(view, true, pred)


def _why(view: View, a: int, b: int) -> None:
    """The cell as a group: where the evidence for b over a lies, which channels differ from
    the a's read right, and the training digits nearest to the cell's digits."""
    if cache.result("units", view.ref) is None:  # the channel comparison reads it
        panels.wait_for("units", view)
        return
    found = cache.why_cell(view.ref, a, b)
    maps = found["maps"]
    names = view.data.classes
    noun, plural = view.words.noun, view.words.plural
    some, others = some_of(a, names, view.words), some_of(b, names, view.words)
    a, b = names[a], names[b]  # from here on, the classes' names
    st.markdown(found["sentence"])
    images = view.data.test.images
    mean_digit = images[found["cell"]].mean(axis=0).astype(np.uint8)
    st.plotly_chart(
        figures.attribution_row(
            [maps.cell, maps.correct],
            [f"{maps.cell_count} {some} read as {b}", f"{maps.correct_count} {some} read right"],
            mean_digit,
        ),
        key="errors_why_maps",
        config=figures.CHART_CONFIG,
    )
    st.caption(
        f"The mean {maps.method} map of the evidence for {b} minus the evidence for {a}: red pixels speak for {b} "
        f"over {a}. The outline is the cell's mean {noun}."
    )
    if found["layer"] is not None:
        _channels(found, some, b, plural)
    nearest, shown = found["nearest"], found["shown"]
    if isinstance(nearest, str):  # the network has no last linear layer giving its scores
        st.caption(f"No nearest training {plural}: {nearest}.")
        return
    features = "the features the last linear layer reads" if view.host else "fc1 (the features the last layer reads)"
    st.markdown(
        f"**The training {plural} nearest to each of the cell's first {len(shown)} {plural}** in {features}: per row, "
        f"the {nearest.a_indices.shape[1]} nearest {some}, then the nearest {others}."
    )
    flat = np.concatenate([nearest.a_indices, nearest.b_indices], axis=1).reshape(-1)
    panels.digit_grid(
        view, "train", flat, key="errors_why_nearest", columns=nearest.a_indices.shape[1] + nearest.b_indices.shape[1]
    )
    rows = ", ".join(f"#{i:,}" for i in shown)
    st.caption(f"Rows follow the cell's {plural}, most confident mistake first: test {rows}.")


def _channels(found: dict, some: str, b: str, plural: str) -> None:
    """Each layer's units whose mean activation differs most between the cell and the a's read right."""
    st.markdown(f"**Channels whose mean activation differs most** between the {some} read as {b} and those read right:")
    layers = list(found["channels"])
    default = found["layer"]  # the last layer with positions, as the sentence
    layer = st.segmented_control("Layer", layers, default=default, key="errors_why_layer") or default
    if not found["channels"][layer]:
        st.caption(f"No {some} is read right, so there is nothing to compare the channels with.")
    for column, diff in zip(st.columns(max(1, len(found["channels"][layer]))), found["channels"][layer], strict=False):
        label = f"{layer} · {diff.channel}: {diff.cell_mean:.2f} vs {diff.correct_mean:.2f}"
        if column.button(label, key=f"errors_why_{layer}_{diff.channel}", icon=":material/grain:"):
            state.select_unit(Unit(layer, diff.channel))
            st.switch_page("app_pages/units.py")
    st.caption(f"Each: its mean activation on the cell's {plural} vs on the ones read right. Click for its card.")


render(state.page_view())
