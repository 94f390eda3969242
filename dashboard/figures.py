"""Every Plotly figure of the dashboard. Pure functions from arrays to figures: no Streamlit.

Grids of many small images are drawn as one mosaic heatmap (cheap to build and to send),
with a scatter of invisible square markers on top where clicks must select a tile:
Streamlit reports clicks on scatter points, not on heatmap cells.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

INK = "Greys"  # digits drawn dark on light, as on paper; 0 = white
DIVERGING = "RdBu_r"  # attributions: red for evidence for, blue against, white at zero
SEQUENTIAL = "Viridis"  # activations
RIGHT, WRONG = "#2B8A3E", "#C92A2A"
CHART_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def _frame(fig: go.Figure, height: int, width: int | None = None) -> go.Figure:
    fig.update_layout(
        height=height, width=width, margin=dict(l=10, r=10, t=30, b=10), plot_bgcolor="white", dragmode=False
    )
    return fig


def _image_axes(fig: go.Figure, **where) -> None:
    fig.update_xaxes(visible=False, **where)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", **where)


# ---- digits ----------------------------------------------------------------------------


def digit(image: np.ndarray, title: str = "", size: int = 280) -> go.Figure:
    """One 28x28 uint8 digit, large, with pixel values on hover."""
    fig = go.Figure(
        go.Heatmap(
            z=image,
            colorscale=INK,
            zmin=0,
            zmax=255,
            showscale=False,
            hovertemplate="row %{y}, col %{x}: %{z}<extra></extra>",
        )
    )
    _image_axes(fig)
    fig.update_layout(title=dict(text=title, x=0.5, font=dict(size=14)))
    return _frame(fig, size + 40, size)


def digit_grid(
    images: np.ndarray,
    indices: np.ndarray,
    captions: list[str],
    wrong: np.ndarray,
    hover: list[str],
    columns: int = 10,
    selected: int | None = None,
) -> go.Figure:
    """Tiles of uint8 (n, 28, 28) digits with a caption each; clicking a tile selects it.

    ``indices`` go into each marker's customdata, ``wrong`` (bool, n) colours captions red.
    """
    n = len(images)
    rows = max(1, -(-n // columns))
    cell_w, cell_h = 30, 38  # 28 px of digit, 2 px gap; 8 rows of caption under each digit
    mosaic = np.full((rows * cell_h, columns * cell_w), np.nan, dtype=np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        mosaic[r * cell_h : r * cell_h + 28, c * cell_w : c * cell_w + 28] = image
    pos = np.arange(n)
    cx = (pos % columns) * cell_w + 13.5
    cy = (pos // columns) * cell_h + 13.5
    fig = go.Figure()
    fig.add_trace(go.Heatmap(z=mosaic, colorscale=INK, zmin=0, zmax=255, showscale=False, hoverinfo="skip"))
    fig.add_trace(
        go.Scatter(
            x=cx,
            y=cy + 20.5,
            mode="text",
            text=captions,
            textfont=dict(size=11, color=np.where(wrong, WRONG, "#1F2430").tolist()),
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=cx,
            y=cy,
            mode="markers",
            marker=dict(symbol="square", size=44, color="rgba(0,0,0,0)", line=dict(width=0)),
            customdata=np.asarray(indices).reshape(-1, 1),
            hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>",
            name="tiles",
        )
    )
    if selected is not None and 0 <= selected < n:
        r, c = divmod(selected, columns)
        fig.add_shape(
            type="rect",
            x0=c * cell_w - 1,
            x1=c * cell_w + 28,
            y0=r * cell_h - 1,
            y1=r * cell_h + 28,
            line=dict(color="#4C6EF5", width=3),
        )
    _image_axes(fig)
    fig.update_layout(showlegend=False, hovermode="closest")
    scale = 1.6  # screen pixels per image pixel
    return _frame(fig, int(rows * cell_h * scale) + 40, int(columns * cell_w * scale) + 20)


def probabilities(probs: np.ndarray, label: int | None, pred: int, classes: tuple[str, ...]) -> go.Figure:
    """The probability of each class as bars; the predicted class and true class marked."""
    colors = ["#ADB5BD"] * len(probs)
    colors[pred] = RIGHT if label is None or pred == label else WRONG
    if label is not None and label != pred:
        colors[label] = "#4C6EF5"
    fig = go.Figure(
        go.Bar(
            x=list(classes),
            y=probs,
            marker_color=colors,
            text=[f"{p:.0%}" if p >= 0.01 else "" for p in probs],
            textposition="outside",
            hovertemplate="class %{x}: %{y:.2%}<extra></extra>",
        )
    )
    fig.update_yaxes(range=[0, 1.12], tickformat=".0%", title="probability")
    fig.update_xaxes(type="category", title="class")
    return _frame(fig, 260)


def class_balance(counts: dict[str, np.ndarray], classes: tuple[str, ...]) -> go.Figure:
    """Images per class, one group of bars per split."""
    fig = go.Figure(
        [
            go.Bar(name=split, x=list(classes), y=c, hovertemplate=f"{split} · class %{{x}}: %{{y:,}}<extra></extra>")
            for split, c in counts.items()
        ]
    )
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=1.15))
    fig.update_xaxes(type="category", title="class")
    fig.update_yaxes(title="images")
    return _frame(fig, 240)


# ---- the model -------------------------------------------------------------------------


def training_curves(history: list[dict]) -> go.Figure:
    """Loss (train and test) and test accuracy per epoch."""
    epochs = [r["epoch"] for r in history]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "test accuracy"))
    mode = "lines+markers"
    fig.add_trace(go.Scatter(x=epochs, y=[r["train_loss"] for r in history], name="train loss", mode=mode), 1, 1)
    fig.add_trace(go.Scatter(x=epochs, y=[r["test_loss"] for r in history], name="test loss", mode=mode), 1, 1)
    fig.add_trace(go.Scatter(x=epochs, y=[r["test_accuracy"] for r in history], name="test accuracy", mode=mode), 1, 2)
    fig.update_xaxes(title="epoch", dtick=1)
    fig.update_yaxes(tickformat=".2%", row=1, col=2)
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return _frame(fig, 300)


def per_class_accuracy(accuracy: np.ndarray, classes: tuple[str, ...]) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=list(classes),
            y=accuracy,
            text=[f"{a:.1%}" for a in accuracy],
            textposition="outside",
            marker_color="#4C6EF5",
            hovertemplate="class %{x}: %{y:.2%}<extra></extra>",
        )
    )
    low = max(0.0, float(accuracy.min()) - 0.03)
    fig.update_yaxes(range=[low, 1.005], tickformat=".0%", title="test accuracy")
    fig.update_xaxes(type="category", title="class")
    return _frame(fig, 260)


def confusion(matrix: np.ndarray, show_diagonal: bool, normalise: bool, classes: tuple[str, ...]) -> go.Figure:
    """The confusion matrix (rows true, columns predicted) as a heatmap with counts.

    An invisible marker sits on every cell so a click selects it; its customdata is
    (true, predicted).
    """
    k = len(classes)
    counts = matrix.astype(float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    values = (rates if normalise else counts).copy()
    text = np.array(
        [
            [f"{r:.1%}" if normalise else f"{int(c)}" for c, r in zip(cr, rr, strict=True)]
            for cr, rr in zip(counts, rates, strict=True)
        ]
    )
    if not show_diagonal:
        values[np.arange(k), np.arange(k)] = np.nan
        text[np.arange(k), np.arange(k)] = ""
    true, pred = np.divmod(np.arange(k * k), k)
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            z=values,
            x=list(range(k)),
            y=list(range(k)),
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            showscale=True,
            hoverinfo="skip",
            colorbar=dict(title="share" if normalise else "count", thickness=12),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=pred,
            y=true,
            mode="markers",
            marker=dict(symbol="square", size=30, color="rgba(0,0,0,0)"),
            customdata=np.stack([true, pred, counts.reshape(-1), rates.reshape(-1)], axis=1),
            hovertemplate="true %{customdata[0]} → predicted %{customdata[1]}<br>"
            "%{customdata[2]} digits, %{customdata[3]:.1%} of class %{customdata[0]}<extra></extra>",
            name="cells",
        )
    )
    axis = dict(tickmode="array", tickvals=list(range(k)), ticktext=list(classes), showgrid=False, zeroline=False)
    fig.update_xaxes(title="predicted", side="top", constrain="domain", **axis)
    fig.update_yaxes(title="true", autorange="reversed", scaleanchor="x", constrain="domain", **axis)
    fig.update_layout(showlegend=False, hovermode="closest")
    return _frame(fig, 520)
