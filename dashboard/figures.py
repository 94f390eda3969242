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


# ---- inside the network ----------------------------------------------------------------


def tile(
    maps: np.ndarray, columns: int, gap: int = 1, cell: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Lay (N, h, w) maps out in a grid with NaN gaps; returns the mosaic and each map's
    top-left corner (N, 2) as (row, col). Maps smaller than ``cell`` are centred in it."""
    n, h, w = maps.shape
    ch, cw = cell or (h, w)
    rows = max(1, -(-n // columns))
    mosaic = np.full((rows * (ch + gap) - gap, columns * (cw + gap) - gap), np.nan, dtype=np.float32)
    corners = np.zeros((n, 2), dtype=int)
    for i in range(n):
        r, c = divmod(i, columns)
        top, left = r * (ch + gap) + (ch - h) // 2, c * (cw + gap) + (cw - w) // 2
        mosaic[top : top + h, left : left + w] = maps[i]
        corners[i] = top, left
    return mosaic, corners


def _labels_trace(corners: np.ndarray, labels: list[str], size: tuple[int, int]) -> go.Scatter:
    """Labels above each tile, as one text trace (far cheaper than one annotation each)."""
    return go.Scatter(
        x=corners[:, 1] + size[1] / 2 - 0.5,
        y=corners[:, 0] - 1.2,
        mode="text",
        text=labels,
        textfont=dict(size=10, color="#495057"),
        hoverinfo="skip",
        showlegend=False,
    )


def feature_maps(maps: np.ndarray, layer: str, shared_scale: bool, columns: int | None = None) -> go.Figure:
    """Every channel of one layer for one image: float32 (C, h, w) as one mosaic heatmap.

    With ``shared_scale`` all channels share one colour scale (compare strengths); without
    it each channel is scaled to its own maximum (see every channel's pattern).
    """
    c, h, w = maps.shape
    columns = columns or min(c, 8)
    top = float(maps.max()) or 1.0
    shown = maps / top if shared_scale else maps / np.maximum(maps.reshape(c, -1).max(axis=1), 1e-8)[:, None, None]
    z, corners = tile(shown, columns, gap=max(1, h // 8))
    raw, _ = tile(maps, columns, gap=max(1, h // 8))
    channel, _ = tile(
        np.broadcast_to(np.arange(c, dtype=np.float32)[:, None, None], maps.shape), columns, gap=max(1, h // 8)
    )
    fig = go.Figure(
        go.Heatmap(
            z=z,
            customdata=np.dstack([raw, channel]),
            colorscale=SEQUENTIAL,
            zmin=0,
            zmax=1,
            colorbar=dict(title="shared" if shared_scale else "per channel", thickness=10, tickformat=".0%"),
            hovertemplate=f"{layer} channel %{{customdata[1]}}<br>value %{{customdata[0]:.3f}}<extra></extra>",
        )
    )
    fig.add_trace(_labels_trace(corners, [f"{layer}·{i}" for i in range(c)], (h, w)))
    _image_axes(fig)
    rows = -(-c // columns)
    pixel = max(4, min(14, 560 // (columns * w)))
    return _frame(fig, int(rows * (h + 3) * pixel) + 50)


def units(values: np.ndarray, layer: str, classes: tuple[str, ...] | None = None) -> go.Figure:
    """A fully connected layer's outputs for one image, float32 (units,), as bars."""
    names = list(classes) if classes is not None else [f"{layer}·{i}" for i in range(len(values))]
    colors = np.where(values >= 0, "#4C6EF5", "#C92A2A").tolist()
    fig = go.Figure(go.Bar(x=names, y=values, marker_color=colors, hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.update_xaxes(type="category", title="class (logit)" if classes is not None else "unit")
    fig.update_yaxes(title="logit" if classes is not None else "activation (after ReLU)", zeroline=True)
    return _frame(fig, 240)


def kernels(weights: np.ndarray, layer: str) -> go.Figure:
    """A conv layer's 3x3 kernels (out, in, 3, 3): one row per output channel, one column per input."""
    out, inp = weights.shape[:2]
    z, _ = tile(weights.reshape(out * inp, 3, 3), inp, gap=1)
    limit = float(np.abs(weights).max()) or 1.0
    pair, _ = tile(
        np.broadcast_to(np.arange(out * inp, dtype=np.float32)[:, None, None], (out * inp, 3, 3)), inp, gap=1
    )
    fig = go.Figure(
        go.Heatmap(
            z=z,
            customdata=np.dstack([pair // inp, pair % inp]),
            colorscale=DIVERGING,
            zmin=-limit,
            zmax=limit,
            colorbar=dict(title="weight", thickness=10),
            hovertemplate=f"{layer} out %{{customdata[0]}} ← in %{{customdata[1]}}: %{{z:.3f}}<extra></extra>",
        )
    )
    _image_axes(fig)
    fig.update_layout(
        title=dict(text=f"rows: {out} output channels · columns: {inp} input channels", font=dict(size=12))
    )
    pixel = max(3, min(16, 520 // (inp * 4)))
    return _frame(fig, max(160, int(out * 4 * pixel) + 60))


def flow(image: np.ndarray, stages: list[tuple[str, np.ndarray, np.ndarray]]) -> go.Figure:
    """The input, then per layer its strongest channels, in one row of columns.

    ``stages``: (layer, maps (k, h, w), channel ids (k,)) each; maps are scaled per layer.
    """
    k = max(len(maps) for _, maps, _ in stages)
    cell = 28
    columns = 1 + len(stages)
    z = np.full((k * (cell + 4), columns * (cell + 6)), np.nan, dtype=np.float32)
    labels_x, labels_y, labels = [], [], []
    z[:cell, :cell] = image / 255.0
    labels_x.append(cell / 2), labels_y.append(-2), labels.append("input")
    for s, (layer, maps, ids) in enumerate(stages, start=1):
        top = float(maps.max()) or 1.0
        for j, (m, ch) in enumerate(zip(maps, ids, strict=True)):
            scale = cell // m.shape[0]
            big = np.kron(m / top, np.ones((scale, scale)))  # nearest-neighbour upsampling for display
            r0 = j * (cell + 4) + (cell - big.shape[0]) // 2
            c0 = s * (cell + 6) + (cell - big.shape[1]) // 2
            z[r0 : r0 + big.shape[0], c0 : c0 + big.shape[1]] = big
            labels_x.append(s * (cell + 6) + cell / 2), labels_y.append(j * (cell + 4) + cell + 1.5)
            labels.append(f"#{ch}")
        labels_x.append(s * (cell + 6) + cell / 2), labels_y.append(-2), labels.append(layer)
    fig = go.Figure(go.Heatmap(z=z, colorscale=SEQUENTIAL, zmin=0, zmax=1, showscale=False, hoverinfo="skip"))
    fig.add_trace(
        go.Scatter(
            x=labels_x, y=labels_y, mode="text", text=labels, textfont=dict(size=10), hoverinfo="skip", showlegend=False
        )
    )
    _image_axes(fig)
    return _frame(fig, int(k * 32 * 2.2) + 60)


def attribution_row(maps: list[np.ndarray], titles: list[str], image: np.ndarray) -> go.Figure:
    """Attribution maps side by side, each (28, 28) on its own scale centred on zero, with
    the digit's outline drawn faintly over each so the evidence can be placed."""
    n = len(maps)
    stack = np.stack([m / (np.abs(m).max() or 1.0) for m in maps])
    z, corners = tile(stack, n, gap=3)
    raw, _ = tile(np.stack(maps), n, gap=3)
    outline, _ = tile(np.repeat(image[None].astype(np.float32), n, axis=0), n, gap=3)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            customdata=raw,
            colorscale=DIVERGING,
            zmin=-1,
            zmax=1,
            colorbar=dict(thickness=10, tickvals=[-1, 0, 1], ticktext=["against", "0", "for"]),
            hovertemplate="value %{customdata:.4f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Contour(
            z=np.nan_to_num(outline),
            contours=dict(start=96, end=96, size=1, coloring="none"),
            line=dict(color="rgba(30,30,30,0.45)", width=1),
            showscale=False,
            hoverinfo="skip",
        )
    )
    fig.add_trace(_labels_trace(corners, titles, (28, 28)))
    _image_axes(fig)
    fig.update_layout(showlegend=False)
    return _frame(fig, 300)
