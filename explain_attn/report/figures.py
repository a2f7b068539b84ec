"""Figures of the report, drawn with matplotlib's object API (no pyplot).

Every function returns a ``data:image/png;base64,...`` URI, so the HTML
stays one self-contained file.
"""

import base64
import io
import re

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import PlaceHolderLayoutEngine

from explain_attn.overlays import mask_outline, overlay_rgb

__all__ = [
    "HEATMAPS",
    "MANY_LAYERS",
    "channel_figure",
    "example_figure",
    "layer_block",
    "metric_distributions",
    "panel_title",
    "set_layer_ticks",
    "to_data_uri",
    "training_curves",
]

MANY_LAYERS = 24
"""Beyond this many layers, an axis of layer names is labelled by block."""
PANEL_TITLE_CHARACTERS = 18
"""Longest line of a gallery panel title; longer names are cut with '…'."""

DISTRIBUTION_METRICS = (
    "entropy",
    "sparseness",
    "mass_in_mask",
    "rank_accuracy",
    "roc_auc",
    "top_fraction_iou",
)


def to_data_uri(figure, *, dpi=90, cropped=True):
    """Renders ``figure`` as a PNG ``data:`` URI, cropped to its artists
    (``cropped=False``: the whole figure, e.g. a constrained layout).

    Cropped, the same PNG as ``savefig(..., bbox_inches="tight")`` with one
    draw instead of two: matplotlib finds the tight box after a whole draw
    that renders nothing; here the box is measured directly (`tight_box`).
    """
    box = tight_box(figure, dpi) if cropped else None
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches=box)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/png;base64,{encoded}"


def tight_box(figure, dpi):
    """The box ``bbox_inches="tight"`` crops ``figure`` to at ``dpi``.

    `Figure.get_tightbbox` measured with an Agg renderer at ``dpi``, padded
    by ``savefig.pad_inches``. Measuring also lays the axes out as a draw
    would (ticks, titles, image aspect), which is what matplotlib's
    draw before the measure is for; the figure's placeholder layout
    engine (what `Figure.tight_layout` leaves) is dropped, so
    `Figure.savefig` given the box draws once. A figure with a layout
    engine (``layout="constrained"``) is laid out as it draws: for it,
    ``"tight"``, matplotlib's own way.
    """
    engine = figure.get_layout_engine()
    if engine is not None and not isinstance(engine, PlaceHolderLayoutEngine):
        return "tight"
    original = figure.dpi
    canvas = FigureCanvasAgg(figure)
    figure.set_dpi(dpi)
    try:
        box = figure.get_tightbbox(canvas.get_renderer())
    finally:
        figure.set_dpi(original)
    figure.set_layout_engine(None)
    pad = matplotlib.rcParams["savefig.pad_inches"]
    return box.padded(pad, pad)


def metric_distributions(per_image_metrics, labels):
    """Box plots of each metric, one box per explanation.

    Args:
        per_image_metrics: explanation id -> metric name -> ``(N,)`` values.
        labels: explanation id -> label for the axis.

    Returns:
        A PNG data URI, or ``None`` when there is nothing to plot.
    """
    names = [
        name
        for name in DISTRIBUTION_METRICS
        if any(name in row for row in per_image_metrics.values())
    ]
    if not names:
        return None
    ids = list(per_image_metrics)
    columns = 2
    rows = (len(names) + 1) // columns
    figure = Figure(figsize=(10, 0.5 + rows * (0.6 + 0.35 * len(ids))))
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, name in zip(axes, names, strict=False):
        data = []
        for explanation_id in ids:
            values = np.asarray(
                per_image_metrics[explanation_id].get(name, []), float
            )
            data.append(values[np.isfinite(values)])
        axis.boxplot(
            data, orientation="horizontal", showfliers=False, widths=0.6
        )
        axis.set_yticks(
            range(1, len(ids) + 1),
            [_shortened(labels[i]) for i in ids],
            fontsize=8,
        )
        axis.invert_yaxis()
        axis.set_title(name.replace("_", " "), fontsize=10)
        axis.tick_params(axis="x", labelsize=8)
        axis.grid(axis="x", alpha=0.3)
    for axis in axes[len(names) :]:
        axis.set_visible(False)
    figure.tight_layout()
    return to_data_uri(figure)


def _shortened(label, limit=44):
    """``label`` cut in the middle to ``limit`` characters: backbone paths
    are long, and a long tick label leaves the axes no room."""
    if len(label) <= limit:
        return label
    half = (limit - 1) // 2
    return f"{label[:half]}…{label[-half:]}"


def training_curves(histories):
    """Loss and accuracy per epoch for each trained model.

    Args:
        histories: model name -> Keras history dict (lists per metric).

    Returns:
        A PNG data URI, or ``None`` when no model was trained.
    """
    histories = {k: v for k, v in histories.items() if v}
    if not histories:
        return None
    figure = Figure(figsize=(10, 3))
    loss_axis, accuracy_axis = figure.subplots(1, 2)
    for name, history in histories.items():
        epochs = np.arange(1, len(history.get("loss", [])) + 1)
        for key, axis, style in (
            ("loss", loss_axis, "-"),
            ("val_loss", loss_axis, "--"),
            ("accuracy", accuracy_axis, "-"),
            ("val_accuracy", accuracy_axis, "--"),
        ):
            if key in history:
                split = "test" if key.startswith("val_") else "train"
                axis.plot(
                    epochs, history[key], style, label=f"{name} ({split})"
                )
    for axis, title in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
        axis.set_xlabel("epoch")
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    return to_data_uri(figure)


