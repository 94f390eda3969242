"""Pieces of page that several pages draw the same way."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core import explanation_checks, scorecard
from core.data import DIGIT_NAMES, MNIST_WORDS, Naming, one_of
from core.jobs import CANCELLED, DONE, FAILED, QUEUED, WAITING, JobStatus
from core.network import NetworkError
from dashboard import cache, figures, state, words
from dashboard.view import DATA_SPLITS, DRAWN, Sample, View

PAGE_SIZE = 100  # tiles per page: one mosaic of 10 x 10
POLL_S = 1.0  # how often a page waiting for a training job looks at it


def clicked(chart_key: str) -> list | None:
    """The customdata of the point clicked in a chart, as a list, or None.

    The browser sends a point's customdata as an object keyed "0", "1", …, not a list.
    """
    points = st.session_state[chart_key].selection.points
    if not points:
        return None
    data = points[0].get("customdata")
    if data is None:  # a point without data (a label, say): not a selection
        return None
    if isinstance(data, dict):
        return [data[k] for k in sorted(data, key=int)]
    return list(data) if isinstance(data, (list, tuple)) else [data]


def tile_captions(
    evaluation, indices: np.ndarray, short: bool = False, classes: tuple[str, ...] = DIGIT_NAMES
) -> tuple[list[str], np.ndarray, list[str]]:
    """Caption, wrongness and hover text for each tile of a digit grid (``short``: confidence only),
    naming classes by ``classes``."""
    labels = evaluation.labels[indices]
    preds = evaluation.preds[indices]
    conf = evaluation.confidence[indices]
    probs = evaluation.probs[indices]
    wrong = labels != preds
    captions = [
        f"{c:.0%}" if short else f"{classes[t]}→{classes[p]} {c:.0%}" if w else f"{classes[t]} {c:.0%}"
        for t, p, c, w in zip(labels, preds, conf, wrong, strict=True)
    ]
    hover = []
    for i, t, p, row in zip(indices, labels, preds, probs, strict=True):
        top = np.argsort(-row)[:3]
        hover.append(
            f"#{i:,} · true {classes[t]} · predicted {classes[p]}<br>"
            + " · ".join(f"{classes[k]}: {row[k]:.1%}" for k in top)
        )
    return captions, wrong, hover


def digit_grid(
    view: View,
    split: str,
    indices: np.ndarray,
    key: str,
    columns: int = 10,
    short: bool = False,
    tiles: tuple[list[str], np.ndarray, list[str]] | None = None,
) -> None:
    """A clickable grid of digits; a click makes the digit the selected sample. The captions
    say label, prediction and confidence (before a model is trained, the labels only), unless
    ``tiles`` gives each tile's caption, whether it is drawn as a mistake, and its hover text."""
    images = view.data.split(split).images[indices]
    if tiles is not None:
        captions, wrong, hover = tiles
    elif view.trained is not None:
        evaluation = cache.evaluation(view.ref, split)
        captions, wrong, hover = tile_captions(evaluation, indices, short, view.data.classes)
    else:
        labels = view.data.split(split).labels[indices]
        captions = [view.data.classes[t] for t in labels]
        wrong = np.zeros(len(indices), dtype=bool)
        hover = [f"#{i:,} · label {view.data.classes[t]}" for i, t in zip(indices, labels, strict=True)]
    selected = None
    if view.sample.split == split:
        hits = np.flatnonzero(indices == view.sample.index)
        selected = int(hits[0]) if len(hits) else None

    def on_click() -> None:
        data = clicked(key)
        if data:
            state.select(split, int(data[0]))

    st.plotly_chart(
        figures.digit_grid(images, indices, captions, wrong, hover, columns=columns, selected=selected),
        key=key,
        on_select=on_click,
        selection_mode="points",
        config=figures.CHART_CONFIG,
        width="content",
    )


def sample_probs(view: View, sample: Sample, image: np.ndarray) -> np.ndarray:
    """The model's class probabilities for a sample, float32 (10,)."""
    if sample.split == DRAWN:
        return cache.probabilities(view.ref, image.tobytes())
    return cache.evaluation(view.ref, sample.split).probs[sample.index]


