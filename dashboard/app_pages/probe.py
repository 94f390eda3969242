"""Probe the model: edit the selected digit and watch the network answer, bend it along a
range (rotation, shift, scale, thickness, noise, an occluding bar), find the smallest change
of ink that changes its mind, and follow it through the saved epochs."""

import io

import numpy as np
import streamlit as st
from PIL import Image

from core import probes
from core.attributions import AttributionRequest
from core.checkpoints import ModelRef
from core.evaluate import softmax
from core.preprocess import EDIT_SCALE, ImageError, edit_digit
from dashboard import cache, figures, panels, probe_figures, state
from dashboard.view import DRAWN, PROBE_TOOLS, Probe, View

EDIT_METHODS = ("Integrated Gradients", "Saliency", "Input × Gradient", "Occlusion")
NO_INK = 13  # a digit whose brightest pixel is under 5% of full ink has nothing to probe


def _probs(view: View, image: np.ndarray) -> np.ndarray:
    return softmax(cache.activations(view.ref, image.tobytes())["fc2"])


def _base(view: View) -> tuple[np.ndarray, str]:
    """The digit being probed: the selected one, or what the person loaded in its place (a
    counterfactual) while the same digit stays selected."""
    loaded = st.session_state.get("probe_base")
    if loaded is not None and loaded["sample"] == view.sample:
        return loaded["image"], loaded["title"]
    return view.image(), view.sample.title


def _load(view: View, image: np.ndarray, title: str) -> None:
    st.session_state["probe_base"] = {"sample": view.sample, "image": image, "title": title}
    st.session_state["probe_round"] = st.session_state.get("probe_round", 0) + 1  # a fresh canvas


# ---- edit ----------------------------------------------------------------------------------


def _edit(view: View) -> None:
    base, title = _base(view)
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
    method = tools[2].selectbox("Map", EDIT_METHODS, key="probe_method")
    if tools[3].button("Start again from the digit", icon=":material/restart_alt:", key="probe_reset"):
        st.session_state.pop("probe_base", None)
        st.session_state["probe_round"] = st.session_state.get("probe_round", 0) + 1
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
            key=f"probe_canvas_{st.session_state.get('probe_round', 0)}",
        )
    with result:
        strokes = canvas.image_data if canvas is not None else None
        try:
            edited = base if strokes is None else edit_digit(base, strokes)
        except ImageError as err:
            st.warning(str(err))
            return
        if edited.max() < NO_INK:
            st.info("The digit has no ink left: draw some, or start again from the digit.", icon=":material/draw:")
            return
        _compare(view, base, edited, title, method)


def _compare(view: View, base: np.ndarray, edited: np.ndarray, title: str, method: str) -> None:
    before, after = _probs(view, base), _probs(view, edited)
    was, now = int(before.argmax()), int(after.argmax())
    names = view.data.classes
    change = "still reads" if was == now else "now reads"
    st.markdown(
        f"The network {change} **{names[now]}** ({after[now]:.1%}); {title} as it was: **{names[was]}** "
        f"({before[was]:.1%})."
    )
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
            [cache.attribution_map(view.ref, pixels, None, request)], [f"{method}, for {names[now]}"], edited
        ),
        key="probe_edit_map",
        config=figures.CHART_CONFIG,
    )
    panels.trust_badges(view, pixels, None, [(method, request)], "probe_edit_trust")
    if st.button("Use the edited digit on every page", icon=":material/done:", key="probe_use"):
        state.select_drawn(edited)
        st.switch_page("app_pages/feature_maps.py")


# ---- bend -------------------------------------------------------------------------------


def _flip_sentence(sweep: probes.Sweep, bend: probes.Bend, names: tuple[str, ...]) -> str:
    was = names[sweep.original_pred]
    low, high = sweep.flips
    if low is None and high is None:
        return f"Across the whole range the network keeps reading **{was}**."
    parts = []
    for flip in (low, high):
        if flip is not None:
            at = int(np.flatnonzero(sweep.values == flip)[0])
            parts.append(f"at {flip:.3g} {bend.unit} it reads **{names[sweep.preds[at]]}**")
    return f"It reads **{was}** as it is; " + " and ".join(parts) + "."


