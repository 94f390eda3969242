"""Units: a card for every channel of a conv layer and every unit of a hidden linear layer, in
any network (what excites it, its weights, what it does per class, what zeroing it costs, an
image made for it), and one of its values taken apart step by step for the selected digit."""

import numpy as np
import pandas as pd
import streamlit as st

from core.units import UnitLayer
from dashboard import cache, figures, panels, state, unit_figures
from dashboard.unit_digit_panel import evidence, one_value
from dashboard.view import Unit, View

TOP = 16  # digits shown per unit
RARE = 0.01  # a unit above zero on fewer than this share of the test digits is "rarely active"


def render(view: View) -> None:
    st.title("Units: what each channel learned")
    noun, plural = view.words.noun, view.words.plural
    st.caption(
        "A unit is one channel of a conv layer (the same detector slid over the whole image) or one output of a "
        f"hidden linear layer, read after its activation. Its card shows the test {plural} that excite it most (the "
        f"part of the {noun} it sees boxed), the weights it reads with, how it responds per class, what the network "
        "loses without it, and an image made to excite it."
    )
    if view.trained is None:
        panels.training_status(view.job.key, "Unit cards appear when the model is trained")
        return
    if not view.unit_layers:
        st.info(
            "This network has no conv layer and no hidden linear layer, so it has no units to open.",
            icon=":material/grain:",
        )
        return
    unit = _pick_unit(view)
    index = cache.result("units", view.ref)
    if index is None:
        panels.wait_for("units", view)
        return
    _every_unit(view, unit, index)
    _card(view, unit, index)
    st.divider()
    st.subheader(f"One {noun} in {unit.layer}")
    _, image, acts = panels.picked_digit(view, "units")
    evidence(view, unit, image)
    one_value(view, unit, image, acts)


def _pick_unit(view: View) -> Unit:
    """The layer and unit widgets, filled from the shared choice; a change selects the unit."""
    unit, layers = view.unit, view.unit_layers
    st.session_state["units_layer"] = unit.layer
    st.session_state["units_unit"] = unit.unit

    def on_layer() -> None:
        state.select_unit(Unit(st.session_state["units_layer"], 0))

    def on_unit() -> None:
        state.select_unit(Unit(unit.layer, int(st.session_state["units_unit"])))

    left, right, _ = st.columns([1, 1, 3])
    left.selectbox("Layer", list(layers), key="units_layer", on_change=on_layer)
    found = layers[unit.layer]
    label = f"{found.unit_word.capitalize()} (of {found.units})"
    right.number_input(label, 0, found.units - 1, key="units_unit", on_change=on_unit)
    return unit


def _every_unit(view: View, unit: Unit, index) -> None:
    """The layer's units as one sortable table (a wide layer's 64 or 512 are read here, not by
    stepping through numbers); a row picked opens its card."""
    found = view.unit_layers[unit.layer]
    word = found.unit_word
    box = st.expander(f"Every {word} of {unit.layer} ({found.units}), sorted", key="units_all", on_change="rerun")
    if not box.open:
        return
    summary = index.layer_summary(unit.layer, view.data.test.labels, len(view.data.classes))
    classes = view.data.classes
    share = f"above 0 on (share of test {view.words.plural})"
    table = pd.DataFrame(
        {
            word: np.arange(found.units),
            share: summary["share"],
            "mean value": summary["mean"],
            "strongest on class": [classes[c] if c >= 0 else "none" for c in summary["favourite"]],
        }
    ).sort_values(share, ascending=False, kind="stable")

    def on_pick() -> None:
        rows = st.session_state["units_table"].selection.rows
        if rows:
            state.select_unit(Unit(unit.layer, int(table.iloc[rows[0]][word])))

    with box:
        st.caption(f"Sorted by how often each {word} is above 0; click a column to sort by it, a row to open its card.")
        st.dataframe(
            table,
            key="units_table",
            hide_index=True,
            height=min(420, 38 + 35 * found.units),
            on_select=on_pick,
            selection_mode="single-row",
            column_config={share: st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0)},
        )