def sample_detail(
    view: View,
    sample: Sample,
    image: np.ndarray,
    image_title: str = "",
    map_link: bool = True,
    behind_link: bool = True,
) -> None:
    """A digit large, its probabilities, and links to look inside the network."""
    label = None if sample.split == DRAWN else view.label(sample)
    probs = sample_probs(view, sample, image)
    pred = int(np.argmax(probs))
    st.markdown("#### " + prediction_text(sample, label, probs, view.data.classes, view.words))
    left, right = st.columns([2, 3])
    with left:
        st.plotly_chart(
            figures.digit(image, image_title, size=200), key=f"detail_image_{sample.split}", config=figures.CHART_CONFIG
        )
    with right:
        st.plotly_chart(
            figures.probabilities(probs, label, pred, view.data.classes),
            key=f"detail_probs_{sample.split}",
            config=figures.CHART_CONFIG,
        )
    digit_links(sample, map_link, behind_link, view.words)


def digit_links(sample: Sample, map_link: bool = True, behind_link: bool = True, words: Naming = MNIST_WORDS) -> None:
    """Links to the pages about the selected digit (``words``: what the data set calls one; by
    default a digit)."""
    title = sample.title_in(words)
    on_map = map_link and sample.split == "test"  # the data map places the test digits
    behind = behind_link and sample.split != DRAWN  # TracIn's bank holds the data set's digits
    links = st.columns(3 + on_map + behind)
    links[0].page_link("app_pages/feature_maps.py", label=f"{title}: its feature maps", icon=":material/layers:")
    links[1].page_link("app_pages/attributions.py", label=f"{title}: its attributions", icon=":material/insights:")
    links[2].page_link("app_pages/probe.py", label="Edit it, bend it", icon=":material/experiment:")
    if on_map:
        links[3].page_link("app_pages/data_map.py", label="On the data map", icon=":material/scatter_plot:")
    if behind:
        links[-1].page_link(
            "app_pages/influence.py",
            label=f"The training {words.plural} behind its answer",
            icon=":material/family_history:",
        )


def sample_picker(view: View, prefix: str) -> Sample:
    """Pick the sample here (split and index, random, or a misclassified one), or keep the
    one chosen on another page; returns the sample to draw."""
    sample = view.sample
    data = view.data
    splits = list(DATA_SPLITS) + ([DRAWN] if view.drawn is not None else [])
    # The shared selection is the truth: put it into this page's widgets before they draw.
    st.session_state[f"{prefix}_split"] = sample.split
    st.session_state[f"{prefix}_index"] = sample.index

    def on_split() -> None:
        split = st.session_state[f"{prefix}_split"]
        state.select(split, 0 if split != sample.split else sample.index)

    def on_index() -> None:
        state.select(st.session_state[f"{prefix}_split"], st.session_state[f"{prefix}_index"])

    def on_random() -> None:
        split = sample.split if sample.split in DATA_SPLITS else "test"
        state.select(split, int(np.random.default_rng().integers(len(data.split(split)))))

    def on_mistake() -> None:
        picked = st.session_state[f"{prefix}_mistake"]
        if picked is not None:
            state.select("test", picked)
        st.session_state[f"{prefix}_mistake"] = None

    evaluation = cache.evaluation(view.ref, "test")
    wrong = evaluation.misclassified
    cols = st.columns([1, 1, 0.6, 2.2])
    cols[0].selectbox(
        "Split",
        splits,
        key=f"{prefix}_split",
        on_change=on_split,
        format_func=lambda s: view.title(Sample(DRAWN, 0)) if s == DRAWN else s,
    )
    if sample.split == DRAWN:
        cols[1].text_input("Index", "—", disabled=True, key=f"{prefix}_index_drawn")
    else:
        cols[1].number_input("Index", 0, len(data.split(sample.split)) - 1, key=f"{prefix}_index", on_change=on_index)
    cols[2].button("Random", key=f"{prefix}_random", on_click=on_random, icon=":material/casino:")
    cols[3].selectbox(
        f"Or one of the {len(wrong):,} misclassified test {view.words.plural} (most confident first)",
        wrong.tolist(),
        index=None,
        key=f"{prefix}_mistake",
        on_change=on_mistake,
        placeholder="Pick a mistake…",
        format_func=lambda i: (
            f"#{i}: {one_of(evaluation.labels[i], data.classes)} read as {data.classes[evaluation.preds[i]]} "
            f"({evaluation.confidence[i]:.0%})"
        ),
    )
    return sample


