"""Behind an answer: the training digits that most raised and most lowered the selected
digit's answer, by TracIn over the saved points (``core.influence``)."""

import numpy as np
import streamlit as st

from core import influence
from core.data import Naming
from dashboard import cache, figures, panels
from dashboard.state import page_view
from dashboard.view import DRAWN, View


def method(words: Naming) -> str:
    """How TracIn is measured, in plain words, the images called as ``words`` calls them."""
    noun, plural = words.noun, words.plural
    return (
        "**How this is measured.** TracIn (Pruthi et al. 2020) follows training: at each saved point it takes the "
        f"gradient of the loss on this {noun} at the class the network answers, and the gradient of the loss on each "
        f"training {noun} at its label, and multiplies them. A positive product means a step on that training {noun} "
        f"lowered this {noun}'s loss: it pushed the network towards its answer. The products are summed over the "
        "saved points, each weighted by the mean learning rate since the point before. Only the last layer (fc2's "
        "weights) is compared, as Captum's TracInCPFast does, and each point's numbers are kept beside its "
        f"checkpoint, so {words.a} takes milliseconds. TracIn is derived for plain gradient descent; this network "
        f"trained with Adam, so the weights per point are a heuristic: read the {plural}, not the exact scores."
    )


def _tiles(view: View, indices: np.ndarray, scores: np.ndarray, labels: np.ndarray, target: int) -> tuple:
    names = view.data.classes
    captions = [names[labels[i]] for i in indices]  # the score is in the hover: tiles are 28 px wide
    other = labels[indices] != target  # a training digit of another class than the answer
    hover = [
        f"training #{i:,} · labelled {names[labels[i]]}<br>TracIn {s:+.3g}"
        for i, s in zip(indices, scores, strict=True)
    ]
    return captions, other, hover


def _row(view: View, title: str, indices: np.ndarray, scores: np.ndarray, target: int, key: str) -> None:
    st.markdown(title)
    if len(indices) == 0:
        st.caption(f"None: no training {view.words.noun} has a score of this sign.")
        return
    labels = cache.given_labels(view.ref, "train")
    panels.digit_grid(view, "train", indices, key, columns=8, tiles=_tiles(view, indices, scores, labels, target))
    same = int((labels[indices] == target).sum())
    st.caption(f"{same} of {len(indices)} are labelled {view.data.classes[target]}.")


def render(view: View) -> None:
    noun, plural = view.words.noun, view.words.plural
    st.title(f"The training {plural} behind an answer")
    st.caption(
        f"Which training {plural} taught the network to answer this way? The ones whose training steps most raised "
        f"the probability of its answer for the selected {noun}, and the ones that most lowered it. Click a training "
        f"{noun} to select it."
    )
    if view.trained is None:
        panels.training_status(view.job.key, f"The training {plural} appear when the model is trained")
        return
    sample = view.sample
    if sample.split == DRAWN:
        st.info(
            f"TracIn looks your {noun} up in what each saved epoch computed for the data set's {plural}, and your own "
            f"{noun} is not among them: pick a test or training {noun}.",
            icon=":material/draw:",
        )
        st.page_link("app_pages/browse.py", label=f"Browse the {plural}", icon=":material/grid_view:")
        return
    banks = cache.result("banks", view.ref)
    if banks is None:
        panels.wait_for("banks", view)
        return
    if sample.index >= len(banks[sample.split][0]):
        st.info(
            f"This model trained on its first {len(banks['train'][0]):,} training {plural} only; training {noun} "
            f"#{sample.index:,} is not among them. Pick another {noun}.",
            icon=":material/info:",
        )
        return
    found = cache.training_digits_behind(view.ref, sample.split, sample.index)
    left, right = st.columns([1.2, 3])
    with left:
        st.plotly_chart(
            figures.digit(view.image(), view.title(sample), size=180), key="behind_digit", config=figures.CHART_CONFIG
        )
        answer = view.data.classes[found.target]
        label = view.data.classes[view.label(sample)]
        st.markdown(f"Labelled **{label}**, read as **{answer}** after {view.epoch_name}.")
        if view.epoch == 1:
            st.caption(
                "Only one saved point leads to these weights, so TracIn here is the gradient similarity at that "
                "point, not a trace through training."
            )
        else:
            config = view.trained.info.config
            st.caption(f"Traced through the saved points from {config.point_name(1)} to {view.epoch_name}.")
    with right:
        _row(
            view,
            f"**Raised its probability of {answer} the most**",
            found.proponents,
            found.proponent_scores,
            found.target,
            "behind_up",
        )
        _row(
            view,
            f"**Lowered its probability of {answer} the most**",
            found.opponents,
            found.opponent_scores,
            found.target,
            "behind_down",
        )
        st.caption(f"Red captions: a training {noun} labelled with another class than the answer.")
    panels.digit_links(sample, behind_link=False, words=view.words)
    with st.expander("How this is measured"):
        st.markdown(method(view.words))
        weights = influence.point_weights(view.trained.info, len(banks["train"][0]))[: view.epoch]
        if view.trained.info.network is not None:
            st.caption("Trained elsewhere: one saved point, weighing 1 (its learning rate is not known here).")
        else:
            st.caption(
                "Weight per saved point (its mean learning rate): " + ", ".join(f"{w:.2g}" for w in weights) + "."
            )


render(page_view())
