"""Units: a card for every conv channel and fc1 unit (what excites it, its weights, what it
does per class, what zeroing it costs, an image made for it), and one of its values taken
apart step by step for the selected digit."""

import numpy as np
import streamlit as st

from core.activations import kernels
from core.model import MNIST_MEAN, MNIST_STD
from core.units import POOL_AFTER, UNIT_LAYERS, pool_position, receptive_field
from dashboard import cache, figures, panels, state, unit_figures
from dashboard.view import UNIT_COUNTS, Unit, View

NORMALISED = f" (the normalised pixels (x − {MNIST_MEAN}) / {MNIST_STD})"

TOP = 16  # digits shown per unit
RARE = 0.01  # a unit firing on fewer than this share of the test digits is "rarely active"
SHOWN_CHANNELS = 6  # the strongest channels drawn for one digit


def render(view: View) -> None:
    st.title("Units: what each channel learned")
    st.caption(
        "A unit is one channel of a conv layer (the same 3×3 detector slid over the whole image) or one of fc1's "
        "20 units, read after its ReLU. Its card shows the test digits that excite it most (the part of the digit "
        "it sees boxed), the weights it reads with, how it responds per class, what the network loses without "
        "it, and an image made to excite it."
    )
    if view.trained is None:
        panels.training_status(view.job.key, "Unit cards appear when the model is trained")
        return
    if panels.reference_only(view, "this page"):
        return
    unit = _pick_unit(view.unit)
    index = cache.result("units", view.ref)
    if index is None:
        panels.wait_for("units", view)
        return
    _card(view, unit, index)
    st.divider()
    _one_value(view, unit, index)


def _pick_unit(unit: Unit) -> Unit:
    """The layer and unit widgets, filled from the shared choice; a change selects the unit."""
    st.session_state["units_layer"] = unit.layer
    st.session_state["units_unit"] = unit.unit

    def on_layer() -> None:
        state.select_unit(Unit(st.session_state["units_layer"], 0))

    def on_unit() -> None:
        state.select_unit(Unit(unit.layer, int(st.session_state["units_unit"])))

    left, right, _ = st.columns([1, 1, 3])
    left.selectbox("Layer", UNIT_LAYERS, key="units_layer", on_change=on_layer)
    right.number_input(
        "fc1 unit" if unit.layer == "fc1" else "Channel",
        0,
        UNIT_COUNTS[unit.layer] - 1,
        key="units_unit",
        on_change=on_unit,
    )
    return unit


def _card(view: View, unit: Unit, index) -> None:
    layer, u = unit.layer, unit.unit
    share = index.firing_share(layer, u)
    fires = round(share * len(index))
    st.subheader(unit.title)
    if fires == 0:
        st.warning(
            f"{unit.title} never fires on the {len(index):,} test digits: its value is 0 after the ReLU on every one "
            "(a dead ReLU). The network does not use it; its weights below are what it would read with.",
            icon=":material/block:",
        )
    elif share < RARE:
        st.info(f"{unit.title} is rarely active: it fires on only {fires:,} of the {len(index):,} test digits.")
    else:
        st.caption(f"It fires (is above 0 somewhere) on {share:.0%} of the {len(index):,} test digits.")
    test = view.data.test
    if fires:
        top = index.top_digits(layer, u, TOP)[: max(1, min(TOP, fires))]
        values = index.maximum[layer][top, u]
        boxes = [None if layer == "fc1" else receptive_field(layer, *index.peak(layer, u, int(i))) for i in top]
        st.markdown(
            f"**The {len(top)} test digits that excite it most**"
            + ("" if layer == "fc1" else ", with the part of the image its strongest position sees boxed")
            + ". Click one to select it on every page."
        )

        def on_click() -> None:
            data = panels.clicked("units_top")
            if data:
                state.select("test", int(data[0]))

        st.plotly_chart(
            unit_figures.top_digits(test.images[top], top, values, boxes),
            key="units_top",
            on_select=on_click,
            selection_mode="points",
            config=figures.CHART_CONFIG,
        )
        if view.sample.split == "test" and view.sample.index in set(top.tolist()):
            panels.digit_links(view.sample)
    left, right = st.columns(2)
    with left:
        if layer == "fc1":
            weights = view.trained.model.fc1.weight.detach()[u].reshape(32, 4, 4).numpy()
            title = "incoming weights: one 4×4 map per conv4 channel (after pool2)"
        else:
            weights = kernels(view.trained.model, layer)[u]
            title = f"its 3×3 kernel on each of the {weights.shape[0]} input channels"
        st.plotly_chart(unit_figures.incoming_weights(weights, title), key="units_weights", config=figures.CHART_CONFIG)
    with right:
        means = index.mean_per_class(layer, u, test.labels, len(view.data.classes))
        st.plotly_chart(
            unit_figures.class_means(means, view.data.classes), key="units_classes", config=figures.CHART_CONFIG
        )
    left, right = st.columns([3, 2])
    with left:
        before, after = cache.unit_ablation(view.ref, layer, u)
        worst = int(np.nanargmin(after - before))
        st.markdown(
            f"**Without it:** zeroed after its ReLU, test accuracy goes from {np.nanmean(before):.2%} to "
            f"{np.nanmean(after):.2%} (mean over classes); class {view.data.classes[worst]} changes most "
            f"({(after[worst] - before[worst]) * 100:+.2f} points)."
        )
        st.plotly_chart(
            unit_figures.ablation(before, after, view.data.classes), key="units_ablation", config=figures.CHART_CONFIG
        )
    with right:
        visual = cache.feature_visualisation(view.ref, layer)
        st.markdown("**An image made to excite it**")
        st.plotly_chart(
            figures.digit((visual.images[u] * 255).astype(np.uint8), size=200),
            key="units_visual",
            config=figures.CHART_CONFIG,
        )
        st.caption(f"{visual.how}. Its value on this image: {visual.activation[u]:.2f} (before the ReLU).")


