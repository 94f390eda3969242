"""One digit in a layer, for any network: which of the layer's channels carry the evidence for a
class (CRP; the Units page's second half, and the Attributions page's buttons that open a
layer's strongest channel), and a unit's value on the digit taken apart step by step
(``core.unit_steps``), in words and maps."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.model import MNIST_MEAN, MNIST_STD
from core.relevance_graph import RelevanceOff
from core.unit_steps import ActivationStep, ConvStep, LinearStep, NormStep, OneValue, PoolStep
from core.units import INPUT, NORMALISED_INPUT
from dashboard import cache, figures, panels, state, unit_figures
from dashboard.view import Unit, View

SHOWN_CHANNELS = 6  # the strongest channels drawn for one digit
LOST = (  # where LRP's z+ rule can lose relevance in a network that is not all ReLUs
    ", to the other path of a residual addition, or was lost where the z+ rule found no positive contribution "
    "to pass it through (a layer read through a sigmoid or tanh)"
)


def one_value(view: View, unit: Unit, image: np.ndarray, acts: dict[str, np.ndarray]) -> None:
    """The position widgets (a conv layer), then every step to the value the Feature maps page draws."""
    st.markdown("##### How one value is computed")
    layer, u = unit.layer, unit.unit
    values = acts[layer][u]  # (h, w), or one number for a linear layer
    row = col = 0
    if np.ndim(values) == 2:
        strongest = divmod(int(np.argmax(values)), values.shape[1])
        row, col = unit.position or strongest
        _position_inputs(unit, values.shape, (row, col))
        where = (
            f"its strongest position on this {view.words.noun}" if (row, col) == strongest else "the chosen position"
        )
        geometry = cache.geometry(view.ref)
        why_not = geometry.why_not(layer)
        if why_not is None:
            top, left, height, width = geometry.field(layer).box(row, col)
            sees = f"it sees input rows {top}–{top + height - 1} and columns {left}–{left + width - 1}"
        else:
            sees = why_not
        st.markdown(f"{unit.title(view.unit_layers)} at ({row}, {col}), {where}: {sees}.")
    found = cache.one_value(view.ref, image.tobytes(), layer, u, row, col)
    shown = float(values[row, col]) if np.ndim(values) == 2 else float(values)
    for step in found.steps:
        if isinstance(step, PoolStep):
            _arrived(found, shown)
        _step(step, view, found)
    if found.stopped:
        st.info(f"The steps stop here: {found.stopped}.", icon=":material/construction:")
    elif not isinstance(found.steps[-1], PoolStep):
        _arrived(found, shown)


def _arrived(found: OneValue, shown: float) -> None:
    value = next(s.value for s in reversed(found.steps) if not isinstance(s, PoolStep))
    st.markdown(f"That is **{value:.3f}**: the value the Feature maps page draws ({shown:.3f}).")


def _position_inputs(unit: Unit, grid: tuple[int, int], at: tuple[int, int]) -> None:
    def on_position() -> None:
        where = (int(st.session_state["units_row"]), int(st.session_state["units_col"]))
        state.select_unit(Unit(unit.layer, unit.unit, where))

    st.session_state["units_row"], st.session_state["units_col"] = at
    left, right, _ = st.columns([1, 1, 3])
    left.number_input("Row", 0, grid[0] - 1, key="units_row", on_change=on_position)
    right.number_input("Column", 0, grid[1] - 1, key="units_col", on_change=on_position)


def _source(name: str, view: View) -> str:
    if name == NORMALISED_INPUT:  # the network's own first steps normalise the pixels (the reference's do)
        how = f"(x − {MNIST_MEAN}) / {MNIST_STD}" if not view.host else "by the network's own first steps"
        return f"**the input** (the normalised pixels {how})"
    if name != INPUT:
        return f"**{name}**"
    network = cache.network(view.ref)
    mean, std = network.contract.mean, network.contract.std
    if (mean, std) == (0.0, 1.0):
        return "**the input** (the pixels as the network receives them)"
    return f"**the input** (the normalised pixels (x − {mean:g}) / {std:g})"


def _step(step, view: View, found: OneValue) -> None:
    if isinstance(step, ConvStep):
        c, kh, kw = step.kernel.shape
        extras = []
        if step.stride != (1, 1):
            extras.append(f"stride {step.stride[0]}×{step.stride[1]}")
        if step.dilation != (1, 1):
            extras.append(f"dilation {step.dilation[0]}×{step.dilation[1]}")
        if step.padding is not None:
            filled = "zeros" if step.padding == "zeros" else f"{step.padding} padding"
            extras.append(f"{filled} where the window runs past the edge")
        channels = (
            f"each of the {c} channels"
            if step.in_channels[0] == 0
            else f"channels {step.in_channels[0]}–{step.in_channels[-1]} (its group)"
        )
        st.markdown(
            f"Its {kh}×{kw} window of {channels} of {_source(step.source, view)}, starting at row {step.top}, "
            f"column {step.left}{' (' + ', '.join(extras) + ')' if extras else ''}, is multiplied by the kernel, "
            "cell by cell (no flip), and the products are summed:"
        )
        st.plotly_chart(
            unit_figures.step_maps(step.patch, step.kernel, step.products, step.source),
            key="units_step",
            config=figures.CHART_CONFIG,
        )
        sums = " + ".join(f"{s:.3f}" for s in step.channel_sums[:16]) + (" + …" if c > 16 else "")
        st.markdown(
            f"Per input channel: {sums} = **{float(step.channel_sums.sum()):.3f}**; plus the bias "
            f"**{step.bias:+.3f}** = **{step.value:.3f}**."
        )
    elif isinstance(step, LinearStep):
        st.markdown(
            f"{found.layer} unit {found.unit} multiplies each of the {len(step.inputs)} values of "
            f"{_source(step.source, view)} (flattened) by its weight and adds them: **{step.weighted_sum:.3f}**, "
            f"plus the bias **{step.bias:+.3f}** = **{step.value:.3f}**."
        )
    elif isinstance(step, NormStep):
        st.markdown(
            f"**{step.name}** (BatchNorm, its running statistics): ({step.before:.3f} − {step.mean:.3f}) / "
            f"√({step.var:.3f} + {step.eps:g}) × {step.gamma:.3f} + {step.beta:.3f} = **{step.value:.3f}**; folded "
            f"into one multiply-add: {step.scale:.3f} × {step.before:.3f} + {step.shift:+.3f}."
        )
    elif isinstance(step, ActivationStep):
        st.markdown(f"**{step.name}** ({step.what}): {step.before:.3f} → **{step.value:.3f}**.")
    elif isinstance(step, PoolStep):
        values = ", ".join("·" if np.isnan(v) else f"{v:.3f}" for v in step.block.ravel()[:25])
        more = " …" if step.block.size > 25 else ""
        of = "largest" if step.kind == "max" else "mean"
        h, w = step.block.shape
        st.markdown(
            f"Then **{step.name}** keeps the {of} of the {h}×{w} block from row {step.top}, column {step.left} "
            f"(its cell ({step.row}, {step.col})): {values}{more} → **{step.value:.3f}**."
        )


def evidence(view: View, unit: Unit, image: np.ndarray) -> None:
    """The layer's channels ranked by how much of the class's evidence flows through them (CRP)."""
    predicted = int(np.argmax(cache.probabilities(view.ref, image.tobytes())))
    classes = view.data.classes
    left, _ = st.columns([1, 3])
    target = left.selectbox(
        "Evidence for class",
        range(len(classes)),
        index=predicted,
        key=f"units_target_{predicted}",  # a new digit starts from its own prediction
        format_func=lambda c: f"{classes[c]} (predicted)" if c == predicted else classes[c],
    )
    try:
        found = cache.channel_relevance(view.ref, image.tobytes(), unit.layer, int(target))
    except RelevanceOff as off:
        st.info(
            f"Which {unit.layer} channels carry the evidence is off for this network: {off}.", icon=":material/block:"
        )
        return
    top = found.ranking[:SHOWN_CHANNELS]
    name = f"{view.unit_layers[unit.layer].unit_word}s"
    carried = float(np.abs(found.relevance[top]).sum() / (np.abs(found.relevance).sum() or 1.0))
    st.markdown(
        f"**Which {unit.layer} {name} carry the evidence for {classes[target]}**: the {len(top)} strongest hold "
        f"{carried:.0%} of it (|relevance|). Relevance is the class's score (logit {found.logit:.2f}) split over the "
        f"layer by concept relevance propagation (LRP rules from zennit-crp); the {name} add up to "
        f"{found.total:.2f}, the rest went to biases{LOST if view.host else ''}. Red: where on the "
        f"{view.words.noun} the {name[:-1]} found evidence for the class, blue: against. Click one for its unit card."
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


def channel_links(view: View, pixels: bytes) -> None:
    """One button per layer: its unit card, at the channel carrying most evidence for the
    predicted class on this digit (the Units page then ranks them all)."""
    st.caption("Which channels of a layer carry the evidence for the predicted class, ranked, each with its card:")
    predicted = int(np.argmax(cache.probabilities(view.ref, pixels)))
    layers = view.unit_layers
    if not layers:
        return  # a network without conv or hidden linear layers has no channels to rank
    for column, layer in zip(st.columns(len(layers)), layers, strict=True):
        if column.button(f"{layer} {layers[layer].unit_word}s", key=f"at_units_{layer}"):
            try:
                strongest = int(cache.channel_relevance(view.ref, pixels, layer, predicted).ranking[0])
            except RelevanceOff:
                strongest = 0  # the card says why the ranking is off for this network
            state.select_unit(Unit(layer, strongest))
            st.switch_page("app_pages/units.py")