def _shorten(text, limit=PANEL_TITLE_CHARACTERS):
    return text if len(text) <= limit else text[: limit - 1] + "…"


def panel_title(number, model_key, *names):
    """A gallery panel's title: ``"1. model"`` over one line per name.

    Each line is cut at `PANEL_TITLE_CHARACTERS` with "…"; the full label
    goes in the legend under the figure.
    """
    lines = [f"{number}. {model_key}", *names]
    return "\n".join(_shorten(line) for line in lines)


def layer_block(name):
    """The block a layer belongs to, from its name.

    The name's ``_``- or ``/``-separated parts up to and including the
    first part with a digit: ``conv4_block2_1_conv`` -> ``conv4``,
    ``block3_conv`` -> ``block3``, ``block_13_expand`` -> ``block_13``; a
    name without digits is its own block.
    """
    parts = re.split(r"[_/]", name)
    for index, part in enumerate(parts):
        if any(character.isdigit() for character in part):
            return name[: len("_".join(parts[: index + 1]))]
    return name


def set_layer_ticks(axis, layers, *, limit=MANY_LAYERS):
    """Labels an x axis whose steps are ``layers``.

    Up to ``limit`` layers, every name (rotated); beyond, one label per
    block (`layer_block`) at its first step, with a faint line between
    blocks, so that 100+ names stay readable.
    """
    steps = np.arange(len(layers))
    if len(layers) <= limit:
        axis.set_xticks(steps, layers, rotation=35, ha="right", fontsize=7)
        return
    blocks = [layer_block(name) for name in layers]
    starts = [0] + [
        i for i in range(1, len(blocks)) if blocks[i] != blocks[i - 1]
    ]
    for start in starts[1:]:
        axis.axvline(start - 0.5, color="gray", alpha=0.25, linewidth=0.8)
    axis.set_xticks(
        starts,
        [blocks[i] for i in starts],
        rotation=35,
        ha="right",
        fontsize=7,
    )
    axis.set_xlabel(f"{len(layers)} layers, labelled by block", fontsize=8)


def example_figure(image, mask, overlays, titles):
    """One gallery row: the image, its mask outline, then each map overlaid.

    Args:
        image: ``(H, W, 3)`` in [0, 1].
        mask: ``(H, W)`` bool or ``None``.
        overlays: list of ``(H, W)`` maps (any range; each scaled to its own
            [min, max] for display).
        titles: one title per overlay.

    Returns:
        A PNG data URI.
    """
    panels = 2 + len(overlays)
    figure = Figure(figsize=(1.45 * panels, 1.75))
    axes = figure.subplots(1, panels, squeeze=False)[0]
    image = mask_outline(image, None)
    axes[0].imshow(image, interpolation="nearest")
    axes[0].set_title("image", fontsize=7)
    title = "no mask" if mask is None else "mask outline"
    axes[1].set_title(title, fontsize=7)
    axes[1].imshow(mask_outline(image, mask), interpolation="nearest")
    for axis, values, title in zip(axes[2:], overlays, titles, strict=True):
        axis.imshow(overlay_rgb(image, values), interpolation="bilinear")
        axis.set_title(title, fontsize=7)
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout(pad=0.3)
    return to_data_uri(figure, dpi=100)


HEATMAPS = 6
"""Modules per model shown as heatmaps (evenly spaced through the model)."""


def channel_figure(modules, class_names):
    """Per-class mean channel weights of a model's modules as heatmaps
    (up to `HEATMAPS`, evenly spaced), a PNG ``data:`` URI.

    Args:
        modules: ``report.json``'s channel rows of one model: ``layer``,
            ``classes`` and ``class_means`` ``(classes, channels)``.
        class_names: The dataset's class names.
    """
    chosen = np.unique(
        np.linspace(0, len(modules) - 1, min(HEATMAPS, len(modules)))
        .round()
        .astype(int)
    )
    figure = Figure(figsize=(8, 1.6 * len(chosen) + 0.4), layout="constrained")
    for row, index in enumerate(chosen, start=1):
        module = modules[index]
        axes = figure.add_subplot(len(chosen), 1, row)
        image = axes.imshow(
            np.asarray(module["class_means"]),
            aspect="auto",
            cmap="viridis",
            interpolation="nearest",
        )
        axes.set_yticks(range(len(module["classes"])))
        axes.set_yticklabels([class_names[k] for k in module["classes"]])
        axes.set_title(module["layer"], fontsize=8)
        figure.colorbar(image, ax=axes, fraction=0.02)
    axes.set_xlabel("channel")
    return to_data_uri(figure, cropped=False)
