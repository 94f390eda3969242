"""Attributions: which pixels and which units the network's answer rests on, compared
across methods, across layers and across target classes."""

import numpy as np
import streamlit as st

from core.attributions import INPUT_METHODS, LAYER_METHODS, LAYERS, METHODS, TARGETS, AttributionError
from core.evaluate import softmax
from dashboard import cache, figures, panels, state

DEFAULT_METHODS = ["Saliency", "Integrated Gradients", "Input × Gradient", "Guided Backprop", "Occlusion"]

trained = state.current_model()
key = state.model_ref()
st.title("Why: attributions")
st.caption(
    "An attribution map scores every pixel (or unit) by how much it pushed the network toward the target class: "
    "red for, blue against, white for no effect. Each map has its own scale; the grey line is the digit's outline."
)
sample = panels.sample_picker("at")
image = state.sample_image(sample)
pixels = image.tobytes()
label = state.sample_label(sample)
probs = softmax(cache.activations(key, pixels)["fc2"])
pred = int(np.argmax(probs))
panels.prediction_line(sample, probs)

cols = st.columns([1.2, 0.6, 2.2])
targets = [t for t in TARGETS if label is not None or t in ("predicted", "class")]
target = cols[0].selectbox(
    "Explain the score of",
    targets,
    key="at_target",
    format_func=lambda t: {
        "predicted": f"the predicted class ({pred})",
        "true": f"the true class ({label})",
        "predicted − true": "predicted minus true (what pushed the mistake)",
        "class": "a class I pick",
    }[t],
)
chosen = cols[1].number_input("Class", 0, 9, value=pred, key="at_class", disabled=target != "class")

with st.expander("Method options"):
    option_cols = st.columns(3)
    options: dict[str, object] = {}
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


def compute(method: str, target_name: str, layer: str | None = None, upsample: bool = True, cls: int = 0):
    """A map, or None after showing a clear message."""
    wanted = {o.name: options[o.name] for o in METHODS[method].options}
    try:
        return cache.attribution_map(
            key, pixels, label, method, target_name, int(cls), layer, upsample, tuple(sorted(wanted.items()))
        )
    except AttributionError as err:
        st.error(str(err), icon=":material/block:")
        return None


def draw_row(results: list, key: str) -> list:
    """Maps side by side, skipping those that only produced a message; returns what was drawn."""
    results = [(title, a) for title, a in results if a is not None]
    if results:
        st.plotly_chart(
            figures.attribution_row([a for _, a in results], [t for t, _ in results], image),
            key=key,
            config=figures.CHART_CONFIG,
        )
    return results


by_method, by_layer, by_target = st.tabs(["Compare methods", "Compare layers", "Compare targets"])

with by_method:
    chosen_methods = st.multiselect("Methods", INPUT_METHODS, default=DEFAULT_METHODS, key="at_methods")
    results = draw_row([(m, compute(m, target, cls=chosen)) for m in chosen_methods], "at_methods_row")
    for m, _ in results:
        st.caption(f"**{m}**: {METHODS[m].description}")
    if not chosen_methods:
        st.info("Choose at least one method.")

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
    spatial = [layer for layer in LAYERS if layer != "fc1"]
    maps = []
    for layer in spatial:
        result = compute(method, target, layer, upsample=not raw, cls=chosen)
        if result is not None:
            maps.append((layer, result))
    if maps:
        if raw:
            size = max(m.shape[0] for _, m in maps)
            padded = [
                np.pad(m, [((size - m.shape[0]) // 2, (size - m.shape[0] + 1) // 2)] * 2, constant_values=np.nan)
                for _, m in maps
            ]
            outline = np.zeros((size, size))
            fig = figures.attribution_row(
                padded, [f"{layer} ({m.shape[0]}×{m.shape[1]})" for layer, m in maps], outline
            )
        else:
            fig = figures.attribution_row([m for _, m in maps], [layer for layer, _ in maps], image)
        st.plotly_chart(fig, key="at_layers_row", config=figures.CHART_CONFIG)
        blank = [layer for layer, m in maps if not np.any(m)]
        if blank:
            st.caption(
                f"Blank: {', '.join(blank)}. {method} found no evidence there for this target"
                + (" (Grad-CAM keeps only the positive part)." if method == "Grad-CAM" else ".")
            )
    fc1 = compute(method, target, "fc1", cls=chosen) if "fc1" in METHODS[method].layers else None
    if fc1 is not None:
        st.caption("fc1 has no position: its 20 units' attributions instead.")
        st.plotly_chart(figures.units(fc1, "fc1"), key="at_layers_fc1", config=figures.CHART_CONFIG)
    elif "fc1" not in METHODS[method].layers:
        st.caption(f"fc1 is left out: {METHODS[method].not_applicable}.")

with by_target:
    method = st.selectbox(
        "Method", INPUT_METHODS, index=INPUT_METHODS.index("Integrated Gradients"), key="at_target_method"
    )
    if label is not None and label != pred:
        panels_spec = [
            ("true", label, f"true class {label}"),
            ("predicted", pred, f"predicted {pred}"),
            ("predicted − true", 0, f"{pred} minus {label}"),
        ]
        st.caption("A mistake: what speaks for the right answer, for the wrong one, and what tipped it.")
    else:
        runner_up = int(np.argsort(-probs)[1])
        panels_spec = [("class", pred, f"predicted {pred}"), ("class", runner_up, f"runner-up {runner_up}")]
        st.caption(f"Read correctly: the evidence for {pred} beside the evidence for the runner-up, {runner_up}.")
    results = [(title, compute(method, t, cls=c)) for t, c, title in panels_spec]
    if len(panels_spec) == 2 and all(a is not None for _, a in results):
        results.append((f"{pred} minus {runner_up}", results[0][1] - results[1][1]))
    draw_row(results, "at_targets_row")
