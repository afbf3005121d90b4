"""Pictures, headless (matplotlib's Agg): training curves, a confusion matrix and the model diagram of
Keras' plot_model."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'mlp_gpu[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history, path) -> Path:
    """Loss and accuracy per epoch, training against validation, side by side."""
    plt = _pyplot()
    h = history.history
    if not h:
        raise ValueError("history: no epochs recorded, nothing to plot")
    epochs = np.asarray(history.epoch) + 1
    metrics = [m for m in ("loss", "accuracy") if m in h]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        ax.plot(epochs, h[metric], "o-", ms=3, label="training")
        if "val_" + metric in h:
            ax.plot(epochs, h["val_" + metric], "s-", ms=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("training curves")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion_matrix(y_true, y_pred, classes: int) -> np.ndarray:
    """counts[i, j]: rows of true class i predicted as j."""
    counts = np.zeros((classes, classes), np.int64)
    np.add.at(counts, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return counts


def plot_confusion(y_true, y_pred, class_names, path) -> Path:
    """A confusion matrix with counts in each cell and the accuracy in the title."""
    plt = _pyplot()
    k = len(class_names)
    counts = confusion_matrix(y_true, y_pred, k)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(counts, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = counts.max() or 1
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if counts[i, j] > top / 2 else "black")
    ax.set_title(f"confusion matrix: accuracy {np.trace(counts) / max(counts.sum(), 1):.4f}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---- plot_model: the layer graph, drawn with matplotlib (no pydot, no graphviz) ------------------------
RANKDIRS = ("TB", "LR", "BT", "RL")  # graphviz's directions, which Keras passes on
SPLINES = ("ortho", "curved", "polyline", "spline", "line", "none", "true", "false")


def _shape(shape) -> str:
    return str((None,) + tuple(int(d) for d in shape))


def _activation_name(activation) -> str:
    return getattr(activation, "name", None) or getattr(activation, "__name__", None) or str(activation)


def model_diagram(model):
    """The boxes and arrows of ``model``'s graph, as Keras' plot_model draws them: ``(layers, inputs,
    edges)`` with ``layers`` in Keras' order, ``inputs`` each box's input shapes, ``edges`` (from, to)
    index pairs. A Sequential is a chain without an input box; a functional model shows its InputLayers."""
    graph = getattr(model, "_graph", None)
    if graph is None:  # a Sequential: layer k reads layer k-1's output
        layers = list(model.layers)
        outs = [tuple(model.input_shape)] + [tuple(layer.shape_out) for layer in layers]
        return layers, [[outs[k]] for k in range(len(layers))], [(k, k + 1) for k in range(len(layers) - 1)]
    sources = [t.node.layer for t in graph.inputs]
    layers = list(model.layers)
    layers = [s for s in sources if all(s is not layer for layer in layers)] + layers  # a chain lists no Input
    index = {id(layer): k for k, layer in enumerate(layers)}
    inputs = [[] for _ in layers]
    edges = []
    for node in graph.nodes:
        k = index[id(node.layer)]
        for t in node.inputs:
            if not inputs[k] or len(inputs[k]) < len(node.inputs):  # a layer called twice: its first call's shapes
                inputs[k].append(tuple(t.sample_shape))
            if (index[id(t.node.layer)], k) not in edges:
                edges.append((index[id(t.node.layer)], k))
    return layers, inputs, edges


def _label(layer, is_input, input_shapes, show_shapes, show_dtype, show_layer_names, show_layer_activations,
           show_trainable):
    """The title and the lines below it of one box, with Keras' wording (make_layer_label)."""
    cls = "InputLayer" if is_input else type(layer).__name__
    title = f"{layer.name} ({cls})" if show_layer_names else cls
    lines = []
    if show_layer_activations and getattr(layer, "activation", None) is not None:
        lines.append(f"Activation: {_activation_name(layer.activation)}")
    cells = []
    if show_shapes:
        out = tuple(layer.shape) if is_input else tuple(layer.shape_out)
        if not is_input:
            shown = [_shape(s) for s in input_shapes]
            cells.append("Input shape: " + (shown[0] if len(shown) == 1 else "[" + ", ".join(shown) + "]"))
        cells.append(f"Output shape: {_shape(out)}")
    if show_dtype:
        cells.append(f"Output dtype: {getattr(layer, 'dtype', None) or 'float32'}")
    if show_trainable and getattr(layer, "weights", None):
        cells.append("Trainable" if getattr(layer, "trainable", True) else "Non-trainable")
    return title, lines + cells