OTHER_PAGE = {  # a page about one digit links to the other one about it
    "fm": ("app_pages/attributions.py", "Why: its attributions", ":material/insights:"),
    "at": ("app_pages/feature_maps.py", "Its feature maps", ":material/layers:"),
    "units": ("app_pages/feature_maps.py", "Its feature maps", ":material/layers:"),
}


def picked_digit(view: View, prefix: str) -> tuple[Sample, np.ndarray, dict[str, np.ndarray]]:
    """The head of a page about one digit: the picker, then how the network reads the digit
    and a link to the other page about it. Returns the sample, its pixels and every layer's
    output for it."""
    sample = sample_picker(view, prefix)
    image = view.image(sample)
    acts = cache.activations(view.ref, image.tobytes())
    text, link = st.columns([3, 1], vertical_alignment="center")
    text.markdown(
        prediction_text(
            sample, view.label(sample), cache.probabilities(view.ref, image.tobytes()), view.data.classes, view.words
        )
    )
    page, label, icon = OTHER_PAGE[prefix]
    link.page_link(page, label=label, icon=icon)
    return sample, image, acts


def prediction_text(
    sample: Sample,
    label: int | None,
    probs: np.ndarray,
    classes: tuple[str, ...] = DIGIT_NAMES,
    words: Naming = MNIST_WORDS,
) -> str:
    """'**test #8**: the network reads **5** (99.2%) — correct', as Markdown, naming classes by ``classes``
    and the user's own image by ``words`` ("your digit" by default)."""
    pred = int(np.argmax(probs))
    verdict = (
        "" if label is None else (" — correct" if pred == label else f" — **wrong**, it is {one_of(label, classes)}")
    )
    return f"**{sample.title_in(words)}**: the network reads **{classes[pred]}** ({probs[pred]:.1%}){verdict}"


def training_status(key: str, title: str) -> None:
    """A training job's live progress, polled once a second (only this fragment reruns);
    the whole page reruns, and fills in, when the job ends, or, for a page with no model yet,
    as soon as its first epoch is saved (see :func:`provisional_notice`). A failure gets a
    retry button."""
    waiting_page = state.page_view().trained is None  # not the sidebar's watch over another training

    @st.fragment(run_every=POLL_S)
    def watch() -> None:
        jobs = cache.training_jobs()
        status = jobs.status(key)
        if status is None or status.state in (DONE, CANCELLED):
            st.rerun()  # the whole app: the page can now draw the model
        if waiting_page and status.active and cache.provisional_epochs(key):
            st.rerun()  # the first epoch is saved: every page can draw with it
        with st.container(border=True):
            st.markdown(f"**{title}**")
            if status.state == FAILED:
                st.error(status.message, icon=":material/error:")
                st.button("Retry", key=f"retry_{key}", on_click=jobs.retry, args=(key,), icon=":material/refresh:")
                return
            st.progress(*job_progress(status))

    watch()


def provisional_notice(view: View) -> None:
    """Above every page while the model in use is still training: which weights these are,
    the training's progress, and a rerun of the whole app when a later epoch is saved or
    training ends (every page then draws the newer weights, without a reload)."""
    info, key = view.trained.info, view.job.key
    shown = info.epochs_done

    @st.fragment(run_every=POLL_S)
    def watch() -> None:
        status = cache.training_jobs().status(key)
        if status is None or not status.active or cache.provisional_epochs(key) != shown:
            st.rerun()
        fraction, text = job_progress(status)
        with st.container(border=True):
            after = f"{info.config.point_name(shown)} of {info.config.epochs}"
            st.markdown(
                f":material/hourglass_top: **Provisional weights**: after {after}, "
                f"{info.test_accuracy:.1%} of the test {view.words.plural} read right. Every page uses them until "
                "training ends; then the final model replaces them here, without a reload."
            )
            st.progress(fraction, text=text)

    watch()


def work_status(key: str, title: str) -> None:
    """A background computation's progress, polled once a second; the page reruns when it ends."""

    @st.fragment(run_every=POLL_S)
    def watch() -> None:
        status = cache.heavy_work().status(key)
        if status is None or status.state in ("done", "failed"):
            st.rerun()
        with st.container(border=True):
            st.markdown(f"**{title}**")
            st.progress(status.fraction, text=status.text)

    watch()


