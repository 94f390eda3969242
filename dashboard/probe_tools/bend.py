"""Bend it: the digit along a whole range (rotation, shift, scale, thickness, noise, an
occluding bar) in one batch, and how often the test digits flip under a small bend."""

import numpy as np
import streamlit as st

from core import probe_words, probes
from dashboard import cache, figures, panels, probe_figures, state
from dashboard.view import Probe, View


def render(view: View, base: np.ndarray, title: str) -> None:
    probe = view.probe
    kind = (
        st.segmented_control(
            "Bend",
            list(probes.KINDS),
            format_func=lambda k: k.replace("_", " "),
            default=probe.kind,
            key="probe_kind",
        )
        or probe.kind
    )
    if kind != probe.kind:
        state.select_probe(Probe(probe.tool, kind, probe.target))
    bend = probes.KINDS[kind]
    sweep = cache.probe_sweep(view.ref, base.tobytes(), kind)
    names = view.data.classes
    st.markdown(f"{bend.explanation} {probe_words.flip_sentence(sweep, bend, names)}")
    left, right = st.columns([2.4, 1])
    with left:
        st.plotly_chart(
            probe_figures.sweep_probabilities(sweep.values, sweep.probs, names, bend.unit, sweep.flips, bend.identity),
            key="probe_sweep_probs",
            config=figures.CHART_CONFIG,
        )
        st.plotly_chart(
            probe_figures.sweep_similarity(sweep.values, sweep.similarity, bend.unit),
            key="probe_sweep_layers",
            config=figures.CHART_CONFIG,
        )
        st.caption(
            f"{len(sweep.values)} versions of {title}, run through the network in one batch. Below: how alike each "
            "layer's feature maps stay to the original's (Pearson correlation); early layers follow the pixels, "
            f"later ones should hold on to the {view.words.noun}."
        )
    with right:
        at = st.select_slider(
            f"Look at one ({bend.unit})",
            options=list(range(len(sweep.values))),
            value=int(np.argmin(np.abs(sweep.values - bend.identity))),
            format_func=lambda i: f"{sweep.values[i]:.3g}",
            key=f"probe_at_{kind}",
        )
        pred = int(sweep.preds[at])
        image = np.round(sweep.images[at] * 255).astype(np.uint8)
        st.plotly_chart(
            figures.digit(
                image, f"{sweep.values[at]:.3g} {bend.unit}: {names[pred]} ({sweep.probs[at, pred]:.0%})", 220
            ),
            key="probe_sweep_digit",
            config=figures.CHART_CONFIG,
        )
        if st.button("Edit this version", icon=":material/edit:", key="probe_bend_edit"):
            state.probe_instead(view, image, f"{title} at {sweep.values[at]:.3g} {bend.unit}")
            state.select_probe(Probe("edit", kind, probe.target))
            st.rerun()
    _flip_summary(view)


def _flip_summary(view: View) -> None:
    st.markdown("**Across the test set**")
    found = cache.result("flips", view.ref)
    if found is None:
        panels.wait_for("flips", view)
        return
    angle, pixels = int(max(found.angles)), int(max(found.shifts))
    st.plotly_chart(
        probe_figures.flip_shares(found.rotation_share, found.shift_share, view.data.classes, angle, pixels),
        key="probe_flip_shares",
        config=figures.CHART_CONFIG,
    )
    st.caption(
        f"The share of each class's test {view.words.plural} whose answer changes when turned by up to ±{angle}° "
        f"(in steps of {probes.FLIP_STEP}°) or moved up to ±{pixels} px along either axis: "
        f"{found.rotation_flips.mean():.1%} and {found.shift_flips.mean():.1%} of all {len(found.rotation_flips):,}."
    )
