"""Through training: the digit's answer and evidence at each saved point of the model, its
strongest channel of the last layer with positions at each (and that channel's unit card), two
points side by side, and another model beside this one."""

import numpy as np
import streamlit as st

from core import probe_words
from core.activations import strongest_channels
from core.attributions import AttributionRequest
from core.checkpoints import ModelRef
from dashboard import cache, figures, probe_figures, state
from dashboard.view import DRAWN, Unit, View

REQUEST = AttributionRequest.of("Integrated Gradients", {}, target="predicted", upsample=True)


def render(view: View, base: np.ndarray, title: str) -> None:
    info = view.trained.info
    names = view.data.classes
    label = None if view.sample.split == DRAWN or state.probe_loaded() else view.label()
    if info.epochs_done < 2:
        st.info(
            "This model saved its weights once, so there is nothing to travel through. Train one from the sidebar "
            "with more epochs, or with its weights saved more often (Saves per epoch; the default recipe saves six "
            "points, twice an epoch).",
            icon=":material/timeline:",
        )
        _other_model(view, base, label)
        return
    pixels = base.tobytes()
    config = info.config
    points = probe_figures.strip_points(info.epochs_done, view.epoch)
    refs = {p: view.at(p) for p in points}
    probs = np.stack([cache.probabilities(refs[p], pixels) for p in points])
    maps = [cache.attribution_map(refs[p], pixels, label, REQUEST) for p in points]
    preds = probs.argmax(axis=1)
    titles = [
        f"{config.point_name(p)}: {names[c]} ({probs[i, c]:.0%})"
        for i, (p, c) in enumerate(zip(points, preds, strict=True))
    ]
    shown = (
        "each saved point"
        if len(points) == info.epochs_done
        else f"{len(points)} of its {info.epochs_done} saved points"
    )
    st.markdown(f"**{title} after {shown}**: the answer, and where the evidence for it lies (Integrated Gradients).")
    st.plotly_chart(figures.attribution_row(maps, titles, base), key="probe_epoch_maps", config=figures.CHART_CONFIG)
    acts = cache.activations(refs[points[-1]], pixels)
    spatial = [name for name, values in acts.items() if values.ndim == 3]
    if not spatial:
        st.caption("This network has no layer with channels to follow through training.")
        return
    layer = "conv4" if "conv4" in spatial else spatial[-1]  # the last layer with positions
    conv4 = [cache.activations(refs[p], pixels)[layer] for p in points]
    channels = [int(strongest_channels(values, 1)[0]) for values in conv4]
    st.markdown(f"**Its strongest {layer} channel** (highest mean activation) at each point:")
    st.plotly_chart(
        figures.layer_maps(
            [values[c] for values, c in zip(conv4, channels, strict=True)],
            [f"{config.point_name(p)}: #{c}" for p, c in zip(points, channels, strict=True)],
        ),
        key="probe_epoch_features",
        config=figures.CHART_CONFIG,
    )
    carded = cache.pooled_layers(view.ref).get(layer, layer)  # a pool's channel c is its layer's channel c
    if carded in view.unit_layers:  # the channel the last point reads strongest, on its card
        unit = Unit(carded, channels[-1])
        if st.button(f"Open the unit card of {unit.title(view.unit_layers)}", key="probe_epoch_card"):
            state.select_unit(unit)
            st.switch_page("app_pages/units.py")
    st.plotly_chart(
        probe_figures.sweep_probabilities(
            np.array([config.point_epoch(p) for p in points]),
            probs,
            names,
            "epoch",
            (None, None),
            config.point_epoch(view.epoch),
        ),
        key="probe_epoch_probs",
        config=figures.CHART_CONFIG,
    )
    everything = list(range(1, info.epochs_done + 1))
    chosen = st.select_slider(
        "Show every page at",
        everything,
        value=view.epoch,
        format_func=config.point_name,
        key=f"probe_epoch_{info.key}",  # a new slider when more points are saved
    )
    if chosen != view.epoch:
        state.use_model(view.at(chosen))
        st.rerun()
    st.markdown("**Two points side by side**")
    cols = st.columns(2)
    a = cols[0].selectbox("From", points, index=0, format_func=config.point_name, key="probe_from")
    b = cols[1].selectbox("To", points, index=len(points) - 1, format_func=config.point_name, key="probe_to")
    ia, ib = points.index(a), points.index(b)
    na, nb = config.point_name(a), config.point_name(b)
    st.plotly_chart(
        figures.attribution_row([maps[ia], maps[ib], maps[ib] - maps[ia]], [na, nb, f"{nb} minus {na}"], base),
        key="probe_epoch_pair",
        config=figures.CHART_CONFIG,
    )
    moved = probe_words.moved_sentence(probs[ia], probs[ib], names, na, nb)
    st.caption(f"{moved} Red in the difference: evidence that grew.")
    _other_model(view, base, label)


def _other_model(view: View, base: np.ndarray, label: int | None) -> None:
    """The same digit read by another cached model trained on the same data, beside this one."""
    info = view.trained.info
    others = {
        i.key: i for i in cache.cached_models() if i.key != info.key and i.data_fingerprint == info.data_fingerprint
    }
    st.markdown("**Another model side by side**")
    if not others:
        st.caption(
            f"No other model trained on these {view.words.plural} is cached: train one from the sidebar to compare."
        )
        return
    key = st.selectbox("Compare with", list(others), format_func=lambda k: others[k].label, key="probe_other")
    names = view.data.classes
    pixels = base.tobytes()
    pair = [view.ref, ModelRef(key)]
    probs = [cache.probabilities(ref, pixels) for ref in pair]
    maps = [cache.attribution_map(ref, pixels, label, REQUEST) for ref in pair]
    titles = [
        f"{who}: {names[int(p.argmax())]} ({p.max():.0%})"
        for who, p in zip(("this model", others[key].config.recipe + " model"), probs, strict=True)
    ]
    st.plotly_chart(
        figures.attribution_row([*maps, maps[1] - maps[0]], [*titles, "other minus this"], base),
        key="probe_model_pair",
        config=figures.CHART_CONFIG,
    )
    st.caption(
        f"This model: {info.label}. The other: {others[key].label}. Each map explains its own model's answer; red in "
        "the difference is evidence the other model weighs more."
    )