def _card(view: View, unit: Unit, index) -> None:
    layer, u = unit.layer, unit.unit
    found: UnitLayer = view.unit_layers[layer]
    title = unit.title(view.unit_layers)
    share = index.firing_share(layer, u)
    fires = round(share * len(index))
    plural = view.words.plural
    st.subheader(title)
    if fires == 0 and found.nonnegative:
        st.warning(
            f"{title} never rises above 0 on the {len(index):,} test {plural} (a dead ReLU): the network gets nothing "
            "from it; its weights below are what it would read with.",
            icon=":material/block:",
        )
    elif fires == 0:  # its activation passes values below 0 on: not dead, only never positive
        st.info(
            f"{title} never rises above 0 on the {len(index):,} test {plural}: the layer passes its values below 0 on."
        )
    elif share < RARE:
        st.info(f"{title} is rarely active: it is above 0 on only {fires:,} of the {len(index):,} test {plural}.")
    else:
        st.caption(f"It is above 0 somewhere on {share:.0%} of the {len(index):,} test {plural}.")
    test = view.data.test
    if fires:
        _top_digits(view, unit, index, found, fires)
    left, right = st.columns(2)
    with left:
        try:
            weights = cache.incoming_weights(view.ref, layer, u)
        except ValueError as err:  # a layer written as a function: its weights are not a module's
            st.caption(f"Its weights are not drawn: {err}.")
            weights = None
        figure = (
            None
            if weights is None
            else (
                unit_figures.incoming_weights(weights.maps, _weights_title(weights, found))
                if weights.maps is not None
                else unit_figures.weight_bars(weights.strength, weights.source, found.grid is not None)
            )
        )
        if figure is not None:
            st.plotly_chart(figure, key="units_weights", config=figures.CHART_CONFIG)
    with right:
        means = index.mean_per_class(layer, u, test.labels, len(view.data.classes))
        st.plotly_chart(
            unit_figures.class_means(means, view.data.classes, view.words),
            key="units_classes",
            config=figures.CHART_CONFIG,
        )
    left, right = st.columns([3, 2])
    with left:
        _ablation(view, unit)
    with right:
        visual = cache.feature_visualisation(view.ref, layer)
        st.markdown("**An image made to excite it**")
        st.plotly_chart(
            figures.digit((visual.images[u] * 255).astype(np.uint8), size=200),
            key="units_visual",
            config=figures.CHART_CONFIG,
        )
        st.caption(f"{visual.how}. Its value on this image: {visual.activation[u]:.2f} (before its activation).")


def _ablation(view: View, unit: Unit) -> None:
    """What the network loses without the unit; zeroing it runs in the shared pool (started once
    for every session, its progress shown until it ends)."""
    found = cache.unit_ablation(view.ref, unit.layer, unit.unit)
    if found is not None:
        before, after = found
        worst = int(np.nanargmin(after - before))
        st.markdown(
            f"**Without it:** set to zero where the network reads it, test accuracy goes from "
            f"{np.nanmean(before):.2%} to {np.nanmean(after):.2%} (mean over classes); class "
            f"{view.data.classes[worst]} changes most ({(after[worst] - before[worst]) * 100:+.2f} points)."
        )
        chart = unit_figures.ablation(before, after, view.data.classes)
        st.plotly_chart(chart, key="units_ablation", config=figures.CHART_CONFIG)
        return
    task = cache.ablation_task(view.ref, unit.layer, unit.unit)
    status = cache.heavy_work().status(task)
    if status is not None and status.state == "failed":
        st.error(f"Zeroing the unit failed: {status.error}", icon=":material/error:")
        if not st.button("Try again", key="units_ablation_retry"):
            return
    cache.start_unit_ablation(view.ref, unit.layer, unit.unit)
    panels.work_status(
        task,
        f"What the network loses without it: zeroing the unit and rerunning the test {view.words.plural}",
    )


def _weights_title(weights, found: UnitLayer) -> str:
    n, h, w = weights.maps.shape
    if found.grid is not None and n == 1:
        return f"its {h}×{w} kernel on what it reads ({weights.source})"
    if found.grid is not None:
        return f"its {h}×{w} kernel on each of the {n} input channels it reads ({weights.source})"
    return f"incoming weights: one {h}×{w} map per channel of {weights.source} (flattened)"


def _top_digits(view: View, unit: Unit, index, found: UnitLayer, fires: int) -> None:
    layer, u = unit.layer, unit.unit
    top = index.top_digits(layer, u, TOP)[: max(1, min(TOP, fires))]
    values = index.maximum[layer][top, u]
    geometry = cache.geometry(view.ref)
    why_not = geometry.why_not(layer) if found.grid is not None else None
    boxed = found.grid is not None and why_not is None
    boxes = [geometry.field(layer).box(*index.peak(layer, u, int(i))) if boxed else None for i in top]
    st.markdown(
        f"**The {len(top)} test {view.words.plural} that excite it most**"
        + (", with the part of the image its strongest position sees boxed" if boxed else "")
        + ". Click one to select it on every page."
        + (f" (No box: {why_not}.)" if why_not else "")
    )

    def on_click() -> None:
        data = panels.clicked("units_top")
        if data:
            state.select("test", int(data[0]))

    st.plotly_chart(
        unit_figures.top_digits(view.data.test.images[top], top, values, boxes),
        key="units_top",
        on_select=on_click,
        selection_mode="points",
        config=figures.CHART_CONFIG,
    )
    if view.sample.split == "test" and view.sample.index in set(top.tolist()):
        panels.digit_links(view.sample, words=view.words)


render(state.page_view())
