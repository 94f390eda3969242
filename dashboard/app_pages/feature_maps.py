"""Feature maps: what every layer computes for one digit, and the kernels that compute it."""

import streamlit as st

from core.activations import strongest_channels
from dashboard import cache, figures, panels, state
from dashboard.view import Unit, View

FLOW_TOP = 4  # strongest channels shown per layer in the flow view
KERNELS_DRAWN = 4096  # a layer's kernels are drawn up to this many (output, input) pairs; wider: per unit card


def render(view: View) -> None:
    st.title("Feature maps")
    st.caption(
        "Each conv layer slides its kernels over the layer before and keeps what its activation lets through: "
        "bright means the pattern the channel looks for is there. Pools keep the strongest (or mean) value of "
        "each block."
    )
    if view.trained is None:
        panels.training_status(view.job.key, "Feature maps appear when the model is trained")
        return
    _, image, acts = panels.picked_digit(view, "fm")

    # The layers with channels, in forward order, as the network contract shows them.
    flow_layers = [layer for layer, values in acts.items() if values.ndim == 3]
    if flow_layers:
        st.subheader("The path at a glance")
        st.caption(
            f"The input, then each layer's {FLOW_TOP} most active channels (by mean activation), left to right."
            + " Click a channel to choose its unit card."
        )
    else:
        st.info(
            "This network has no layer with channels (it is fully connected), so there is no path of images to draw; "
            "each layer's values are drawn as bars below.",
            icon=":material/linear_scale:",
        )
        _every_layer(view, acts)
        return
    stages = []
    for layer in flow_layers:
        top = strongest_channels(acts[layer], FLOW_TOP)
        stages.append((layer, acts[layer][top], top))

    pooled = cache.pooled_layers(view.ref)  # a pool's channel c is channel c of the layer it pools

    def on_flow_click() -> None:
        data = panels.clicked("fm_flow")
        layer = flow_layers[int(data[0])] if data else None
        layer = pooled.get(layer, layer)
        if layer in view.unit_layers:
            state.select_unit(Unit(layer, int(data[1])))

    st.plotly_chart(
        figures.flow(image, stages),
        key="fm_flow",
        config=figures.CHART_CONFIG,
        on_select=on_flow_click,
        selection_mode="points",
    )
    if view.unit_layers.get(view.unit.layer) and view.unit_layers[view.unit.layer].grid:
        _unit_link(view, view.unit, "fm_card_flow")
    _every_layer(view, acts)


def _every_layer(view: View, acts: dict) -> None:
    st.subheader("Every channel, layer by layer")
    shared = st.toggle(
        "One colour scale per layer",
        value=True,
        key="fm_shared",
        help="On: compare how strongly channels fire. Off: each channel scaled to its own maximum, to see its pattern.",
    )
    # Lazy tabs and expander: only the open layer's mosaic (and kernels, when asked) is
    # built and sent, not all eight (one page, many sessions, two cores).
    tabs = st.tabs(list(acts), key="fm_layer", on_change="rerun")
    for tab, layer in zip(tabs, acts, strict=True):
        if tab.open:
            with tab:
                _layer(view, layer, acts[layer], shared, logits=layer == list(acts)[-1])


def _layer(view: View, layer: str, values, shared: bool, logits: bool) -> None:
    """One layer's outputs for the digit, and a conv layer's kernels on request."""
    card = layer in view.unit_layers

    def on_click() -> None:
        data = panels.clicked(f"fm_maps_{layer}")
        if data and card:
            state.select_unit(Unit(layer, int(data[0])))

    clickable = dict(on_select=on_click, selection_mode="points") if card else {}
    if values.ndim == 3:
        st.caption(
            f"{layer}: {values.shape[0]} channels of {values.shape[1]}×{values.shape[2]}. Hover for values"
            + ("; click a channel for its unit card." if card else ".")
        )
        st.plotly_chart(
            figures.feature_maps(values, layer, shared),
            key=f"fm_maps_{layer}",
            config=figures.CHART_CONFIG,
            **clickable,
        )
    elif logits:
        st.caption(f"{layer}: the {len(values)} output scores (logits); softmax turns them into the probabilities.")
        st.plotly_chart(
            figures.units(values, layer, view.data.classes), key=f"fm_units_{layer}", config=figures.CHART_CONFIG
        )
    else:
        st.caption(
            f"{layer}: {values.shape[0]} units after their activation, the features the next layer weighs"
            + (" into a decision. Click a unit for its card." if card else ".")
        )
        st.plotly_chart(figures.units(values, layer), key=f"fm_maps_{layer}", config=figures.CHART_CONFIG, **clickable)
    if card:
        # The chosen unit of this layer, else the layer's strongest on this digit.
        strongest = int(values.reshape(len(values), -1).max(axis=1).argmax())
        unit = view.unit if view.unit.layer == layer else Unit(layer, strongest)
        _unit_link(view, unit)
    if card and view.unit_layers[layer].grid is not None:
        kernels_box = st.expander(f"{layer}'s kernels (weights)", key=f"fm_kernels_open_{layer}", on_change="rerun")
        if kernels_box.open:
            with kernels_box:
                weights = cache.kernels(view.ref, layer)
                if weights is None or weights.shape[0] * weights.shape[1] > KERNELS_DRAWN:
                    st.caption(
                        f"{layer}'s kernels are too many to draw at once: each channel's unit card draws its own."
                    )
                else:
                    st.plotly_chart(
                        figures.kernels(weights, layer), key=f"fm_kernels_{layer}", config=figures.CHART_CONFIG
                    )


def _unit_link(view: View, unit: Unit, key: str | None = None) -> None:
    """A button that opens ``unit``'s card (the selection changes, then the page)."""
    title = unit.title(view.unit_layers)
    if st.button(f"Open the unit card of {title}", key=key or f"fm_card_{unit.layer}", icon=":material/grain:"):
        state.select_unit(unit)
        st.switch_page("app_pages/units.py")


render(state.page_view())
