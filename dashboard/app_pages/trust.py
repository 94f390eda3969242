"""Which maps to trust: every attribution method scored by every check over a fixed sample
of test digits, computed once per model and epoch in the background and cached on disk."""

import math

import streamlit as st

from core import scorecard
from dashboard import cache, panels, state
from dashboard.view import View


def render(view: View) -> None:
    st.title("Which maps to trust")
    noun, plural = view.words.noun, view.words.plural
    st.caption(
        "Attribution methods disagree. Each row is a method, each column a check, averaged over "
        f"{scorecard.DIGITS} test {plural} (every misread one, then the others stratified by class): the mean and "
        "its 95% interval; ★ marks the best in each column. The Attributions page gives the same checks per map."
    )
    if view.trained is None:
        panels.training_status(view.job.key, "The scorecard can be computed once the model is trained")
        return
    if view.trained.info.provisional:  # a minute of work for weights about to be replaced
        st.info(
            "The scorecard is computed for the finished model: it can be asked for when training ends, in a few "
            "seconds. Meanwhile, the Attributions page checks each map it draws.",
            icon=":material/hourglass_top:",
        )
        return
    card = cache.result("scorecard", view.ref)
    if card is None:
        panels.wait_for(
            "scorecard",
            view,
            ask=(
                f"No scorecard for these weights yet. Computing it takes about two minutes on two CPU cores "
                f"({scorecard.DIGITS} {plural} × {len(scorecard.COLUMNS)} checks × every method); it runs in the "
                "background, is shared with everyone on this server and is kept on disk beside the model.",
                "Compute the scorecard",
            ),
        )
        return
    st.markdown(card.summary(view.words))
    rows = []
    for method in card.ranking():
        row = {"method": method, "tests passed": f"{card.checks_passed(method)} of 4"}  # see Scorecard.checks_passed
        for key, title, _, _ in scorecard.COLUMNS:
            c = card.rows[method][key]
            star = " ★" if card.best(key) == method else ""
            row[title] = "n/a" if math.isnan(c.mean) else f"{c.mean:.2f} [{c.low:.2f}, {c.high:.2f}]{star}"
        rows.append(row)
    st.dataframe(
        rows,
        hide_index=True,
        column_config={
            title: st.column_config.TextColumn(
                title, help=f"{scorecard.meaning(meaning, view.words)}; {better} is better"
            )
            for _, title, better, meaning in scorecard.COLUMNS
        },
    )
    top = "its top three layers with weights get" if view.host else "fc2, fc1 and conv4 get"
    st.caption(
        f"Randomisation: how alike the map's ink pixels still rank after {top} random weights, "
        "minus how alike two random networks' maps rank (lower is better). Deletion: the class probability as the "
        f"{noun}'s ink is removed in the map's order, compared with 8 random orders, brightest pixels first and a "
        "random network's map (higher margins are better); 'passes deletion' and 'a random net's map deletes as "
        f"well' are the shares of {plural} whose badge says so. ROAD (Rong et al. 2022) removes the ink the same way "
        "but fills each removed pixel from its neighbours, so the shape of the hole cannot tell the class. "
        "Insertion adds the ink to a black image, which the network already reads as some class. "
        "Max-sensitivity: how much the map changes under ±2% pixel noise. "
        f"Computed for {card.model} in {card.seconds:.0f} s."
    )
    st.caption(
        "Data randomisation (Adebayo et al. 2018): how alike the map's ink pixels rank with the map of a network "
        f"that memorised random labels (lower is better). {card.shuffled}"
    )


render(state.page_view())