def _bend(view: View) -> None:
    base, title = _base(view)
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
    st.markdown(f"{bend.explanation} {_flip_sentence(sweep, bend, names)}")
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
            "later ones should hold on to the digit."
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
            _load(view, image, f"{title} at {sweep.values[at]:.3g} {bend.unit}")
            state.select_probe(Probe("edit", kind, probe.target))
            st.rerun()
    _flip_summary(view)


def _flip_summary(view: View) -> None:
    st.markdown("**Across the test set**")
    found = cache.flip_summary(view.trained, view.epoch)
    if found is None:
        panels.background(
            cache.flip_summary_task(view.trained, view.epoch),
            lambda: cache.start_flip_summary(view.trained, view.epoch),
            "Rotating and shifting every test digit (once per model and epoch)",
            "Bending the test digits failed",
            key="probe_flips_retry",
        )
        return
    angle, pixels = int(max(found.angles)), int(max(found.shifts))
    st.plotly_chart(
        probe_figures.flip_shares(found.rotation_share, found.shift_share, view.data.classes, angle, pixels),
        key="probe_flip_shares",
        config=figures.CHART_CONFIG,
    )
    st.caption(
        f"The share of each class's test digits whose answer changes when turned by up to ±{angle}° (in steps of "
        f"{probes.FLIP_STEP}°) or moved up to ±{pixels} px along either axis: {found.rotation_flips.mean():.1%} and "
        f"{found.shift_flips.mean():.1%} of all {len(found.rotation_flips):,}."
    )


# ---- the smallest change ---------------------------------------------------------------------


def _change(view: View) -> None:
    base, title = _base(view)
    names = view.data.classes
    probs = _probs(view, base)
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
    key = (str(view.ref), base.tobytes(), int(target), float(confidence))
    results = st.session_state.setdefault("probe_changes", {})
    if key not in results:
        if not cols[2].button("Search", type="primary", icon=":material/search:", key="probe_search"):
            return
        bar = st.progress(0.0, "Searching…")
        with cache.heavy_gate():
            results[key] = probes.counterfactual(
                cache.model(view.ref).model, base, int(target), confidence, progress=bar.progress
            )
        bar.empty()
    found = results[key]
    edited = np.round(found.edited * 255).astype(np.uint8)
    now = int(found.probs.argmax())
    if found.reached:
        st.success(
            f"Read as **{names[target]}** with {found.probs[target]:.1%} after {found.steps} steps, changing "
            f"{found.ink_changed:.1f} pixels' worth of ink.",
            icon=":material/check:",
        )
    else:
        st.warning(
            f"Within its budget of {found.steps} steps the search reached only {found.probs[target]:.1%} for "
            f"{names[target]} (the network now reads {names[now]}): no small change of ink makes this digit a "
            f"{names[target]} at {confidence:.0%}. Try a lower probability or another class.",
            icon=":material/block:",
        )
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
        nearest = cache.nearest_training_digit(view.trained, view.epoch, edited.tobytes(), int(target))
        st.markdown(f"**The nearest real {names[target]}** in fc1 (the features the last layer reads):")
        panels.digit_grid(view, "train", np.array([nearest]), "probe_nearest", columns=1)
        if st.button("Keep editing it by hand", icon=":material/edit:", key="probe_change_edit"):
            _load(view, edited, f"{title}, changed toward {names[target]}")
            state.select_probe(Probe("edit", probe.kind, int(target)))
            st.rerun()


# ---- through training ---------------------------------------------------------------------