def _one_value(view: View, unit: Unit, index) -> None:
    """For the selected digit: which channels of the layer carry the evidence, and this
    unit's value computed step by step."""
    st.subheader(f"One digit in {unit.layer}")
    _, image, acts = panels.picked_digit(view, "units")
    _evidence(view, unit, image, acts)
    st.markdown("##### How one value is computed")
    layer, u = unit.layer, unit.unit
    if layer == "fc1":
        step = cache.linear_step(view.ref, image.tobytes(), layer, u)
        st.markdown(
            f"{layer} unit {u} multiplies each of the {len(step.inputs)} values of {step.source} (flattened) by its "
            f"weight and adds them: **{step.weighted_sum:.3f}**, plus the bias **{step.bias:+.3f}** = "
            f"**{step.pre_relu:.3f}**; the ReLU keeps **{step.value:.3f}**, the value the Feature maps page shows "
            f"({acts[layer][u]:.3f})."
        )
        return
    values = acts[layer][u]  # (h, w)
    strongest = divmod(int(np.argmax(values)), values.shape[1])
    row, col = unit.position or strongest
    left, right, _ = st.columns([1, 1, 3])

    def on_position() -> None:
        where = (int(st.session_state["units_row"]), int(st.session_state["units_col"]))
        state.select_unit(Unit(layer, u, where))

    st.session_state["units_row"], st.session_state["units_col"] = row, col
    left.number_input("Row", 0, values.shape[0] - 1, key="units_row", on_change=on_position)
    right.number_input("Column", 0, values.shape[1] - 1, key="units_col", on_change=on_position)
    step = cache.conv_step(view.ref, image.tobytes(), layer, u, row, col)
    where = "its strongest position on this digit" if (row, col) == strongest else "the chosen position"
    top, left_px, size, _ = receptive_field(layer, row, col)
    st.markdown(
        f"{unit.title} at ({row}, {col}), {where}: it sees input rows {top}–{top + size - 1} and columns "
        f"{left_px}–{left_px + size - 1}. Its 3×3 window of each of the {len(step.patch)} channels of "
        f"**{step.source}**{NORMALISED if step.source == 'input' else ''} is "
        "multiplied by the kernel, cell by cell (no flip), and the products are summed:"
    )
    st.plotly_chart(
        unit_figures.step_maps(step.patch, step.kernel, step.products, step.source),
        key="units_step",
        config=figures.CHART_CONFIG,
    )
    sums = " + ".join(f"{s:.3f}" for s in step.channel_sums)
    st.markdown(
        f"Per input channel: {sums} = **{float(step.channel_sums.sum()):.3f}**; plus the bias **{step.bias:+.3f}** "
        f"= **{step.pre_relu:.3f}** before the ReLU, which keeps **{step.value:.3f}**: the value the Feature maps "
        f"page draws ({float(values[row, col]):.3f})."
    )
    pool = POOL_AFTER.get(layer)
    if pool is not None:
        prow, pcol = pool_position(row, col)
        block = cache.pool_step(view.ref, image.tobytes(), pool, u, prow, pcol)
        st.markdown(
            f"Then **{pool}** keeps the largest of the 2×2 block rows {2 * prow}–{2 * prow + 1}, columns "
            f"{2 * pcol}–{2 * pcol + 1}: "
            + ", ".join(f"{v:.3f}" for v in block.block.ravel())
            + f" → **{block.value:.3f}**."
        )


def _evidence(view: View, unit: Unit, image: np.ndarray, acts: dict) -> None:
    """The layer's channels ranked by how much of the class's evidence flows through them (CRP)."""
    predicted = int(np.argmax(acts["fc2"]))
    classes = view.data.classes
    left, _ = st.columns([1, 3])
    target = left.selectbox(
        "Evidence for class",
        range(len(classes)),
        index=predicted,
        key=f"units_target_{predicted}",  # a new digit starts from its own prediction
        format_func=lambda c: f"{classes[c]} (predicted)" if c == predicted else classes[c],
    )
    found = cache.channel_relevance(view.ref, image.tobytes(), unit.layer, int(target))
    top = found.ranking[:SHOWN_CHANNELS]
    name = "units" if unit.layer == "fc1" else "channels"
    carried = float(np.abs(found.relevance[top]).sum() / (np.abs(found.relevance).sum() or 1.0))
    st.markdown(
        f"**Which {unit.layer} {name} carry the evidence for {classes[target]}**: the {len(top)} strongest hold "
        f"{carried:.0%} of it (|relevance|). Relevance is the class's score (logit {found.logit:.2f}) split over the "
        f"layer by concept relevance propagation (LRP rules from zennit-crp); the {name} add up to "
        f"{found.total:.2f}, the rest went to biases. Red: where on the digit the {name[:-1]} found evidence for the "
        "class, blue: against. Click one for its unit card."
    )

    def on_click() -> None:
        data = panels.clicked("units_evidence")
        if data:
            state.select_unit(Unit(unit.layer, int(data[0])))

    st.plotly_chart(
        unit_figures.channel_heatmaps(found.heatmaps[top], top, found.relevance[top], found.share[top], unit.layer),
        key="units_evidence",
        on_select=on_click,
        selection_mode="points",
        config=figures.CHART_CONFIG,
    )


render(state.page_view())
