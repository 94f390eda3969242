"""The data set as a whole: every test digit on one map. Pure functions from arrays to
figures, in the house style of ``dashboard.figures``."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from core.data import DIGIT_NAMES
from dashboard.figures import WRONG, figure

# Ten classes, told apart by colour-blind viewers too (Okabe-Ito, then two greys' neighbours).
CLASS_COLOURS = (
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2",
    "#D55E00", "#CC79A7", "#000000", "#999999", "#882255",
)  # fmt: skip
COLOUR_BY = ("true class", "predicted class", "right or wrong")


def data_map(
    points: np.ndarray,
    labels: np.ndarray,
    preds: np.ndarray,
    classes: tuple[str, ...],
    colour_by: str,
    selected: int | None,
    explained: np.ndarray,
) -> go.Figure:
    """float32 (N, 2) points of the test digits (customdata: the digit's index, true class,
    prediction) in two WebGL traces, the digits read right and, on top, the mistakes as
    crosses, coloured by ``colour_by``; ``selected`` ringed."""
    wrong = labels != preds
    if colour_by == "right or wrong":
        value, palette = wrong.astype(np.int8), ("#ADB5BD", WRONG)
    else:
        value, palette = (labels if colour_by == "true class" else preds).astype(np.int8), CLASS_COLOURS
    # Numbers and a stepped colour scale, not a colour string per point: numpy arrays travel as
    # typed arrays, so the 10,000-point figure stays small and quick to build.
    steps = len(palette)
    scale = [[edge, c] for i, c in enumerate(palette) for edge in (i / steps, (i + 1) / steps)]
    customdata = np.stack([np.arange(len(points)), labels, preds], axis=1).astype(np.int32)
    hover = "test #%{customdata[0]}: true %{customdata[1]}, read as %{customdata[2]}<extra></extra>"
    names = None  # digits: the numbers are the names, and numbers keep the figure small
    if tuple(classes) != DIGIT_NAMES:
        names = np.array(
            [
                f"test #{i}: true {classes[t]}, read as {classes[p]}"
                for i, (t, p) in enumerate(zip(labels, preds, strict=True))
            ]
        )
        hover = "%{hovertext}<extra></extra>"
    traces = []
    for mask, symbol, size in ((~wrong, "circle", 4), (wrong, "x", 7)):  # mistakes drawn on top
        traces.append(
            go.Scattergl(
                x=points[mask, 0],
                y=points[mask, 1],
                mode="markers",
                name="digits",
                showlegend=False,
                marker=dict(
                    color=value[mask],
                    colorscale=scale,
                    cmin=-0.5,
                    cmax=steps - 0.5,
                    size=size,
                    symbol=symbol,
                    opacity=0.8,
                ),
                customdata=customdata[mask],
                hovertext=None if names is None else names[mask],
                hovertemplate=hover,
                unselected=dict(marker=dict(opacity=0.8)),  # a click selects one digit; keep the rest as they were
            )
        )
    # A legend of the classes (or right / wrong) as empty traces: the points are one trace, so
    # a click's customdata is always the digit's index.
    names = ["right", "wrong (×)"] if colour_by == "right or wrong" else [f"{c}" for c in classes]
    swatches = ["#ADB5BD", WRONG] if colour_by == "right or wrong" else CLASS_COLOURS[: len(classes)]
    traces += [
        go.Scattergl(x=[None], y=[None], mode="markers", name=n, marker=dict(color=c, size=8), hoverinfo="skip")
        for n, c in zip(names, swatches, strict=True)
    ]
    if selected is not None:
        traces.append(
            go.Scattergl(
                x=[points[selected, 0]],
                y=[points[selected, 1]],
                mode="markers",
                name=f"selected: #{selected}",
                marker=dict(size=18, color="rgba(0,0,0,0)", line=dict(color="#1F2430", width=3)),
                hoverinfo="skip",
            )
        )
    return figure(
        traces,
        620,
        xaxis=dict(title=f"first principal axis ({explained[0]:.0%} of the variance)", zeroline=False),
        yaxis=dict(title=f"second axis ({explained[1]:.0%})", zeroline=False),
        hovermode="closest",
        legend=dict(title=colour_by, itemsizing="constant"),
    )
