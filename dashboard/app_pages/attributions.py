"""Attributions: which pixels and which units the network's answer rests on, compared
across methods, across layers and across target classes."""

import numpy as np
import streamlit as st

from core.attributions import (
    INPUT_METHODS,
    LAYER_METHODS,
    LAYERS,
    METHODS,
    TARGETS,
    AttributionError,
    AttributionRequest,
)
from dashboard import cache, figures, panels, report, state
from dashboard.unit_digit_panel import channel_links
from dashboard.view import View

DEFAULT_METHODS = ["Saliency", "Integrated Gradients", "Input × Gradient", "Guided Backprop", "Occlusion"]


def render(view: View) -> None:
    st.title("Why: attributions")
    noun = view.words.noun
    st.caption(
        "An attribution map scores every pixel (or unit) by how much it pushed the network toward the target class: "
        f"red for, blue against, white for no effect. Each map has its own scale; the grey line is the {noun}'s "
        "outline."
    )
    if view.trained is None:
        panels.training_status(view.job.key, "Attributions appear when the model is trained")
        return
    sample, image, _ = panels.picked_digit(view, "at")
    pixels = image.tobytes()
    label = view.label(sample)
    probs = cache.probabilities(view.ref, pixels)
    pred = int(np.argmax(probs))
    names = view.data.classes

    cols = st.columns([1.2, 0.6, 2.2])
    targets = [t for t in TARGETS if label is not None or t in ("predicted", "class")]
    target = cols[0].selectbox(
        "Explain the score of",
        targets,
        key="at_target",
        format_func=lambda t: {
            "predicted": f"the predicted class ({names[pred]})",
            "true": f"the true class ({'' if label is None else names[label]})",
            "predicted − true": "predicted minus true (what pushed the mistake)",
            "class": "a class I pick",
        }[t],
    )
    chosen = cols[1].selectbox(
        "Class",
        range(len(names)),
        index=pred,
        format_func=names.__getitem__,
        key="at_class",
        disabled=target != "class",
    )
    options = _method_options()

    def ask(method: str, target_name: str, layer: str | None = None, upsample: bool = True, cls: int = 0):
        return AttributionRequest.of(
            method, options, target=target_name, chosen_class=int(cls), layer=layer, upsample=upsample
        )

    def compute(request: AttributionRequest):
        """A map, or None after showing a clear message."""
        try:
            return cache.attribution_map(view.ref, pixels, label, request)
        except AttributionError as err:
            st.error(str(err), icon=":material/block:")
            return None

    def draw_row(asked: list[tuple[str, AttributionRequest]], key: str) -> list:
        """Maps side by side with a trust badge under each, skipping those that only produced
        a message; returns the (title, map) pairs drawn."""
        with st.spinner(_computing(len(asked), noun), show_time=True):
            results = [(title, request, compute(request)) for title, request in asked]
        results = [(title, request, a) for title, request, a in results if a is not None]
        if results:
            st.plotly_chart(
                figures.attribution_row([a for *_, a in results], [t for t, *_ in results], image),
                key=key,
                config=figures.CHART_CONFIG,
            )
            panels.trust_badges(view, pixels, label, [(t, r) for t, r, _ in results], f"{key}_trust")
        return [(title, a) for title, _, a in results]

    # Lazy tabs: only the open one computes and sends its maps (each tab costs server and
    # browser time, which a full classroom shares).
    by_method, by_layer, by_target = st.tabs(
        ["Compare methods", "Compare layers", "Compare targets"], key="at_tab", on_change="rerun"
    )

    if by_method.open:
        with by_method:
            chosen_methods = st.multiselect("Methods", INPUT_METHODS, default=DEFAULT_METHODS, key="at_methods")
            results = draw_row([(m, ask(m, target, cls=chosen)) for m in chosen_methods], "at_methods_row")
            for m, _ in results:
                st.caption(f"**{m}**: {METHODS[m].description}")
            shown = [ask(m, target, cls=chosen) for m, _ in results]  # the maps as drawn: target, options
            panels.report_button(
                lambda: report.digit_report(
                    view.trained, view.data, image, view.title(sample), label, view.ref.epoch, requests=shown or None
                ),
                f"Save this {noun}'s report",
                f"{sample.title.replace(' ', '').replace('#', '-')}.html",
                f"One HTML file that opens offline: the {noun}, its prediction and probabilities, every conv "
                "layer's feature maps, and the maps above with their trust badges.",
            )
            if not chosen_methods:
                st.info("Choose at least one method.")

    if by_layer.open:
        with by_layer:
            cols = st.columns([1.4, 1])
            method = cols[0].selectbox(
                "Layer method",
                LAYER_METHODS,
                key="at_layer_method",
                help="\n\n".join(f"**{m}**: {METHODS[m].description}" for m in LAYER_METHODS),
            )
            raw = cols[1].toggle(
                "Raw layer resolution",
                value=False,
                key="at_layer_raw",
                help="Off: each map upsampled to the 28×28 input grid. On: the layer's own grid.",
            )
            st.caption(
                "Each layer's map explains its output after its activation: the tensor the Feature maps page shows."
            )
            map_layers, units_layer = _layers(view)
            maps = []
            with st.spinner(_computing(len(map_layers), noun), show_time=True):
                for layer in map_layers:
                    result = compute(ask(method, target, layer, upsample=not raw, cls=chosen))
                    if result is not None:
                        maps.append((layer, result))
            if maps:
                if raw:
                    fig = figures.layer_maps(
                        [m for _, m in maps], [f"{layer} ({m.shape[0]}×{m.shape[1]})" for layer, m in maps]
                    )
                else:
                    fig = figures.attribution_row([m for _, m in maps], [layer for layer, _ in maps], image)
                st.plotly_chart(fig, key="at_layers_row", config=figures.CHART_CONFIG)
                # The checks use each layer's map on the input grid (upsampled), whichever is drawn.
                checked = [(layer, ask(method, target, layer, upsample=True, cls=chosen)) for layer, _ in maps]
                panels.trust_badges(view, pixels, label, checked, "at_layers_trust")
                blank = [layer for layer, m in maps if not np.any(m)]
                if blank:
                    st.caption(
                        f"Blank: {', '.join(blank)}. {method} found no evidence there for this target"
                        + (" (Grad-CAM keeps only the positive part)." if method == "Grad-CAM" else ".")
                    )
            if units_layer is not None:
                if not METHODS[method].spatial:
                    values = compute(ask(method, target, units_layer, cls=chosen))
                    if values is not None:
                        st.caption(f"{units_layer} has no position: its {len(values)} units' attributions instead.")
                        st.plotly_chart(
                            figures.units(values, units_layer), key="at_layers_fc1", config=figures.CHART_CONFIG
                        )
                elif view.host:
                    st.caption(f"{units_layer} is left out: {method} needs a layer with positions.")
                else:
                    st.caption(f"fc1 is left out: {METHODS[method].not_applicable}.")
            channel_links(view, pixels)

    if by_target.open:
        with by_target:
            method = st.selectbox(
                "Method", INPUT_METHODS, index=INPUT_METHODS.index("Integrated Gradients"), key="at_target_method"
            )
            if label is not None and label != pred:
                specs = [
                    ("true", label, f"true class {names[label]}"),
                    ("predicted", pred, f"predicted {names[pred]}"),
                    ("predicted − true", 0, f"{names[pred]} minus {names[label]}"),
                ]
                st.caption("A mistake: what speaks for the right answer, for the wrong one, and what tipped it.")
            else:
                runner_up = int(np.argsort(-probs)[1])
                specs = [
                    ("class", pred, f"predicted {names[pred]}"),
                    ("class", runner_up, f"runner-up {names[runner_up]}"),
                ]
                st.caption(
                    f"Read correctly: the evidence for {names[pred]} beside the evidence for the runner-up, "
                    f"{names[runner_up]}."
                )
            results = draw_row([(title, ask(method, t, cls=c)) for t, c, title in specs], "at_targets_row")
            if len(specs) == 2 and len(results) == 2:
                st.plotly_chart(
                    figures.attribution_row(
                        [results[0][1] - results[1][1]], [f"{names[pred]} minus {names[runner_up]}"], image
                    ),
                    key="at_targets_contrast",
                    config=figures.CHART_CONFIG,
                )