def wait_for(name: str, view: View, ask: tuple[str, str] | None = None) -> None:
    """A run over the data set that the page waits for (``cache.INDEXES[name]``): start it in
    the shared pool (once, for every session), show its progress, and offer a retry with the
    message if it failed. With ``ask``, a button under that text starts it instead (work of
    minutes): ``ask`` is (the text, the button's label). The page reruns when it ends."""
    index, task = cache.INDEXES[name], cache.task(name, view.ref)
    status = cache.heavy_work().status(task)
    if status is not None and status.state == "failed":
        st.error(
            f"{index.failed.format(noun=view.words.noun, plural=view.words.plural)}: {status.error}",
            icon=":material/error:",
        )
        if not st.button("Try again", key=f"{name}_retry"):
            return
    elif status is None and ask is not None:
        st.info(ask[0])
        if not st.button(ask[1], type="primary", key=f"{name}_start"):
            return
    if status is None or status.state == "failed":
        cache.start(name, view.ref)
    work_status(task, index.title.format(noun=view.words.noun, plural=view.words.plural))


def job_progress(status: JobStatus) -> tuple[float, str]:
    """A progress bar's fraction and text for a job: queued, waiting, or epoch, loss and accuracy."""
    eta = f" · about {status.estimate_s:.0f} s left" if status.estimate_s is not None else ""
    if status.state == QUEUED:
        return 0.0, f"Queued: place {status.position} in line{eta}"
    if status.state == WAITING:
        return 0.0, status.message
    p = status.progress
    if p is None:
        return 0.0, "Preparing to train…"
    accuracy = f" · test accuracy so far {p.test_accuracy:.2%}" if p.test_accuracy is not None else ""
    return p.fraction, f"Training: epoch {p.epoch}/{p.epochs} · loss {p.loss:.3f}{accuracy}{eta}"


# Colour-blind safe: blue and orange, and every state has its own shape too.
BADGE_MARKS = {True: ":blue[✔]", False: ":orange[✖]", None: ":gray[–]"}
BADGE_WORDS = {"trust": ":blue[**trust**]", "doubt": ":orange[**doubt**]", "blank": ":gray[**blank**]"}
BADGE_ICONS = {"trust": ":material/verified:", "doubt": ":material/error:", "blank": ":material/block:"}
BADGE_LEGEND = (
    "Under each map: one word for the whole, then a mark per check: "
    + " · ".join(f"{n}. {name.split(':')[0]}" for n, name in enumerate(explanation_checks.CHECK_NAMES, 1))
    + " (✔ passes, ✖ fails, – not checked). Hover a badge for the numbers; click it for the detail."
)


def badge_label(verdict: explanation_checks.Verdict) -> str:
    """The badge in one short line: the word, then a mark per check."""
    return f"{BADGE_WORDS[verdict.word]} {' '.join(BADGE_MARKS[m] for m in verdict.marks)}"


def trust_badges(view: View, pixels: bytes, label: int | None, requests: list, key: str) -> None:
    """Under a row of maps, one badge per map: a short verdict, the numbers on hover, and a
    click that opens the detail (the cascade of randomised layers and the faithfulness curves)."""
    verdicts: list = []
    with st.spinner("Checking each map: randomisation, deletion, a random network's map…", show_time=True):
        for _, request in requests:
            try:
                verdicts.append(cache.verdict(view.ref, pixels, label, request))
            except NetworkError as err:  # e.g. a layer with weights the randomisation check cannot redraw
                verdicts.append(err)
    columns = st.columns(len(requests))
    for i, (column, (title, request), verdict) in enumerate(zip(columns, requests, verdicts, strict=True)):
        if isinstance(verdict, NetworkError):
            column.caption(f"{title}: not checked. {verdict}")
            continue
        with column:
            if verdict is None:
                st.caption(f"{title}: a difference of two classes' maps; checked maps are single-class ones.")
                continue
            box = st.popover(
                badge_label(verdict),
                icon=BADGE_ICONS[verdict.word],
                help=words.verdict_markdown(verdict),
                key=f"{key}_{i}",
                on_change="rerun",
                width="stretch",
            )
            if box.open:
                with box:
                    _trust_detail(view, pixels, label, title, request, verdict)
    st.caption(BADGE_LEGEND)


