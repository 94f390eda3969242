"""The smallest change: a search edits the ink until the network reads another class; what is
shown is the network re-run on the result, beside the nearest real training digit of that class."""

import numpy as np
import streamlit as st

from core import probe_words
from core.network import NetworkError
from dashboard import cache, figures, panels, probe_figures, state
from dashboard.view import Probe, View


def render(view: View, base: np.ndarray, title: str) -> None:
    names = view.data.classes
    probs = cache.probabilities(view.ref, base.tobytes())
    pred = int(probs.argmax())
    others = [k for k in range(len(names)) if k != pred]
    probe = view.probe
    default = probe.target if probe.target in others else int(np.argsort(-probs)[1])
    cols = st.columns([1.4, 2, 2])
    target = cols[0].selectbox(
        "Make it read", others, index=others.index(default), format_func=lambda k: names[k], key=f"probe_target_{pred}"
    )
    if target != probe.target:
        state.select_probe(Probe(probe.tool, probe.kind, int(target)))
    confidence = cols[1].slider("with a probability of at least", 0.5, 0.99, 0.9, step=0.01, key="probe_confidence")
    st.caption(
        f"A search edits the ink of {title} (now read as {names[pred]}, {probs[pred]:.0%}) step by step, keeping "
        "every pixel between black and white and charging for each unit of ink changed and, more, for ink added far "
        "from the strokes, until the network reads the class asked for. What is shown is the network run again on "
        "the result, not the search's own estimate."
    )
    search = (str(view.ref), base.tobytes(), int(target), float(confidence))
    if not state.searched(search):
        if not cols[2].button("Search", type="primary", icon=":material/search:", key="probe_search"):
            return
        state.mark_searched(search)
    bar = st.progress(0.0, "Searching…")
    found = cache.counterfactual(view.ref, base.tobytes(), int(target), float(confidence), bar.progress)
    bar.empty()
    edited = np.round(found.edited * 255).astype(np.uint8)
    sentence = probe_words.counterfactual_sentence(found, names, view.words)
    if found.reached:
        st.success(sentence, icon=":material/check:")
    else:
        st.warning(sentence, icon=":material/block:")
    left, right = st.columns([1.6, 1])
    with left:
        st.plotly_chart(
            probe_figures.before_after(base, edited, (title, "after the change", "change (red: ink added)")),
            key="probe_change_images",
            config=figures.CHART_CONFIG,
        )
        st.plotly_chart(
            probe_figures.compare_probabilities(probs, found.probs, names, (title, "after the change")),
            key="probe_change_probs",
            config=figures.CHART_CONFIG,
        )
    with right:
        try:
            nearest = cache.nearest_training_digit(view.ref, edited.tobytes(), int(target))
        except NetworkError as err:
            st.caption(f"No nearest training {view.words.noun}: {err}.")
        else:
            st.markdown(f"**The nearest real {names[target]}** in the features the last layer reads:")
            panels.digit_grid(view, "train", np.array([nearest]), "probe_nearest", columns=1)
        if st.button("Keep editing it by hand", icon=":material/edit:", key="probe_change_edit"):
            state.probe_instead(view, edited, f"{title}, changed toward {names[target]}")
            state.select_probe(Probe("edit", probe.kind, int(target)))
            st.rerun()
