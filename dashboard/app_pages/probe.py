"""Probe the model: edit the selected digit and watch the network answer, bend it along a
range (rotation, shift, scale, thickness, noise, an occluding bar), find the smallest change
of ink that changes its mind, and follow it through the saved epochs. The tools live in
dashboard/probe_tools/, one module each."""

import streamlit as st

from dashboard import panels, state
from dashboard.probe_tools import bend, change, edit, training
from dashboard.view import DRAWN, PROBE_TOOLS, Probe, View

TOOLS = {  # as the URL names them (dashboard.view.PROBE_TOOLS): (title, module)
    "edit": ("Edit it", edit),
    "bend": ("Bend it", bend),
    "change": ("The smallest change", change),
    "training": ("Through training", training),
}


def render(view: View) -> None:
    st.title("Probe the model")
    noun = view.words.noun
    st.caption(
        f"Change the selected {noun} and watch the network answer: edit its ink, bend it along a range, let a search "
        "find the smallest change that makes the network read another class, or follow it through training."
    )
    if view.trained is None:
        panels.training_status(view.job.key, "Probing needs a trained model")
        return
    probe = view.probe
    tool = (
        st.segmented_control(
            "Probe", PROBE_TOOLS, format_func=lambda t: TOOLS[t][0], default=probe.tool, key="probe_tool"
        )
        or probe.tool
    )
    state.select_probe(Probe(tool, probe.kind, probe.target))  # in the URL from the first visit
    base, title = state.probed_digit(view)
    if base.max() < edit.NO_INK:
        st.info(f"This {noun} has no ink: pick or draw {view.words.a} first.", icon=":material/draw:")
        return
    TOOLS[tool][1].render(view, base, title)
    if view.sample.split == DRAWN:
        st.caption(f"Your own {noun} is probed as drawn.")


render(state.page_view())