def _check_flag(value, arg):
    if not isinstance(value, bool):
        raise TypeError(f"plot_model({arg}): expected True or False, got {value!r}")


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=False, rankdir="TB",
               expand_nested=False, dpi=200, show_layer_activations=False, show_trainable=False, splines="ortho",
               **kwargs):
    """Keras' ``plot_model``: draw the model's layers as boxes joined by arrows into ``to_file`` (its suffix
    picks the format: png, pdf, svg, ...), each box labelled as Keras labels it. Drawn with matplotlib,
    no pydot or graphviz: the arrows are straight whatever ``splines`` says, and mlp_gpu's models nest no
    models, so ``expand_nested`` changes nothing. Returns an IPython Image (not for pdf) where IPython is
    installed, as Keras does, else None."""
    if kwargs.pop("layer_range", None) is not None:
        raise ValueError("plot_model(layer_range): no longer supported (as in Keras 3)")
    if kwargs:
        raise ValueError(f"plot_model: unrecognized keyword arguments {sorted(kwargs)}")
    for arg, value in (("show_shapes", show_shapes), ("show_dtype", show_dtype), ("show_layer_names", show_layer_names),
                       ("expand_nested", expand_nested), ("show_layer_activations", show_layer_activations),
                       ("show_trainable", show_trainable)):
        _check_flag(value, arg)
    if rankdir not in RANKDIRS:
        raise ValueError(f"plot_model(rankdir): expected one of {RANKDIRS}, got {rankdir!r}")
    if splines not in SPLINES:
        raise ValueError(f"plot_model(splines): expected one of {SPLINES}, got {splines!r}")
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not 0 < dpi <= 2000:
        raise ValueError(f"plot_model(dpi): expected a number of dots per inch in (0, 2000], got {dpi!r}")
    if not getattr(model, "built", False):
        raise ValueError("plot_model(model): this model has not yet been built; build it first with build() "
                         "or by fitting it")
    layers, input_shapes, edges = model_diagram(model)
    graph = getattr(model, "_graph", None)
    sources = {id(t.node.layer) for t in graph.inputs} if graph is not None else set()
    labels = [_label(layer, id(layer) in sources, shapes, show_shapes, show_dtype, show_layer_names,
                     show_layer_activations, show_trainable) for layer, shapes in zip(layers, input_shapes)]
    path = Path(to_file)
    _draw(labels, edges, rankdir, dpi, path)
    if path.suffix.lower() != ".pdf":
        try:
            from IPython import display
        except ImportError:
            return None
        return display.Image(filename=str(path))
    return None


def _ranks(n, edges):
    """Each box's depth: the longest path to it from a box nothing points at."""
    rank = [0] * n
    for _ in range(n):  # edges go forward in Keras' order, so n passes settle every path
        for a, b in edges:
            rank[b] = max(rank[b], rank[a] + 1)
    return rank


def _draw(labels, edges, rankdir, dpi, path):
    plt = _pyplot()
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    line_h, char_w, pad = 0.28, 0.085, 0.18  # inches: one text line, one character, the box's margin
    sizes = [(max(len(t) for t in [title] + lines) * char_w + 2 * pad, (1 + len(lines)) * line_h + 2 * pad)
             for title, lines in labels]
    rank = _ranks(len(labels), edges)
    by_rank = {}
    for k, r in enumerate(rank):
        by_rank.setdefault(r, []).append(k)
    across = rankdir in ("TB", "BT")
    step_along = (max(h for _, h in sizes) if across else max(w for w, _ in sizes)) + 0.6
    centers = {}
    for r, members in by_rank.items():
        extent = [sizes[k][0] if across else sizes[k][1] for k in members]
        offset = -(sum(extent) + 0.4 * (len(members) - 1)) / 2
        for k, e in zip(members, extent):
            along = r * step_along * (1 if rankdir in ("LR", "TB") else -1)
            centers[k] = (offset + e / 2, -along) if across else (along, -(offset + e / 2))
            offset += e + 0.4
    xs = [centers[k][0] + s * sizes[k][0] / 2 for k in centers for s in (-1, 1)]
    ys = [centers[k][1] + s * sizes[k][1] / 2 for k in centers for s in (-1, 1)]
    width, height = max(xs) - min(xs) + 0.4, max(ys) - min(ys) + 0.4
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(min(xs) - 0.2, max(xs) + 0.2)
    ax.set_ylim(min(ys) - 0.2, max(ys) + 0.2)
    ax.axis("off")
    for k, (title, lines) in enumerate(labels):
        (cx, cy), (w, h) = centers[k], sizes[k]
        ax.add_patch(FancyBboxPatch((cx - w / 2, cy - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.05",
                                    facecolor="white", edgecolor="black", linewidth=1.2))
        top = cy + h / 2 - pad
        ax.add_patch(FancyBboxPatch((cx - w / 2, top - line_h), w, line_h + pad, boxstyle="square,pad=0",
                                    facecolor="black", edgecolor="black"))
        ax.text(cx, top - (line_h - pad) / 2, title, ha="center", va="center", color="white", fontsize=10,
                fontweight="bold", family="DejaVu Sans")
        for i, line in enumerate(lines):
            ax.text(cx, top - line_h * (i + 1.5), line, ha="center", va="center", fontsize=9, family="DejaVu Sans")
    for a, b in edges:
        (ax_, ay), (bx, by) = centers[a], centers[b]
        if across:  # from the edge of a facing b to the edge of b facing a
            s = 1 if ay > by else -1
            start, end = (ax_, ay - s * sizes[a][1] / 2), (bx, by + s * sizes[b][1] / 2)
        else:
            s = 1 if bx > ax_ else -1
            start, end = (ax_ + s * sizes[a][0] / 2, ay), (bx - s * sizes[b][0] / 2, by)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, linewidth=1.5, color="black"))
    try:
        fig.savefig(path, dpi=dpi, format=(path.suffix[1:] or "png").lower())
    except ValueError as exc:
        raise ValueError(f"plot_model(to_file={str(path)!r}): {exc}") from None
    finally:
        plt.close(fig)