def _training(view: View) -> None:
    base, title = _base(view)
    info = view.trained.info
    names = view.data.classes
    label = None if view.sample.split == DRAWN or "probe_base" in st.session_state else view.label()
    request = AttributionRequest.of("Integrated Gradients", {}, target="predicted", upsample=True)
    if info.epochs_done < 2:
        st.info(
            "This model saved its weights once, so there is nothing to travel through. Train one from the sidebar "
            "with more epochs, or with its weights saved more often (Saves per epoch; the default recipe saves three "
            "epochs).",
            icon=":material/timeline:",
        )
        _other_model(view, base, label, request)
        return
    pixels = base.tobytes()
    config = info.config
    points = probe_figures.strip_points(info.epochs_done, view.epoch)
    key = info.folder.name  # info.key is KEY~N while the model still trains
    refs = {p: ModelRef(key, p) if p < info.epochs_done else view.ref.last() for p in points}
    probs = np.stack([_probs_at(refs[p], pixels) for p in points])
    maps = [cache.attribution_map(refs[p], pixels, label, request) for p in points]
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
    strongest, channels = [], []
    for p in points:
        conv4 = cache.activations(refs[p], pixels)["conv4"]
        channels.append(int(conv4.reshape(len(conv4), -1).mean(axis=1).argmax()))
        strongest.append(conv4[channels[-1]])
    st.markdown("**Its strongest conv4 channel** (highest mean activation) at each point:")
    st.plotly_chart(
        figures.layer_maps(strongest, [f"{config.point_name(p)}: #{c}" for p, c in zip(points, channels, strict=True)]),
        key="probe_epoch_features",
        config=figures.CHART_CONFIG,
    )
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
        key=f"probe_epoch_{info.key}",
    )
    if chosen != view.epoch:
        state.use_model(ModelRef(key, chosen) if chosen < info.epochs_done else view.ref.last())
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
    change = probs[ib] - probs[ia]
    up, down = int(change.argmax()), int(change.argmin())
    if np.abs(change).max() < 0.005:
        moved = f"From {na} to {nb} no class's probability moved by half a point: the answer was settled."
    else:
        moved = (
            f"From {na} to {nb} the probability of {names[up]} rose most ({change[up]:+.1%}) and that of "
            f"{names[down]} fell most ({change[down]:+.1%})."
        )
    st.caption(f"{moved} Red in the difference: evidence that grew.")
    _other_model(view, base, label, request)


def _other_model(view: View, base: np.ndarray, label: int | None, request: AttributionRequest) -> None:
    """The same digit read by another cached model trained on the same data, beside this one."""
    info = view.trained.info
    others = {
        i.key: i for i in cache.cached_models() if i.key != info.key and i.data_fingerprint == info.data_fingerprint
    }
    st.markdown("**Another model side by side**")
    if not others:
        st.caption("No other model trained on these digits is cached: train one from the sidebar to compare.")
        return
    key = st.selectbox("Compare with", list(others), format_func=lambda k: others[k].label, key="probe_other")
    names = view.data.classes
    pixels = base.tobytes()
    pair = [view.ref, ModelRef(key)]
    probs = [_probs_at(ref, pixels) for ref in pair]
    maps = [cache.attribution_map(ref, pixels, label, request) for ref in pair]
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


def _probs_at(ref, pixels: bytes) -> np.ndarray:
    return softmax(cache.activations(ref, pixels)["fc2"])


# ---- the page ------------------------------------------------------------------------------


TOOL_NAMES = {
    "edit": "Edit it",
    "bend": "Bend it",
    "change": "The smallest change",
    "training": "Through training",
}


def render(view: View) -> None:
    st.title("Probe the model")
    st.caption(
        "Change the selected digit and watch the network answer: edit its ink, bend it along a range, let a search "
        "find the smallest change that makes the network read another class, or follow it through training."
    )
    if view.trained is None:
        panels.training_status(view.job.key, "Probing needs a trained model")
        return
    probe = view.probe
    tool = (
        st.segmented_control("Probe", PROBE_TOOLS, format_func=TOOL_NAMES.get, default=probe.tool, key="probe_tool")
        or probe.tool
    )
    state.select_probe(Probe(tool, probe.kind, probe.target))  # in the URL from the first visit
    base, _ = _base(view)
    if base.max() < NO_INK:
        st.info("This digit has no ink: pick or draw a digit first.", icon=":material/draw:")
        return
    if tool == "edit":
        _edit(view)
    elif tool == "bend":
        _bend(view)
    elif tool == "change":
        _change(view)
    else:
        _training(view)
    if view.sample.split == DRAWN:
        st.caption("Your own digit is probed as drawn.")


render(state.page_view())