def _computing(count: int, noun: str = "digit") -> str:
    """The spinner's words while a row of maps is computed (shown only when it takes a while:
    a digit, method or option this server has not explained before); ``noun``: what the data set
    calls one image."""
    return f"Computing {count} attribution map{'s' if count != 1 else ''} for this {noun}…"


def _layers(view: View) -> tuple[list[str], str | None]:
    """The layers compared: those with positions (maps), and the last layer of units before the
    logits (bars): the reference's conv1..conv4 and fc1, a host's from its graph."""
    if not view.host:
        return [layer for layer in LAYERS if layer != "fc1"], "fc1"
    network = cache.network(view.ref)
    shapes = {layer.node: layer.shape for layer in network.layers}
    names = list(network.shown)[:-1]  # the last is the logits
    units = [name for name in names if len(shapes[network.shown[name]]) == 1]
    return [name for name in names if len(shapes[network.shown[name]]) == 3], units[-1] if units else None


def _method_options() -> dict[str, object]:
    """Every method option once, in an expander; each method takes the ones it uses."""
    options: dict[str, object] = {}
    with st.expander("Method options"):
        option_cols = st.columns(3)
        seen = {}
        for method in METHODS.values():
            for option in method.options:
                seen.setdefault(option.name, option)
        for i, option in enumerate(seen.values()):
            column = option_cols[i % 3]
            if option.choices:
                options[option.name] = column.selectbox(
                    option.label, option.choices, key=f"at_opt_{option.name}", help=option.help
                )
            else:
                step = 1 if isinstance(option.default, int) else 0.05
                options[option.name] = column.number_input(
                    option.label, value=option.default, step=step, key=f"at_opt_{option.name}", help=option.help
                )
        st.caption("Values outside a method's range get a message on the map instead of a result.")
    return options


render(state.page_view())
