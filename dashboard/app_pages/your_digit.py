"""Your own digit: draw one or upload a photo, see how the network reads it, then look inside."""

import streamlit as st

from core.preprocess import ImageError, Preprocessed, preprocess_array, preprocess_bytes
from dashboard import figures, panels, state
from dashboard.view import DRAWN, Sample, View

CANVAS_SIDE = 280  # 10 screen pixels per MNIST pixel
STROKE = 22  # MNIST strokes are about 2 px wide in the 20 px box: ~2.2 px once scaled to 28
UPLOAD_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"]


def show_result(view: View, result: Preprocessed) -> None:
    """Make the digit the selected sample and show how the network reads it (once it is trained)."""
    state.select_drawn(result.image)
    if view.trained is None:
        st.plotly_chart(figures.digit(result.image, "what the model will see", size=200), config=figures.CHART_CONFIG)
        st.caption("The prediction appears when the model has finished training.")
        return
    panels.sample_detail(view, Sample(DRAWN, 0), result.image, image_title="what the model sees")


def render(view: View) -> None:
    noun, a = view.words.noun, view.words.a
    st.title(f"Your own {noun}")
    st.caption(
        f"Draw {a} or upload a photo of one. It is prepared the way MNIST was: grey levels, light ink "
        "on dark, cropped to the ink, scaled to 20 pixels and centred by its centre of mass in a 28×28 frame."
    )
    if not view.data.digits:
        st.warning(
            f"This model was trained on {view.data.name}, whose classes are {', '.join(view.data.classes)}, not "
            "digits. A drawing or photo is prepared the MNIST way (cropped to the ink, centred), which may not match "
            f"how {view.data.name}'s pictures were made, and it will be read as one of those classes.",
            icon=":material/category:",
        )
    if view.trained is None:
        panels.training_status(view.job.key, "Training the model: draw now, the prediction follows")
    draw, upload = st.tabs(["Draw", "Upload a picture"])

    with draw:

        @st.fragment
        def drawing() -> None:
            """Only this part reruns while drawing: the prediction follows each stroke."""
            try:
                from streamlit_drawable_canvas import st_canvas
            except Exception as err:  # the component could not load: keep the upload working
                st.info(f"The drawing canvas is unavailable here ({err}). Upload a picture instead.")
                return
            pad, result_column = st.columns([1, 1.4], gap="large")
            with pad:
                st.caption(f"Draw one {noun}, large, with the mouse or a finger.")
                canvas = st_canvas(
                    stroke_width=STROKE,
                    stroke_color="#000000",
                    background_color="#FFFFFF",
                    width=CANVAS_SIDE,
                    height=CANVAS_SIDE,
                    drawing_mode="freedraw",
                    update_streamlit=True,
                    return_image_data=True,
                    key=f"canvas_{st.session_state.get('canvas_round', 0)}",
                )
                if st.button("Clear", icon=":material/ink_eraser:", key="canvas_clear"):
                    st.session_state["canvas_round"] = st.session_state.get("canvas_round", 0) + 1
                    st.rerun(scope="fragment")
            with result_column:
                pixels = canvas.image_data
                if pixels is None or pixels[:, :, :3].min() > 200:  # nothing dark drawn yet
                    st.info(f"Draw {a} on the white square: the prediction appears here as you draw.")
                    return
                try:
                    show_result(view, preprocess_array(pixels, view.words))
                except ImageError as err:
                    st.warning(str(err))

        drawing()

    with upload:
        file = st.file_uploader(
            f"A photo or scan of one {'handwritten ' if view.data.digits else ''}{noun}",
            type=UPLOAD_TYPES,
            key="upload_file",
            help=f"Dark ink on light paper or light on dark both work. Crop close to the {noun} for the best result.",
        )
        if file is not None:
            data = file.getvalue()
            try:
                result = preprocess_bytes(data, view.words)
            except ImageError as err:
                st.error(f"{file.name}: {err}", icon=":material/broken_image:")
            else:
                original, shown = st.columns(2)
                with original:
                    note = "dark ink on light: inverted" if result.inverted else "light ink on dark"
                    st.plotly_chart(
                        figures.digit(255 - result.source, f"your picture, in grey ({note})", size=260),
                        key="upload_source",
                        config=figures.CHART_CONFIG,
                    )
                with shown:
                    show_result(view, result)


render(state.page_view())
