"""Edit it: add or erase ink on the digit; the answer, the probabilities and a map follow every stroke."""

import io

import numpy as np
import streamlit as st
from PIL import Image

from core import probe_words
from core.attributions import AttributionRequest
from core.preprocess import EDIT_SCALE, ImageError, edit_digit
from dashboard import cache, figures, panels, probe_figures, state
from dashboard.view import View

METHODS = ("Integrated Gradients", "Saliency", "Input × Gradient", "Occlusion")
NO_INK = 13  # a digit whose brightest pixel is under 5% of full ink has nothing to probe


def render(view: View, base: np.ndarray, title: str) -> None:
    st.caption(
        f"Add ink or erase it on {title}; the answer, the probabilities and the map follow every stroke. Nothing is "
        "re-centred: the change stays where you draw it."
    )
    try:
        from streamlit_drawable_canvas import st_canvas
    except Exception as err:  # the component could not load: say so, keep the rest of the page
        st.info(f"The drawing canvas is unavailable here ({err}).")
        return
    tools = st.columns([1.2, 1.2, 1.6, 2])
    pen = tools[0].segmented_control("Pen", ["Add ink", "Erase"], default="Add ink", key="probe_pen") or "Add ink"
    width = tools[1].slider("Stroke", 8, 40, 22, step=2, key="probe_stroke")
    method = tools[2].selectbox("Map", METHODS, key="probe_method")
    noun = view.words.noun
    if tools[3].button(f"Start again from the {noun}", icon=":material/restart_alt:", key="probe_reset"):
        state.probe_the_digit()
        st.rerun()
    pad, result = st.columns([1, 1.5], gap="large")
    with pad:
        picture = Image.fromarray(255 - base).resize((28 * EDIT_SCALE, 28 * EDIT_SCALE), Image.Resampling.NEAREST)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        canvas = st_canvas(
            stroke_width=width,
            stroke_color="#000000" if pen == "Add ink" else "#FFFFFF",
            background_image=buffer.getvalue(),
            width=28 * EDIT_SCALE,
            height=28 * EDIT_SCALE,
            drawing_mode="freedraw",
            update_streamlit=True,
            return_image_data=True,
            key=f"probe_canvas_{state.canvas_round()}",
        )
    with result:
        strokes = canvas.image_data if canvas is not None else None
        try:
            edited = base if strokes is None else edit_digit(base, strokes)
        except ImageError as err:
            st.warning(str(err))
            return
        if edited.max() < NO_INK:
            st.info(f"The {noun} has no ink left: draw some, or start again from the {noun}.", icon=":material/draw:")
            return
        _compare(view, base, edited, title, method)


def _compare(view: View, base: np.ndarray, edited: np.ndarray, title: str, method: str) -> None:
    before, after = cache.probabilities(view.ref, base.tobytes()), cache.probabilities(view.ref, edited.tobytes())
    names = view.data.classes
    st.markdown(probe_words.edit_sentence(before, after, names, title))
    st.plotly_chart(
        probe_figures.before_after(base, edited, (title, "edited", "change (red: ink added)")),
        key="probe_edit_images",
        config=figures.CHART_CONFIG,
    )
    st.plotly_chart(
        probe_figures.compare_probabilities(before, after, names, (title, "edited")),
        key="probe_edit_probs",
        config=figures.CHART_CONFIG,
    )
    request = AttributionRequest.of(method, {}, target="predicted", upsample=True)
    pixels = edited.tobytes()
    st.plotly_chart(
        figures.attribution_row(
            [cache.attribution_map(view.ref, pixels, None, request)],
            [f"{method}, for {names[int(after.argmax())]}"],
            edited,
        ),
        key="probe_edit_map",
        config=figures.CHART_CONFIG,
    )
    panels.trust_badges(view, pixels, None, [(method, request)], "probe_edit_trust")
    if st.button(f"Use the edited {view.words.noun} on every page", icon=":material/done:", key="probe_use"):
        state.select_drawn(edited)
        st.switch_page("app_pages/feature_maps.py")