def _data_randomisation_detail(view: View, pixels: bytes, label: int | None, title: str, request, original) -> None:
    if view.trained.info.network is not None:  # trained elsewhere: no shuffled-label twin of it here
        st.caption(f"**Data randomisation** {scorecard.HOST_SHUFFLED[0].lower()}{scorecard.HOST_SHUFFLED[1:]}")
        return
    network = cache.shuffled_network(view.ref)
    if network.missing:
        job = cache.start_shuffled_network(view.ref)
        st.caption(
            "**Data randomisation** compares this map with the map of a network that memorised shuffled labels. "
            + (
                "That network is training now (about 15 s, once per server); close and reopen this detail to see it."
                if job
                else "That network is not trained, and this server does not train: the host can run "
                "`python -m core.scorecard` to train it."
            )
        )
        return
    if network.model is None:
        st.caption(f"**Data randomisation:** {network.message}")
        return
    shuffled_map, sim = cache.data_randomisation(view.ref, pixels, label, request)
    st.caption(
        f"**Data randomisation:** {network.message} Its map of this {view.words.noun}, right: its ink pixels rank "
        f"{sim.spearman_abs_ink:.2f} alike with the model's (|map|, Spearman; lower is better: a faithful map "
        "depends on what the network learned)."
    )
    st.plotly_chart(
        figures.attribution_row(
            [original, shuffled_map],
            ["this model", "shuffled-label network"],
            np.frombuffer(pixels, np.uint8).reshape(28, 28),
        ),
        key=f"trust_shuffled_{title}",
        config=figures.CHART_CONFIG,
    )


def _trust_detail(view: View, pixels: bytes, label: int | None, title: str, request, verdict) -> None:
    detail = cache.randomisation_detail(view.ref, pixels, label, request)
    st.markdown(f"**{title}: can this map be trusted?**")
    st.markdown(words.verdict_markdown(verdict, headline=False))
    floor = detail["floor"].spearman_abs_ink
    titles = ["trained"] + [f"+{layers[-1]} random · {sim.spearman_abs_ink:.2f}" for layers, _, sim in detail["steps"]]
    maps = [detail["original"]] + [m for _, m, _ in detail["steps"]]
    st.caption(
        "The map as the layers get random weights, top down (fc2 first). The number is how alike its ink pixels "
        f"still rank (|map|, Spearman; 1 = unchanged); two random networks rank {floor:.2f} alike. A map that "
        f"stays alike after the top layers are random shows the {view.words.noun}, not what the network learned."
    )
    image = np.frombuffer(pixels, np.uint8).reshape(28, 28)
    st.plotly_chart(
        figures.attribution_row(maps, titles, image), key=f"trust_strip_{title}", config=figures.CHART_CONFIG
    )
    st.caption("Each layer randomised alone (the others keep their trained weights):")
    alone = detail["alone"]
    st.plotly_chart(
        figures.attribution_row(
            [m for _, m, _ in alone],
            [f"{layers[0]} random · {sim.spearman_abs_ink:.2f}" for layers, _, sim in alone],
            image,
        ),
        key=f"trust_alone_{title}",
        config=figures.CHART_CONFIG,
    )
    _data_randomisation_detail(view, pixels, label, title, request, detail["original"])
    st.caption(
        f"Deletion removes the {view.words.noun}'s ink in each order, insertion adds it to a black image (which the "
        "network already reads as some class, so it does not start from zero). A faithful map drops the probability "
        "sooner than random order, and sooner than a random network's map."
    )
    st.plotly_chart(
        figures.faithfulness_curves(detail["curves"]), key=f"trust_curves_{title}", config=figures.CHART_CONFIG
    )


def report_button(build, label: str, file_name: str, help: str) -> None:
    """A button that saves an HTML report; ``build`` (no arguments, returns the HTML) runs only
    when it is clicked, on its own thread, through the heavy gate like every map."""
    gate = cache.heavy_gate()

    def html() -> bytes:
        with gate:
            return build().encode()

    st.download_button(
        label,
        html,
        file_name=file_name,
        mime="text/html",
        icon=":material/download:",
        on_click="ignore",
        help=help,
        key=f"report_{file_name}",
    )
